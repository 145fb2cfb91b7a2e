//! Per-connection HTTP/1.1 server state machine (no I/O).

use std::io::Write as _;

use sha2::{Digest, Sha256};

use crate::body::{framing, parse_decimal, Body, Framing, Progress};
use crate::parse::{build_head, target_path, trim_ows, HttpError, RequestHead, Scan, Version};

/// Default limit on the size of a request head (request line + headers +
/// terminating empty line).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8192;

/// Largest `N` accepted by `/bytes/N`.
pub const MAX_BYTES_N: u64 = 1_000_000_000_000;

const ROOT_PREFIX: &str = "ipos node ";
const ROOT_SUFFIX: &str = "\nGET /bytes/<n> returns n bytes where byte i is (i mod 251)\n";

/// Interim response sent before reading a body announced with
/// `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Shared, read-only configuration of the HTTP application on a node.
#[derive(Debug, Clone)]
pub struct Service {
    node_name: String,
    max_head_bytes: usize,
}

impl Service {
    /// Control characters in `node_name` are replaced by `_` (the name is
    /// sent in a header and must not break the response framing).
    pub fn new(node_name: &str) -> Service {
        let node_name = node_name
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        Service {
            node_name,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        }
    }

    /// Override the request-head size limit (default 8192).
    pub fn with_max_head_bytes(mut self, max: usize) -> Service {
        self.max_head_bytes = max;
        self
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    pub fn max_head_bytes(&self) -> usize {
        self.max_head_bytes
    }
}

/// Per-connection counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Responses started (every request answered, including errors; a
    /// `100 Continue` interim response is not counted).
    pub requests: u64,
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Bytes returned by `poll_send` (interim responses included).
    pub bytes_sent: u64,
    /// `/upload` bodies read to the end and answered (empty ones included).
    pub uploads: u64,
    /// Request body content bytes read (uploads and discarded bodies; for a
    /// chunked body the chunk data only, not the framing).
    pub body_bytes: u64,
    /// Bodies of other requests (non-empty `Content-Length`, or chunked)
    /// read to the end and thrown away.
    pub bodies_discarded: u64,
}

/// What a connection waits for, for the node's head (slowloris) timer,
/// which runs in [`HeadWait::FirstRequest`] and [`HeadWait::Partial`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadWait {
    /// A request head is complete (its body is being read or its response
    /// produced), or the connection is closing.
    NotWaiting,
    /// No request head of this connection has completed yet (whether or
    /// not any byte arrived).
    FirstRequest,
    /// A later request's head has started (bytes received, empty lines
    /// between requests aside) but is not complete.
    Partial,
    /// Between requests: no byte of the next request yet.
    Idle,
}

/// `Allow` header of a 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allow {
    /// Every path but `/upload`.
    Read,
    /// `/upload` (and `/<segment>/upload`).
    ReadWrite,
}

