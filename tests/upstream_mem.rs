//! Relayed service ports in the in-memory farm: each node's upstream is a
//! real process-like server on a Unix socket (a thread of this test, no IP
//! address), reached through the node's relay thread. The farm runs on
//! virtual time; since the relay works in real time, these tests step the
//! farm with a short real pause and bound every wait in real time too.
//!
//! Checked: a moved connection reaches the upstream of the node it moved
//! to, with a PROXY v2 header naming the client; the answer comes from that
//! node byte for byte; an upload's body arrives whole (SHA-256); the
//! client's FIN reaches the upstream and the upstream's FIN the client; an
//! upstream that refuses gives a 502; counters.

mod support;

use ipos::counters::Event;
use ipos::upstream::{Upstream, UpstreamAddr, UpstreamKind};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant as StdInstant};
use support::*;

/// What one upstream saw: per connection, its PROXY header's fields and the
/// request lines.
#[derive(Debug, Default, Clone)]
struct Seen {
    conns: Vec<SeenConn>,
}

impl Seen {
    /// The connections that carried a request (not the node's health checks).
    fn used(&self) -> Seen {
        Seen {
            conns: self
                .conns
                .iter()
                .filter(|c| !c.requests.is_empty())
                .cloned()
                .collect(),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct SeenConn {
    /// (client ip, client port, destination ip, destination port)
    proxy: Option<([u8; 4], u16, [u8; 4], u16)>,
    requests: Vec<String>,
    /// The client's FIN reached us (EOF after the last request).
    eof: bool,
}

/// A directory of Unix sockets, removed at the end.
struct Sockets(PathBuf);

impl Sockets {
    fn new(tag: &str) -> Sockets {
        let d = std::env::temp_dir().join(format!("ipos-up-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Sockets(d)
    }
    fn path(&self, node: &str) -> PathBuf {
        self.0.join(format!("{node}.sock"))
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts an upstream for node `name` on `path`: per connection, a PROXY v2
/// header, then HTTP/1.1 requests: `GET .../bytes/N` gets N bytes of the
/// i % 251 pattern, `POST` gets the SHA-256 of its Content-Length body;
/// `Connection: close` closes after the answer, and so does EOF.
fn upstream(name: &'static str, path: &Path, proxy: bool) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let l = UnixListener::bind(path).unwrap();
    let s = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let s = s.clone();
            std::thread::spawn(move || serve(name, c, proxy, &s));
        }
    });
    seen
}

fn serve(name: &str, c: UnixStream, proxy: bool, seen: &Mutex<Seen>) {
    c.set_read_timeout(Some(StdDuration::from_secs(20)))
        .unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    let idx = {
        let mut s = seen.lock().unwrap();
        s.conns.push(SeenConn::default());
        s.conns.len() - 1
    };
    let mut h = [0u8; 28];
    if proxy && r.read_exact(&mut h).is_err() {
        return;
    }
    if proxy && h[..12] == ipos::upstream::proxy::SIGNATURE && h[12] == 0x21 && h[13] == 0x11 {
        let ip = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
        let port = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        seen.lock().unwrap().conns[idx].proxy = Some((ip(16), port(24), ip(20), port(26)));
    }
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => {
                seen.lock().unwrap().conns[idx].eof = true;
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        let request = line.trim_end().to_string();
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut hl = String::new();
            if r.read_line(&mut hl).unwrap_or(0) == 0 {
                return;
            }
            let hl = hl.trim_end().to_ascii_lowercase();
            if hl.is_empty() {
                break;
            }
            if let Some(v) = hl.strip_prefix("content-length:") {
                let Ok(n) = v.trim().parse() else { return };
                len = n;
            }
            close |= hl == "connection: close";
        }
        seen.lock().unwrap().conns[idx]
            .requests
            .push(request.clone());
        let answer = if request.starts_with("POST") {
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            let sha = format!("{:x}", Sha256::digest(&body));
            format!("HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nX-Upload-Sha256: {sha}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes()
        } else {
            let n: usize = request
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.rsplit('/').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut a =
                format!("HTTP/1.1 200 OK\r\nX-Upstream: {name}\r\nContent-Length: {n}\r\n\r\n")
                    .into_bytes();
            a.extend((0..n).map(|i| (i % 251) as u8));
            a
        };
        if w.write_all(&answer).is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

/// An upstream that accepts (the health check passes) but drops every
/// connection that sends a request without reading it: the node's socket
/// gets ECONNRESET before any answer.
fn resetting_upstream(path: &Path) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            std::thread::spawn(move || {
                c.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
                let mut b = [0u8; 1];
                let mut peek = &c;
                if let Ok(n) = std::io::Read::read(&mut peek, &mut b) {
                    if n > 0 {
                        // More of the request arrives; closing with it unread resets.
                        std::thread::sleep(StdDuration::from_millis(50));
                    }
                }
                drop(c);
            });
        }
    });
}

/// An upstream that reads a request head whole, then closes without an
/// answer (a process that dies mid-request).
fn closing_upstream(path: &Path) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            std::thread::spawn(move || {
                c.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
                let mut r = BufReader::new(c);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 && !line.ends_with("\r\n\r\n") {}
            });
        }
    });
}

