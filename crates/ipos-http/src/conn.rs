//! Per-connection HTTP/1.1 server state machine (no I/O).

use std::io::Write as _;

use crate::parse::{build_head, target_path, trim_ows, HttpError, RequestHead, Scan, Version};

/// Default limit on the size of a request head (request line + headers +
/// terminating empty line).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8192;

/// Largest `N` accepted by `/bytes/N`.
pub const MAX_BYTES_N: u64 = 1_000_000_000_000;

const ROOT_PREFIX: &str = "ipos node ";
const ROOT_SUFFIX: &str = "\nGET /bytes/<n> returns n bytes where byte i is (i mod 251)\n";

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
    /// Responses started (every request answered, including errors).
    pub requests: u64,
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Bytes returned by `poll_send`.
    pub bytes_sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting request bytes (possibly holding a partial head in `buf`).
    Reading,
    /// A response is being produced; `buf` holds its head (and small body).
    Sending,
    /// A closing response was fully produced; nothing more will happen.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resp {
    Root,
    Bytes(u64),
    Error(u16),
}

#[derive(Debug, Clone, Copy)]
struct Plan {
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

/// HTTP/1.1 server state for one TCP connection.
///
/// Memory: a fixed-size struct plus one `Vec` allocated lazily and reused:
/// it holds a partial request head (capacity capped at the service's max
/// head bytes) or, while sending, the response head and small body.
/// `/bytes/N` bodies are generated on the fly.
#[derive(Debug)]
pub struct HttpConn {
    phase: Phase,
    /// Partial head (Reading) or response head + small body (Sending).
    buf: Vec<u8>,
    /// Bytes of `buf` already returned by `poll_send` (Sending).
    out_off: usize,
    /// Pattern body progress (Sending).
    body_pos: u64,
    body_len: u64,
    /// Scanner state over `buf` (Reading).
    scan: Scan,
    /// Close after the current response.
    close: bool,
    peer_fin: bool,
    stats: HttpStats,
}

impl Default for HttpConn {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpConn {
    pub fn new() -> HttpConn {
        HttpConn {
            phase: Phase::Reading,
            buf: Vec::new(),
            out_off: 0,
            body_pos: 0,
            body_len: 0,
            scan: Scan::default(),
            close: false,
            peer_fin: false,
            stats: HttpStats::default(),
        }
    }

    /// Feed in-order received bytes; returns how many were consumed (the
    /// caller drops them from its receive buffer).
    ///
    /// While reading, everything is consumed: complete requests are
    /// answered and a trailing partial head is copied into the bounded
    /// head buffer. Once a response is started, consumption stops right
    /// after that request's head (backpressure); call again after the
    /// response has been produced. Once the connection is closing (error
    /// response, `Connection: close`, ...), further bytes are consumed and
    /// discarded.
    pub fn on_recv(&mut self, svc: &Service, data: &[u8]) -> usize {
        let mut used = 0;
        loop {
            if self.close || self.phase == Phase::Done {
                return data.len();
            }
            if self.phase == Phase::Sending || used == data.len() {
                return used;
            }
            let rest = &data[used..];
            let max = svc.max_head_bytes;
            if self.buf.is_empty() {
                // Ignore empty lines between requests.
                let skip = rest
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                if skip > 0 {
                    used += skip;
                    continue;
                }
                // Fast path: parse in place without copying.
                let window = &rest[..rest.len().min(max)];
                let mut scan = Scan::default();
                match scan.advance(window) {
                    Ok(Some(len)) => {
                        let plan = match build_head(window, &scan, len) {
                            Ok(head) => plan_request(&head),
                            Err(e) => Plan::error(e.status()),
                        };
                        used += len;
                        self.start_response(svc, plan);
                    }
                    Ok(None) if rest.len() >= max => {
                        self.start_response(svc, Plan::error(HttpError::HeadTooLarge.status()));
                    }
                    Ok(None) => {
                        if self.buf.capacity() < max {
                            self.buf.reserve_exact(max);
                        }
                        self.buf.extend_from_slice(rest);
                        self.scan = scan;
                        return data.len();
                    }
                    Err(e) => self.start_response(svc, Plan::error(e.status())),
                }
            } else {
                // Continue a partial head held in `buf`.
                let prev = self.buf.len();
                let take = max.saturating_sub(prev).min(rest.len());
                self.buf.extend_from_slice(&rest[..take]);
                match self.scan.advance(&self.buf) {
                    Ok(Some(len)) => {
                        let plan = match build_head(&self.buf, &self.scan, len) {
                            Ok(head) => plan_request(&head),
                            Err(e) => Plan::error(e.status()),
                        };
                        used += len.saturating_sub(prev);
                        self.start_response(svc, plan);
                    }
                    Ok(None) if self.buf.len() >= max => {
                        self.start_response(svc, Plan::error(HttpError::HeadTooLarge.status()));
                    }
                    Ok(None) => {
                        used += take;
                    }
                    Err(e) => self.start_response(svc, Plan::error(e.status())),
                }
            }
        }
    }

