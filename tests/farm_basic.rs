//! End-to-end: a farm of iposd processes on net_tap answers ARP and ping,
//! counts malformed ipOS frames by reason, and leaves nothing behind.

mod common;

use common::{skip, Farm};
use std::process::Command;
use std::time::Duration;

const NODE_A_MAC: &str = "02:00:c6:12:00:0b";
const NODE_B_MAC: &str = "02:00:c6:12:00:0c";

#[test]
fn ping_nodes_and_vip_then_down_leaves_nothing() {
    if skip() {
        return;
    }
    let farm = Farm::up("p", 3, &[]);
    let id = farm.id.clone();
    for ip in ["198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.100"] {
        let out = farm.client(
            Duration::from_secs(20),
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", ip],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("3 received"), "ping {ip}: {text}");
    }
    let s = farm.wait_stats("a", Duration::from_secs(5), |s| {
        s.get("icmp_echo_replies").copied().unwrap_or(0) >= 6
    });
    assert!(
        s["icmp_echo_replies"] >= 6,
        "a answered {:?} echo requests",
        s.get("icmp_echo_replies")
    );
    assert!(s["arp_replies"] >= 1);
    let pids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(farm.run.join(format!("{n}.pid")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    drop(farm);
    let ns = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !ns.contains(&format!("ipos-farm{id}")),
        "farm namespace left: {ns}"
    );
    assert!(
        !ns.contains(&format!("ipos-client{id}")),
        "client namespace left: {ns}"
    );
    for pid in pids {
        let alive = Command::new("kill")
            .args(["-0", &pid])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "iposd {pid} still running");
    }
    let links = String::from_utf8(
        Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!links.contains("tap-a"), "tap left in the root namespace");
}

#[test]
fn malformed_ipos_frames_are_counted_by_reason() {
    if skip() {
        return;
    }
    // No farm key: the frames below reach the parser. They carry node b's MAC
    // as their source (a node only parses ipOS frames from farm members);
    // the acknowledgement comes from the client's own MAC.
    let farm = Farm::up_auth("m", 2, &[], "none");
    // Make sure the node is live first (and the bridge has learnt its MAC).
    let out = farm.client(
        Duration::from_secs(20),
        &["ping", "-c", "1", "-W", "2", "198.18.0.11"],
    );
    assert!(out.status.success(), "first ping failed");
    let kinds = [
        ("truncated", "drop.ipos_truncated"),
        ("bad_checksum", "drop.ipos_bad_checksum"),
        ("unknown_type", "drop.ipos_unknown_type"),
        ("unknown_protocol", "drop.ipos_unknown_protocol"),
        ("bad_inner", "drop.ipos_bad_inner"),
        ("bad_length", "drop.ipos_truncated"),
        ("unexpected_ack", "drop.ipos_unknown_sender"),
    ];
    let mut args = vec!["eth0", NODE_A_MAC, "5", "--src", NODE_B_MAC];
    args.extend(kinds.iter().map(|k| k.0));
    let (ok, text) = farm.client_script(Duration::from_secs(20), "ipos_frames.py", &args);
    assert!(ok, "sender failed: {text}");
    let mut expected = std::collections::HashMap::new();
    for (_, counter) in kinds {
        *expected.entry(counter).or_insert(0u64) += 5;
    }
    let s = farm.wait_stats("a", Duration::from_secs(10), |s| {
        expected.iter().all(|(k, v)| s.get(*k) == Some(v))
    });
    for (k, v) in &expected {
        assert_eq!(s.get(*k), Some(v), "counter {k}; all stats: {s:?}");
    }
    assert!(farm.node_alive("a"), "node died");
    let out = farm.client(
        Duration::from_secs(20),
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.11"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 received"),
        "node stopped answering"
    );
}
