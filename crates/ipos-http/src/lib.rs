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
//! * Both also match after one leading `/<segment>/` prefix
//!   (`/b/bytes/10`, `/b/`, `/b`); the exact route is tried first. Hence
//!   any single-segment path (`/anything`) serves the root page, and
//!   404 is for deeper unknown paths (`/a/b`).
//! * Query strings are ignored; absolute-form targets are accepted.
//! * Errors: 400 malformed head, bad `N`, `Content-Length` > 0 or
//!   `Transfer-Encoding`; 404 unknown path (keeps the connection);
//!   405 other methods (with `Allow: GET, HEAD`); 431 head larger than
//!   [`Service::max_head_bytes`]; 505 other HTTP versions. Every error
//!   except 404 closes the connection. `Host` is not required.
//!
//! # Glue contract
//! ```text
//! on data:  n = conn.on_recv(&svc, rx_bytes); drop n bytes from the rx buffer
//! on FIN:   conn.on_peer_fin()
//! to send:  n = conn.poll_send(&svc, tx_space); queue n bytes
//!           when a response completes (has_pending_output() turns false),
//!           call on_recv again with the still-unconsumed rx bytes
//!           (pipelined requests) before acting on wants_close()
//! close:    when wants_close() && !has_pending_output() and all output is sent
//! ```
#![forbid(unsafe_code)]

mod conn;
mod parse;

pub use conn::{HttpConn, HttpStats, Service, DEFAULT_MAX_HEAD_BYTES, MAX_BYTES_N};
pub use parse::{peek_request, target_path, Headers, HttpError, RequestHead, Version};

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
