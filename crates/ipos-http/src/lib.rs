//! ipos built-in HTTP/1.1 application: an I/O-free per-connection server
//! state machine ([`HttpConn`]) driven by the node's TCP glue, plus a
//! non-consuming request-head parser ([`peek_request`]) for routing
//! decisions (URL map, cookie map).
//!
//! # Routes
//! * `GET /` (and `HEAD`): `text/plain` page naming the node.
//! * `GET /bytes/N`, `0 <= N <= 10^12`: `N` bytes of `application/octet-stream`
//!   where byte `i` is `(i mod 251) as u8` (see [`pattern_byte`]). The body is
//!   generated on the fly. Bad `N` gives 400.
//! * `POST /upload` and `PUT /upload`: the request body, of any size, is
//!   read as it arrives (never buffered) and hashed; the answer is `200 OK`,
//!   `Content-Type: text/plain`, headers `X-Upload-Length: <bytes>` and
//!   `X-Upload-Sha256: <64 lowercase hex>`, body `<bytes> <hex>\n`. An
//!   empty (or absent) body is an upload of 0 bytes. `GET /upload` is the
//!   root page.
//! * All of these also match after one leading `/<segment>/` prefix
//!   (`/b/bytes/10`, `/b/upload`, `/b/`, `/b`); the exact route is tried
//!   first. Hence any single-segment path (`/anything`) serves the root
//!   page, and 404 is for deeper unknown paths (`/a/b`).
//! * Query strings are ignored; absolute-form targets are accepted.
//!
//! # Request bodies
//! A body is framed by `Content-Length` (decimal; repeats must agree) or
//! `Transfer-Encoding: chunked` (HTTP/1.1 only). Chunked syntax is strict
//! where leniency could let two parsers disagree on where a body ends:
//! `1*HEXDIG [BWS ";" ext] CRLF` size lines (extensions ignored), chunk
//! data followed by exactly CRLF, trailer lines `token ":" value CRLF` (read
//! and discarded) then CRLF, no bare LF; a size line and the trailer
//! section are at most [`MAX_CHUNK_LINE_BYTES`] each.
//!
//! Every request that is not answered with a closing error has its body
//! read to the end before its response starts: an `/upload` body is
//! hashed, any other (a GET or HEAD with a body, a POST or PUT elsewhere, a
//! 404) is discarded, and the connection stays usable. An HTTP/1.1 request
//! with `Expect: 100-continue` whose body is to be read gets
//! `HTTP/1.1 100 Continue` first (even when body bytes already arrived;
//! other expectations are ignored). A request answered with a closing
//! error (400, 405 for other methods, ...) has its body left unread: the
//! connection closes after the answer. A request whose body is cut short
//! by the peer's FIN gets no answer.
//!
//! # Errors
//! * 400, closes: malformed head; bad `N`; a target with no path (`*`);
//!   malformed body framing: `Content-Length` together with
//!   `Transfer-Encoding` (request smuggling), differing `Content-Length`
//!   values, a `Content-Length` that is not decimal or overflows, a
//!   `Transfer-Encoding` other than exactly `chunked` (or in HTTP/1.0), a
//!   bad chunk-size line, chunk data not followed by CRLF, a bad trailer
//!   line, a chunk-size line or trailer section over
//!   [`MAX_CHUNK_LINE_BYTES`]. Framing errors inside a body are answered
//!   when they are seen.
//! * 404, keeps the connection: unknown path (GET/HEAD).
//! * 405 with `Allow: GET, HEAD`, keeps the connection: POST or PUT to a
//!   path other than `/upload` (after reading its body).
//! * 405, closes: any other method (`DELETE`, `OPTIONS`, lowercase `get`,
//!   ...), with `Allow: GET, HEAD, POST, PUT` on an upload path and
//!   `Allow: GET, HEAD` elsewhere.
//! * 431, closes: head larger than [`Service::max_head_bytes`].
//! * 505, closes: other HTTP versions.
//!
//! `Host` is not required. Every response carries `Content-Type`,
//! `Content-Length` and `X-Ipos-Node`, plus `Connection: close` when it
//! closes (`Connection: keep-alive` for HTTP/1.0 keep-alive).
//!
//! # Glue contract
//! ```text
//! on data:  n = conn.on_recv(&svc, rx_bytes); drop n bytes from the rx buffer
//!           (body bytes are consumed as they arrive, so the window reopens;
//!           consumption stops at the end of a request whose response started)
//! on FIN:   conn.on_peer_fin()
//! to send:  n = conn.poll_send(&svc, tx_space); queue n bytes
//!           (a `100 Continue` comes out here too, while the body is read)
//!           when a response completes (has_pending_output() turns false),
//!           call on_recv again with the still-unconsumed rx bytes
//!           (pipelined requests) before acting on wants_close()
//! close:    when wants_close() && !has_pending_output() and all output is sent
//! timers:   conn.head_wait() after each call above: run the head
//!           (slowloris) timer while it is FirstRequest or Partial, stop it
//!           otherwise; Idle is the keep-alive wait between requests
//! ```
//!
//! # Moving a connection
//! [`HttpConn::progress`] gives a small record ([`Progress`], see [`progress`])
//! of where a connection stands, between requests or in the middle of a
//! response; [`HttpConn::resume`] on another node regenerates the bytes that
//! were in flight from it and continues the stream byte for byte.
#![forbid(unsafe_code)]

