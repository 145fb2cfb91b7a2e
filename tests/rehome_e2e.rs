//! Re-homing end to end: one kernel client (curl, keep-alive, several URLs
//! on one connection) through the VIP of the 3-node test farm. Each request
//! is answered by the node the URL map names (`X-Ipos-Node`), the bodies are
//! byte-exact (SHA-256), curl opened one connection for all of them, and
//! tcpdump on the client's link sees no RST. Torn down by Drop guards.

mod common;

use common::{expected_sha256, get, skip, Capture, Farm};
use std::time::Duration;

const VIP: &str = "198.18.0.100";

#[test]
fn keep_alive_requests_are_answered_by_the_node_their_url_names() {
    if skip() {
        return;
    }
    let farm = Farm::up("rh", 3, &[]);
    let cap = Capture::start(&farm, "tcp and tcp[tcpflags] & tcp-rst != 0");
    // (path, bytes, the node that must answer; "" = any)
    let plan = [
        ("/b/bytes/3000000", 3_000_000u64, "b"),
        ("/c/bytes/4000000", 4_000_000, "c"),
        ("/bytes/5000000", 5_000_000, ""),
        ("/b/bytes/6000000", 6_000_000, "b"),
    ];
    let mut args: Vec<String> = vec![
        "curl".into(),
        "-sS".into(),
        "--max-time".into(),
        "60".into(),
        "-w".into(),
        "%{http_code} %{size_download} %{num_connects} %header{x-ipos-node}\\n".into(),
    ];
    let files: Vec<_> = (0..plan.len())
        .map(|i| farm.run.join(format!("body{i}")))
        .collect();
    for ((path, _, _), file) in plan.iter().zip(&files) {
        args.push("-o".into());
        args.push(file.to_string_lossy().into());
        args.push(format!("http://{VIP}{path}"));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = farm.client(Duration::from_secs(70), &argv);
    let resets = cap.stop();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let context = format!(
        "curl: {stdout}{}\na: {:?}\nb: {:?}\nc: {:?}",
        String::from_utf8_lossy(&out.stderr),
        common::nonzero(&farm.stats("a")),
        common::nonzero(&farm.stats("b")),
        common::nonzero(&farm.stats("c")),
    );
    assert!(out.status.success(), "{context}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), plan.len(), "{context}");
    let mut served = Vec::new();
    for (i, ((path, len, owner), line)) in plan.iter().zip(&lines).enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.first(), Some(&"200"), "{path}: {context}");
        assert_eq!(
            f.get(1),
            Some(&len.to_string().as_str()),
            "{path}: {context}"
        );
        // One connection for all: curl connected for the first URL only.
        let connects = if i == 0 { "1" } else { "0" };
        assert_eq!(f.get(2), Some(&connects), "{path}: {context}");
        let node = f.get(3).copied().unwrap_or("");
        if !owner.is_empty() {
            assert_eq!(node, *owner, "{path}: {context}");
        }
        served.push(node.to_string());
        let body = std::fs::read(&files[i]).expect("body file");
        assert_eq!(body.len() as u64, *len, "{path}");
        let sha = {
            use sha2::{Digest, Sha256};
            format!("{:x}", Sha256::digest(&body))
        };
        assert_eq!(sha, expected_sha256(*len), "{path}: body differs");
    }
    assert!(resets.is_empty(), "RSTs on the client link: {resets:?}");
    let b = farm.stats("b");
    let c = farm.stats("c");
    // b moved it to c at the second request, and c (or whoever served the
    // third) back to b at the fourth.
    let rehomed: u64 = ["a", "b", "c"]
        .iter()
        .map(|n| get(&farm.stats(n), "rehome_moves"))
        .sum();
    assert!(rehomed >= 2, "served by {served:?}; {context}");
    assert!(get(&b, "rehome_moves") >= 1, "{context}");
    assert!(get(&c, "migrations_received") >= 1, "{context}");
    eprintln!("served by {served:?}; re-homing moves {rehomed}");
}
