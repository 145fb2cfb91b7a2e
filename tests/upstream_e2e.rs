//! Real applications behind the farm: every node's upstream for port 80 is
//! a real process (`scripts/farm up --app nginx|python`: Debian's nginx, or
//! `tests/apps/upstream.py`), listening on 198.18.1.(11 + i):8080 in the
//! farm namespace behind PROXY protocol v2. The client is curl or ab in the
//! client namespace; tcpdump on its link counts RSTs.

mod common;

use common::{ab, assert_ab_ok, assert_no_rst, get, nonzero, skip, Capture, Farm, RST_FILTER};
use std::time::Duration;

const VIP: &str = "198.18.0.100";
const CLIENT: &str = "198.18.0.1";

/// `curl` of `path` through the VIP: (headers, sha256 of the body).
fn fetch(farm: &Farm, path: &str) -> (String, String) {
    let url = format!("http://{VIP}{path}");
    let script =
        format!("curl -sS --max-time 60 -D /dev/stderr -o - '{url}' | sha256sum | cut -d' ' -f1");
    let out = farm.client(Duration::from_secs(90), &["sh", "-c", &script]);
    let head = String::from_utf8_lossy(&out.stderr).to_string();
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success(), "{path}: {head}");
    (head, sha)
}

/// The SHA-256 of each file nginx serves, from the SHA256SUMS the farm wrote.
fn sums(farm: &Farm) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(farm.run.join("www/files/SHA256SUMS"))
        .expect("the farm's SHA256SUMS");
    text.lines()
        .filter_map(|l| {
            let (sha, name) = l.split_once(char::is_whitespace)?;
            Some((
                name.trim().trim_start_matches('*').to_string(),
                sha.to_string(),
            ))
        })
        .collect()
}

fn sum_of(sums: &[(String, String)], name: &str) -> String {
    sums.iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("{name} not in SHA256SUMS: {sums:?}"))
}

