//! End-to-end TCP: an unmodified Linux client (curl, Python sockets) in the
//! client namespace downloads from iposd's user-space TCP over net_tap, and
//! must get every byte right, without resets: one large transfer, 200
//! concurrent connections, and a transfer through 5% random loss each way.

mod common;

use common::{
    expected_sha256, flags, get, install_loss, loss_counters, nonzero, remove_loss, skip, Capture,
    Farm,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const NODE_A: &str = "198.18.0.11";

/// What one curl download saw.
#[derive(Debug)]
struct Download {
    /// curl's exit status (0 = complete, no reset, no timeout).
    exit: Option<i32>,
    /// sha256 of the body as received.
    sha256: String,
    /// `-w` variables: http_code, size_download, time_total, speed_download.
    vars: HashMap<String, String>,
    /// Response header block.
    headers: String,
    stderr: String,
    wall: Duration,
}

impl Download {
    fn var(&self, k: &str) -> &str {
        self.vars.get(k).map(String::as_str).unwrap_or("")
    }
}

/// Runs curl in the client namespace, piping the body into sha256sum.
fn curl_sha256(farm: &Farm, url: &str, max_time: u64) -> Download {
    let cmd = format!(
        "set -o pipefail; curl -sS --max-time {max_time} -D /dev/stderr \
         -w '%{{stderr}}@@ http_code=%{{http_code}} size_download=%{{size_download}} \
         time_total=%{{time_total}} speed_download=%{{speed_download}}\\n' '{url}' | sha256sum"
    );
    let t0 = Instant::now();
    let out = farm.client(Duration::from_secs(max_time + 20), &["bash", "-c", &cmd]);
    let wall = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let mut vars = HashMap::new();
    let mut headers = String::new();
    let mut errors = String::new();
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("@@ ") {
            for kv in rest.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    vars.insert(k.to_string(), v.to_string());
                }
            }
        } else if line.starts_with("curl:") {
            errors.push_str(line);
            errors.push('\n');
        } else {
            headers.push_str(line);
            headers.push('\n');
        }
    }
    let sha256 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    Download {
        exit: out.status.code(),
        sha256,
        vars,
        headers,
        stderr: errors,
        wall,
    }
}

/// Asserts a complete, byte-exact download of `n` pattern bytes from node `node`.
fn assert_download(d: &Download, n: u64, expected: &str, node: &str, farm: &Farm) {
    let ctx = || {
        format!(
            "download: {d:#?}\nstats of a: {:?}",
            nonzero(&farm.stats("a"))
        )
    };
    assert_eq!(
        d.exit,
        Some(0),
        "curl failed (reset, timeout or short body): {}\n{}",
        d.stderr,
        ctx()
    );
    assert_eq!(d.var("http_code"), "200", "{}", ctx());
    assert_eq!(d.var("size_download"), n.to_string(), "{}", ctx());
    assert!(
        d.headers
            .to_ascii_lowercase()
            .contains(&format!("x-ipos-node: {node}")),
        "no X-Ipos-Node: {node}\n{}",
        ctx()
    );
    assert!(
        d.headers
            .to_ascii_lowercase()
            .contains(&format!("content-length: {n}")),
        "Content-Length\n{}",
        ctx()
    );
    assert_eq!(d.sha256, expected, "body sha256 differs\n{}", ctx());
}

/// Waits until every accepted connection of `node` has closed and at least
/// `accepted` were accepted; returns the counters.
fn settled_stats(farm: &Farm, node: &str, accepted: u64) -> HashMap<String, u64> {
    farm.wait_stats(node, Duration::from_secs(15), |s| {
        get(s, "tcp_accepted") >= accepted && get(s, "tcp_closed") == get(s, "tcp_accepted")
    })
}

/// Runs tests/http_client.py: `conns` concurrent connections, each fetching
/// `/bytes/{n}` from `ip`; returns (success, summary line + errors).
fn concurrent_fetch(farm: &Farm, ip: &str, conns: u32, n: u64, timeout: u64) -> (bool, String) {
    let (ok, text) = farm.client_script(
        Duration::from_secs(timeout + 15),
        "http_client.py",
        &[
            ip,
            "80",
            &conns.to_string(),
            &n.to_string(),
            &timeout.to_string(),
            "a",
        ],
    );
    let ok = ok
        && text
            .lines()
            .next()
            .is_some_and(|l| l.starts_with(&format!("ok={conns} failed=0 ")));
    (ok, text)
}

/// A tcpdump of every SYN, FIN and RST crossing the client's link, running in
/// the farm namespace on "uplink" (the bridge port of the client veth: frames
/// forwarded between bridge ports never show on br0 itself).

#[test]
fn download_100mb_sha256() {
    if skip() {
        return;
    }
    const N: u64 = 100_000_000;
    let expected = expected_sha256(N);
    let farm = Farm::up("d", 1, &[]);
    let d = curl_sha256(&farm, &format!("http://{NODE_A}/bytes/{N}"), 120);
    println!(
        "100 MB download: {:.2} s, {:.1} MB/s (curl), exit {:?}",
        d.wall.as_secs_f64(),
        d.var("speed_download").parse::<f64>().unwrap_or(0.0) / 1e6,
        d.exit
    );
    assert_download(&d, N, &expected, "a", &farm);
    let s = settled_stats(&farm, "a", 1);
    println!("node a: {:?}", nonzero(&s));
    assert_eq!(get(&s, "tcp_accepted"), 1, "counters: {:?}", nonzero(&s));
    assert_eq!(
        get(&s, "tcp_closed"),
        1,
        "connection not closed: {:?}",
        nonzero(&s)
    );
    assert_eq!(
        get(&s, "tcp_resets_sent"),
        0,
        "node sent RSTs: {:?}",
        nonzero(&s)
    );
    assert!(farm.node_alive("a"), "node a died");
}

