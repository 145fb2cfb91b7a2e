//! Test farm harness: brings up `scripts/farm` in namespaces of its own (a
//! unique IPOS_FARM_ID per farm) and tears it down on drop, pass or fail.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
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
    /// Brings up a farm of `nodes` nodes (frames authenticated with a fresh
    /// farm key); `extra` are iposd options.
    pub fn up(tag: &str, nodes: usize, extra: &[&str]) -> Farm {
        Farm::up_auth(tag, nodes, extra, "authenticate")
    }

    /// [`Farm::up`] with every node polling `lanes` lcores (`scripts/farm up
    /// --lanes`).
    #[allow(dead_code)]
    pub fn up_lanes(tag: &str, nodes: usize, extra: &[&str], lanes: usize) -> Farm {
        Farm::start(tag, nodes, extra, "authenticate", Some(lanes), None)
    }

    /// [`Farm::up`] with `app` (`nginx` or `python`) as every node's upstream
    /// for port 80 (`scripts/farm up --app`): node i's listens on
    /// 198.18.1.(11 + i):8080 in the farm namespace, behind PROXY protocol v2.
    #[allow(dead_code)]
    pub fn up_app(tag: &str, nodes: usize, extra: &[&str], app: &str) -> Farm {
        Farm::start(tag, nodes, extra, "authenticate", None, Some(app))
    }

    /// [`Farm::up`] with the farm's `--auth` mode: `authenticate`, `encrypt` or `none`.
    /// The lanes per node are `IPOS_FARM_LANES` (default 1), so that any
    /// end-to-end test can be run with several.
    pub fn up_auth(tag: &str, nodes: usize, extra: &[&str], auth: &str) -> Farm {
        Farm::start(tag, nodes, extra, auth, None, None)
    }

    fn start(
        tag: &str,
        nodes: usize,
        extra: &[&str],
        auth: &str,
        lanes: Option<usize>,
        app: Option<&str>,
    ) -> Farm {
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
        cmd.arg("--auth").arg(auth);
        if let Some(l) = lanes {
            cmd.arg("--lanes").arg(l.to_string());
        }
        if let Some(a) = app {
            cmd.arg("--app").arg(a);
        }
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

    /// Lanes (lcores) per node, as `scripts/farm up` started them: an event
    /// every lane sees once (a peer going down, a drain starting) counts
    /// this many times in a node's summed counters.
    #[allow(dead_code)]
    pub fn lanes(&self) -> u64 {
        std::fs::read_to_string(self.run.join("lanes"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1)
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

    /// A node's counters, from a stats file written after this call (the
    /// node rewrites it every second), so that they count all the traffic
    /// sent before it. A node that writes no more (stopped, killed) gives its
    /// last file after 3 s.
    pub fn stats(&self, node: &str) -> HashMap<String, u64> {
        self.wait_stats(node, Duration::from_secs(3), |_| true)
    }

    /// A node's counters from its stats file as it is now (up to a second old).
    pub fn stats_now(&self, node: &str) -> HashMap<String, u64> {
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
    /// Only a file written after the call counts: one written before it may
    /// predate the traffic the caller just sent, and satisfy `pred` with
    /// counts that are already behind.
    pub fn wait_stats(
        &self,
        node: &str,
        timeout: Duration,
        pred: impl Fn(&HashMap<String, u64>) -> bool,
    ) -> HashMap<String, u64> {
        let path = self.run.join(format!("{node}.stats"));
        let since = std::time::SystemTime::now();
        let end = Instant::now() + timeout;
        loop {
            let fresh = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > since);
            let s = self.stats_now(node);
            if (fresh && pred(&s)) || Instant::now() > end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `scripts/farm app-stop NODE` / `app-start NODE`: stops or starts that
    /// node's upstream application only.
    #[allow(dead_code)]
    pub fn app(&self, verb: &str, node: &str) {
        let out = run_bounded(
            Command::new(root().join("scripts/farm"))
                .arg(format!("app-{verb}"))
                .arg(node)
                .env("IPOS_FARM_ID", &self.id)
                .env("IPOS_KEEP_RUN", "1"),
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "farm app-{verb} {node}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.run.join(format!("{node}.log"))).unwrap_or_default()
    }

    /// Kills a node's iposd with SIGKILL (a crash: no last stats, no goodbye)
    /// and waits (bounded) until it is gone.
    pub fn kill9(&self, node: &str) {
        let pid = std::fs::read_to_string(self.run.join(format!("{node}.pid"))).unwrap_or_default();
        let pid = pid.trim();
        assert!(!pid.is_empty(), "no pid for node {node}");
        let _ = Command::new("kill").args(["-KILL", pid]).status();
        let t0 = Instant::now();
        while self.node_alive(node) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "node {node} survives kill -9"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `scripts/farm restart NODE`: the node starts again from nothing, on the
    /// same tap, and this returns once it hears every other node.
    pub fn restart(&self, node: &str) {
        let out = run_bounded(
            Command::new(root().join("scripts/farm"))
                .args(["restart", node])
                .env("IPOS_FARM_ID", &self.id)
                .env("IPOS_KEEP_RUN", "1"),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "farm restart {node} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `scripts/farm drain NODE`: the node moves its connections away and
    /// exits; returns the command's output (it fails for the front).
    pub fn drain(&self, node: &str) -> Output {
        run_bounded(
            Command::new(root().join("scripts/farm"))
                .args(["drain", node, "60"])
                .env("IPOS_FARM_ID", &self.id)
                .env("IPOS_KEEP_RUN", "1"),
            Duration::from_secs(70),
        )
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

/// True (and says so) when the end-to-end tests cannot run here. The line
/// `skipped (not root): <test>` goes straight to the process's stderr, past
/// the test harness's capture, so that `scripts/test` counts the skipped
/// tests in its closing line.
pub fn skip() -> bool {
    if !can_run_farm() {
        use std::io::Write as _;
        let test = std::thread::current()
            .name()
            .unwrap_or("an end-to-end test")
            .to_string();
        let _ = writeln!(
            std::io::stderr(),
            "\nskipped (not root): {test} needs root and iproute2 (run scripts/test as root)"
        );
        return true;
    }
    false
}

/// SHA-256 (hex) of the first `n` bytes of the `/bytes/N` pattern
/// (byte i == i mod 251), streamed by python3's hashlib.
pub fn expected_sha256(n: u64) -> String {
    let script = "import hashlib,sys\n\
                  n=int(sys.argv[1]); p=bytes(range(251))*4000; h=hashlib.sha256()\n\
                  while n>=len(p):\n    h.update(p); n-=len(p)\n\
                  h.update(p[:n]); print(h.hexdigest())";
    let out = run_bounded(
        Command::new("python3").args(["-c", script, &n.to_string()]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "python3 hashlib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(h.len(), 64, "bad hash from python3: {h:?}");
    h
}

/// The non-zero counters, sorted, for failure messages.
pub fn nonzero(s: &HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<_> = s
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    v.sort();
    v
}

/// A counter, 0 when absent.
pub fn get(s: &HashMap<String, u64>, k: &str) -> u64 {
    s.get(k).copied().unwrap_or(0)
}

/// tcpdump on the farm end of the client's link (`uplink`), one line per
/// packet matching a filter, at most 20 000.
pub struct Capture {
    child: Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Capture {
    /// Starts a capture of the packets matching `filter` (a pcap filter).
    pub fn start(farm: &Farm, filter: &str) -> Capture {
        let out = farm.run.join("capture.txt");
        let err = farm.run.join("capture.err");
        let child = Command::new("ip")
            .args(["netns", "exec", &farm.farm_ns()])
            .args(["tcpdump", "-i", "uplink", "-n", "-l", "-S", "-c", "20000"])
            .arg(filter)
            .stdout(File::create(&out).expect("capture file"))
            .stderr(File::create(&err).expect("capture err file"))
            .spawn()
            .expect("spawn tcpdump");
        let cap = Capture { child, out, err };
        let t0 = Instant::now();
        while !std::fs::read_to_string(&cap.err)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "tcpdump did not start: {}",
                std::fs::read_to_string(&cap.err).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cap
    }

    /// Stops the capture (SIGINT, bounded) and returns its lines.
    pub fn stop(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// tcpdump's flags field of one line (`Flags [S.]` gives `S.`).
pub fn flags(line: &str) -> &str {
    line.split("Flags [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or("")
}

/// Installs `pct`% random loss each way on the client's link: frames the
/// farm's bridge forwards from or to the client's port (`uplink`) are
/// dropped there, silently for both ends, as on a lossy path. (A drop in
/// the client's own netfilter output hook is not loss: the client's stack
/// sees the send fail locally and Linux can hold the data for seconds
/// before it tries again.)
pub fn install_loss(farm: &Farm, pct: u32) {
    let rules = format!(
        "table bridge lossy {{\n\
         chain forward {{ type filter hook forward priority 0; policy accept;\n\
         oifname \"uplink\" numgen random mod 100 < {pct} counter drop\n\
         iifname \"uplink\" numgen random mod 100 < {pct} counter drop\n\
         }}\n\
         }}\n"
    );
    let path = farm.run.join("lossy.nft");
    std::fs::write(&path, rules).unwrap();
    let out = farm.in_farm(
        Duration::from_secs(10),
        &["nft", "-f", path.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "nft failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the loss [`install_loss`] put on the client's link.
pub fn remove_loss(farm: &Farm) {
    let out = farm.in_farm(
        Duration::from_secs(10),
        &["nft", "delete", "table", "bridge", "lossy"],
    );
    assert!(out.status.success(), "could not remove the lossy table");
}

/// Frames dropped by the lossy table: (to the client, from the client).
pub fn loss_counters(farm: &Farm) -> (u64, u64, String) {
    let out = farm.in_farm(
        Duration::from_secs(10),
        &["nft", "list", "table", "bridge", "lossy"],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut counts = text
        .lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok());
    let input = counts.next().unwrap_or(0);
    let output = counts.next().unwrap_or(0);
    (input, output, text)
}

/// RSTs sent to the client, on its link. (A client that quits with unread
/// bytes resets its own connections: `wrk` does at the end of its run.)
#[allow(dead_code)]
pub const RST_FILTER: &str = "tcp[tcpflags] & tcp-rst != 0 and dst host 198.18.0.1";

/// What `ab` reported.
#[allow(dead_code)]
#[derive(Debug, Default)]
pub struct AbReport {
    pub complete: u64,
    pub failed: u64,
    pub non_2xx: u64,
    pub rate: f64,
    pub text: String,
}

/// `ab -n n -c c url` in the client namespace (30 s per-request time-out).
#[allow(dead_code)]
pub fn ab(farm: &Farm, n: u64, c: u64, url: &str, limit: Duration) -> AbReport {
    let out = farm.client(
        limit,
        &[
            "ab",
            "-q",
            "-r",
            "-s",
            "30",
            "-n",
            &n.to_string(),
            "-c",
            &c.to_string(),
            url,
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
    };
    AbReport {
        complete: field("Complete requests:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        failed: field("Failed requests:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX),
        non_2xx: field("Non-2xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        rate: field("Requests per second:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        text,
    }
}

/// `ab` completed `n` requests, none failed, none answered with an error.
#[allow(dead_code)]
pub fn assert_ab_ok(r: &AbReport, n: u64) {
    assert_eq!(r.complete, n, "ab:\n{}", r.text);
    assert_eq!(r.failed, 0, "ab:\n{}", r.text);
    assert_eq!(r.non_2xx, 0, "ab:\n{}", r.text);
}

/// tcpdump saw no RST sent to the client.
#[allow(dead_code)]
pub fn assert_no_rst(lines: &[String]) {
    assert!(
        lines.is_empty(),
        "{} RSTs sent to the client:\n{}",
        lines.len(),
        lines
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
