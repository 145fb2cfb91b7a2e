//! Real clients at real load through the VIP of a 3-node farm: `ab` (one
//! connection per request, every one moved to b), `wrk` (keep-alive), 10 MB
//! uploads through moved connections, a keep-alive connection idle longer
//! than the old forward time-out, and `ab` under 5% loss. Each asserts 0
//! failed requests, no RST on the client's link (tcpdump), and that the
//! nodes' counters agree with the requests made. Every request loop is
//! bounded in count and time.

mod common;

use common::{
    ab, assert_ab_ok, assert_no_rst, get, install_loss, nonzero, skip, Capture, Farm, RST_FILTER,
};
use std::collections::HashMap;
use std::time::Duration;

const VIP: &str = "198.18.0.100";
/// Waits until `pred` holds for node `node`'s counters; returns them.
fn settle(
    farm: &Farm,
    node: &str,
    pred: impl Fn(&HashMap<String, u64>) -> bool,
) -> HashMap<String, u64> {
    farm.wait_stats(node, Duration::from_secs(20), pred)
}

/// No node sent a RST or reset a connection it could not find.
fn assert_nodes_quiet(farm: &Farm) {
    for n in ["a", "b", "c"] {
        let s = farm.stats(n);
        assert_eq!(get(&s, "tcp_resets_sent"), 0, "{n}: {:?}", nonzero(&s));
        assert_eq!(get(&s, "port.tx_dropped"), 0, "{n}: {:?}", nonzero(&s));
        assert!(farm.node_alive(n), "node {n} died");
    }
}

#[test]
fn ab_20000_connections_every_one_moved() {
    if skip() {
        return;
    }
    const N: u64 = 20_000;
    let farm = Farm::up("ab", 3, &[]);
    let cap = Capture::start(&farm, RST_FILTER);
    let r = ab(
        &farm,
        N,
        32,
        &format!("http://{VIP}/b/bytes/100"),
        Duration::from_secs(240),
    );
    let rsts = cap.stop();
    println!(
        "ab -n {N} -c 32 /b/bytes/100 via the VIP: {:.0} req/s",
        r.rate
    );
    assert_ab_ok(&r, N);
    assert_no_rst(&rsts);
    let b = settle(&farm, "b", |s| get(s, "http_responses") >= N);
    let a = settle(&farm, "a", |s| {
        get(s, "migrations_acked") > 0 && get(s, "forward_closed") >= get(s, "migrations_acked")
    });
    // Each connection came to b by a move, or (ab reuses client ports
    // quickly) as a new incarnation of one that was in TIME-WAIT there.
    let moved = get(&a, "migrations_acked");
    let reused = get(&b, "tcp_time_wait_reused");
    println!("{moved} moved by a, {reused} on reused ports straight to b");
    // ab opens a few spare connections it sends nothing on: they count as
    // connections, not as responses.
    assert_eq!(get(&b, "http_responses"), N, "b: {:?}", nonzero(&b));
    assert_eq!(get(&a, "http_responses"), 0, "a: {:?}", nonzero(&a));
    assert!(
        moved + reused >= N,
        "a: {:?}\nb: {:?}",
        nonzero(&a),
        nonzero(&b)
    );
    assert_eq!(get(&a, "decision_url"), moved, "a: {:?}", nonzero(&a));
    assert_eq!(get(&a, "migrations_fallback"), 0, "a: {:?}", nonzero(&a));
    assert_eq!(get(&a, "forward_closed"), moved, "a: {:?}", nonzero(&a));
    assert_eq!(
        get(&b, "migrations_committed"),
        moved,
        "b: {:?}",
        nonzero(&b)
    );
    // Every connection b held ended: closed, or replaced by its next incarnation.
    let b = settle(&farm, "b", |s| get(s, "connections") == 0);
    assert_eq!(
        get(&b, "tcp_closed") + get(&b, "tcp_time_wait_reused"),
        get(&b, "migrations_received") + get(&b, "tcp_accepted"),
        "b: {:?}",
        nonzero(&b)
    );
    assert_nodes_quiet(&farm);
}

#[test]
fn wrk_64_keep_alive_connections_for_20s() {
    if skip() {
        return;
    }
    let farm = Farm::up("wrk", 3, &[]);
    let cap = Capture::start(&farm, RST_FILTER);
    let out = farm.client(
        Duration::from_secs(60),
        &[
            "wrk",
            "-t",
            "2",
            "-c",
            "64",
            "-d",
            "20s",
            "--timeout",
            "10s",
            &format!("http://{VIP}/b/bytes/100"),
        ],
    );
    let rsts = cap.stop();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}");
    assert!(out.status.success(), "wrk failed: {text}");
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(requests > 1000, "wrk made {requests} requests:\n{text}");
    assert!(
        !text.contains("Socket errors"),
        "wrk saw socket errors:\n{text}"
    );
    assert!(!text.contains("Non-2xx"), "wrk saw errors:\n{text}");
    assert_no_rst(&rsts);
    // wrk closes its 64 connections at the end: every one was moved to b once
    // and answered everything there.
    let a = settle(&farm, "a", |s| get(s, "forward_closed") >= 64);
    assert_eq!(get(&a, "migrations_acked"), 64, "a: {:?}", nonzero(&a));
    assert_eq!(get(&a, "forward_closed"), 64, "a: {:?}", nonzero(&a));
    let b = settle(&farm, "b", |s| get(s, "http_responses") >= requests);
    assert_eq!(get(&a, "http_responses"), 0, "a: {:?}", nonzero(&a));
    assert!(
        get(&b, "http_responses") >= requests,
        "b: {:?}",
        nonzero(&b)
    );
    assert_nodes_quiet(&farm);
}

