//! `iposd`: one ipos node on a DPDK port.
//!
//! ```text
//! iposd [EAL options] -- --config farm.toml --node a [options]
//! ```
//! Everything before `--` goes to DPDK's EAL (cores, memory, devices);
//! everything after it is iposd's own (see `iposd -- --help`).

use clap::Parser;
use ipos::config::FarmConfig;
use ipos::node::{Lane, Node, NodeIdentity, NodeOptions, MAX_LANES};
use ipos::observe::{LaneSample, Snapshot};
use ipos::port::dpdk::{self, DpdkPort, Mbuf, Mempool, PortConfig};
use signal_hook::iterator::Signals;
use smoltcp::time::{Duration, Instant};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const AFTER_HELP: &str = "\
EAL options come first, then `--`, then iposd options. A test node on a tap device:

  iposd --no-huge -m 160 --no-pci --file-prefix=ipos-a \\
        --vdev=net_tap0,iface=tap-a,mac=02:00:c6:12:00:0b -- \\
        --config farm.toml --node a --idle-backoff-us 100

On a real NIC: bind it to vfio-pci (dpdk-devbind.py -b vfio-pci 0000:01:00.0), reserve
hugepages (dpdk-hugepages.py -p 2M --setup 2G), and give the EAL the cores and the
device: iposd -l 2 -a 0000:01:00.0 -- --config farm.toml --node a

Several cores: give the EAL several lcores (-l 2,3,4,5). The node polls one RX/TX queue
pair per lcore (a lane); the device spreads flows over the queues by RSS with a symmetric
key when it can, and a lane that receives a packet of another lane's flow hands it over
on a lock-free ring, so a connection lives on one lane whatever the device does. Adverts,
the stats file and the log count every lane together. At most 64 lanes, and no more than
the device has queues.

Logging: RUST_LOG=debug|info|warn (default info).

Stopping: SIGTERM drains the node: it advertises that it listens on nothing (no node picks
it any more), moves every connection it serves to the others, in the middle of a response
too, and exits once it holds none. What has not moved after --drain-timeout is finished in
place and closed with a FIN; at twice that, or at a second SIGTERM, or at SIGINT, the node
stops at once. The front (the node that answers for the VIP) cannot drain: SIGTERM stops it
at once, cutting its clients. Either way the node prints its counters and writes the stats
file a last time.";

/// How long a drained node keeps answering before it exits: several of a
/// target's acknowledgement retries, should a commit have been lost.
const DRAIN_LINGER: Duration = Duration::from_millis(1000);

/// One ipos node: terminates TCP for the farm's service on a DPDK port.
#[derive(Parser, Debug)]
#[command(name = "iposd", version, about, after_help = AFTER_HELP)]
struct Options {
    /// The farm file (TOML): nodes, VIP, service ports, EtherType.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This node's name in the farm file.
    #[arg(long, value_name = "NAME")]
    node: String,
    /// DPDK port id to use (default: the node's `port` in the farm file, else 0).
    #[arg(long, value_name = "ID")]
    port_id: Option<u16>,
    /// RX/TX descriptors per queue.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    descriptors: u16,
    /// Packet buffers in the pool.
    #[arg(long, default_value_t = 16383, value_name = "N")]
    mbufs: u32,
    /// Sleep this long after `--idle-polls` empty polls in a row (0: pure busy polling).
    /// Lets several nodes share a few cores in tests.
    #[arg(long, default_value_t = 0, value_name = "MICROS")]
    idle_backoff_us: u64,
    /// Empty polls in a row before backing off.
    #[arg(long, default_value_t = 256, value_name = "N")]
    idle_polls: u32,
    /// Drained TCP buffers each lane keeps for reuse, per buffer size. A connection's
    /// send and receive buffers hold memory only while they hold data; a drained one
    /// goes back to its lane's pool, and past this many to the allocator.
    #[arg(long, default_value_t = ipos_tcp::buffers::DEFAULT_MAX_POOLED, value_name = "N")]
    tcp_buffers_pooled: usize,
    /// Seconds between stats lines in the log (0: never).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    stats_interval: u64,
    /// Write all counters to this file (`name value` lines) every second and at exit.
    #[arg(long, value_name = "FILE")]
    stats_file: Option<PathBuf>,
    /// On SIGTERM, move connections away for this long, then finish the rest in place;
    /// stop at twice this long whatever is left.
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    drain_timeout: u64,
    /// Benchmarks only: start with N forward entries, as if N clients
    /// (198.18.1.(1 + i mod 254), port 1024 + i / 254) had been moved to
    /// `--bench-forward-to`; the forward table's limit is raised to hold them.
    /// `scripts/bench-pps --traffic forward` replays those clients' packets.
    #[arg(long, value_name = "N", requires = "bench_forward_to",
          value_parser = clap::value_parser!(u64).range(1..=ipos::node::MAX_PRELOAD as u64))]
    bench_forward_flows: Option<u64>,
    /// Benchmarks only: the node (its address) the preloaded entries point at.
    #[arg(long, value_name = "IP", requires = "bench_forward_flows")]
    bench_forward_to: Option<std::net::Ipv4Addr>,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let argv: Vec<String> = std::env::args().collect();
    let split = argv.iter().position(|a| a == "--");
    let (eal_args, ipos_args): (Vec<String>, Vec<String>) = match split {
        Some(i) => (
            argv[..i].to_vec(),
            std::iter::once(argv[0].clone())
                .chain(argv[i + 1..].iter().cloned())
                .collect(),
        ),
        None => (vec![argv[0].clone()], argv.clone()),
    };
    let opts = Options::parse_from(ipos_args);
    if let Err(e) = run(&eal_args, &opts) {
        eprintln!("iposd: {e}");
        std::process::exit(1);
    }
}

