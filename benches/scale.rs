//! Table scale (figure P4) and the per-connection hot state (P5): a plain
//! table, no criterion.
//!
//! ```sh
//! cargo bench --bench scale
//! SCALE_MAX=1000000 cargo bench --bench scale   # skip the 10 M rows
//! SCALE_TRACE=1 cargo bench --bench scale       # and each expiry poll over 100 us, with its tick, on stderr
//! ```
//!
//! For the forward table (`ForwardTable`, client IP and port -> target) and
//! the connection table (`ConnectionTable<u32>`: the `u32` stands for the
//! slot's payload; the node's real `Conn` is far larger and lives in the
//! same slab, so the figure is the table's own overhead plus 4 bytes), at
//! 1 000, 1 000 000 and 10 000 000 entries, one row each:
//!
//! | column | what it measures |
//! |---|---|
//! | `B/entry` | live heap bytes after filling an empty table minus before, over entries, counted by this file's `#[global_allocator]` (a byte counter around `System`): slack of grown arrays included |
//! | `lookup ns` | mean time of one hit over 2 000 000 keys drawn at random (xorshift) from those stored, as the node does it: `ForwardTable::lookup` (which also marks the entry used); `ConnectionTable::find` then `get_mut` |
//! | `idle B/entry` | forward only: heap bytes kept for the idle time-outs beyond the table's own (the table keeps them in its entries, src/tables/forward.rs; before, the node's timer wheel held one item per entry, 32 B) |
//! | idle expiry `polls`, `p50 us`, `max us`, `p99.9 us`, `>100us` | forward only: entries arrive evenly over one idle time-out (900 s; the node's default is 900 s plus a margin), each arrival after a poll (`expire_idle`, nothing due yet); then the clock runs on 1 ms a poll (the same `now` again while a poll used its whole budget) and every poll does what `Node::run_timers` does for them: `ForwardTable::expire_idle(now, FORWARD_EXPIRY_BUDGET = 64)`, until all have expired. `polls`: those that removed something; the other four over every poll: the median, the longest, the 99.9th percentile, how many took over 100 µs. Ticks (ms) count from the first arrival: arrivals take ticks 0 to 900 000, expiries 900 000 to 1 800 000 |
//! | sweep `calls`, `p50 us`, `max us`, `p99.9 us`, `>100us` | forward only: a sweep (a target went down) that finds every entry dead, `sweep(256, ..)` a call (the node's `FORWARD_SWEEP_BUDGET`), until the pass ends: the calls, the median, the longest, the 99.9th percentile, how many took over 100 µs |
//!
//! Times are wall clock (`std::time::Instant`) on whatever else the machine
//! runs: a maximum is one sample and includes any preemption of the thread
//! (a few ms on a busy machine), so read it with the percentile and the
//! count beside it.
//!
//! The P5 line prints `size_of::<ipos_tcp::Endpoint>()`, which the test
//! `hot_size_is_compact` (crates/ipos-tcp/src/endpoint/mod.rs) asserts to be
//! at most 128 bytes, and `size_of::<ipos_http::HttpConn>()` (asserted at
//! most 160 bytes in crates/ipos-http/src/conn.rs, `conn_is_small`).
// The counting allocator below needs `unsafe impl GlobalAlloc`; nothing else here is unsafe.
#![allow(unsafe_code)]

use ipos::tables::{ConnectionTable, ForwardEntry, ForwardKey, ForwardTable};
use ipos_wire::Flow;
use smoltcp::time::{Duration, Instant as NodeInstant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// `System`, counting the bytes it has live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's own arguments
// and returns what `System` returned, so `System`'s guarantees carry over;
// the counter is only arithmetic on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Lookups timed per row.
const LOOKUPS: usize = 2_000_000;
/// The node's `FORWARD_EXPIRY_BUDGET` (src/node/timers.rs).
const EXPIRY_BUDGET: usize = 64;
/// The node's `FORWARD_SWEEP_BUDGET` (src/node/timers.rs).
const SWEEP_BUDGET: usize = 256;
/// The idle time-out the entries expire by.
const IDLE: Duration = Duration::from_secs(900);
/// The clock's step per poll while entries expire (the node's timer tick).
const TICK: Duration = Duration::from_millis(1);

/// xorshift64: a reproducible random order without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// `LOOKUPS` random indices below `n`.
fn random_order(n: usize) -> Vec<u32> {
    let mut r = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..LOOKUPS).map(|_| (r.next() % n as u64) as u32).collect()
}