impl Allow {
    fn header(self) -> &'static str {
        match self {
            Allow::Read => "GET, HEAD",
            Allow::ReadWrite => "GET, HEAD, POST, PUT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resp {
    Root,
    Bytes(u64),
    /// Length and SHA-256 of the request body.
    Upload,
    NotAllowed(Allow),
    Error(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    resp: Resp,
    head_only: bool,
    close: bool,
    /// HTTP/1.0 keep-alive: announce `Connection: keep-alive`.
    announce_keep_alive: bool,
}

impl Plan {
    fn error(status: u16) -> Plan {
        Plan {
            resp: Resp::Error(status),
            head_only: false,
            close: true,
            announce_keep_alive: false,
        }
    }
}

/// What to do with a complete request head.
#[derive(Debug, Clone, Copy)]
struct Decision {
    plan: Plan,
    /// The body to read before answering ([`Framing::None`] when the
    /// answer closes the connection right away).
    framing: Framing,
    /// Send `100 Continue` before reading the body.
    expect_continue: bool,
}

impl Decision {
    /// Answer now, without reading any body.
    fn now(plan: Plan) -> Decision {
        Decision {
            plan,
            framing: Framing::None,
            expect_continue: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// Accepting request-head bytes; a partial head is held in `buf`.
    Head(Scan),
    /// Reading a request body; its answer (`plan`) starts at the body's end.
    Body { plan: Plan, body: Body },
    /// A response is being produced: `buf` holds its head (and small
    /// body), of which `out_off` bytes were returned; then a `/bytes/N`
    /// pattern body at `body_pos` of `body_len`.
    Sending {
        out_off: usize,
        body_pos: u64,
        body_len: u64,
    },
    /// A closing response was fully produced; nothing more will happen.
    Done,
}

/// An `/upload` body being read (boxed: the hash state is ~100 bytes and
/// only needed meanwhile).
#[derive(Debug, Clone)]
struct Upload {
    sha: Sha256,
    len: u64,
}

/// HTTP/1.1 server state for one TCP connection.
///
/// Memory: a fixed-size struct plus one `Vec` allocated lazily and reused:
/// it holds a partial request head (capacity capped at the service's max
/// head bytes) or, while sending, the response head and small body.
/// `/bytes/N` bodies are generated on the fly; request bodies are never
/// buffered (the SHA-256 state of an `/upload` is one allocation per
/// upload, freed at its end).
#[derive(Debug)]
pub struct HttpConn {
    pub(crate) phase: Phase,
    /// Partial head (Head) or response head + small body (Sending).
    pub(crate) buf: Vec<u8>,
    /// Present while an `/upload` body is being read.
    upload: Option<Box<Upload>>,
    stats: HttpStats,
    /// Bytes of [`CONTINUE`] still to return from `poll_send`.
    pub(crate) continue_left: u8,
    /// Close after the current response.
    pub(crate) close: bool,
    pub(crate) peer_fin: bool,
    /// A request head of this connection has completed.
    pub(crate) head_seen: bool,
}

impl Default for HttpConn {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpConn {
    pub fn new() -> HttpConn {
        HttpConn {
            phase: Phase::Head(Scan::default()),
            buf: Vec::new(),
            upload: None,
            stats: HttpStats::default(),
            continue_left: 0,
            close: false,
            peer_fin: false,
            head_seen: false,
        }
    }

    /// Feed in-order received bytes; returns how many were consumed (the
    /// caller drops them from its receive buffer).
    ///
    /// While reading, everything is consumed: complete requests are
    /// answered, a trailing partial head is copied into the bounded head
    /// buffer, and request-body bytes are consumed as they arrive (hashed
    /// or discarded, never stored). Once a response is started (right
    /// after a head without body, or after the last byte of a body),
    /// consumption stops there (backpressure); call again after the
    /// response has been produced. Once the connection is closing (error
    /// response, `Connection: close`, ...), further bytes are consumed and
    /// discarded.
    pub fn on_recv(&mut self, svc: &Service, data: &[u8]) -> usize {
        let mut used = 0;
        loop {
            if self.close || matches!(self.phase, Phase::Done) {
                return data.len();
            }
            if matches!(self.phase, Phase::Sending { .. }) || used == data.len() {
                return used;
            }
            let rest = &data[used..];
            // Each step consumes bytes or changes the phase.
            used += match self.phase {
                Phase::Body { .. } => self.read_body(svc, rest),
                _ => self.read_head(svc, rest),
            };
        }
    }

    /// Write as many response bytes as fit into `out`; returns the count.
    pub fn poll_send(&mut self, _svc: &Service, out: &mut [u8]) -> usize {
        let mut n = 0;
        if self.continue_left > 0 {
            let left = usize::from(self.continue_left);
            let from = CONTINUE.len() - left;
            n = left.min(out.len());
            out[..n].copy_from_slice(&CONTINUE[from..from + n]);
            // n <= left <= CONTINUE.len() < 256
            self.continue_left -= n as u8;
        }
        let mut finished = false;
        if let (
            0,
            Phase::Sending {
                out_off,
                body_pos,
                body_len,
            },
        ) = (self.continue_left, &mut self.phase)
        {
            let out = &mut out[n..];
            let pending = &self.buf[*out_off..];
            let mut m = pending.len().min(out.len());
            out[..m].copy_from_slice(&pending[..m]);
            *out_off += m;
            if *out_off == self.buf.len() {
                let room = (out.len() - m) as u64;
                // <= room, which came from a usize.
                let k = (*body_len - *body_pos).min(room) as usize;
                crate::fill_pattern(*body_pos, &mut out[m..m + k]);
                *body_pos += k as u64;
                m += k;
                finished = *body_pos == *body_len;
            }
            n += m;
        }
        if finished {
            self.finish_response();
        }
        self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(n as u64);
        n
    }

    /// True when the server should close the connection once everything
    /// returned by `poll_send` has been sent.
    pub fn wants_close(&self) -> bool {
        self.close || self.peer_fin || matches!(self.phase, Phase::Done)
    }

    /// The peer closed its sending side: the current response (and any
    /// complete request still fed through `on_recv`) is finished, then
    /// [`wants_close`](Self::wants_close) holds. A request whose body was
    /// cut short by the FIN gets no response.
    pub fn on_peer_fin(&mut self) {
        self.peer_fin = true;
    }

    /// Output is waiting (more bytes to come from `poll_send`): a response
    /// in progress, or a `100 Continue` not yet returned.
    pub fn has_pending_output(&self) -> bool {
        self.continue_left > 0 || matches!(self.phase, Phase::Sending { .. })
    }

    /// Whether the connection waits for a request head (see [`HeadWait`]).
    pub fn head_wait(&self) -> HeadWait {
        match self.phase {
            _ if self.wants_close() => HeadWait::NotWaiting,
            Phase::Head(_) if !self.head_seen => HeadWait::FirstRequest,
            Phase::Head(_) if !self.buf.is_empty() => HeadWait::Partial,
            Phase::Head(_) => HeadWait::Idle,
            Phase::Body { .. } | Phase::Sending { .. } | Phase::Done => HeadWait::NotWaiting,
        }
    }

    pub fn stats(&self) -> HttpStats {
        self.stats
    }

    /// Consume head bytes from `rest` (non-empty); returns the count.
    fn read_head(&mut self, svc: &Service, rest: &[u8]) -> usize {
        let max = svc.max_head_bytes;
        if self.buf.is_empty() {
            // Ignore empty lines between requests.
            let skip = rest
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skip > 0 {
                return skip;
            }
            // Fast path: parse in place without copying.
            let window = &rest[..rest.len().min(max)];
            let mut scan = Scan::default();
            match scan.advance(window) {
                Ok(Some(len)) => {
                    let d = match build_head(window, &scan, len) {
                        Ok(head) => decide(&head),
                        Err(e) => Decision::now(Plan::error(e.status())),
                    };
                    self.begin(svc, d);
                    len
                }
                Ok(None) if rest.len() >= max => {
                    self.start_response(svc, Plan::error(HttpError::HeadTooLarge.status()));
                    0
                }
                Ok(None) => {
                    if self.buf.capacity() < max {
                        self.buf.reserve_exact(max);
                    }
                    self.buf.extend_from_slice(rest);
                    self.phase = Phase::Head(scan);
                    rest.len()
                }
                Err(e) => {
                    self.start_response(svc, Plan::error(e.status()));
                    0
                }
            }
        } else {
            // Continue a partial head held in `buf`.
            let mut scan = match self.phase {
                Phase::Head(scan) => scan,
                _ => Scan::default(),
            };
            let prev = self.buf.len();
            let take = max.saturating_sub(prev).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            match scan.advance(&self.buf) {
                Ok(Some(len)) => {
                    let d = match build_head(&self.buf, &scan, len) {
                        Ok(head) => decide(&head),
                        Err(e) => Decision::now(Plan::error(e.status())),
                    };
                    self.begin(svc, d);
                    len.saturating_sub(prev)
                }
                Ok(None) if self.buf.len() >= max => {
                    self.start_response(svc, Plan::error(HttpError::HeadTooLarge.status()));
                    0
                }
                Ok(None) => {
                    self.phase = Phase::Head(scan);
                    take
                }
                Err(e) => {
                    self.start_response(svc, Plan::error(e.status()));
                    0
                }
            }
        }
    }

    /// A request head is complete: answer now, or start reading its body.
    fn begin(&mut self, svc: &Service, d: Decision) {
        self.head_seen = true;
        if !d.framing.has_body() {
            self.start_response(svc, d.plan);
            return;
        }
        self.buf.clear();
        if d.expect_continue {
            self.continue_left = CONTINUE.len() as u8;
        }
        if d.plan.resp == Resp::Upload {
            self.upload = Some(Box::new(Upload {
                sha: Sha256::new(),
                len: 0,
            }));
        }
        self.phase = Phase::Body {
            plan: d.plan,
            body: d.framing.decoder(),
        };
    }

    /// Consume body bytes from `rest` (non-empty); returns the count.
    fn read_body(&mut self, svc: &Service, rest: &[u8]) -> usize {
        let Phase::Body { plan, body } = &mut self.phase else {
            return 0;
        };
        let plan = *plan;
        let upload = &mut self.upload;
        let stats = &mut self.stats;
        let progress = body.advance(rest, &mut |chunk: &[u8]| {
            let n = chunk.len() as u64;
            stats.body_bytes = stats.body_bytes.saturating_add(n);
            if let Some(up) = upload {
                up.sha.update(chunk);
                up.len = up.len.saturating_add(n);
            }
        });
        match progress {
            Progress::More => rest.len(),
            Progress::Done(n) => {
                if plan.resp != Resp::Upload {
                    self.stats.bodies_discarded += 1;
                }
                self.start_response(svc, plan);
                n
            }
            Progress::Bad => {
                self.upload = None;
                let plan = Plan {
                    head_only: plan.head_only,
                    ..Plan::error(400)
                };
                self.start_response(svc, plan);
                // Closing: the rest is discarded anyway.
                rest.len()
            }
        }
    }

    fn finish_response(&mut self) {
        self.buf.clear();
        self.phase = if self.close {
            Phase::Done
        } else {
            Phase::Head(Scan::default())
        };
    }

    fn start_response(&mut self, svc: &Service, plan: Plan) {
        let (status, ctype) = match plan.resp {
            Resp::Root => (200, "text/plain; charset=utf-8"),
            Resp::Bytes(_) => (200, "application/octet-stream"),
            Resp::Upload => (200, "text/plain"),
            Resp::NotAllowed(_) => (405, "text/plain; charset=utf-8"),
            Resp::Error(s) => (s, "text/plain; charset=utf-8"),
        };
        let reason = reason_phrase(status);
        // Length and hex SHA-256 of an upload (of an empty body when no
        // body was read).
        let upload = (plan.resp == Resp::Upload).then(|| {
            self.stats.uploads += 1;
            let up = self.upload.take();
            let (sha, len) = match up {
                Some(up) => (up.sha, up.len),
                None => (Sha256::new(), 0),
            };
            (len, hex(&sha.finalize().into()))
        });
        let body_len = match plan.resp {
            Resp::Root => (ROOT_PREFIX.len() + svc.node_name.len() + ROOT_SUFFIX.len()) as u64,
            Resp::Bytes(n) => n,
            // "<len> <hex>\n"
            Resp::Upload => upload.as_ref().map_or(0, |(len, hex)| {
                (decimal_len(*len) + 1 + hex.len() + 1) as u64
            }),
            // "<status> <reason>\n"
            Resp::NotAllowed(_) | Resp::Error(_) => (3 + 1 + reason.len() + 1) as u64,
        };
        let buf = &mut self.buf;
        buf.clear();
        // One exact allocation on first use (reused afterwards).
        let need = 256 + 2 * svc.node_name.len();
        if buf.capacity() < need {
            buf.reserve_exact(need);
        }
        // Writing to a Vec cannot fail.
        let _ = write!(
            buf,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {body_len}\r\n"
        );
        match (plan.resp, &upload) {
            (Resp::NotAllowed(allow), _) => {
                let _ = write!(buf, "Allow: {}\r\n", allow.header());
            }
            (_, Some((len, hex))) => {
                let _ = write!(buf, "X-Upload-Length: {len}\r\nX-Upload-Sha256: ");
                buf.extend_from_slice(hex);
                buf.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
        let _ = write!(buf, "X-Ipos-Node: {}\r\n", svc.node_name);
        if plan.close {
            buf.extend_from_slice(b"Connection: close\r\n");
        } else if plan.announce_keep_alive {
            buf.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        let mut pattern_len = 0;
        if !plan.head_only {
            match (plan.resp, &upload) {
                (Resp::Root, _) => {
                    buf.extend_from_slice(ROOT_PREFIX.as_bytes());
                    buf.extend_from_slice(svc.node_name.as_bytes());
                    buf.extend_from_slice(ROOT_SUFFIX.as_bytes());
                }
                (Resp::Bytes(n), _) => pattern_len = n,
                (Resp::Upload, Some((len, hex))) => {
                    let _ = write!(buf, "{len} ");
                    buf.extend_from_slice(hex);
                    buf.push(b'\n');
                }
                _ => {
                    let _ = writeln!(buf, "{status} {reason}");
                }
            }
        }
        self.close |= plan.close;
        self.phase = Phase::Sending {
            out_off: 0,
            body_pos: 0,
            body_len: pattern_len,
        };
        self.stats.requests += 1;
        match status {
            200..=299 => self.stats.status_2xx += 1,
            400..=499 => self.stats.status_4xx += 1,
            500..=599 => self.stats.status_5xx += 1,
            _ => {}
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Lowercase hex of a SHA-256 digest.
fn hex(digest: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, &b) in digest.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// Number of decimal digits of `n`.
fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Decide the response to a complete, syntactically valid request head,
/// and whether a body is to be read before it.
///
/// A body is read (and an expected `100 Continue` sent) only when the
/// answer keeps the connection usable, i.e. is not a closing error: a
/// closing error is answered at once and the rest of the input discarded.
fn decide(head: &RequestHead<'_>) -> Decision {
    let path = target_path(head.target);
    let upload_path = path.is_some_and(is_upload_path);
    let (head_only, write) = match head.method {
        "GET" => (false, false),
        "HEAD" => (true, false),
        "POST" | "PUT" => (false, true),
        _ => {
            let allow = if upload_path {
                Allow::ReadWrite
            } else {
                Allow::Read
            };
            return Decision::now(Plan {
                resp: Resp::NotAllowed(allow),
                ..Plan::error(405)
            });
        }
    };
    // Errors after this point still answer HEAD without a body.
    let error = |status| {
        Decision::now(Plan {
            head_only,
            ..Plan::error(status)
        })
    };
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for (name, value) in head.headers() {
        if name.eq_ignore_ascii_case("connection") {
            for tok in value.split(|&b| b == b',') {
                let tok = trim_ows(tok);
                if tok.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            // Other expectations are ignored (no 417).
            expect_continue |= trim_ows(value).eq_ignore_ascii_case(b"100-continue");
        }
    }
    let Ok(framing) = framing(head) else {
        return error(400);
    };
    let (close, announce_keep_alive) = match head.version {
        Version::Http11 => (conn_close, false),
        Version::Http10 => {
            let keep = conn_keep_alive && !conn_close;
            (!keep, keep)
        }
    };
    let Some(path) = path else {
        return error(400);
    };
    let resp = match (write, upload_path) {
        (true, true) => Resp::Upload,
        (true, false) => Resp::NotAllowed(Allow::Read),
        (false, _) => route(path),
    };
    if let Resp::Error(status) = resp {
        if status != 404 {
            return error(status);
        }
    }
    Decision {
        plan: Plan {
            resp,
            head_only,
            close,
            announce_keep_alive: announce_keep_alive && !close,
        },
        framing,
        expect_continue: expect_continue && head.version == Version::Http11 && framing.has_body(),
    }
}

/// `/upload`, or `/<segment>/upload` with a non-empty segment.
fn is_upload_path(path: &str) -> bool {
    path == "/upload" || strip_segment(path) == Some("/upload")
}

/// `/<segment>/rest` (non-empty segment) gives `/rest`.
fn strip_segment(path: &str) -> Option<&str> {
    let tail = path.strip_prefix('/')?;
    match tail.find('/') {
        Some(0) | None => None,
        Some(i) => Some(&tail[i..]),
    }
}

/// Route a GET/HEAD path: exact routes first, then after stripping one
/// leading non-empty `/<segment>` prefix. A `/bytes/<bad N>` path is a 400
/// unless the stripped form is a valid route (`/bytes/bytes/7`, `/bytes/`).
fn route(path: &str) -> Resp {
    let exact = route_exact(path);
    if let Some(r @ (Resp::Root | Resp::Bytes(_))) = exact {
        return r;
    }
    let tail = path.strip_prefix('/').unwrap_or("");
    let stripped = match strip_segment(path) {
        Some(rest) => route_exact(rest),
        // "/seg" (but not "/" nor "")
        None if !tail.is_empty() && !tail.contains('/') => Some(Resp::Root),
        None => None,
    };
    match (stripped, exact) {
        (Some(r @ (Resp::Root | Resp::Bytes(_))), _) => r,
        (_, Some(r)) | (Some(r), None) => r,
        (None, None) => Resp::Error(404),
    }
}

fn route_exact(path: &str) -> Option<Resp> {
    // GET /upload shows the root page (so every upload path also has GET).
    if path == "/" || path == "/upload" {
        return Some(Resp::Root);
    }
    let n = path.strip_prefix("/bytes/")?;
    Some(match parse_decimal(n.as_bytes()) {
        Some(n) if n <= MAX_BYTES_N => Resp::Bytes(n),
        _ => Resp::Error(400),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert_eq!(route("/"), Resp::Root);
        assert_eq!(route("/b"), Resp::Root);
        assert_eq!(route("/b/"), Resp::Root);
        assert_eq!(route("/bytes"), Resp::Root);
        assert_eq!(route("/upload"), Resp::Root);
        assert_eq!(route("/bytes/10"), Resp::Bytes(10));
        assert_eq!(route("/b/bytes/10"), Resp::Bytes(10));
        assert_eq!(route("/bytes/bytes/7"), Resp::Bytes(7));
        assert_eq!(route("/bytes/x"), Resp::Error(400));
        assert_eq!(route("/bytes/"), Resp::Root);
        assert_eq!(route("/bytes/abc/"), Resp::Error(400));
        assert_eq!(route("/q/bytes/"), Resp::Error(400));
        assert_eq!(route("/b/bytes/-1"), Resp::Error(400));
        assert_eq!(route("/bytes/1000000000000"), Resp::Bytes(MAX_BYTES_N));
        assert_eq!(route("/bytes/1000000000001"), Resp::Error(400));
        assert_eq!(route("/bytes/99999999999999999999999"), Resp::Error(400));
        assert_eq!(route("/a/b/"), Resp::Error(404));
        assert_eq!(route("/a/b/c"), Resp::Error(404));
        assert_eq!(route("/b/upload"), Resp::Root);
        assert_eq!(route("/upload/upload"), Resp::Root);
        assert_eq!(route("/upload/x"), Resp::Error(404));
        assert_eq!(route("/a/b/upload"), Resp::Error(404));
        assert_eq!(route("//"), Resp::Error(404));
        assert_eq!(route("//bytes/1"), Resp::Error(404));
        assert_eq!(route("/x/bytes"), Resp::Error(404));
        assert_eq!(route(""), Resp::Error(404));
    }

    #[test]
    fn upload_paths() {
        for p in ["/upload", "/b/upload", "/upload/upload", "/bytes/upload"] {
            assert!(is_upload_path(p), "{p}");
        }
        for p in [
            "/",
            "/upload/",
            "/uploads",
            "//upload",
            "/a/b/upload",
            "/b/upload/",
            "",
        ] {
            assert!(!is_upload_path(p), "{p}");
        }
    }

    #[test]
    fn hex_and_decimal_len() {
        let mut d = [0u8; 32];
        d[0] = 0xab;
        d[31] = 0x0f;
        let h = hex(&d);
        assert_eq!(&h[..4], b"ab00");
        assert_eq!(&h[60..], b"000f");
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(decimal_len(n), n.to_string().len(), "{n}");
        }
    }

    #[test]
    fn conn_is_small() {
        // 136 bytes before request bodies; the hash state is boxed.
        assert!(core::mem::size_of::<HttpConn>() <= 160);
        assert!(core::mem::size_of::<Upload>() > 64);
    }

    #[test]
    fn ten_megabytes_in_constant_memory() {
        const LEN: usize = 10_000_000;
        let svc = Service::new("n1");
        let seg: Vec<u8> = (0..1460u32).map(|i| (i * 7) as u8).collect();
        for chunked in [false, true] {
            let mut c = HttpConn::new();
            let head = if chunked {
                "PUT /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
            } else {
                format!("PUT /upload HTTP/1.1\r\nContent-Length: {LEN}\r\n\r\n")
            };
            // A partial head first, so that the head buffer is allocated.
            assert_eq!(c.on_recv(&svc, &head.as_bytes()[..5]), 5);
            assert_eq!(c.on_recv(&svc, &head.as_bytes()[5..]), head.len() - 5);
            assert!(c.upload.is_some());
            let cap = c.buf.capacity();
            let mut sent = 0;
            while sent < LEN {
                let n = seg.len().min(LEN - sent);
                if chunked {
                    let line = format!("{n:x}\r\n");
                    assert_eq!(c.on_recv(&svc, line.as_bytes()), line.len());
                }
                assert_eq!(c.on_recv(&svc, &seg[..n]), n);
                if chunked {
                    assert_eq!(c.on_recv(&svc, b"\r\n"), 2);
                }
                sent += n;
                let reading = matches!(c.phase, Phase::Body { .. });
                assert_eq!(reading, sent < LEN || chunked);
                assert_eq!(c.buf.capacity(), cap);
                assert!(!reading || c.buf.is_empty());
            }
            if chunked {
                assert_eq!(c.on_recv(&svc, b"0\r\n\r\n"), 5);
            }
            assert!(c.upload.is_none(), "hash state freed at the end");
            assert!(c.has_pending_output());
            assert_eq!(c.stats.body_bytes, LEN as u64);
        }
    }
}
