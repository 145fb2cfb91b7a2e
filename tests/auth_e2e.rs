//! Farm authentication end to end, on the 3-node test farm (which seals
//! every ipOS frame with a fresh farm key): farm frames forged from the
//! client namespace with raw sockets and a farm node's MAC are dropped and
//! counted while a download in progress completes byte-exact; a farm in the
//! encrypt mode moves connections by URL, under `ab` (2000 connections, each
//! moved) and with a 3 MB upload (SHA-256 checked); a node refuses a key file
//! others may read.

mod common;

use common::{expected_sha256, get, skip, Farm};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MACS: [&str; 3] = [
    "02:00:c6:12:00:0b",
    "02:00:c6:12:00:0c",
    "02:00:c6:12:00:0d",
];

/// The client port of the one connection to the VIP, once `ss` shows it.
fn client_port(farm: &Farm) -> Option<u16> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let out = farm.client(
            Duration::from_secs(5),
            &["ss", "-Htn", "state", "established", "dst", "198.18.0.100"],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let port = text.lines().find_map(|l| {
            let local = l.split_whitespace().nth(2)?;
            local.rsplit_once(':')?.1.parse().ok()
        });
        if port.is_some() {
            return port;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn forged_farm_frames_are_dropped_while_a_download_completes() {
    if skip() {
        return;
    }
    let farm = Farm::up("au", 3, &[]);
    assert!(farm
        .log("a")
        .contains("ipOS frames authenticated with the farm key"));
    const LEN: u64 = 20_000_000;
    // A download moved to b, slow enough to be in progress while frames are forged.
    let script = format!(
        "curl -sS --max-time 60 --limit-rate 4M http://198.18.0.100/b/bytes/{LEN} | sha256sum"
    );
    let dl = Command::new("ip")
        .args(["netns", "exec", &farm.client_ns(), "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl");
    let port = client_port(&farm).expect("the download's connection");
    let s = farm.wait_stats("a", Duration::from_secs(10), |s| {
        s.get("migrations_acked").copied().unwrap_or(0) >= 1
    });
    assert_eq!(s.get("migrations_acked"), Some(&1), "a: {s:?}");

    let port = port.to_string();
    let (ok, text) = farm.client_script(
        Duration::from_secs(20),
        "forge_frames.py",
        &["eth0", MACS[0], MACS[1], MACS[2], &port],
    );
    assert!(ok, "forger failed: {text}");
    // Every node receives the five (they are broadcast): a connection packet, a commit and
    // an abort meant for b, a move notice meant for a, an advert.
    for (node, want) in [("a", 5), ("b", 5), ("c", 5)] {
        let s = farm.wait_stats(node, Duration::from_secs(10), |s| {
            s.get("drop.auth_bad_tag").copied().unwrap_or(0) >= want
        });
        assert_eq!(s.get("drop.auth_bad_tag"), Some(&want), "{node}: {s:?}");
    }

    let out = dl.wait_with_output().expect("curl");
    let sum = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && sum.starts_with(&expected_sha256(LEN)),
        "download: {sum} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing forged reached a role: no move followed, no import was aborted or added.
    let a = farm.stats("a");
    let b = farm.stats("b");
    assert_eq!(get(&a, "forward_moved"), 0, "a: {a:?}");
    assert_eq!(get(&b, "migrations_aborted"), 0, "b: {b:?}");
    assert_eq!(get(&b, "migrations_received"), 1, "b: {b:?}");
    for n in ["a", "b", "c"] {
        let s = farm.stats(n);
        for r in [
            "auth_replayed",
            "auth_old_epoch",
            "auth_wrong_mode",
            "auth_no_trailer",
        ] {
            assert_eq!(get(&s, &format!("drop.{r}")), 0, "{n}: {s:?}");
        }
    }
}

#[test]
fn an_encrypted_farm_moves_connections() {
    if skip() {
        return;
    }
    let farm = Farm::up_auth("en", 3, &[], "encrypt");
    assert!(farm
        .log("a")
        .contains("ipOS frames authenticated and encrypted with the farm key"));
    for (path, node) in [("/b/bytes/3000000", "b"), ("/c/bytes/3000000", "c")] {
        let url = format!("http://198.18.0.100{path}");
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
                &url,
            ],
        );
        let head = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && head.contains(&format!("X-Ipos-Node: {node}")),
            "{path}: {head}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Real load through encrypted moves: ab, one connection per request, every one moved to b.
    let out = farm.client(
        Duration::from_secs(120),
        &[
            "ab",
            "-n",
            "2000",
            "-c",
            "16",
            "-s",
            "30",
            "http://198.18.0.100/b/bytes/1000",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    assert!(out.status.success(), "ab: {text}");
    assert_eq!(field("Complete requests:"), Some(2000), "{text}");
    assert_eq!(field("Failed requests:"), Some(0), "{text}");
    assert_eq!(field("Non-2xx responses:"), None, "{text}");
    // An upload moved to c: its body travels encrypted as the connection's carried bytes
    // and then in data frames; the service's SHA-256 of it must match.
    let file = farm.run.join("upload.bin");
    let body: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let sum = Command::new("sha256sum").arg(&file).output().unwrap();
    let sha = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let at = format!("@{}", file.display());
    let out = farm.client(
        Duration::from_secs(60),
        &[
            "curl",
            "-sS",
            "--max-time",
            "50",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--data-binary",
            &at,
            "http://198.18.0.100/c/upload",
        ],
    );
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "upload: {head}");
    assert!(head.contains("X-Ipos-Node: c"), "{head}");
    assert!(head.contains(&format!("X-Upload-Sha256: {sha}")), "{head}");
    // 2003 requests each reached the node their URL names: by a move, or
    // (ab reuses client ports quickly) as a new incarnation of a connection
    // in TIME-WAIT there, which the forward entry sends straight to it.
    let reused = || -> u64 {
        ["b", "c"]
            .iter()
            .map(|n| get(&farm.stats_now(n), "tcp_time_wait_reused"))
            .sum()
    };
    let a = farm.wait_stats("a", Duration::from_secs(10), |s| {
        let moved = get(s, "migrations_acked");
        moved + reused() >= 2003 && get(s, "forward_closed") >= moved
    });
    let reused = reused();
    let moved = get(&a, "migrations_acked");
    assert!(
        moved + reused >= 2003,
        "{moved} moved, {reused} reused; a: {a:?}"
    );
    assert_eq!(get(&a, "migrations_fallback"), 0, "a: {a:?}");
    assert_eq!(get(&a, "http_responses"), 0, "a served a request: {a:?}");
    for n in ["a", "b", "c"] {
        let s = farm.stats(n);
        assert!(
            s.iter()
                .all(|(k, v)| !k.starts_with("drop.auth_") || *v == 0),
            "{n}: {s:?}"
        );
    }
}

#[test]
fn a_key_file_others_may_read_is_refused() {
    if skip() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ipos-keytest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("farm.key");
    std::fs::write(&key, "00".repeat(32)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let farm_file = dir.join("farm.toml");
    let mut text = ipos::config::test_farm_toml(1);
    text.push_str("\n[auth]\nkey_file = \"farm.key\"\n");
    std::fs::write(&farm_file, text).unwrap();
    let out = common::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_iposd"))
            .args([
                "--no-huge",
                "-m",
                "64",
                "--no-pci",
                "--file-prefix=ipos-keytest",
                "--",
            ])
            .arg("--config")
            .arg(&farm_file)
            .args(["--node", "a"]),
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success(), "iposd started: {err}");
    assert!(
        err.contains("farm.key") && err.contains("mode is 0644") && err.contains("chmod 600"),
        "{err}"
    );
}