    /// Write as many response bytes as fit into `out`; returns the count.
    pub fn poll_send(&mut self, _svc: &Service, out: &mut [u8]) -> usize {
        if self.phase != Phase::Sending {
            return 0;
        }
        let pending = &self.buf[self.out_off..];
        let mut n = pending.len().min(out.len());
        out[..n].copy_from_slice(&pending[..n]);
        self.out_off += n;
        if self.out_off == self.buf.len() {
            let room = (out.len() - n) as u64;
            let k = (self.body_len - self.body_pos).min(room) as usize;
            crate::fill_pattern(self.body_pos, &mut out[n..n + k]);
            self.body_pos += k as u64;
            n += k;
            if self.body_pos == self.body_len {
                self.finish_response();
            }
        }
        self.stats.bytes_sent += n as u64;
        n
    }

    /// True when the server should close the connection once everything
    /// returned by `poll_send` has been sent.
    pub fn wants_close(&self) -> bool {
        self.close || self.peer_fin || self.phase == Phase::Done
    }

    /// The peer closed its sending side: the current response (and any
    /// complete request still fed through `on_recv`) is finished, then
    /// [`wants_close`](Self::wants_close) holds.
    pub fn on_peer_fin(&mut self) {
        self.peer_fin = true;
    }

    /// A response is in progress (more bytes to come from `poll_send`).
    pub fn has_pending_output(&self) -> bool {
        self.phase == Phase::Sending
    }

    pub fn stats(&self) -> HttpStats {
        self.stats
    }

    fn finish_response(&mut self) {
        self.buf.clear();
        self.out_off = 0;
        self.body_pos = 0;
        self.body_len = 0;
        self.scan = Scan::default();
        self.phase = if self.close {
            Phase::Done
        } else {
            Phase::Reading
        };
    }