#[test]
fn nginx_behind_the_farm_serves_moved_downloads_and_sees_the_client() {
    if skip() {
        return;
    }
    let farm = Farm::up_app("ngx", 3, &[], "nginx");
    assert!(
        farm.log("b")
            .contains("port 80 relayed to upstream 198.18.1.12:8080"),
        "{}",
        farm.log("b")
    );
    let sums = sums(&farm);
    let cap = Capture::start(&farm, RST_FILTER);
    for (path, node, file) in [
        ("/b/files/20m.bin", "b", "20m.bin"),
        ("/c/files/50m.bin", "c", "50m.bin"),
        ("/b/files/1m.bin", "b", "1m.bin"),
    ] {
        let (head, sha) = fetch(&farm, path);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("Server: nginx"),
            "{path}: nginx's header: {head}"
        );
        assert_eq!(sha, sum_of(&sums, file), "{path}: body differs");
        // That node's nginx served it, and logged the client's own address
        // (from the PROXY v2 header), not the node's.
        let log = std::fs::read_to_string(farm.run.join(format!("app-{node}/access.log")))
            .unwrap_or_default();
        let line = log
            .lines()
            .find(|l| l.contains(&format!("GET {path} ")))
            .unwrap_or_else(|| panic!("{path} not in {node}'s access log:\n{log}"));
        assert!(line.starts_with(CLIENT), "{node}'s log: {line}");
    }
    // A 10 MB upload moved to b: nginx reads it whole and answers its length.
    let file = farm.run.join("upload.bin");
    std::fs::write(&file, vec![0x5au8; 10_000_000]).unwrap();
    let out = farm.client(
        Duration::from_secs(90),
        &[
            "curl",
            "-sS",
            "--max-time",
            "60",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://{VIP}/b/upload"),
        ],
    );
    assert!(out.status.success(), "upload: {:?}", out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10000000\n");
    // The page names the node whose nginx answered.
    let out = farm.client(
        Duration::from_secs(30),
        &[
            "curl",
            "-sS",
            "--max-time",
            "20",
            &format!("http://{VIP}/c/"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "nginx on node c\n");
    // Real load: one connection per request, every one moved to b.
    let r = ab(
        &farm,
        10_000,
        32,
        &format!("http://{VIP}/b/"),
        Duration::from_secs(300),
    );
    println!(
        "ab -n 10000 -c 32 through moves to nginx: {:.0} req/s",
        r.rate
    );
    assert_ab_ok(&r, 10_000);
    assert_no_rst(&cap.stop());
    let b = farm.wait_stats("b", Duration::from_secs(10), |s| {
        get(s, "upstream_opened") >= 10_003
    });
    // 10,000 from ab, the two downloads and the upload.
    assert!(get(&b, "upstream_opened") >= 10_003, "b: {:?}", nonzero(&b));
    assert_eq!(get(&b, "upstream_bad_gateway"), 0, "b: {:?}", nonzero(&b));
    assert_eq!(
        get(&b, "upstream_connect_failures"),
        0,
        "b: {:?}",
        nonzero(&b)
    );
    assert_eq!(
        get(&b, "http_responses"),
        0,
        "the built-in service answered"
    );
    let a = farm.stats("a");
    assert_eq!(get(&a, "upstream_opened"), 0, "a: {:?}", nonzero(&a));
}

#[test]
fn uploads_reach_the_upstream_whole_and_a_stopped_upstream_is_left_out() {
    if skip() {
        return;
    }
    let farm = Farm::up_app("pyup", 3, &[], "python");
    // A 10 MB upload moved to c: the Python upstream hashes what it reads.
    let file = farm.run.join("upload.bin");
    let body: Vec<u8> = (0..10_000_000u64).map(|i| (i * 13 + i / 7) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let sha = {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(&body))
    };
    let cap = Capture::start(&farm, RST_FILTER);
    let at = format!("@{}", file.display());
    let out = farm.client(
        Duration::from_secs(90),
        &[
            "curl",
            "-sS",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--data-binary",
            &at,
            &format!("http://{VIP}/c/upload"),
        ],
    );
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "upload: {head}");
    assert!(head.contains("X-App-Node: c"), "{head}");
    assert!(head.contains(&format!("X-Upload-Sha256: {sha}")), "{head}");
    assert!(
        head.contains(&format!("X-Client-Addr: {CLIENT}:")),
        "{head}"
    );
    assert_no_rst(&cap.stop());

    // b's upstream stops. A request already at b gets a 502; within an
    // advert period no new connection for port 80 goes to b; b comes back
    // once its upstream does.
    let slow = std::thread::scope(|s| {
        let h = s.spawn(|| {
            farm.client(
                Duration::from_secs(60),
                &[
                    "curl",
                    "-sS",
                    "--max-time",
                    "30",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{VIP}/b/slow/3000"),
                ],
            )
        });
        // The request is at b's upstream (it answers after 3 s).
        let at_b = farm.wait_stats("b", Duration::from_secs(10), |s| {
            get(s, "upstream_connects") >= 1
        });
        assert!(
            get(&at_b, "upstream_connects") >= 1,
            "b: {:?}",
            nonzero(&at_b)
        );
        farm.app("stop", "b");
        h.join().unwrap()
    });
    assert_eq!(
        String::from_utf8_lossy(&slow.stdout),
        "502",
        "the request in flight at b"
    );
    let b = farm.stats("b");
    assert_eq!(get(&b, "upstream_bad_gateway"), 1, "b: {:?}", nonzero(&b));
    // One advert period (0.5 s) for b to stop advertising, one for a to hear it.
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..5 {
        let out = farm.client(
            Duration::from_secs(30),
            &[
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &format!("http://{VIP}/b/bytes/{}", 100 + i),
            ],
        );
        let head = String::from_utf8_lossy(&out.stdout);
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "with b's upstream down: {head}"
        );
        assert!(!head.contains("X-App-Node: b"), "{head}");
    }
    let b2 = farm.stats("b");
    assert_eq!(
        get(&b2, "upstream_opened"),
        get(&b, "upstream_opened"),
        "b got a connection for port 80 while its upstream was down"
    );
    farm.app("start", "b");
    let mut back = false;
    for _ in 0..20 {
        let out = farm.client(
            Duration::from_secs(30),
            &[
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &format!("http://{VIP}/b/bytes/10"),
            ],
        );
        if String::from_utf8_lossy(&out.stdout).contains("X-App-Node: b") {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(back, "b was not chosen again after its upstream came back");
}