#[test]
fn concurrent_200_connections() {
    if skip() {
        return;
    }
    let farm = Farm::up("c", 1, &[]);
    let t0 = Instant::now();
    let (ok, text) = concurrent_fetch(&farm, NODE_A, 200, 1_000_000, 120);
    let secs = t0.elapsed().as_secs_f64();
    println!("200 x 1 MB concurrent: {secs:.2} s\n{text}");
    let s = settled_stats(&farm, "a", 200);
    assert!(
        ok,
        "concurrent client failed:\n{text}\nnode a: {:?}",
        nonzero(&s)
    );
    println!("node a: {:?}", nonzero(&s));
    assert_eq!(get(&s, "tcp_accepted"), 200, "counters: {:?}", nonzero(&s));
    assert_eq!(
        get(&s, "tcp_closed"),
        200,
        "connections left open: {:?}",
        nonzero(&s)
    );
    assert_eq!(get(&s, "tcp_resets_sent"), 0, "counters: {:?}", nonzero(&s));
    assert_eq!(
        get(&s, "drop.tcp_table_full"),
        0,
        "counters: {:?}",
        nonzero(&s)
    );
    assert!(farm.node_alive("a"), "node a died");
}

#[test]
fn download_20mb_with_5pct_loss() {
    if skip() {
        return;
    }
    const N: u64 = 20_000_000;
    let expected = expected_sha256(N);
    let farm = Farm::up("l", 1, &[]);
    // The client must know the node's MAC before ARP is subject to loss too.
    let out = farm.client(
        Duration::from_secs(20),
        &["ping", "-c", "1", "-W", "2", NODE_A],
    );
    assert!(out.status.success(), "first ping failed");
    install_loss(&farm, 5);
    let d = curl_sha256(&farm, &format!("http://{NODE_A}/bytes/{N}"), 240);
    let (dropped_in, dropped_out, table) = loss_counters(&farm);
    let s = settled_stats(&farm, "a", 1);
    println!(
        "20 MB through 5% loss each way: {:.2} s ({:.2} MB/s), exit {:?}; \
         client dropped {dropped_in} in, {dropped_out} out\nnode a: {:?}",
        d.wall.as_secs_f64(),
        d.var("speed_download").parse::<f64>().unwrap_or(0.0) / 1e6,
        d.exit,
        nonzero(&s)
    );
    remove_loss(&farm);
    assert!(
        dropped_in > 0 && dropped_out > 0,
        "no loss was injected:\n{table}"
    );
    assert_download(&d, N, &expected, "a", &farm);
    assert_eq!(
        get(&s, "tcp_resets_sent"),
        0,
        "node sent RSTs: {:?}",
        nonzero(&s)
    );
}

#[test]
fn kernel_client_rst_free() {
    if skip() {
        return;
    }
    const N: u64 = 100_000_000;
    let expected = expected_sha256(N);
    let farm = Farm::up("r", 1, &[]);
    let cap = Capture::start(&farm, "tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0");
    let d = curl_sha256(&farm, &format!("http://{NODE_A}/bytes/{N}"), 120);
    let (ok, text) = concurrent_fetch(&farm, NODE_A, 200, 1_000_000, 120);
    let s = settled_stats(&farm, "a", 201);
    let lines = cap.stop();
    let count = |pred: &dyn Fn(&str) -> bool| lines.iter().filter(|l| pred(flags(l))).count();
    let syns = count(&|f| f == "S");
    let synacks = count(&|f| f == "S.");
    let fins = count(&|f| f.contains('F'));
    let rsts: Vec<&String> = lines.iter().filter(|l| flags(l).contains('R')).collect();
    println!(
        "capture: {} lines, {syns} SYN, {synacks} SYN-ACK, {fins} FIN, {} RST\nnode a: {:?}",
        lines.len(),
        rsts.len(),
        nonzero(&s)
    );
    assert_download(&d, N, &expected, "a", &farm);
    assert!(ok, "concurrent client failed:\n{text}");
    // The capture saw the traffic (else "no RST" would prove nothing).
    assert!(
        syns >= 201 && synacks >= 201 && fins >= 2 * 201,
        "capture incomplete: {syns} SYN, {synacks} SYN-ACK, {fins} FIN:\n{}",
        lines.join("\n")
    );
    let from_node: Vec<_> = rsts
        .iter()
        .filter(|l| l.contains(&format!("{NODE_A}.80 >")))
        .collect();
    assert!(
        from_node.is_empty(),
        "node sent {} RSTs:\n{}",
        from_node.len(),
        from_node
            .iter()
            .take(20)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        rsts.is_empty(),
        "client sent {} RSTs:\n{}",
        rsts.len(),
        rsts.iter()
            .take(20)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(get(&s, "tcp_resets_sent"), 0, "counters: {:?}", nonzero(&s));
    assert_eq!(
        get(&s, "drop.tcp_no_connection"),
        0,
        "segments for closed connections: {:?}",
        nonzero(&s)
    );
    assert_eq!(get(&s, "tcp_closed"), 201, "counters: {:?}", nonzero(&s));
}