    fn start_response(&mut self, svc: &Service, plan: Plan) {
        let (status, reason, ctype) = match plan.resp {
            Resp::Root => (200, "OK", "text/plain; charset=utf-8"),
            Resp::Bytes(_) => (200, "OK", "application/octet-stream"),
            Resp::Error(s) => (s, reason_phrase(s), "text/plain; charset=utf-8"),
        };
        let body_len = match plan.resp {
            Resp::Root => (ROOT_PREFIX.len() + svc.node_name.len() + ROOT_SUFFIX.len()) as u64,
            Resp::Bytes(n) => n,
            // "<status> <reason>\n"
            Resp::Error(_) => (3 + 1 + reason.len() + 1) as u64,
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
        if status == 405 {
            buf.extend_from_slice(b"Allow: GET, HEAD\r\n");
        }
        let _ = write!(buf, "X-Ipos-Node: {}\r\n", svc.node_name);
        if plan.close {
            buf.extend_from_slice(b"Connection: close\r\n");
        } else if plan.announce_keep_alive {
            buf.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        self.body_len = 0;
        if !plan.head_only {
            match plan.resp {
                Resp::Root => {
                    buf.extend_from_slice(ROOT_PREFIX.as_bytes());
                    buf.extend_from_slice(svc.node_name.as_bytes());
                    buf.extend_from_slice(ROOT_SUFFIX.as_bytes());
                }
                Resp::Bytes(n) => self.body_len = n,
                Resp::Error(s) => {
                    let _ = writeln!(buf, "{s} {reason}");
                }
            }
        }
        self.out_off = 0;
        self.body_pos = 0;
        self.scan = Scan::default();
        self.close |= plan.close;
        self.phase = Phase::Sending;
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

/// Decide the response to a complete, syntactically valid request head.
fn plan_request(head: &RequestHead<'_>) -> Plan {
    let head_only = match head.method {
        "GET" => false,
        "HEAD" => true,
        _ => return Plan::error(405),
    };
    // Errors after this point still answer HEAD without a body.
    let error = |status| Plan {
        head_only,
        ..Plan::error(status)
    };
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    for (name, value) in head.headers() {
        if name.eq_ignore_ascii_case("content-length") {
            match parse_decimal(trim_ows(value)) {
                Some(0) => {}
                _ => return error(400),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return error(400);
        } else if name.eq_ignore_ascii_case("connection") {
            for tok in value.split(|&b| b == b',') {
                let tok = trim_ows(tok);
                if tok.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        }
    }
    let (close, announce_keep_alive) = match head.version {
        Version::Http11 => (conn_close, false),
        Version::Http10 => {
            let keep = conn_keep_alive && !conn_close;
            (!keep, keep)
        }
    };
    let Some(path) = target_path(head.target) else {
        return error(400);
    };
    let resp = route(path);
    let close = close || matches!(resp, Resp::Error(s) if s != 404);
    Plan {
        resp,
        head_only,
        close,
        announce_keep_alive: announce_keep_alive && !close,
    }
}

/// Route a path: exact routes first, then after stripping one leading
/// non-empty `/<segment>` prefix. A `/bytes/<bad N>` path is a 400 unless
/// the stripped form is a valid route (`/bytes/bytes/7`, `/bytes/`).
fn route(path: &str) -> Resp {
    let exact = route_exact(path);
    if let Some(r @ (Resp::Root | Resp::Bytes(_))) = exact {
        return r;
    }
    let tail = path.strip_prefix('/').unwrap_or("");
    let stripped = match tail.find('/') {
        Some(0) => None, // empty segment: "//..."
        Some(i) => route_exact(&tail[i..]),
        None if !tail.is_empty() => Some(Resp::Root), // "/seg"
        None => None,
    };
    match (stripped, exact) {
        (Some(r @ (Resp::Root | Resp::Bytes(_))), _) => r,
        (_, Some(r)) | (Some(r), None) => r,
        (None, None) => Resp::Error(404),
    }
}

fn route_exact(path: &str) -> Option<Resp> {
    if path == "/" {
        return Some(Resp::Root);
    }
    let n = path.strip_prefix("/bytes/")?;
    Some(match parse_decimal(n.as_bytes()) {
        Some(n) if n <= MAX_BYTES_N => Resp::Bytes(n),
        _ => Resp::Error(400),
    })
}

/// Non-empty ASCII decimal, overflow-checked.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
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
        assert_eq!(route("//"), Resp::Error(404));
        assert_eq!(route("//bytes/1"), Resp::Error(404));
        assert_eq!(route("/x/bytes"), Resp::Error(404));
        assert_eq!(route(""), Resp::Error(404));
    }

    #[test]
    fn decimal() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b"1 "), None);
    }

    #[test]
    fn conn_is_small() {
        assert!(core::mem::size_of::<HttpConn>() <= 160);
    }
}
