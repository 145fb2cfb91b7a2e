//! Test farm harness: brings up `scripts/farm` in namespaces of its own (a
//! unique IPOS_FARM_ID per farm) and tears it down on drop, pass or fail.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Farms share two cores with the kernel client: one at a time per test binary
/// (cargo runs test binaries one after another).
static FARM_LOCK: Mutex<()> = Mutex::new(());

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when this process may create namespaces (root, with `ip` present).
pub fn can_run_farm() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    root && Command::new("ip").arg("-V").output().is_ok()
}

pub struct Farm {
    pub id: String,
    pub run: PathBuf,
    pub nodes: usize,
    _lock: MutexGuard<'static, ()>,
}

impl Farm {
    /// Brings up a farm of `nodes` nodes; `extra` are iposd options.
    pub fn up(tag: &str, nodes: usize, extra: &[&str]) -> Farm {
        let lock = FARM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("{}{}", tag, std::process::id() % 100000);
        let run = std::env::temp_dir().join(format!("ipos-farm{id}"));
        let farm = Farm {
            id: id.clone(),
            run,
            nodes,
            _lock: lock,
        };
        let mut cmd = Command::new(root().join("scripts/farm"));
        cmd.arg("up").arg("--nodes").arg(nodes.to_string());
        cmd.arg("--iposd").arg(env!("CARGO_BIN_EXE_iposd"));
        if !extra.is_empty() {
            cmd.arg("--").args(extra);
        }
        cmd.env("IPOS_FARM_ID", &id).env("IPOS_KEEP_RUN", "1");
        let out = cmd.output().expect("run scripts/farm up");
        if !out.status.success() {
            panic!(
                "farm up failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        farm
    }

    pub fn client_ns(&self) -> String {
        format!("ipos-client{}", self.id)
    }

    pub fn farm_ns(&self) -> String {
        format!("ipos-farm{}", self.id)
    }

    /// Runs a command in the client namespace, bounded by `timeout`.
    pub fn client(&self, timeout: Duration, args: &[&str]) -> Output {
        run_bounded(
            Command::new("ip")
                .arg("netns")
                .arg("exec")
                .arg(self.client_ns())
                .args(args),
            timeout,
        )
    }

    /// Runs `python3 tests/<script> args...` in the client namespace, bounded
    /// by `timeout`; returns whether it exited 0, and its stdout then stderr.
    pub fn client_script(&self, timeout: Duration, script: &str, args: &[&str]) -> (bool, String) {
        let path = root().join("tests").join(script);
        let mut argv = vec!["python3", path.to_str().expect("utf-8 path")];
        argv.extend_from_slice(args);
        let out = self.client(timeout, &argv);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs a command in the farm namespace, bounded by `timeout`.
    pub fn in_farm(&self, timeout: Duration, args: &[&str]) -> Output {
        run_bounded(
            Command::new("ip")
                .arg("netns")
                .arg("exec")
                .arg(self.farm_ns())
                .args(args),
            timeout,
        )
    }

    /// A node's counters from its stats file (rewritten every second).
    pub fn stats(&self, node: &str) -> HashMap<String, u64> {
        let text =
            std::fs::read_to_string(self.run.join(format!("{node}.stats"))).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.to_string(), it.next()?.parse().ok()?))
            })
            .collect()
    }

    /// Waits until `pred` holds for a node's stats (they refresh every second).
    pub fn wait_stats(
        &self,
        node: &str,
        timeout: Duration,
        pred: impl Fn(&HashMap<String, u64>) -> bool,
    ) -> HashMap<String, u64> {
        let end = Instant::now() + timeout;
        loop {
            let s = self.stats(node);
            if pred(&s) || Instant::now() > end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.run.join(format!("{node}.log"))).unwrap_or_default()
    }

    /// Node pids still alive.
    pub fn node_alive(&self, node: &str) -> bool {
        let pid = std::fs::read_to_string(self.run.join(format!("{node}.pid"))).unwrap_or_default();
        !pid.trim().is_empty()
            && Command::new("kill")
                .arg("-0")
                .arg(pid.trim())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in ["a", "b", "c"].iter().take(self.nodes) {
                eprintln!("--- log of node {n} ---\n{}", self.log(n));
            }
        }
        let _ = Command::new(root().join("scripts/farm"))
            .arg("down")
            .env("IPOS_FARM_ID", &self.id)
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.run);
    }
}

/// Runs a command, killing it after `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
            rx.recv().expect("wait").expect("output")
        }
    }
}