/// Options with port 80 relayed to each node's socket in `dir`.
fn relayed(socks: &Sockets, n: usize, proxy: bool) -> ipos::node::NodeOptions {
    let mut o = options();
    o.upstreams = vec![Upstream {
        port: 80,
        addr: UpstreamAddr::Unix(socks.path(NAMES[n])),
        proxy_protocol: proxy,
        kind: UpstreamKind::Http,
    }];
    o
}

/// Steps the farm until `done`, pausing 50 µs of real time per step (the
/// relay threads work in real time), for at most `real` seconds.
fn run_real(f: &mut Farm, real: u64, mut done: impl FnMut(&Farm) -> bool) -> bool {
    let end = StdInstant::now() + StdDuration::from_secs(real);
    while StdInstant::now() < end {
        if done(f) {
            return true;
        }
        f.step();
        std::thread::sleep(StdDuration::from_micros(50));
    }
    done(f)
}

fn responses(f: &mut Farm, id: usize, n: usize) -> Vec<Response> {
    let ok = run_real(f, 30, |f| f.responses(id).len() >= n);
    let r = f.responses(id);
    assert!(ok, "{} of {n} responses; {}", r.len(), f.summary());
    r
}

#[test]
fn a_moved_connection_is_relayed_to_the_upstream_of_the_node_it_moved_to() {
    let socks = Sockets::new("move");
    let seen: Vec<_> = NAMES
        .iter()
        .map(|n| upstream(n, &socks.path(n), true))
        .collect();
    let mut f = Farm::with_options(1, |n| relayed(&socks, n, true));
    f.warm_up();
    const N: usize = 300_000;
    let id = f.request(40001, &get(&format!("/b/bytes/{N}")));
    let r = responses(&mut f, id, 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("X-Upstream"), Some("b"), "{:?}", r[0].headers);
    assert_eq!(r[0].body.len(), N);
    assert_eq!(r[0].first_bad_byte(), None);
    let c = &f.client.conns[id];
    assert!(!c.rst_seen());
    assert_eq!(c.mac_runs().last(), Some(&MACS[B]), "answered by b");
    // A second request on the same connection goes to the same upstream connection.
    f.client.send(id, get("/b/bytes/1000").as_bytes());
    let r = responses(&mut f, id, 2);
    assert_eq!(r[1].body.len(), 1000);
    let b = seen[B].lock().unwrap().used();
    assert_eq!(b.conns.len(), 1, "b's upstream: {b:?}");
    assert_eq!(
        b.conns[0].proxy,
        Some((CLIENT_IP.octets(), 40001, VIP.octets(), 80)),
        "the PROXY v2 header names the client and the VIP"
    );
    assert_eq!(
        b.conns[0].requests,
        vec![
            format!("GET /b/bytes/{N} HTTP/1.1"),
            "GET /b/bytes/1000 HTTP/1.1".to_string()
        ]
    );
    for n in [A, C] {
        assert!(
            seen[n].lock().unwrap().used().conns.is_empty(),
            "{} was used",
            NAMES[n]
        );
    }
    assert_eq!(f.ev(A, Event::MigrationsAcked), 1);
    assert_eq!(f.ev(A, Event::UpstreamOpened), 0);
    assert_eq!(f.ev(B, Event::UpstreamOpened), 1);
    assert_eq!(f.ev(B, Event::UpstreamConnects), 1);
    assert!(f.ev(B, Event::UpstreamBytesDown) >= (N + 1000) as u64);
    assert_eq!(
        f.ev(B, Event::HttpResponses),
        0,
        "the built-in service answered"
    );
    // The client closes: its FIN reaches the upstream, whose close ends the
    // connection at b.
    f.client.close(id);
    let ok = run_real(&mut f, 20, |f| {
        f.conns(B) == 0 && f.client.conns[id].ep.state() == ipos_tcp::State::Closed
    });
    assert!(ok, "not closed: {}", f.summary());
    assert!(
        seen[B].lock().unwrap().used().conns[0].eof,
        "b's upstream saw no EOF"
    );
    assert!(!f.client.conns[id].rst_seen());
}