fn run(eal_args: &[String], opts: &Options) -> Result<(), String> {
    let farm = FarmConfig::load(&opts.config).map_err(|e| e.to_string())?;
    let spec = farm.node(&opts.node).cloned().ok_or_else(|| {
        let names: Vec<&str> = farm.nodes.iter().map(|n| n.name.as_str()).collect();
        format!(
            "{}: no node named {:?} (nodes: {})",
            opts.config.display(),
            opts.node,
            names.join(", ")
        )
    })?;

    // The key is read before the EAL starts: a bad key file is the user's first error.
    let auth = farm.auth_config().map_err(|e| e.to_string())?;
    dpdk::eal_init(eal_args).map_err(|e| format!("{e}; check the EAL options before `--`"))?;
    // TCP buffers (and other large blocks) come fresh from the kernel: only the pages a
    // connection writes become resident (see `ipos_tcp::buffers`).
    if !dpdk::malloc_mmap_threshold(MMAP_THRESHOLD) {
        log::warn!("the C allocator refused an mmap threshold of {MMAP_THRESHOLD} bytes");
    }
    let port_id = opts.port_id.unwrap_or(spec.port);
    let pool = Mempool::new(&format!("ipos_{}", spec.name), opts.mbufs, 256, 2048 + 128)
        .map_err(|e| format!("{e}; try a larger -m or fewer --mbufs"))?;
    let lcores = dpdk::lcores();
    let lanes = lcores.len();
    if lanes > MAX_LANES {
        return Err(format!(
            "{lanes} lcores given to the EAL; a node polls at most {MAX_LANES} (one lane each)"
        ));
    }
    let pcfg = PortConfig {
        port_id,
        queues: lanes as u16,
        rx_desc: opts.descriptors,
        tx_desc: opts.descriptors,
        promiscuous: true,
        rss_key: ipos::node::RSS_KEY,
    };
    let started = dpdk::start_port(&pcfg, &pool).map_err(|e| {
        if lanes > 1 {
            format!(
                "{e}; {lanes} lcores need {lanes} RX/TX queue pairs: does the device have them?"
            )
        } else {
            e.to_string()
        }
    })?;
    let dev_mac = started.mac;
    if dev_mac != spec.mac {
        log::warn!(
            "port {port_id} has MAC {dev_mac}, node {} is configured as {}; using {} (set the device MAC, e.g. net_tap's mac= devarg)",
            spec.name,
            spec.mac,
            spec.mac
        );
    }
    let mut id = farm.identity(&spec.name).expect("the node exists");
    match &auth {
        Some(a) => log::info!(
            "ipOS frames {} with the farm key",
            match a.mode {
                ipos::auth::Mode::Authenticated => "authenticated",
                ipos::auth::Mode::Encrypted => "authenticated and encrypted",
            }
        ),
        None => log::warn!(
            "the farm file has no [auth] key_file: ipOS frames are accepted on their source MAC alone and TCBs travel in clear"
        ),
    }
    id.auth = auth;
    let vip = id.vip;
    let mut nopts = farm.node_options();
    let preload = opts
        .bench_forward_flows
        .zip(opts.bench_forward_to)
        .map(|(n, to)| (n as usize, to));
    if let Some((n, _)) = preload {
        nopts.max_forward = nopts.max_forward.max(n);
    }
    nopts.upstreams = farm.upstreams_of(&spec.name);
    log::info!(
        "node {} up: port {} ({}), mac {}, ip {}{}, service ports {:?}, ethertype {:#06x}",
        spec.name,
        port_id,
        dpdk::port_name(port_id).unwrap_or_default(),
        spec.mac,
        spec.ip,
        vip.map(|v| format!(", fronting VIP {v}"))
            .unwrap_or_default(),
        farm.service_ports,
        farm.ethertype
    );
    for u in &nopts.upstreams {
        log::info!(
            "port {} relayed to upstream {} ({}{}), one relay thread per lane",
            u.port,
            u.addr,
            match u.kind {
                ipos::upstream::UpstreamKind::Http => "http: 502 when it fails",
                ipos::upstream::UpstreamKind::Tcp => "tcp: a RST when it fails",
            },
            if u.proxy_protocol {
                ", PROXY protocol v2"
            } else {
                ""
            }
        );
    }
    if lanes > 1 {
        log::info!(
            "{lanes} lanes on lcores {lcores:?}, one queue pair each; flows spread by {}",
            if started.rss {
                "the device's RSS (symmetric key), and a hop between lanes where it differs"
            } else {
                "a hop between lanes (the device does no RSS)"
            }
        );
    }

    // SIGINT stops every lane at once; SIGTERM drains, a second one stops at once.
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))
        .map_err(|e| format!("signal handler: {e}"))?;
    let terms = Arc::new(AtomicUsize::new(0));
    let mut signals =
        Signals::new([signal_hook::consts::SIGTERM]).map_err(|e| format!("signal handler: {e}"))?;
    {
        let terms = Arc::clone(&terms);
        std::thread::Builder::new()
            .name("iposd-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    terms.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| format!("signal thread: {e}"))?;
    }
    let shared = Arc::new(Shared {
        stop: Arc::clone(&stop),
        drain: AtomicBool::new(false),
        start: std::time::Instant::now(),
        reports: (1..lanes)
            .map(|_| Mutex::new(LaneReport::default()))
            .collect(),
    });
    // The node's figures as lane 0 last put them together (once a second),
    // for every reader off the poll loop.
    let published = ipos::observe::published(&spec.name);
    let drain_for = Duration::from_secs(opts.drain_timeout);
    let lane_loop = LaneLoop {
        backoff: std::time::Duration::from_micros(opts.idle_backoff_us),
        idle_polls: opts.idle_polls,
        drain_for,
        buffers_pooled: opts.tcp_buffers_pooled,
    };
    // Each lane's thread has its own pool of TCP buffers.
    ipos_tcp::buffers::set_max_pooled(lane_loop.buffers_pooled);

    // Lane 0 polls on the main lcore; lanes 1.. on the worker lcores.
    let port = DpdkPort::new(port_id, 0, spec.mac, &pool);
    let mut node = if lanes == 1 {
        Node::new(port, id, nopts)
    } else {
        let mut group = Lane::<Mbuf>::group(lanes).into_iter();
        let lane0 = group.next().expect("a group has lane 0");
        let mut workers = Vec::new();
        for (q, lane) in group.enumerate().map(|(i, l)| (i + 1, l)) {
            let port = DpdkPort::new(port_id, q as u16, spec.mac, &pool);
            let job = worker_job(
                port,
                id.clone(),
                nopts.clone(),
                lane,
                Arc::clone(&shared),
                lane_loop,
                preload,
            );
            if let Err(e) = dpdk::launch_on(lcores[q], job) {
                stop.store(true, Ordering::Relaxed);
                for &l in &workers {
                    dpdk::wait_lcore(l);
                }
                return Err(e.to_string());
            }
            workers.push(lcores[q]);
        }
        Node::with_lane(port, id, nopts, lane0)
    };
    if let Some((n, to)) = preload {
        let t = std::time::Instant::now();
        let put = node
            .preload_forward_flows(shared.now(), to, n)
            .map_err(|e| format!("--bench-forward-flows: {e}"))?;
        log::info!(
            "lane 0: {put} of {n} preloaded forward entries to {to} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    let mut drain_until: Option<Instant> = None;
    let mut drained_at: Option<Instant> = None;
    let mut next_drain_check = Instant::from_micros(0);
    let clock = || shared.now();
    let stats_every = Duration::from_secs(opts.stats_interval);
    let mut next_log = clock() + stats_every;
    let mut next_file = clock();
    let mut idle = 0u32;
    let mut next_view_check = clock();
    let mut view_complete = false;
    let mut own_drained = false;
    while !stop.load(Ordering::Relaxed) {
        let now = clock();
        match (terms.load(Ordering::Relaxed), drain_until) {
            (0, _) => {}
            (1, None) => match node.start_drain(now, drain_for) {
                Ok(()) => {
                    // The other lanes start theirs at their next check.
                    shared.drain.store(true, Ordering::Relaxed);
                    drain_until = Some(now + drain_for * 2);
                    log::info!(
                        "node {} draining: moving its {} connections to the others \
                         (finished in place after {} s; SIGTERM again to stop now)",
                        spec.name,
                        node.connection_count() + shared.other_connections(),
                        opts.drain_timeout
                    );
                }
                Err(e) => {
                    log::error!("node {} cannot drain: {e}; stopping now", spec.name);
                    break;
                }
            },
            (1, Some(until)) => {
                // Once drained, a moment more to answer a target whose
                // commit was lost (it acknowledges again) before leaving.
                // `drained` walks the table: ten times a second at most.
                if drained_at.is_none() && now >= next_drain_check {
                    next_drain_check = now + Duration::from_millis(100);
                    own_drained = own_drained || node.drained();
                    if own_drained && shared.others_drained() {
                        drained_at = Some(now);
                        log::info!("node {} drained: it holds no connection", spec.name);
                    }
                }
                if drained_at.is_some_and(|t| now >= t + DRAIN_LINGER) {
                    break;
                }
                if now >= until {
                    log::warn!(
                        "node {} stopping after its drain time with {} connections left",
                        spec.name,
                        node.connection_count() + shared.other_connections()
                    );
                    break;
                }
            }
            _ => {
                log::warn!("node {}: second SIGTERM, stopping now", spec.name);
                break;
            }
        }
        lane_loop.poll(&mut node, now, &mut idle);
        if now >= next_view_check {
            next_view_check = now + Duration::from_millis(100);
            let complete = node.unheard_peers(now).next().is_none();
            if complete != view_complete {
                view_complete = complete;
                if complete {
                    log::info!(
                        "farm view complete: node {} hears every other node ({} in all)",
                        spec.name,
                        farm.nodes.len()
                    );
                } else {
                    let missing: Vec<String> =
                        node.unheard_peers(now).map(|ip| ip.to_string()).collect();
                    log::warn!(
                        "farm view incomplete: no fresh advert from {}",
                        missing.join(", ")
                    );
                }
            }
        }
        if opts.stats_interval > 0 && now >= next_log {
            next_log = now + stats_every;
            log::info!(
                "stats {}",
                shared
                    .snapshot(&spec.name, &node, port_id, &pool)
                    .total
                    .counters
                    .summary()
            );
        }
        if now >= next_file {
            next_file = now + Duration::from_secs(1);
            let snap = Arc::new(shared.snapshot(&spec.name, &node, port_id, &pool));
            if let Some(path) = &opts.stats_file {
                write_stats(path, &snap);
            }
            published.store(snap);
        }
    }
    // Every lane stops; each publishes its last report before it returns.
    stop.store(true, Ordering::Relaxed);
    for &l in &lcores[1..] {
        if dpdk::wait_lcore(l) != 0 {
            log::error!("node {}: the lane on lcore {l} failed", spec.name);
        }
    }
    let last = shared.snapshot(&spec.name, &node, port_id, &pool);
    log::info!(
        "node {} stopping; stats {}",
        spec.name,
        last.total.counters.summary()
    );
    if let Some(path) = &opts.stats_file {
        write_stats(path, &last);
    }
    drop(node);
    dpdk::stop_port(port_id);
    dpdk::eal_cleanup();
    Ok(())
}

/// What lanes 1.. share with lane 0 (the main lcore, which reads signals,
/// logs and writes the stats file for the whole node).
struct Shared {
    /// Every lane stops (SIGINT, or lane 0 is done).
    stop: Arc<AtomicBool>,
    /// Lane 0 started draining: every lane drains its own connections.
    drain: AtomicBool,
    /// The node's clock starts here, the same for every lane.
    start: std::time::Instant,
    /// The last report of lane `i + 1`, rewritten ten times a second.
    reports: Vec<Mutex<LaneReport>>,
}

impl Shared {
    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    fn others_drained(&self) -> bool {
        self.reports
            .iter()
            .all(|r| r.lock().map(|r| r.drained).unwrap_or(true))
    }

    fn other_connections(&self) -> usize {
        self.reports
            .iter()
            .map(|r| r.lock().map(|r| r.sample.connections).unwrap_or(0))
            .sum()
    }

    /// Lane 0's figures and the last reports of the others, with the
    /// device's and the pool's.
    fn snapshot(
        &self,
        name: &str,
        node: &Node<DpdkPort>,
        port_id: u16,
        pool: &Mempool,
    ) -> Snapshot {
        let mut lanes = vec![LaneSample::of(node)];
        for r in &self.reports {
            lanes.push(r.lock().map(|r| r.sample.clone()).unwrap_or_default());
        }
        let mut s = Snapshot::new(name, self.start.elapsed().as_millis() as u64, lanes);
        if let Some(d) = dpdk::device_stats(port_id) {
            s.device = vec![
                ("dev.ipackets", d.ipackets),
                ("dev.opackets", d.opackets),
                ("dev.imissed", d.imissed),
                ("dev.ierrors", d.ierrors),
                ("dev.oerrors", d.oerrors),
                ("dev.rx_nombuf", d.rx_nombuf),
            ];
        }
        s.mbufs_free = pool.available() as u64;
        s
    }
}

/// One lane's figures, as it last reported them to lane 0.
#[derive(Clone, Default)]
struct LaneReport {
    sample: LaneSample,
    drained: bool,
}

impl LaneReport {
    fn of(node: &Node<DpdkPort>, drained: bool) -> LaneReport {
        LaneReport {
            sample: LaneSample::of(node),
            drained,
        }
    }
}

/// Blocks at least this large are mapped fresh from the kernel (a TCP buffer is 256 KiB
/// by default; `tcp.rcv_buf` and `snd_buf` may be as small as the config allows).
const MMAP_THRESHOLD: usize = 64 * 1024;

/// How every lane polls.
#[derive(Clone, Copy)]
struct LaneLoop {
    backoff: std::time::Duration,
    idle_polls: u32,
    drain_for: Duration,
    buffers_pooled: usize,
}

impl LaneLoop {
    /// One poll, then a sleep after `idle_polls` empty ones in a row.
    fn poll(&self, node: &mut Node<DpdkPort>, now: Instant, idle: &mut u32) {
        if node.poll(now) == 0 {
            *idle = idle.saturating_add(1);
            if *idle >= self.idle_polls && !self.backoff.is_zero() {
                std::thread::sleep(self.backoff);
            }
        } else {
            *idle = 0;
        }
    }
}

/// The poll loop of lane `lane.index()` on a worker lcore: it builds its
/// `Node` there, polls until told to stop, drains when lane 0 does, and
/// publishes its report ten times a second and once more at the end.
fn worker_job(
    port: DpdkPort,
    id: NodeIdentity,
    opts: NodeOptions,
    lane: Lane<Mbuf>,
    shared: Arc<Shared>,
    lp: LaneLoop,
    preload: Option<(usize, std::net::Ipv4Addr)>,
) -> impl FnOnce() -> i32 + Send + 'static {
    move || {
        let slot = lane.index() - 1;
        let _guard = StopOnPanic(Arc::clone(&shared));
        ipos_tcp::buffers::set_max_pooled(lp.buffers_pooled);
        let mut node = Node::with_lane(port, id, opts, lane);
        if let Some((n, to)) = preload {
            match node.preload_forward_flows(shared.now(), to, n) {
                Ok(put) => log::info!("lane {}: {put} of {n} preloaded forward entries", slot + 1),
                Err(e) => {
                    log::error!("lane {}: --bench-forward-flows: {e}", slot + 1);
                    shared.stop.store(true, Ordering::Relaxed);
                    return 1;
                }
            }
        }
        let mut idle = 0u32;
        let mut next_report = shared.now();
        let mut draining = false;
        let mut drained = false;
        while !shared.stop.load(Ordering::Relaxed) {
            let now = shared.now();
            lp.poll(&mut node, now, &mut idle);
            if now >= next_report {
                next_report = now + Duration::from_millis(100);
                if !draining && shared.drain.load(Ordering::Relaxed) {
                    draining = true;
                    if let Err(e) = node.start_drain(now, lp.drain_for) {
                        log::error!("lane {}: cannot drain: {e}", slot + 1);
                    }
                }
                drained = drained || (draining && node.drained());
                if let Ok(mut r) = shared.reports[slot].lock() {
                    *r = LaneReport::of(&node, drained);
                }
            }
        }
        if let Ok(mut r) = shared.reports[slot].lock() {
            *r = LaneReport::of(&node, drained);
        }
        0
    }
}

/// A lane that panics stops the whole node: its flows would otherwise be
/// lost on a ring nobody reads.
struct StopOnPanic(Arc<Shared>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes every figure as `name value` lines, atomically (write + rename).
fn write_stats(path: &std::path::Path, snap: &Snapshot) {
    let s = snap.text();
    let tmp = path.with_extension("tmp");
    let ok = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(s.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = ok {
        log::warn!("cannot write stats file {}: {e}", path.display());
    }
}