/// `curl` uploads `file` to `url`; returns the response headers.
fn upload(farm: &Farm, file: &str, url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "curl",
        "-sS",
        "--max-time",
        "120",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--data-binary",
    ];
    let at = format!("@{file}");
    args.push(&at);
    args.extend_from_slice(extra);
    args.push(url);
    let out = farm.client(Duration::from_secs(130), &args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "curl {url} failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or("")
}

#[test]
fn uploads_of_10mb_through_moved_connections() {
    if skip() {
        return;
    }
    let farm = Farm::up("up", 3, &[]);
    let file = farm.run.join("upload.bin");
    let body: Vec<u8> = (0..10_000_000u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &body).unwrap();
    let file = file.to_str().unwrap().to_string();
    let sha = {
        let out = std::process::Command::new("sha256sum")
            .arg(&file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let cap = Capture::start(&farm, RST_FILTER);
    // Moved by the URL map to b; curl asks for 100-continue on a large body.
    let h = upload(&farm, &file, &format!("http://{VIP}/b/upload"), &[]);
    assert_eq!(header(&h, "X-Ipos-Node"), "b", "{h}");
    assert_eq!(header(&h, "X-Upload-Length"), "10000000", "{h}");
    assert_eq!(header(&h, "X-Upload-Sha256"), sha, "{h}");
    // The same body chunked, and without waiting for 100-continue.
    let h = upload(
        &farm,
        &file,
        &format!("http://{VIP}/b/upload"),
        &["-H", "Transfer-Encoding: chunked", "-H", "Expect:"],
    );
    assert_eq!(header(&h, "X-Ipos-Node"), "b", "{h}");
    assert_eq!(header(&h, "X-Upload-Sha256"), sha, "{h}");
    // Placed by load (no URL rule for /upload): any node, the same bytes.
    let mut placed = Vec::new();
    for _ in 0..3 {
        let h = upload(
            &farm,
            &file,
            &format!("http://{VIP}/upload"),
            &["-H", "Expect:"],
        );
        assert_eq!(header(&h, "X-Upload-Sha256"), sha, "{h}");
        placed.push(header(&h, "X-Ipos-Node").to_string());
    }
    let rsts = cap.stop();
    println!("load-placed uploads served by {placed:?}");
    assert_no_rst(&rsts);
    let a = settle(&farm, "a", |s| get(s, "tcp_accepted") >= 5);
    assert!(get(&a, "migrations_acked") >= 2, "a: {:?}", nonzero(&a));
    assert_eq!(get(&a, "drop.tunnel_too_big"), 0, "a: {:?}", nonzero(&a));
    assert_nodes_quiet(&farm);
}

#[test]
fn keep_alive_connection_idle_150s_is_answered() {
    if skip() {
        return;
    }
    let farm = Farm::up("idle", 3, &[]);
    let cap = Capture::start(&farm, RST_FILTER);
    let (ok, text) = farm.client_script(
        Duration::from_secs(200),
        "keepalive_client.py",
        &[
            VIP,
            "80",
            "150",
            "/b/bytes/3000",
            "3000",
            "/bytes/4000",
            "4000",
        ],
    );
    let rsts = cap.stop();
    println!("{text}");
    assert!(ok, "keep-alive client: {text}");
    assert!(text.contains("node1=b node2=b"), "{text}");
    assert_no_rst(&rsts);
    let a = farm.stats("a");
    assert_eq!(get(&a, "forward_expired"), 0, "a: {:?}", nonzero(&a));
    assert_nodes_quiet(&farm);
}

#[test]
fn ab_through_5pct_loss_on_the_client_link() {
    if skip() {
        return;
    }
    const N: u64 = 1000;
    let farm = Farm::up("abl", 3, &[]);
    // The client must know a's MAC before ARP is subject to loss too.
    let out = farm.client(
        Duration::from_secs(20),
        &["ping", "-c", "1", "-W", "2", VIP],
    );
    assert!(out.status.success(), "first ping failed");
    install_loss(&farm, 5);
    let cap = Capture::start(&farm, RST_FILTER);
    let r = ab(
        &farm,
        N,
        16,
        &format!("http://{VIP}/b/bytes/2000"),
        Duration::from_secs(300),
    );
    let rsts = cap.stop();
    println!("ab -n {N} -c 16 through 5% loss: {:.0} req/s", r.rate);
    if r.failed != 0 || !rsts.is_empty() {
        // What the nodes saw, for the failure below.
        for n in ["a", "b", "c"] {
            println!("{n}: {:?}", nonzero(&farm.stats(n)));
        }
    }
    assert_ab_ok(&r, N);
    assert_no_rst(&rsts);
    let b = settle(&farm, "b", |s| get(s, "http_responses") >= N);
    let a = farm.stats("a");
    assert_eq!(get(&b, "http_responses"), N, "b: {:?}", nonzero(&b));
    assert_eq!(get(&a, "http_responses"), 0, "a: {:?}", nonzero(&a));
    assert_eq!(get(&a, "migrations_fallback"), 0, "a: {:?}", nonzero(&a));
    assert_nodes_quiet(&farm);
}
