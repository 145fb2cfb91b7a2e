//! The upstreams' health and the processes behind them: FIG. 12's
//! listening-sockets table (which process listens on a service port) and
//! application-information table (the memory and CPU it uses), read from
//! the real processes.
//!
//! A thread per node looks at every upstream once per period (the advert
//! interval): it connects to it (the health check: an upstream that does not
//! accept is down), finds the listening socket in `/proc/net/tcp`,
//! `/proc/net/tcp6` or `/proc/net/unix` (the node's network namespace),
//! the processes that hold it among `/proc/PID/fd` (nginx's master and its
//! workers share one), and sums their resident memory (`VmRSS` of
//! `/proc/PID/status`) and CPU time (`utime + stime` of `/proc/PID/stat`,
//! as a share of one CPU over the period). The result is published whole
//! ([`arc_swap`]): the poll loop reads it when it advertises, without a
//! lock. A port whose upstream is down is not advertised as listening, so
//! within one advert period no node (this one included) places a
//! connection there for it; it is advertised again once the upstream
//! accepts.
//!
//! Before the thread starts, the first look is taken at once, so a node's
//! first advert already tells the truth.

use super::{Upstream, UpstreamAddr};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the health check waits for a connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// One upstream as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHealth {
    pub port: u16,
    /// It accepted the health check's connection.
    pub up: bool,
    /// The lowest process ID among the processes holding its listening
    /// socket (0: not found, e.g. in another namespace or not readable).
    pub pid: u32,
    /// That process's name (`/proc/PID/comm`).
    pub name: String,
    /// How many processes hold the socket.
    pub processes: u32,
    /// Their resident memory, MiB.
    pub mem_mib: u32,
    /// Their CPU use over the last period, permille of one CPU.
    pub cpu_permille: u16,
}

/// Every upstream of a node, as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub ports: Vec<PortHealth>,
}

/// The monitoring thread of one node. Dropping it stops the thread.
pub struct Monitor {
    health: Arc<ArcSwap<Health>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Looks at `ups` once now, then every `every` on a thread.
    pub fn spawn(node: &str, ups: Vec<Upstream>, every: Duration) -> std::io::Result<Monitor> {
        let mut prober = Prober::new(ups);
        let health = Arc::new(ArcSwap::from_pointee(prober.look()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (health.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("upstreams-{node}"))
            .spawn(move || {
                let step = Duration::from_millis(20).min(every);
                let mut next = Instant::now() + every;
                while !s.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        next += every;
                        let seen = prober.look();
                        for (old, new) in h.load().ports.iter().zip(&seen.ports) {
                            if old.up != new.up {
                                if new.up {
                                    log::info!("upstream for port {} accepts again", new.port);
                                } else {
                                    log::warn!(
                                        "upstream for port {} does not accept: port not advertised",
                                        new.port
                                    );
                                }
                            }
                        }
                        h.store(Arc::new(seen));
                    }
                    std::thread::sleep(step);
                }
            })?;
        Ok(Monitor {
            health,
            stop,
            thread: Some(thread),
        })
    }

