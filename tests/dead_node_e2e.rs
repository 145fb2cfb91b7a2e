//! A farm node that dies costs its clients a prompt error, never a hang; a
//! node that comes back is chosen again. On the 3-node test farm, 20
//! concurrent downloads through the VIP are moved to b; b's iposd is killed
//! with SIGKILL while they run. Every client must get a reset within a few
//! seconds (curl, with TCP keep-alive probes every second as its "next
//! segment", exits with "connection reset" long before its own time-out), a
//! must end with an empty forward table, and once b is started again
//! (`scripts/farm restart b`), new `/b/` connections are served by b.

mod common;

use common::{get, nonzero, skip, Capture, Farm, RST_FILTER};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VIP: &str = "198.18.0.100";
const DOWNLOADS: usize = 20;
/// Far more than 20 downloads can fetch before curl's own time-out.
const URL_BYTES: u64 = 1_000_000_000_000;
/// curl's own time-out: a client that hangs would run into it.
const CURL_MAX_TIME: u64 = 60;
/// A peer is down after 3 s without an advert; a keep-alive probe follows
/// within a second; this leaves 4 s for the shared cores.
const ERROR_WITHIN: Duration = Duration::from_secs(8);

/// The curl processes; killed on drop, whatever happened.
struct Downloads(Vec<Option<Child>>);

impl Drop for Downloads {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One download: curl in the client namespace, keep-alive probes after 1 s
/// of silence and every second after.
fn download(farm: &Farm) -> Child {
    let url = format!("http://{VIP}/b/bytes/{URL_BYTES}");
    Command::new("ip")
        .args(["netns", "exec", &farm.client_ns(), "curl", "-s", "-S"])
        .args(["-o", "/dev/null", "--keepalive-time", "1"])
        .args(["--max-time", &CURL_MAX_TIME.to_string(), &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl")
}

/// The `X-Ipos-Node` of a `GET path` through the VIP.
fn served_by(farm: &Farm, path: &str) -> String {
    let url = format!("http://{VIP}{path}");
    let out = farm.client(
        Duration::from_secs(15),
        &[
            "curl",
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            &url,
        ],
    );
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "curl {url} failed: {head}");
    head.lines()
        .find_map(|l| l.strip_prefix("X-Ipos-Node: "))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no X-Ipos-Node in {head}"))
}

#[test]
fn dead_node_resets_its_clients_and_restarts() {
    if skip() {
        return;
    }
    let farm = Farm::up("dead", 3, &[]);
    assert_eq!(served_by(&farm, "/b/bytes/100"), "b");
    let mut downloads = Downloads((0..DOWNLOADS).map(|_| Some(download(&farm))).collect());
    // All 20 moved to b and flowing.
    let s = farm.wait_stats("a", Duration::from_secs(20), |s| {
        get(s, "forward_entries") == DOWNLOADS as u64
    });
    assert_eq!(
        get(&s, "forward_entries"),
        DOWNLOADS as u64,
        "a: {:?}",
        nonzero(&s)
    );
    std::thread::sleep(Duration::from_secs(1));
    for c in downloads.0.iter_mut().flatten() {
        assert!(
            c.try_wait().unwrap().is_none(),
            "a download ended before b died"
        );
    }
    let capture = Capture::start(&farm, RST_FILTER);
    let killed = Instant::now();
    farm.kill9("b");

    // Every client gets its error, promptly.
    let mut ended: Vec<Option<(Duration, Option<i32>, String)>> = vec![None; DOWNLOADS];
    while ended.iter().any(Option::is_none) && killed.elapsed() < Duration::from_secs(30) {
        for (i, slot) in downloads.0.iter_mut().enumerate() {
            let Some(c) = slot else { continue };
            if let Some(status) = c.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut e) = c.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut err);
                }
                ended[i] = Some((killed.elapsed(), status.code(), err.trim().to_string()));
                *slot = None;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut times = Vec::new();
    for (i, e) in ended.iter().enumerate() {
        let Some((after, code, err)) = e else {
            panic!(
                "download {i} still running {:?} after b died (a hang); a: {:?}",
                killed.elapsed(),
                nonzero(&farm.stats("a"))
            );
        };
        assert_eq!(
            *code,
            Some(56),
            "download {i}: curl exit {code:?} after {after:?} ({err}); 56 is a reset"
        );
        assert!(err.contains("reset"), "download {i}: not a reset: {err}");
        assert!(
            *after < ERROR_WITHIN,
            "download {i}: error only {after:?} after b died ({err})"
        );
        times.push(after.as_millis());
    }
    times.sort();
    eprintln!(
        "downloads reset after {} .. {} ms (median {} ms); curl's own time-out {CURL_MAX_TIME} s",
        times[0],
        times[DOWNLOADS - 1],
        times[DOWNLOADS / 2]
    );
    let rsts = capture.stop();
    eprintln!(
        "RSTs to the client ({}), first ones:\n{}",
        rsts.len(),
        rsts.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
    );
    let mut ports: Vec<&str> = rsts
        .iter()
        .filter_map(|l| l.split(" > 198.18.0.1.").nth(1))
        .filter_map(|r| r.split(':').next())
        .collect();
    ports.sort();
    ports.dedup();
    assert!(
        ports.len() >= DOWNLOADS,
        "RSTs to {} client ports, not {DOWNLOADS}:\n{}",
        ports.len(),
        rsts.join("\n")
    );

    // a's forward table ends empty; it says b is down.
    let s = farm.wait_stats("a", Duration::from_secs(10), |s| {
        get(s, "forward_entries") == 0
            && get(s, "peers_down_now") == farm.lanes()
            && get(s, "tcp_resets_sent") >= DOWNLOADS as u64
    });
    assert_eq!(get(&s, "forward_entries"), 0, "a: {:?}", nonzero(&s));
    // Each of a's lanes sees b go down.
    assert_eq!(get(&s, "peers_down"), farm.lanes(), "a: {:?}", nonzero(&s));
    assert_eq!(
        get(&s, "forward_target_down"),
        DOWNLOADS as u64,
        "a: {:?}",
        nonzero(&s)
    );
    assert!(
        get(&s, "tcp_resets_sent") >= DOWNLOADS as u64,
        "a: {:?}",
        nonzero(&s)
    );
    assert!(
        farm.log("a").contains("peer b (198.18.0.12) down"),
        "a's log:\n{}",
        farm.log("a")
    );
    // While b is down, its URL is served elsewhere: nothing waits for b.
    assert_ne!(served_by(&farm, "/b/bytes/100"), "b");

    // b comes back from nothing (its advert sequence from 1): chosen again.
    farm.restart("b");
    let s = farm.wait_stats("a", Duration::from_secs(10), |s| {
        get(s, "peers_up") == farm.lanes() && get(s, "peers_down_now") == 0
    });
    assert_eq!(get(&s, "peers_up"), farm.lanes(), "a: {:?}", nonzero(&s));
    assert!(farm.log("a").contains("peer b (198.18.0.12) up again"));
    for i in 0..5 {
        assert_eq!(
            served_by(&farm, &format!("/b/bytes/{}", 1000 + i)),
            "b",
            "request {i} after the restart"
        );
    }
    let b = farm.wait_stats("b", Duration::from_secs(5), |s| {
        get(s, "migrations_received") >= 5
    });
    assert_eq!(get(&b, "migrations_received"), 5, "b: {:?}", nonzero(&b));
    assert!(farm.node_alive("a") && farm.node_alive("b") && farm.node_alive("c"));
}