#[test]
fn an_upload_through_a_move_reaches_the_upstream_whole() {
    let socks = Sockets::new("upload");
    let seen: Vec<_> = NAMES
        .iter()
        .map(|n| upstream(n, &socks.path(n), false))
        .collect();
    let mut f = Farm::with_options(2, |n| relayed(&socks, n, false));
    f.warm_up();
    // 2 MB: many times the relay's ring, so backpressure holds the client back.
    let body: Vec<u8> = (0..2_000_000u64).map(|i| (i * 7 + i / 251) as u8).collect();
    let sha = format!("{:x}", Sha256::digest(&body));
    let id = f.client.connect(f.now, 40002);
    let head = format!(
        "POST /c/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The client's endpoint takes the bytes as its window allows.
    let mut all = head.into_bytes();
    all.extend_from_slice(&body);
    f.client.send(id, &all);
    run_real(&mut f, 60, |f| !f.responses(id).is_empty());
    let r = f.responses(id);
    assert_eq!(r.len(), 1, "{}", f.summary());
    assert_eq!(
        r[0].header("X-Upstream"),
        Some("c"),
        "{:?} {}",
        r[0],
        f.summary()
    );
    assert_eq!(
        r[0].header("X-Upload-Sha256"),
        Some(sha.as_str()),
        "{:?} {}",
        r[0].headers,
        f.summary()
    );
    let c = seen[C].lock().unwrap().used();
    assert_eq!(c.conns.len(), 1);
    assert!(f.ev(C, Event::UpstreamBytesUp) >= body.len() as u64);
    assert!(!f.client.conns[id].rst_seen());
}

#[test]
fn an_upstream_that_fails_before_answering_gives_the_client_a_502() {
    let socks = Sockets::new("refuse");
    for n in [A, C] {
        upstream(NAMES[n], &socks.path(NAMES[n]), true);
    }
    resetting_upstream(&socks.path("b"));
    let mut f = Farm::with_options(3, |n| relayed(&socks, n, true));
    f.warm_up();
    let id = f.request(40003, &get("/b/bytes/1000"));
    let r = responses(&mut f, id, 1);
    assert_eq!(r[0].status, 502, "{:?}", r[0].headers);
    assert_eq!(r[0].header("X-Ipos-Node"), Some("b"));
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert_eq!(f.ev(B, Event::UpstreamBadGateway), 1);
    assert_eq!(f.ev(B, Event::UpstreamErrors), 1);
    assert_eq!(f.ev(B, Event::UpstreamResets), 0);
    // b closes after its answer: a FIN, no RST.
    let ok = run_real(&mut f, 20, |f| f.client.conns[id].ep.peer_fin_received());
    assert!(ok, "no FIN from b: {}", f.summary());
    assert!(!f.client.conns[id].rst_seen());
}

#[test]
fn a_node_whose_upstream_does_not_accept_is_left_out_until_it_does() {
    let socks = Sockets::new("health");
    let _up: Vec<_> = [A, C]
        .iter()
        .map(|&n| upstream(NAMES[n], &socks.path(NAMES[n]), true))
        .collect();
    let mut f = Farm::with_options(4, |n| relayed(&socks, n, true));
    f.warm_up();
    let listens = |f: &Farm, n: usize| f.node(A).view().listening().get(IPS[n], 80);
    assert!(
        listens(&f, B).is_none(),
        "b advertised port 80 without an upstream"
    );
    // The monitor found the process behind a's and c's sockets: this test.
    assert_eq!(listens(&f, C), Some(std::process::id()));
    // /b/ names b, which cannot serve it: the request goes where it can be.
    let id = f.request(40004, &get("/b/bytes/1000"));
    let r = responses(&mut f, id, 1);
    assert_eq!(r[0].status, 200, "{:?}", r[0].headers);
    let by = r[0].header("X-Upstream").map(str::to_string);
    assert!(
        matches!(by.as_deref(), Some("a") | Some("c")),
        "served by {by:?}"
    );
    assert_eq!(f.ev(B, Event::UpstreamOpened), 0);
    // b's upstream comes: within a monitor period and an advert, b is chosen again.
    let _b = upstream("b", &socks.path("b"), true);
    let ok = run_real(&mut f, 10, |f| listens(f, B).is_some());
    assert!(ok, "b never advertised port 80 again: {}", f.summary());
    let id = f.request(40005, &get("/b/bytes/1000"));
    let r = responses(&mut f, id, 1);
    assert_eq!(r[0].header("X-Upstream"), Some("b"), "{:?}", r[0].headers);
}

#[test]
fn an_upstream_that_closes_before_answering_gives_the_client_a_502() {
    let socks = Sockets::new("close");
    for n in [A, B] {
        upstream(NAMES[n], &socks.path(NAMES[n]), false);
    }
    closing_upstream(&socks.path("c"));
    let mut f = Farm::with_options(5, |n| relayed(&socks, n, false));
    f.warm_up();
    let id = f.request(40006, &get("/c/bytes/1000"));
    let r = responses(&mut f, id, 1);
    assert_eq!(r[0].status, 502, "{:?}", r[0].headers);
    assert_eq!(r[0].header("X-Ipos-Node"), Some("c"));
    assert_eq!(f.ev(C, Event::UpstreamBadGateway), 1);
    assert_eq!(f.ev(C, Event::UpstreamErrors), 0, "a close is not an error");
    assert!(!f.client.conns[id].rst_seen());
}