mod body;
mod conn;
mod parse;
pub mod progress;

pub use body::MAX_CHUNK_LINE_BYTES;
pub use conn::{HeadWait, HttpConn, HttpStats, Service, DEFAULT_MAX_HEAD_BYTES, MAX_BYTES_N};
pub use parse::{peek_request, target_path, Headers, HttpError, RequestHead, Version};
pub use progress::{
    NotMovable, Progress, ProgressError, MAX_PROGRESS_HEAD_LEN, MAX_PROGRESS_LEN,
    PROGRESS_HEADER_LEN, PROGRESS_VERSION,
};

/// Period of the `/bytes/N` body pattern.
pub const PATTERN_PERIOD: u64 = 251;

const PATTERN_TABLE_LEN: usize = 251 * 17;

/// `PATTERN_TABLE[i] == (i % 251) as u8`; lets [`fill_pattern`] copy up to
/// ~4 KiB per `memcpy` starting at any phase.
static PATTERN_TABLE: [u8; PATTERN_TABLE_LEN] = {
    let mut t = [0u8; PATTERN_TABLE_LEN];
    let mut i = 0;
    while i < PATTERN_TABLE_LEN {
        t[i] = (i % 251) as u8;
        i += 1;
    }
    t
};

/// Byte `i` of every `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % PATTERN_PERIOD) as u8
}

/// Fill `out` with body bytes `offset .. offset + out.len()` of the
/// `/bytes/N` pattern.
pub fn fill_pattern(offset: u64, out: &mut [u8]) {
    let mut phase = (offset % PATTERN_PERIOD) as usize;
    let mut done = 0;
    while done < out.len() {
        let n = (PATTERN_TABLE_LEN - phase).min(out.len() - done);
        out[done..done + n].copy_from_slice(&PATTERN_TABLE[phase..phase + n]);
        done += n;
        phase = (phase + n) % PATTERN_PERIOD as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_fill_matches_byte_fn() {
        for &off in &[0u64, 1, 250, 251, 252, 4016, 4267, 1_000_000_007] {
            for &len in &[0usize, 1, 250, 251, 4266, 4267, 4268, 10_000] {
                let mut v = vec![0xAAu8; len];
                fill_pattern(off, &mut v);
                for (i, &b) in v.iter().enumerate() {
                    assert_eq!(b, pattern_byte(off + i as u64), "off {off} len {len} i {i}");
                }
            }
        }
    }
}