    /// The last look.
    pub fn health(&self) -> arc_swap::Guard<Arc<Health>> {
        self.health.load()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Looks at the upstreams, remembering CPU times between looks.
struct Prober {
    ups: Vec<Upstream>,
    /// Per port: (when, CPU ticks of its processes) at the last look.
    last_cpu: HashMap<u16, (Instant, u64)>,
    ticks_per_s: u64,
}

impl Prober {
    fn new(ups: Vec<Upstream>) -> Prober {
        Prober {
            ups,
            last_cpu: HashMap::new(),
            ticks_per_s: USER_HZ,
        }
    }

    fn look(&mut self) -> Health {
        let sockets = listening_inodes();
        let mut owners: Option<HashMap<u64, Vec<u32>>> = None;
        let mut ports = Vec::with_capacity(self.ups.len());
        for u in &self.ups {
            let up = probe(&u.addr);
            let mut h = PortHealth {
                port: u.port,
                up,
                pid: 0,
                name: String::new(),
                processes: 0,
                mem_mib: 0,
                cpu_permille: 0,
            };
            if let Some(inode) = sockets.find(&u.addr) {
                let owners = owners.get_or_insert_with(socket_owners);
                if let Some(pids) = owners.get(&inode) {
                    h.processes = pids.len() as u32;
                    h.pid = pids.iter().copied().min().unwrap_or(0);
                    h.name = read_trim(&format!("/proc/{}/comm", h.pid));
                    let mut rss_kib = 0u64;
                    let mut ticks = 0u64;
                    for &p in pids {
                        rss_kib += vm_rss_kib(p).unwrap_or(0);
                        ticks += cpu_ticks(p).unwrap_or(0);
                    }
                    h.mem_mib = (rss_kib / 1024).min(u64::from(u32::MAX)) as u32;
                    let now = Instant::now();
                    if let Some((t0, k0)) = self.last_cpu.insert(u.port, (now, ticks)) {
                        let dt = now.duration_since(t0).as_secs_f64();
                        if dt > 0.0 && self.ticks_per_s > 0 {
                            let used = ticks.saturating_sub(k0) as f64 / self.ticks_per_s as f64;
                            h.cpu_permille = (used / dt * 1000.0).clamp(0.0, 1000.0) as u16;
                        }
                    }
                }
            }
            ports.push(h);
        }
        Health { ports }
    }
}

/// The unit of `/proc/PID/stat`'s times (`sysconf(_SC_CLK_TCK)`): Linux
/// reports them in USER_HZ, 100 on every architecture ipos builds for,
/// whatever the kernel's own HZ.
const USER_HZ: u64 = 100;

/// The health check: a connection the upstream accepts.
fn probe(addr: &UpstreamAddr) -> bool {
    match addr {
        UpstreamAddr::Tcp(a) => std::net::TcpStream::connect_timeout(a, PROBE_TIMEOUT).is_ok(),
        UpstreamAddr::Unix(p) => std::os::unix::net::UnixStream::connect(p).is_ok(),
    }
}

/// Listening sockets of the node's network namespace, by address.
#[derive(Default)]
struct Sockets {
    /// (address octets, port, inode): IPv4 and IPv6 listeners.
    tcp: Vec<(Vec<u8>, u16, u64)>,
    /// (path, inode) of listening Unix stream sockets.
    unix: Vec<(String, u64)>,
}

impl Sockets {
    /// The inode of the socket `addr` reaches: the exact address, else a
    /// wildcard listener on the port.
    fn find(&self, addr: &UpstreamAddr) -> Option<u64> {
        match addr {
            UpstreamAddr::Tcp(a) => {
                let want: Vec<u8> = match a.ip() {
                    std::net::IpAddr::V4(v) => v.octets().to_vec(),
                    std::net::IpAddr::V6(v) => v.octets().to_vec(),
                };
                let on_port = || self.tcp.iter().filter(|(_, p, _)| *p == a.port());
                on_port()
                    .find(|(ip, _, _)| *ip == want)
                    .or_else(|| on_port().find(|(ip, _, _)| ip.iter().all(|b| *b == 0)))
                    .map(|(_, _, i)| *i)
            }
            UpstreamAddr::Unix(p) => {
                let want = p.to_string_lossy();
                self.unix.iter().find(|(q, _)| *q == want).map(|(_, i)| *i)
            }
        }
    }
}

fn listening_inodes() -> Sockets {
    let mut s = Sockets::default();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        s.tcp
            .extend(text.lines().skip(1).filter_map(|l| parse_tcp_line(l, v6)));
    }
    let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    s.unix
        .extend(text.lines().skip(1).filter_map(parse_unix_line));
    s
}

/// A LISTEN line of `/proc/net/tcp{,6}`: (address octets, port, inode).
fn parse_tcp_line(line: &str, v6: bool) -> Option<(Vec<u8>, u16, u64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[3] != "0A" {
        return None;
    }
    let (addr, port) = f[1].split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The address is printed as 32-bit words in the host's order.
    let words = if v6 { 4 } else { 1 };
    if addr.len() != words * 8 {
        return None;
    }
    let mut octets = Vec::with_capacity(words * 4);
    for w in 0..words {
        let word = u32::from_str_radix(&addr[w * 8..w * 8 + 8], 16).ok()?;
        octets.extend_from_slice(&word.to_ne_bytes());
    }
    let inode = f[9].parse().ok()?;
    Some((octets, port, inode))
}

/// A listening stream line of `/proc/net/unix` with a path: (path, inode).
fn parse_unix_line(line: &str) -> Option<(String, u64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = listening.
    if f.len() < 8 || f[3] != "00010000" || f[4] != "0001" {
        return None;
    }
    Some((f[7].to_string(), f[6].parse().ok()?))
}

/// Socket inode -> the processes holding it, from `/proc/*/fd`.
fn socket_owners() -> HashMap<u64, Vec<u32>> {
    let mut out: HashMap<u64, Vec<u32>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            {
                let v = out.entry(inode).or_default();
                if !v.contains(&pid) {
                    v.push(pid);
                }
            }
        }
    }
    out
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(Path::new(path))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `VmRSS` of a process, KiB.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` of a process, clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold spaces: fields
    // after the last ')' start at field 3 (state).
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamKind;

    #[test]
    fn proc_net_lines_parse() {
        let l = "   1: 0B0112C6:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        let (ip, port, inode) = parse_tcp_line(l, false).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(ip, vec![198, 18, 1, 11]);
        }
        assert_eq!((port, inode), (8080, 4242));
        // Not LISTEN.
        assert!(parse_tcp_line(&l.replace(" 0A ", " 01 "), false).is_none());
        let u = "0000000000000000: 00000002 00000000 00010000 0001 01 31337 /run/app.sock";
        assert_eq!(parse_unix_line(u), Some(("/run/app.sock".into(), 31337)));
        assert!(parse_unix_line(&u.replace("00010000", "00000000")).is_none());
    }

    #[test]
    fn a_listening_unix_socket_of_this_process_is_found_and_its_loss_seen() {
        let dir = std::env::temp_dir().join(format!("ipos-monitor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let up = Upstream {
            port: 80,
            addr: UpstreamAddr::Unix(path.clone()),
            proxy_protocol: false,
            kind: UpstreamKind::Http,
        };
        let mut p = Prober::new(vec![up]);
        let h = p.look();
        assert!(h.ports[0].up);
        assert_eq!(h.ports[0].pid, std::process::id(), "{h:?}");
        assert!(h.ports[0].mem_mib > 0, "{h:?}");
        assert!(h.ports[0].processes >= 1);
        drop(l);
        std::fs::remove_file(&path).unwrap();
        let h = p.look();
        assert!(!h.ports[0].up);
        assert_eq!(h.ports[0].pid, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
