//! Draining end to end: 20 kernel clients (curl, rate-limited so that they
//! are mid-transfer) download 20 MB each from node b through the VIP; then
//! `scripts/farm drain b`. Every download completes with the right SHA-256,
//! tcpdump on the client's link sees no RST, b exits holding nothing, and
//! its last counters show 20 moves in the middle of a response. The front
//! refuses to drain. Torn down by Drop guards, every wait bounded.

mod common;

use common::{expected_sha256, get, skip, Capture, Farm};
use std::time::{Duration, Instant};

const VIP: &str = "198.18.0.100";
const CLIENTS: usize = 20;
const SIZE: u64 = 20_000_000;

#[test]
fn a_drained_node_hands_its_downloads_to_the_others() {
    if skip() {
        return;
    }
    let farm = Farm::up("dr", 3, &[]);
    let refused = farm.drain("a");
    assert!(!refused.status.success(), "the front drained");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cannot drain"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Rate-limited curl reads slowly, but the kernel would take up to its
    // autotuned receive buffer (megabytes) ahead: 256 KiB at most here, so
    // that every download is mid-transfer when b drains.
    let sysctl = farm.client(
        Duration::from_secs(10),
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 131072 262144"],
    );
    assert!(sysctl.status.success(), "{:?}", sysctl);
    let cap = Capture::start(&farm, "tcp and tcp[tcpflags] & tcp-rst != 0");
    // 20 downloads at 1.5 MB/s each: about 13 s, all started in parallel.
    let script = format!(
        "for i in $(seq {CLIENTS}); do \
           (curl -sS --max-time 90 --limit-rate 1500k http://{VIP}/b/bytes/{SIZE} | sha256sum \
              > {run}/dl$i.sha) 2> {run}/dl$i.err & \
         done; wait",
        run = farm.run.display()
    );
    let t0 = Instant::now();
    let (out, drained) = std::thread::scope(|s| {
        let dl = s.spawn(|| farm.client(Duration::from_secs(100), &["sh", "-c", &script]));
        // Let every download start at b.
        let b = farm.wait_stats("b", Duration::from_secs(20), |s| {
            get(s, "migrations_received") >= CLIENTS as u64
                && get(s, "connections") >= CLIENTS as u64
        });
        assert!(get(&b, "connections") >= CLIENTS as u64, "b: {b:?}");
        std::thread::sleep(Duration::from_secs(2));
        let drained = farm.drain("b");
        (dl.join().expect("downloads"), drained)
    });
    let took = t0.elapsed();
    let resets = cap.stop();
    let b = farm.stats("b");
    let context = format!(
        "drain: {}{}\nb: {:?}\na: {:?}\nc: {:?}",
        String::from_utf8_lossy(&drained.stdout),
        String::from_utf8_lossy(&drained.stderr),
        common::nonzero(&b),
        common::nonzero(&farm.stats("a")),
        common::nonzero(&farm.stats("c")),
    );
    assert!(drained.status.success(), "{context}");
    assert!(out.status.success(), "{context}");
    assert!(!farm.node_alive("b"), "b still runs\n{context}");
    let want = expected_sha256(SIZE);
    for i in 1..=CLIENTS {
        let sha = std::fs::read_to_string(farm.run.join(format!("dl{i}.sha"))).unwrap_or_default();
        let err = std::fs::read_to_string(farm.run.join(format!("dl{i}.err"))).unwrap_or_default();
        assert_eq!(
            sha.split_whitespace().next(),
            Some(want.as_str()),
            "download {i}: {err}\n{context}"
        );
    }
    assert!(
        resets.is_empty(),
        "RSTs on the client link: {resets:?}\n{context}"
    );
    assert_eq!(get(&b, "connections"), 0, "{context}");
    // Every lane of b drains.
    assert_eq!(get(&b, "drains_started"), farm.lanes(), "{context}");
    assert_eq!(get(&b, "moves_mid_response"), CLIENTS as u64, "{context}");
    assert_eq!(get(&b, "migrations_fallback"), 0, "{context}");
    eprintln!("20 downloads, b drained mid-transfer, all done in {took:?}\n{context}");
}
