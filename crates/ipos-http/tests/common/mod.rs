//! Helpers shared by the integration tests: a minimal TCP glue and a
//! response parser.
#![allow(dead_code)]

use ipos_http::{HttpConn, Service};

/// Minimal TCP glue: an rx buffer fed to `on_recv`, output drained through
/// `poll_send` into `chunk`-sized writes.
pub struct Glue {
    pub svc: Service,
    pub conn: HttpConn,
    pub rx: Vec<u8>,
    pub out: Vec<u8>,
    pub chunk: usize,
}

impl Glue {
    pub fn new(svc: Service) -> Glue {
        Glue {
            svc,
            conn: HttpConn::new(),
            rx: Vec::new(),
            out: Vec::new(),
            chunk: 1500,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.rx.extend_from_slice(data);
        self.pump();
    }

    pub fn pump(&mut self) {
        let mut tmp = vec![0u8; self.chunk];
        loop {
            let n = self.conn.on_recv(&self.svc, &self.rx);
            assert!(n <= self.rx.len());
            self.rx.drain(..n);
            if !self.conn.has_pending_output() {
                // Not busy: everything must have been consumed.
                assert!(self.rx.is_empty(), "idle connection left bytes unconsumed");
                return;
            }
            while self.conn.has_pending_output() {
                let k = self.conn.poll_send(&self.svc, &mut tmp);
                assert!(k > 0, "pending output but poll_send made no progress");
                self.out.extend_from_slice(&tmp[..k]);
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

pub fn one_shot(svc: Service, req: &[u8]) -> (String, HttpConn) {
    let mut g = Glue::new(svc);
    g.feed(req);
    (g.text(), g.conn)
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse one response from `data`; `head_only` responses have no body.
/// Returns the response and the bytes used, or an error string.
pub fn parse_response(data: &[u8], head_only: bool) -> Result<(Response, usize), String> {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of head")?;
    let head = std::str::from_utf8(&data[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .ok_or(format!("bad status line {status_line:?}"))?;
    let status: u16 = rest
        .get(..3)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status")?;
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l.split_once(": ").ok_or(format!("bad header {l:?}"))?;
        headers.push((n.to_string(), v.to_string()));
    }
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let cl: usize = r
        .header("content-length")
        .ok_or("no content-length")?
        .parse()
        .map_err(|_| "bad content-length")?;
    if r.header("x-ipos-node").is_none() {
        return Err("no X-Ipos-Node".into());
    }
    let mut used = end + 4;
    if !head_only {
        let body = data.get(used..used + cl).ok_or("truncated body")?;
        r.body = body.to_vec();
        used += cl;
    }
    Ok((r, used))
}

pub fn parse_all(mut data: &[u8], head_only: &[bool]) -> Vec<Response> {
    let mut v = Vec::new();
    for &h in head_only {
        let (r, used) = parse_response(data, h).unwrap();
        v.push(r);
        data = &data[used..];
    }
    assert!(
        data.is_empty(),
        "trailing bytes: {:?}",
        String::from_utf8_lossy(data)
    );
    v
}

pub fn status_of(text: &str) -> u16 {
    text[9..12].parse().unwrap()
}

/// The interim response sent for `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Strip leading `100 Continue` interim responses; returns how many.
pub fn strip_continues(mut data: &[u8]) -> (usize, &[u8]) {
    let mut n = 0;
    while let Some(rest) = data.strip_prefix(CONTINUE) {
        data = rest;
        n += 1;
    }
    (n, data)
}