/// The client of entry `i`: 65 536 ports per address from 198.18.0.0 on
/// (10 M entries use 153 addresses).
fn client(i: usize) -> (Ipv4Address, u16) {
    let ip = Ipv4Address::from(u32::from(Ipv4Address::new(198, 18, 0, 0)) + (i >> 16) as u32);
    (ip, i as u16)
}

fn fkey(i: usize) -> ForwardKey {
    let (client_ip, client_port) = client(i);
    ForwardKey {
        client_ip,
        client_port,
    }
}

fn flow(i: usize) -> Flow {
    let (src_addr, src_port) = client(i);
    Flow {
        src_addr,
        src_port,
        dst_addr: Ipv4Address::new(198, 18, 0, 100),
        dst_port: 80,
    }
}

fn fentry(last_used: NodeInstant) -> ForwardEntry {
    ForwardEntry {
        target_ip: Ipv4Address::new(198, 18, 0, 12),
        target_port: 80,
        target_mac: EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0c]),
        target_epoch: 1,
        last_used,
    }
}

fn per_entry(bytes: usize, n: usize) -> f64 {
    bytes as f64 / n as f64
}

fn ns_per(elapsed: std::time::Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

fn us(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

/// The durations of a run of steps (polls or calls).
#[derive(Default)]
struct Steps(Vec<std::time::Duration>);

impl Steps {
    fn max_us(&self) -> f64 {
        self.0.iter().max().map_or(0.0, |&d| us(d))
    }

    /// The `q` quantile (nearest rank).
    fn quantile_us(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |&d| us(d))
    }

    fn over_100us(&self) -> usize {
        let limit = std::time::Duration::from_micros(100);
        self.0.iter().filter(|&&d| d > limit).count()
    }
}

struct ForwardRow {
    bytes_per_entry: f64,
    lookup_ns: f64,
    idle_bytes_per_entry: f64,
    idle: Steps,
    idle_polls: usize,
    sweep: Steps,
}

fn forward_row(n: usize, trace: bool) -> ForwardRow {
    let t0 = NodeInstant::from_secs(1);

    // Memory and lookups.
    let before = live();
    let mut t = ForwardTable::new(n, IDLE);
    for i in 0..n {
        t.insert(fkey(i), fentry(t0), t0).expect("room");
    }
    let table_bytes = live() - before;
    let order = random_order(n);
    let start = Instant::now();
    for &i in &order {
        black_box(t.lookup(black_box(&fkey(i as usize)), t0));
    }
    let lookup_ns = ns_per(start.elapsed(), order.len());
    drop(order);

    // The sweep: every entry dead.
    t.start_sweep();
    let mut sweep = Steps::default();
    while t.sweeping() {
        let start = Instant::now();
        black_box(t.sweep(SWEEP_BUDGET, |e| black_box(e.target_epoch) == 1));
        sweep.0.push(start.elapsed());
    }
    assert!(t.is_empty(), "the sweep left {} entries", t.len());
    drop(t);

    // Idle expiry (the table's idle lists): arrivals spread evenly over one
    // time-out, so the table holds `n` entries when the first expires.
    let before = live();
    let mut t = ForwardTable::new(n, IDLE);
    let step_us = IDLE.total_micros() as f64 / n as f64;
    for i in 0..n {
        let now = t0 + Duration::from_micros((i as f64 * step_us) as u64);
        assert_eq!(
            t.expire_idle(now, EXPIRY_BUDGET),
            0,
            "nothing is due while filling"
        );
        assert!(t.insert(fkey(i), fentry(now), now).expect("room"), "new");
    }
    let idle_bytes = (live() - before).saturating_sub(table_bytes);
    let mut now = t0 + IDLE;
    let (mut idle, mut idle_polls, mut expired) = (Steps::default(), 0, 0);
    while !t.is_empty() {
        let start = Instant::now();
        let got = t.expire_idle(now, EXPIRY_BUDGET);
        expired += got;
        // Every poll counts for the maximum, those that remove nothing too.
        let took = start.elapsed();
        idle.0.push(took);
        if trace && took > std::time::Duration::from_micros(100) {
            let tick = (now - t0).total_millis();
            eprintln!(
                "trace: {n} entries: poll at tick {tick} removed {got}, took {:.0} us",
                us(took)
            );
        }
        if got > 0 {
            idle_polls += 1;
        }
        if got < EXPIRY_BUDGET {
            now += TICK;
        }
    }
    assert_eq!(expired, n);
    ForwardRow {
        bytes_per_entry: per_entry(table_bytes, n),
        lookup_ns,
        idle_bytes_per_entry: per_entry(idle_bytes, n),
        idle,
        idle_polls,
        sweep,
    }
}

/// Bytes per entry and lookup ns of a `ConnectionTable<u32>`.
fn connection_row(n: usize) -> (f64, f64) {
    let before = live();
    let mut t: ConnectionTable<u32> = ConnectionTable::new(n);
    for i in 0..n {
        t.insert(flow(i), i as u32).expect("room");
    }
    let bytes = live() - before;
    let order = random_order(n);
    let start = Instant::now();
    for &i in &order {
        let slot = t.find(black_box(&flow(i as usize))).expect("hit");
        black_box(t.get_mut(slot).map(|v| *v));
    }
    (per_entry(bytes, n), ns_per(start.elapsed(), order.len()))
}

fn main() {
    let max: usize = match std::env::var("SCALE_MAX") {
        Ok(s) => s
            .trim()
            .replace('_', "")
            .parse()
            .expect("SCALE_MAX: a number"),
        Err(_) => usize::MAX,
    };
    let trace = std::env::var_os("SCALE_TRACE").is_some();
    let sizes: Vec<usize> = [1_000, 1_000_000, 10_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    println!("P4: table scale (benches/scale.rs)");
    println!("goal: <= 32 B per forward entry at 10 M; no expiry step longer than 100 us");
    println!(
        "{:<40} | {:<48} | sweep(256) after a target died",
        "", "idle expiry (expire_idle per poll)"
    );
    println!(
        "{:<10} {:>10} {:>8} {:>9} | {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} | {:>6} {:>7} {:>8} {:>8} {:>6}",
        "table",
        "entries",
        "B/entry",
        "lookup ns",
        "idle B",
        "polls",
        "p50 us",
        "max us",
        "p99.9 us",
        ">100us",
        "calls",
        "p50 us",
        "max us",
        "p99.9 us",
        ">100us"
    );
    for &n in &sizes {
        let f = forward_row(n, trace);
        println!(
            "{:<10} {:>10} {:>8.1} {:>9.1} | {:>7.1} {:>7} {:>7.1} {:>8.1} {:>8.1} {:>6} | {:>6} {:>7.1} {:>8.1} {:>8.1} {:>6}",
            "forward",
            n,
            f.bytes_per_entry,
            f.lookup_ns,
            f.idle_bytes_per_entry,
            f.idle_polls,
            f.idle.quantile_us(0.5),
            f.idle.max_us(),
            f.idle.quantile_us(0.999),
            f.idle.over_100us(),
            f.sweep.0.len(),
            f.sweep.quantile_us(0.5),
            f.sweep.max_us(),
            f.sweep.quantile_us(0.999),
            f.sweep.over_100us()
        );
        let (b, ns) = connection_row(n);
        println!("{:<10} {:>10} {:>8.1} {:>9.1} |", "conn<u32>", n, b, ns);
    }
    println!(
        "P5: size_of::<ipos_tcp::Endpoint>() = {} B (asserted <= 128, hot_size_is_compact); \
         size_of::<ipos_http::HttpConn>() = {} B (asserted <= 160, conn_is_small)",
        std::mem::size_of::<ipos_tcp::Endpoint>(),
        std::mem::size_of::<ipos_http::HttpConn>()
    );
}
