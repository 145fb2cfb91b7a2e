//! The service-state record (ipOS extension 0x12, ours): where a moving
//! connection's application stands, sent by the source right after the
//! connection packet when the connection moves in the middle of a response.
//! The TCB's `service_len` gives the record's length, so a target knows to
//! wait for it; from it the target rebuilds the application and regenerates
//! the TCB's `snd_data_len` send bytes (sent but unacknowledged, then
//! unsent), instead of having them carried. Between requests the record says
//! that the connection has served one (so the target allows it the idle
//! time-out before its next request head, not the first head's time-out). A
//! move at the first request sends no record (`service_len` 0): the target's
//! application starts fresh. UDP flows never have one.
//!
//! Version 1, big-endian:
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | always 1 |
//! | 1 | 1 | `service` | 1 = the built-in HTTP service; others rejected |
//! | 2 | rest | `state` | the service's own record: for HTTP, [`ipos_http::Progress`] (versioned itself; its layout is in `ipos_http::progress`) |
//!
//! The extension's ipOS header carries the connection's flow (client and
//! VIP) and protocol TCP, like a connection notice. At most
//! [`MAX_SERVICE_STATE_LEN`] bytes, so the frame (30 + 1052, plus the
//! authentication trailer) fits any farm MTU a node accepts (1492).

use ipos_http::{Progress, ProgressError, MAX_PROGRESS_LEN};

/// Version written in byte 0.
pub const SERVICE_STATE_VERSION: u8 = 1;
/// Service byte of the built-in HTTP service.
pub const SERVICE_HTTP: u8 = 1;
/// Bytes before the service's own record.
pub const SERVICE_STATE_HEADER_LEN: usize = 2;
/// Largest record.
pub const MAX_SERVICE_STATE_LEN: usize = SERVICE_STATE_HEADER_LEN + MAX_PROGRESS_LEN;

/// Why a record is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStateError {
    /// Shorter than its header.
    Truncated,
    /// Another version than 1.
    Version(u8),
    /// A service this node does not run.
    UnknownService(u8),
    /// The HTTP service's record is bad.
    Http(ProgressError),
}

/// Writes the record of the HTTP service's progress `p` into `out`; returns
/// its length, or None when `out` is too short.
pub fn emit_http(p: &Progress, out: &mut [u8]) -> Option<usize> {
    let (head, rest) = out.split_at_mut_checked(SERVICE_STATE_HEADER_LEN)?;
    head.copy_from_slice(&[SERVICE_STATE_VERSION, SERVICE_HTTP]);
    let n = p.emit(rest).ok()?;
    Some(SERVICE_STATE_HEADER_LEN + n)
}

/// Reads a record of the HTTP service.
pub fn parse_http(b: &[u8]) -> Result<Progress, ServiceStateError> {
    if b.len() < SERVICE_STATE_HEADER_LEN {
        return Err(ServiceStateError::Truncated);
    }
    if b[0] != SERVICE_STATE_VERSION {
        return Err(ServiceStateError::Version(b[0]));
    }
    if b[1] != SERVICE_HTTP {
        return Err(ServiceStateError::UnknownService(b[1]));
    }
    Progress::parse(&b[SERVICE_STATE_HEADER_LEN..]).map_err(ServiceStateError::Http)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipos_http::{HttpConn, Service};

    /// The record of a connection 10 bytes into `/bytes/5`'s response, 4 of
    /// them unacknowledged.
    fn sending() -> (Progress, Vec<u8>) {
        let svc = Service::new("b");
        let mut c = HttpConn::new();
        let req = b"GET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(c.on_recv(&svc, req), req.len());
        let mut out = [0u8; 10];
        assert_eq!(c.poll_send(&svc, &mut out), 10);
        let p = c.progress(4).expect("movable mid-response");
        let mut buf = vec![0u8; MAX_SERVICE_STATE_LEN];
        let n = emit_http(&p, &mut buf).expect("fits");
        buf.truncate(n);
        (p, buf)
    }

    #[test]
    fn http_record_vector() {
        let (p, b) = sending();
        // Envelope, then the progress header (kind 2 Sending, head seen, 4
        // in flight, a 5-byte body, 10 produced) and the head bytes.
        assert_eq!(&b[..2], &[0x01, 0x01]);
        assert_eq!(
            &b[2..28],
            &[
                0x01,
                0x02,
                0x00,
                0x01, // version, kind, flags
                0x00,
                0x00,
                0x00,
                0x04, // in_flight
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                5, // body_len
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                10, // produced
                0x00,
                (b.len() - 28) as u8, // head_len
            ]
        );
        assert!(b[28..].starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(parse_http(&b), Ok(p));
    }

    #[test]
    fn idle_record_vector() {
        let p = HttpConn::new().progress(0).expect("fresh is movable");
        let mut b = [0u8; 64];
        let n = emit_http(&p, &mut b).expect("fits");
        assert_eq!(
            &b[..n],
            &[1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(parse_http(&b[..n]), Ok(p));
    }

    #[test]
    fn refusals() {
        let (_, b) = sending();
        assert_eq!(parse_http(&b[..1]), Err(ServiceStateError::Truncated));
        let mut v = b.clone();
        v[0] = 2;
        assert_eq!(parse_http(&v), Err(ServiceStateError::Version(2)));
        let mut v = b.clone();
        v[1] = 9;
        assert_eq!(parse_http(&v), Err(ServiceStateError::UnknownService(9)));
        assert!(matches!(
            parse_http(&b[..b.len() - 1]),
            Err(ServiceStateError::Http(_))
        ));
        assert_eq!(emit_http(&sending().0, &mut [0u8; 20]), None);
    }
}
