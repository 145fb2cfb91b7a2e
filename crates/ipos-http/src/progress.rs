//! Where an [`HttpConn`] stands, as a small record from which another node
//! continues the connection byte for byte ([`HttpConn::progress`],
//! [`HttpConn::resume`]).
//!
//! A connection that moves in the middle of a response does not ship the
//! bytes of its transport's send buffer: the importer regenerates them from
//! this record. The response's head (and small body) travels verbatim; a
//! `/bytes/N` pattern body is recomputed. The record says how many bytes of
//! the current response were produced (`produced`) and how many of the last
//! of them are still unacknowledged (`in_flight`, the transport's
//! send-buffer length, the TCB's `snd_data_len`).
//!
//! A connection can move (see [`NotMovable`] for the rest):
//! * between requests, or before the first one: no partial request head
//!   buffered, not closing, no FIN from the peer, nothing in flight
//!   (kind 1, Idle);
//! * while producing a response whose head and small body take at most
//!   [`MAX_PROGRESS_HEAD_LEN`] bytes, once any `100 Continue` is out, with
//!   no byte of an earlier response still in flight (kind 2, Sending).
//!
//! # Wire layout
//! Version 1. All integers are big-endian.
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | always 1 ([`PROGRESS_VERSION`]) |
//! | 1 | 1 | `kind` | 1 Idle (waiting for a request head, none of it received), 2 Sending (a response in progress); others rejected |
//! | 2 | 2 | `flags` | bit 0 a request head of this connection has completed (drives [`HttpConn::head_wait`]: `Idle` rather than `FirstRequest`), bit 1 close after this response (Sending only); bits 2-15 must be zero |
//! | 4 | 4 | `in_flight` | bytes at the end of what was produced that are not acknowledged yet (the importer's send buffer); at most `produced`; zero in Idle |
//! | 8 | 8 | `body_len` | length of the generated `/bytes/N` pattern body that follows the head bytes (0 for every other response, and for `HEAD`); at most [`MAX_BYTES_N`]; zero in Idle |
//! | 16 | 8 | `produced` | bytes of this response returned by `poll_send` so far (head bytes first, then pattern bytes); below `head_len + body_len` (a fully produced response is no longer in progress); zero in Idle |
//! | 24 | 2 | `head_len` | length of the head bytes that follow; 1..=[`MAX_PROGRESS_HEAD_LEN`] in Sending, zero in Idle |
//! | 26 | `head_len` | `head` | the response's head and small body, exactly as produced (they start with `HTTP/1.1 `); nothing follows them |
//!
//! The record is [`PROGRESS_HEADER_LEN`] bytes plus the head bytes, at most
//! [`MAX_PROGRESS_LEN`].
//!
//! `in_flight` is bounded only by its 32-bit field (like the TCB's
//! `snd_data_len`): the importer checks it against the transport's
//! send-data length and buffer before it calls [`HttpConn::resume`] with a
//! buffer of that size.
//!
//! [`MAX_BYTES_N`]: crate::MAX_BYTES_N

use core::fmt;

use crate::conn::Phase;
use crate::{fill_pattern, HttpConn, Service, MAX_BYTES_N};

/// Version written in byte 0.
pub const PROGRESS_VERSION: u8 = 1;
/// Length of the fixed header (the head bytes follow it).
pub const PROGRESS_HEADER_LEN: usize = 26;
/// Largest response head (with its small body) a moving connection carries.
pub const MAX_PROGRESS_HEAD_LEN: usize = 1024;
/// Largest encoded record.
pub const MAX_PROGRESS_LEN: usize = PROGRESS_HEADER_LEN + MAX_PROGRESS_HEAD_LEN;

const KIND_IDLE: u8 = 1;
const KIND_SENDING: u8 = 2;
const F_HEAD_SEEN: u16 = 1 << 0;
const F_CLOSE: u16 = 1 << 1;
const F_KNOWN: u16 = F_HEAD_SEEN | F_CLOSE;
/// Every response head starts with this.
const RESPONSE_PREFIX: &[u8] = b"HTTP/1.1 ";

/// Where an [`HttpConn`] stands (see the [module docs](crate::progress)). Every value
/// is valid: it comes from [`HttpConn::progress`] or [`Progress::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Sending (else Idle).
    sending: bool,
    head_seen: bool,
    close: bool,
    in_flight: u32,
    body_len: u64,
    produced: u64,
    /// Response head and small body (empty in Idle).
    head: Vec<u8>,
}

/// Why a connection cannot move now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMovable {
    /// A request body is being read: an upload's SHA-256 state (and a
    /// chunked decoder's) does not travel.
    ReadingBody,
    /// A `100 Continue` is not completely returned by `poll_send` yet.
    ContinuePending,
    /// Part of a request head is buffered.
    PartialHead,
    /// A closing response was fully produced: the connection is done.
    Closed,
    /// The peer sent its FIN.
    PeerFin,
    /// More bytes are in flight than this response produced: an earlier
    /// response (or a `100 Continue`) is still unacknowledged.
    PreviousUnacked,
    /// The response head and small body exceed [`MAX_PROGRESS_HEAD_LEN`].
    ResponseTooLarge,
    /// Between requests, bytes of the last response are still in flight.
    InFlightBetweenRequests,
    /// More than `u32::MAX` bytes in flight.
    InFlightTooLarge,
    /// The connection is served by a process outside the node (an
    /// upstream), whose state does not travel.
    External,
}

/// A bad record, or a buffer of the wrong size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressError {
    /// Shorter than the header, or than the header and `head_len` bytes.
    Truncated,
    /// `version` is not [`PROGRESS_VERSION`].
    Version,
    /// `kind` is neither 1 (Idle) nor 2 (Sending).
    UnknownKind,
    /// A flag bit other than 0 and 1 is set.
    UnknownFlags,
    /// Bytes after the head bytes.
    TrailingBytes,
    /// An Idle record with the close flag, or a non-zero `in_flight`,
    /// `body_len`, `produced` or `head_len`.
    IdleNotZero,
    /// A Sending record whose `head_len` exceeds [`MAX_PROGRESS_HEAD_LEN`].
    HeadTooLong,
    /// A Sending record whose head bytes do not start with `HTTP/1.1 `
    /// (an empty head included).
    NotAResponse,
    /// `body_len` exceeds [`MAX_BYTES_N`].
    BodyTooLong,
    /// `produced` is not below `head_len + body_len`.
    ProducedPastEnd,
    /// `in_flight` exceeds `produced`.
    InFlightPastProduced,
    /// [`Progress::emit`]: the output buffer is shorter than
    /// [`Progress::encoded_len`].
    BufferTooShort,
    /// [`HttpConn::resume`]: `out` is not [`Progress::in_flight`] bytes long.
    OutLength,
}

impl fmt::Display for NotMovable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Display for ProgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for NotMovable {}
impl std::error::Error for ProgressError {}

impl Progress {
    /// Bytes in flight: the length of the buffer [`HttpConn::resume`] fills.
    pub fn in_flight(&self) -> usize {
        // Lossless: usize has at least 32 bits on every target ipos builds for.
        self.in_flight as usize
    }

    /// Length of the wire form, at most [`MAX_PROGRESS_LEN`].
    pub fn encoded_len(&self) -> usize {
        PROGRESS_HEADER_LEN + self.head.len()
    }

    /// Write the wire form to the start of `out`; returns its length.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, ProgressError> {
        let len = self.encoded_len();
        let Some(out) = out.get_mut(..len) else {
            return Err(ProgressError::BufferTooShort);
        };
        let mut flags = 0;
        if self.head_seen {
            flags |= F_HEAD_SEEN;
        }
        if self.close {
            flags |= F_CLOSE;
        }
        out[0] = PROGRESS_VERSION;
        out[1] = if self.sending {
            KIND_SENDING
        } else {
            KIND_IDLE
        };
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[4..8].copy_from_slice(&self.in_flight.to_be_bytes());
        out[8..16].copy_from_slice(&self.body_len.to_be_bytes());
        out[16..24].copy_from_slice(&self.produced.to_be_bytes());
        // head.len() <= MAX_PROGRESS_HEAD_LEN < 2^16 (see validate).
        out[24..26].copy_from_slice(&(self.head.len() as u16).to_be_bytes());
        out[PROGRESS_HEADER_LEN..].copy_from_slice(&self.head);
        Ok(len)
    }

    /// Parse and validate a whole record (`b` holds exactly one).
    pub fn parse(b: &[u8]) -> Result<Progress, ProgressError> {
        let Some(h) = b.get(..PROGRESS_HEADER_LEN) else {
            return Err(ProgressError::Truncated);
        };
        if h[0] != PROGRESS_VERSION {
            return Err(ProgressError::Version);
        }
        let sending = match h[1] {
            KIND_IDLE => false,
            KIND_SENDING => true,
            _ => return Err(ProgressError::UnknownKind),
        };
        let flags = u16::from_be_bytes([h[2], h[3]]);
        if flags & !F_KNOWN != 0 {
            return Err(ProgressError::UnknownFlags);
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let head_len = usize::from(u16::from_be_bytes([h[24], h[25]]));
        if sending && head_len > MAX_PROGRESS_HEAD_LEN {
            return Err(ProgressError::HeadTooLong);
        }
        let rest = &b[PROGRESS_HEADER_LEN..];
        if rest.len() < head_len {
            return Err(ProgressError::Truncated);
        }
        if rest.len() > head_len {
            return Err(ProgressError::TrailingBytes);
        }
        let p = Progress {
            sending,
            head_seen: flags & F_HEAD_SEEN != 0,
            close: flags & F_CLOSE != 0,
            in_flight: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            body_len: u64_at(8),
            produced: u64_at(16),
            head: rest.to_vec(),
        };
        p.validate()?;
        Ok(p)
    }

    /// Whether the fields agree (every `Progress` built here does).
    fn validate(&self) -> Result<(), ProgressError> {
        if !self.sending {
            let zero = !self.close
                && self.in_flight == 0
                && self.body_len == 0
                && self.produced == 0
                && self.head.is_empty();
            return if zero {
                Ok(())
            } else {
                Err(ProgressError::IdleNotZero)
            };
        }
        if self.head.len() > MAX_PROGRESS_HEAD_LEN {
            return Err(ProgressError::HeadTooLong);
        }
        if !self.head.starts_with(RESPONSE_PREFIX) {
            return Err(ProgressError::NotAResponse);
        }
        if self.body_len > MAX_BYTES_N {
            return Err(ProgressError::BodyTooLong);
        }
        // No overflow: both terms are far below 2^63.
        if self.produced >= self.head.len() as u64 + self.body_len {
            return Err(ProgressError::ProducedPastEnd);
        }
        if u64::from(self.in_flight) > self.produced {
            return Err(ProgressError::InFlightPastProduced);
        }
        Ok(())
    }
}

impl HttpConn {
    /// A record of where this connection stands, for [`HttpConn::resume`] on
    /// another node. `in_flight`: how many of the bytes `poll_send` returned
    /// are still unacknowledged (the transport's send-buffer length). Err
    /// when the connection cannot move now (see [`NotMovable`]).
    pub fn progress(&self, in_flight: usize) -> Result<Progress, NotMovable> {
        if self.peer_fin {
            return Err(NotMovable::PeerFin);
        }
        match self.phase {
            Phase::Done => Err(NotMovable::Closed),
            Phase::Body { .. } => Err(NotMovable::ReadingBody),
            _ if self.continue_left > 0 => Err(NotMovable::ContinuePending),
            Phase::Head(_) => {
                if !self.buf.is_empty() {
                    Err(NotMovable::PartialHead)
                } else if self.close {
                    // Not reached: a closing response ends in Done.
                    Err(NotMovable::Closed)
                } else if in_flight > 0 {
                    Err(NotMovable::InFlightBetweenRequests)
                } else {
                    Ok(Progress {
                        sending: false,
                        head_seen: self.head_seen,
                        close: false,
                        in_flight: 0,
                        body_len: 0,
                        produced: 0,
                        head: Vec::new(),
                    })
                }
            }
            Phase::Sending {
                out_off,
                body_pos,
                body_len,
            } => {
                if self.buf.len() > MAX_PROGRESS_HEAD_LEN {
                    return Err(NotMovable::ResponseTooLarge);
                }
                // out_off <= buf.len() <= 1024 and body_pos <= body_len <= 10^12.
                let produced = out_off as u64 + body_pos;
                if u64::try_from(in_flight).map_or(true, |n| n > produced) {
                    return Err(NotMovable::PreviousUnacked);
                }
                let in_flight =
                    u32::try_from(in_flight).map_err(|_| NotMovable::InFlightTooLarge)?;
                Ok(Progress {
                    sending: true,
                    head_seen: self.head_seen,
                    close: self.close,
                    in_flight,
                    body_len,
                    produced,
                    head: self.buf.clone(),
                })
            }
        }
    }

    /// The connection as it continues on the importing node (whose `svc`
    /// serves its later requests): `out`, exactly `p.in_flight()` bytes,
    /// receives the bytes that were in flight, byte-exact (the head bytes
    /// from the record, pattern bytes computed), and the returned
    /// connection's next `poll_send` continues the stream where the
    /// exporter's would have. Its [`stats`](HttpConn::stats) start at zero.
    /// Never panics; the only error is [`ProgressError::OutLength`] for a
    /// record that came from `progress` or `parse`.
    pub fn resume(_svc: &Service, p: &Progress, out: &mut [u8]) -> Result<HttpConn, ProgressError> {
        p.validate()?;
        if out.len() != p.in_flight() {
            return Err(ProgressError::OutLength);
        }
        let mut c = HttpConn::new();
        c.head_seen = p.head_seen;
        if !p.sending {
            return Ok(c);
        }
        let head_len = p.head.len() as u64;
        // validate: in_flight <= produced < head_len + body_len.
        let start = p.produced - u64::from(p.in_flight);
        let mut done = 0;
        if start < head_len {
            // start < head_len <= 1024: the casts are exact.
            let from = start as usize;
            let n = (p.head.len() - from).min(out.len());
            out[..n].copy_from_slice(&p.head[from..from + n]);
            done = n;
        }
        fill_pattern(
            (start + done as u64).saturating_sub(head_len),
            &mut out[done..],
        );
        let (out_off, body_pos) = if p.produced <= head_len {
            (p.produced as usize, 0)
        } else {
            (p.head.len(), p.produced - head_len)
        };
        c.buf = p.head.clone();
        c.close = p.close;
        c.phase = Phase::Sending {
            out_off,
            body_pos,
            body_len: p.body_len,
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::HeadWait;

    fn svc() -> Service {
        Service::new("n1")
    }

    /// `conn` after `req` and `pull` bytes of `poll_send`.
    fn after(req: &[u8], pull: usize) -> HttpConn {
        let svc = svc();
        let mut c = HttpConn::new();
        assert_eq!(c.on_recv(&svc, req), req.len());
        let mut tmp = vec![0u8; pull];
        assert_eq!(c.poll_send(&svc, &mut tmp), pull);
        c
    }

    fn emitted(p: &Progress) -> Vec<u8> {
        let mut b = [0u8; MAX_PROGRESS_LEN];
        let n = p.emit(&mut b).expect("room");
        assert_eq!(n, p.encoded_len());
        b[..n].to_vec()
    }

    const BYTES_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
        Content-Length: 1000\r\nX-Ipos-Node: n1\r\n\r\n";
    const NOT_FOUND: &[u8] =
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
        Content-Length: 14\r\nX-Ipos-Node: n1\r\nConnection: close\r\n\r\n404 Not Found\n";

    #[rustfmt::skip]
    const FRESH: [u8; 26] = [
        0x01, 0x01, 0x00, 0x00, // version 1, kind Idle, no flags
        0x00, 0x00, 0x00, 0x00, // in_flight
        0, 0, 0, 0, 0, 0, 0, 0, // body_len
        0, 0, 0, 0, 0, 0, 0, 0, // produced
        0x00, 0x00,             // head_len
    ];

    #[rustfmt::skip]
    const IDLE: [u8; 26] = [
        0x01, 0x01, 0x00, 0x01, // version 1, kind Idle, head seen
        0x00, 0x00, 0x00, 0x00,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x00,
    ];

    #[rustfmt::skip]
    const SENDING_HEADER: [u8; 26] = [
        0x01, 0x02, 0x00, 0x01,                         // kind Sending, head seen
        0x00, 0x00, 0x00, 0x96,                         // in_flight 150
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, // body_len 1000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc8, // produced 200
        0x00, 0x62,                                     // head_len 98
    ];

    #[rustfmt::skip]
    const CLOSING_HEADER: [u8; 26] = [
        0x01, 0x02, 0x00, 0x03,                         // kind Sending, head seen, close
        0x00, 0x00, 0x00, 0x04,                         // in_flight 4
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // body_len 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // produced 10
        0x00, 0x89,                                     // head_len 137
    ];

    fn sending_vector() -> Vec<u8> {
        [&SENDING_HEADER[..], BYTES_HEAD].concat()
    }

    fn closing_vector() -> Vec<u8> {
        [&CLOSING_HEADER[..], NOT_FOUND].concat()
    }

    #[test]
    fn vector_fresh() {
        let c = HttpConn::new();
        let p = c.progress(0).expect("movable");
        assert_eq!(emitted(&p), FRESH);
        assert_eq!(Progress::parse(&FRESH), Ok(p.clone()));
        let mut out = [];
        let r = HttpConn::resume(&svc(), &p, &mut out).expect("resumes");
        assert_eq!(r.head_wait(), HeadWait::FirstRequest);
        assert!(!r.has_pending_output() && !r.wants_close());
    }

    #[test]
    fn vector_idle() {
        let c = after(b"GET /bytes/3 HTTP/1.1\r\n\r\n", 95 + 3);
        assert_eq!(c.head_wait(), HeadWait::Idle);
        let p = c.progress(0).expect("movable");
        assert_eq!(emitted(&p), IDLE);
        assert_eq!(Progress::parse(&IDLE), Ok(p.clone()));
        let r = HttpConn::resume(&svc(), &p, &mut []).expect("resumes");
        assert_eq!(r.head_wait(), HeadWait::Idle);
    }

    #[test]
    fn vector_sending() {
        assert_eq!(BYTES_HEAD.len(), 98);
        let c = after(b"GET /bytes/1000 HTTP/1.1\r\n\r\n", 200);
        let p = c.progress(150).expect("movable");
        assert_eq!(p.in_flight(), 150);
        let v = sending_vector();
        assert_eq!(emitted(&p), v);
        assert_eq!(Progress::parse(&v), Ok(p.clone()));
        // Bytes 50..200 of the response: the head from byte 50, then body 0..102.
        let mut out = vec![0u8; 150];
        let mut r = HttpConn::resume(&svc(), &p, &mut out).expect("resumes");
        assert_eq!(&out[..48], &BYTES_HEAD[50..]);
        for (i, &b) in out[48..].iter().enumerate() {
            assert_eq!(b, crate::pattern_byte(i as u64));
        }
        assert_eq!(r.stats(), crate::HttpStats::default());
        let mut rest = vec![0u8; 2000];
        assert_eq!(r.poll_send(&svc(), &mut rest), 898);
        for (i, &b) in rest[..898].iter().enumerate() {
            assert_eq!(b, crate::pattern_byte(102 + i as u64));
        }
        assert!(!r.has_pending_output());
        assert_eq!(r.head_wait(), HeadWait::Idle);
    }

    #[test]
    fn vector_closing() {
        assert_eq!(NOT_FOUND.len(), 137);
        let c = after(b"GET /a/b HTTP/1.1\r\nConnection: close\r\n\r\n", 10);
        let p = c.progress(4).expect("movable");
        let v = closing_vector();
        assert_eq!(emitted(&p), v);
        assert_eq!(Progress::parse(&v), Ok(p.clone()));
        let mut out = [0u8; 4];
        let mut r = HttpConn::resume(&svc(), &p, &mut out).expect("resumes");
        assert_eq!(&out, b".1 4");
        assert!(r.wants_close() && r.has_pending_output());
        let mut rest = [0u8; 200];
        assert_eq!(r.poll_send(&svc(), &mut rest), 127);
        assert_eq!(&rest[..127], &NOT_FOUND[10..]);
        assert!(!r.has_pending_output() && r.wants_close());
        assert_eq!(r.progress(0), Err(NotMovable::Closed));
    }

    /// `v` with byte `i` replaced.
    fn with(v: &[u8], i: usize, b: u8) -> Vec<u8> {
        let mut v = v.to_vec();
        v[i] = b;
        v
    }

    #[test]
    fn rejections() {
        use ProgressError as E;
        let s = sending_vector();
        let cases: Vec<(&str, Vec<u8>, ProgressError)> = vec![
            ("empty", vec![], E::Truncated),
            ("short header", FRESH[..25].to_vec(), E::Truncated),
            ("short head", s[..s.len() - 1].to_vec(), E::Truncated),
            ("version 0", with(&FRESH, 0, 0), E::Version),
            ("version 2", with(&FRESH, 0, 2), E::Version),
            ("kind 0", with(&FRESH, 1, 0), E::UnknownKind),
            ("kind 3", with(&FRESH, 1, 3), E::UnknownKind),
            ("flag bit 2", with(&FRESH, 3, 4), E::UnknownFlags),
            ("flag bit 15", with(&FRESH, 2, 0x80), E::UnknownFlags),
            (
                "idle trailing",
                [&FRESH[..], b"x"].concat(),
                E::TrailingBytes,
            ),
            (
                "sending trailing",
                [&s[..], b"x"].concat(),
                E::TrailingBytes,
            ),
            ("idle close", with(&IDLE, 3, 3), E::IdleNotZero),
            ("idle in_flight", with(&FRESH, 7, 1), E::IdleNotZero),
            ("idle body_len", with(&FRESH, 8, 1), E::IdleNotZero),
            ("idle produced", with(&FRESH, 23, 1), E::IdleNotZero),
            (
                "idle head",
                [&with(&FRESH, 25, 1)[..], b"H"].concat(),
                E::IdleNotZero,
            ),
            (
                "head over the bound",
                {
                    let mut v = with(&SENDING_HEADER, 24, 0x04);
                    v[25] = 0x01; // 1025
                    v.extend_from_slice(BYTES_HEAD);
                    v.resize(26 + 1025, b'x');
                    v
                },
                E::HeadTooLong,
            ),
            (
                "empty head",
                {
                    let mut v = SENDING_HEADER.to_vec();
                    v[25] = 0;
                    v
                },
                E::NotAResponse,
            ),
            ("not a response", with(&s, 26, b'h'), E::NotAResponse),
            (
                "body too long",
                {
                    let mut v = s.clone();
                    v[8..16].copy_from_slice(&(MAX_BYTES_N + 1).to_be_bytes());
                    v
                },
                E::BodyTooLong,
            ),
            (
                "produced at the end",
                {
                    let mut v = s.clone();
                    v[16..24].copy_from_slice(&1098u64.to_be_bytes());
                    v
                },
                E::ProducedPastEnd,
            ),
            (
                "produced past the end",
                {
                    let mut v = s.clone();
                    v[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
                    v
                },
                E::ProducedPastEnd,
            ),
            (
                "in_flight past produced",
                with(&s, 7, 0xc9),
                E::InFlightPastProduced,
            ),
        ];
        for (name, bytes, err) in cases {
            assert_eq!(Progress::parse(&bytes), Err(err), "{name}");
        }
        // Edges that are accepted.
        let mut v = s.clone();
        v[16..24].copy_from_slice(&1097u64.to_be_bytes());
        v[4..8].copy_from_slice(&1097u32.to_be_bytes());
        assert!(Progress::parse(&v).is_ok());
        let mut v = s.clone();
        v[8..16].copy_from_slice(&MAX_BYTES_N.to_be_bytes());
        assert!(Progress::parse(&v).is_ok());
        let mut v = with(&SENDING_HEADER, 24, 0x04); // 1024
        v[25] = 0;
        v.extend_from_slice(BYTES_HEAD);
        v.resize(MAX_PROGRESS_LEN, b'x');
        assert_eq!(
            Progress::parse(&v).map(|p| p.encoded_len()),
            Ok(MAX_PROGRESS_LEN)
        );
    }

    #[test]
    fn emit_and_resume_errors() {
        let p = Progress::parse(&sending_vector()).expect("valid");
        let mut short = vec![0u8; p.encoded_len() - 1];
        assert_eq!(p.emit(&mut short), Err(ProgressError::BufferTooShort));
        let mut longer = vec![0xaau8; p.encoded_len() + 5];
        assert_eq!(p.emit(&mut longer), Ok(p.encoded_len()));
        assert_eq!(&longer[p.encoded_len()..], &[0xaa; 5]);
        for len in [0, 149, 151] {
            let mut out = vec![0u8; len];
            assert_eq!(
                HttpConn::resume(&svc(), &p, &mut out).map(|_| ()),
                Err(ProgressError::OutLength)
            );
        }
        let idle = Progress::parse(&IDLE).expect("valid");
        assert_eq!(
            idle.emit(&mut [0u8; 25]),
            Err(ProgressError::BufferTooShort)
        );
        assert!(HttpConn::resume(&svc(), &idle, &mut [0u8; 1]).is_err());
    }

    #[test]
    fn not_movable_states() {
        let svc = svc();
        // Partial head.
        let mut c = HttpConn::new();
        c.on_recv(&svc, b"GET / HT");
        assert_eq!(c.progress(0), Err(NotMovable::PartialHead));
        // Reading a body, with and without 100 Continue.
        let mut c = HttpConn::new();
        c.on_recv(&svc, b"PUT /upload HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
        assert_eq!(c.progress(0), Err(NotMovable::ReadingBody));
        let mut c = HttpConn::new();
        let req = b"PUT /upload HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nab";
        assert_eq!(c.on_recv(&svc, req), req.len());
        assert!(matches!(c.phase, Phase::Sending { .. }));
        assert_eq!(c.progress(0), Err(NotMovable::ContinuePending));
        let mut tmp = [0u8; 25];
        assert_eq!(c.poll_send(&svc, &mut tmp), 25);
        assert_eq!(c.progress(25), Err(NotMovable::PreviousUnacked));
        assert_eq!(c.progress(0).map(|p| p.in_flight()), Ok(0));
        // The previous response unacknowledged, and between requests.
        let mut c = after(b"GET /bytes/2 HTTP/1.1\r\n\r\n", 97);
        assert_eq!(c.progress(1), Err(NotMovable::InFlightBetweenRequests));
        c.on_recv(&svc, b"GET /bytes/7 HTTP/1.1\r\n\r\n");
        let mut tmp = [0u8; 10];
        c.poll_send(&svc, &mut tmp);
        assert_eq!(c.progress(10).map(|p| p.in_flight()), Ok(10));
        assert_eq!(c.progress(11), Err(NotMovable::PreviousUnacked));
        // Peer FIN, closed.
        c.on_peer_fin();
        assert_eq!(c.progress(0), Err(NotMovable::PeerFin));
        let mut c = after(b"GET /bytes/0 HTTP/1.1\r\nConnection: close\r\n\r\n", 114);
        assert!(matches!(c.phase, Phase::Done));
        assert_eq!(c.progress(0), Err(NotMovable::Closed));
        // A response too large to carry.
        let big = Service::new(&"n".repeat(600));
        c = HttpConn::new();
        c.on_recv(&big, b"GET / HTTP/1.1\r\n\r\n");
        assert!(c.buf.len() > MAX_PROGRESS_HEAD_LEN);
        assert_eq!(c.progress(0), Err(NotMovable::ResponseTooLarge));
        // In flight beyond 32 bits.
        let mut c = HttpConn::new();
        c.phase = Phase::Sending {
            out_off: 98,
            body_pos: 1 << 33,
            body_len: 1 << 34,
        };
        c.buf = BYTES_HEAD.to_vec();
        assert_eq!(c.progress(1 << 32), Err(NotMovable::InFlightTooLarge));
        assert!(c.progress((1 << 32) - 1).is_ok());
    }

    // ---- twin property test ----

    #[derive(Debug, Clone)]
    enum Req {
        Bytes(u64),
        Root,
        HeadBytes(u64),
        NotFound,
        Upload { len: usize, expect: bool },
    }

    fn encode(reqs: &[Req], close_last: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let close = if close_last && i + 1 == reqs.len() {
                "Connection: close\r\n"
            } else {
                ""
            };
            let s = match r {
                Req::Bytes(n) => format!("GET /bytes/{n} HTTP/1.1\r\n{close}\r\n"),
                Req::Root => format!("GET / HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
                Req::HeadBytes(n) => format!("HEAD /bytes/{n} HTTP/1.1\r\n{close}\r\n"),
                Req::NotFound => format!("GET /no/such HTTP/1.1\r\n{close}\r\n"),
                Req::Upload { len, expect } => {
                    let e = if *expect {
                        "Expect: 100-continue\r\n"
                    } else {
                        ""
                    };
                    format!("PUT /upload HTTP/1.1\r\nContent-Length: {len}\r\n{e}{close}\r\n")
                }
            };
            v.extend_from_slice(s.as_bytes());
            if let Req::Upload { len, .. } = r {
                v.extend((0..*len).map(|i| (i * 7) as u8));
            }
        }
        v
    }

    fn req() -> impl Strategy<Value = Req> {
        let n = || prop_oneof![0u64..2000, 0u64..300_000];
        prop_oneof![
            4 => n().prop_map(Req::Bytes),
            1 => Just(Req::Root),
            1 => n().prop_map(Req::HeadBytes),
            1 => Just(Req::NotFound),
            1 => (0usize..3000, any::<bool>()).prop_map(|(len, expect)| Req::Upload { len, expect }),
        ]
    }

    /// The node's glue: receive buffer, input fed in pieces, output pulled in chunks.
    struct Drive {
        conn: HttpConn,
        rx: Vec<u8>,
        fed: usize,
        fin_sent: bool,
        out: Vec<u8>,
    }

    struct Script<'a> {
        svc: &'a Service,
        input: &'a [u8],
        fin: bool,
        feeds: &'a [usize],
        pulls: &'a [usize],
    }

    const MAX_PULL: usize = 70_000;
    const MAX_STEPS: usize = 100_000;

    impl Drive {
        fn new() -> Drive {
            Drive {
                conn: HttpConn::new(),
                rx: Vec::new(),
                fed: 0,
                fin_sent: false,
                out: Vec::new(),
            }
        }

        /// Step `i`: feed, FIN once the input is all fed, `on_recv`, pull.
        /// Whether anything happened.
        fn step(&mut self, s: &Script<'_>, i: usize, tmp: &mut [u8]) -> bool {
            let feed = s.feeds[i % s.feeds.len()];
            let pull = s.pulls[i % s.pulls.len()];
            let take = feed.min(s.input.len() - self.fed);
            self.rx
                .extend_from_slice(&s.input[self.fed..self.fed + take]);
            self.fed += take;
            let mut moved = take > 0;
            if s.fin && !self.fin_sent && self.fed == s.input.len() {
                self.conn.on_peer_fin();
                self.fin_sent = true;
                moved = true;
            }
            let n = self.conn.on_recv(s.svc, &self.rx);
            self.rx.drain(..n);
            let k = self.conn.poll_send(s.svc, &mut tmp[..pull]);
            self.out.extend_from_slice(&tmp[..k]);
            moved || n > 0 || k > 0
        }

        fn observed(&self) -> (bool, bool, HeadWait) {
            (
                self.conn.wants_close(),
                self.conn.has_pending_output(),
                self.conn.head_wait(),
            )
        }
    }

    /// Bytes of the current response produced so far (0 between requests).
    fn produced_now(c: &HttpConn) -> u64 {
        match c.phase {
            Phase::Sending {
                out_off, body_pos, ..
            } => out_off as u64 + body_pos,
            _ => 0,
        }
    }

    /// The variant `progress` gave matches the state; Ok only in movable states.
    fn check_verdict(c: &HttpConn, in_flight: usize, r: &Result<Progress, NotMovable>) {
        let produced = produced_now(c);
        let sending = matches!(c.phase, Phase::Sending { .. });
        let head = matches!(c.phase, Phase::Head(_));
        let ok = match r {
            Err(NotMovable::ReadingBody) => matches!(c.phase, Phase::Body { .. }),
            Err(NotMovable::ContinuePending) => c.continue_left > 0,
            Err(NotMovable::PartialHead) => head && !c.buf.is_empty(),
            Err(NotMovable::Closed) => matches!(c.phase, Phase::Done),
            Err(NotMovable::PeerFin) => c.peer_fin,
            Err(NotMovable::PreviousUnacked) => sending && in_flight as u64 > produced,
            Err(NotMovable::ResponseTooLarge) => sending && c.buf.len() > MAX_PROGRESS_HEAD_LEN,
            Err(NotMovable::InFlightBetweenRequests) => head && in_flight > 0,
            Err(NotMovable::InFlightTooLarge) => false,
            // Only a relayed connection says this; the built-in service never does.
            Err(NotMovable::External) => false,
            Ok(p) => {
                p.in_flight() == in_flight
                    && !c.peer_fin
                    && c.continue_left == 0
                    && ((head && c.buf.is_empty() && !c.close && in_flight == 0)
                        || (sending
                            && c.buf.len() <= MAX_PROGRESS_HEAD_LEN
                            && in_flight as u64 <= produced))
            }
        };
        assert!(
            ok,
            "{r:?} in {:?}, buf {}, in_flight {in_flight}",
            c.phase,
            c.buf.len()
        );
    }

    /// Run `s` to step `at`, take `progress` with an `in_flight` picked from
    /// `pick` (beyond what the rules allow when `over`), and when movable,
    /// check the resumed twin against the original to the end. Returns the
    /// verdict.
    fn move_at(s: &Script<'_>, at: usize, pick: u64, over: bool) -> Result<Progress, NotMovable> {
        let mut tmp = vec![0u8; MAX_PULL];
        let mut a = Drive::new();
        for i in 0..at {
            a.step(s, i, &mut tmp);
        }
        let sent = a.out.len() as u64;
        let allowed = produced_now(&a.conn).min(sent);
        let in_flight = if over && allowed < sent {
            allowed + 1 + pick % (sent - allowed)
        } else {
            pick % (allowed + 1)
        } as usize;
        let verdict = a.conn.progress(in_flight);
        check_verdict(&a.conn, in_flight, &verdict);
        let Ok(p) = &verdict else {
            return verdict;
        };
        let wire = emitted(p);
        assert!(wire.len() <= MAX_PROGRESS_LEN);
        let parsed = Progress::parse(&wire).expect("an emitted record parses");
        assert_eq!(&parsed, p);
        let mut regen = vec![0u8; in_flight];
        let twin = HttpConn::resume(s.svc, &parsed, &mut regen).expect("resumes");
        assert!(
            regen[..] == a.out[a.out.len() - in_flight..],
            "in-flight bytes"
        );
        assert_eq!(
            twin.progress(in_flight).as_ref(),
            Ok(p),
            "resume undoes progress"
        );
        let mut b = Drive {
            conn: twin,
            rx: a.rx.clone(),
            fed: a.fed,
            fin_sent: a.fin_sent,
            out: Vec::new(),
        };
        let mark = a.out.len();
        assert_eq!(a.observed(), b.observed(), "at the move");
        for i in at..MAX_STEPS {
            let ma = a.step(s, i, &mut tmp);
            let mb = b.step(s, i, &mut tmp);
            assert_eq!(ma, mb, "step {i}");
            assert_eq!(a.out.len() - mark, b.out.len(), "step {i}");
            assert_eq!(a.observed(), b.observed(), "step {i}");
            if !ma {
                break;
            }
        }
        assert!(a.out[mark..] == b.out[..], "output after the move");
        verdict
    }

    /// Steps until nothing happens.
    fn steps(s: &Script<'_>) -> usize {
        let mut tmp = vec![0u8; MAX_PULL];
        let mut a = Drive::new();
        (0..MAX_STEPS)
            .find(|&i| !a.step(s, i, &mut tmp))
            .unwrap_or(MAX_STEPS)
    }

    #[test]
    fn moves_at_every_step() {
        let svc = svc();
        let reqs = [
            Req::Bytes(5000),
            Req::Root,
            Req::HeadBytes(77),
            Req::Upload {
                len: 300,
                expect: true,
            },
            Req::NotFound,
            Req::Bytes(1234),
        ];
        let input = encode(&reqs, true);
        let s = Script {
            svc: &svc,
            input: &input,
            fin: false,
            feeds: &[40, 7, 300],
            pulls: &[97, 13, 600, 1],
        };
        let n = steps(&s);
        assert!(n > 50, "{n} steps");
        let (mut sending, mut idle, mut refused) = (0, 0, 0);
        for at in 0..=n {
            for (pick, over) in [(0, false), (u64::MAX, false), (31, false), (5, true)] {
                match move_at(&s, at, pick, over) {
                    Ok(p) if p.sending => sending += 1,
                    Ok(_) => idle += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        assert!(
            sending > 100 && idle > 4 && refused > 20,
            "{sending} {idle} {refused}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn twin_continues_byte_for_byte(
            reqs in proptest::collection::vec(req(), 1..6),
            close_last in any::<bool>(),
            fin in proptest::bool::weighted(0.1),
            long_name in proptest::bool::weighted(0.2),
            feeds in proptest::collection::vec(prop_oneof![1usize..64, 1usize..4000], 1..6),
            pulls in proptest::collection::vec(
                prop_oneof![1usize..64, 1usize..3000, 1usize..MAX_PULL], 1..6),
            cut in any::<usize>(),
            pick in any::<u64>(),
            over in proptest::bool::weighted(0.25),
        ) {
            let svc = if long_name { Service::new(&"n".repeat(600)) } else { svc() };
            let input = encode(&reqs, close_last);
            let s = Script { svc: &svc, input: &input, fin, feeds: &feeds, pulls: &pulls };
            let n = steps(&s);
            move_at(&s, cut % (n + 1), pick, over).ok();
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..1100)) {
            if let Ok(p) = Progress::parse(&b) {
                prop_assert_eq!(emitted(&p), b);
                resume_and_poll(&p);
            }
        }

        #[test]
        fn structured_records_never_panic(
            kind in 0u8..4,
            flags in prop_oneof![0u16..4, any::<u16>()],
            in_flight in prop_oneof![0u32..3000, any::<u32>()],
            body_len in prop_oneof![0u64..3000, Just(MAX_BYTES_N), any::<u64>()],
            produced in prop_oneof![0u64..3000, any::<u64>()],
            head in proptest::collection::vec(any::<u8>(), 0..1100),
            prefixed in any::<bool>(),
            head_len_delta in -2i32..3,
        ) {
            let mut head = head;
            if prefixed {
                head.splice(0..0, RESPONSE_PREFIX.iter().copied());
            }
            let head_len = (head.len() as i32 + head_len_delta).clamp(0, 0xffff) as u16;
            let mut b = vec![PROGRESS_VERSION, kind];
            b.extend_from_slice(&flags.to_be_bytes());
            b.extend_from_slice(&in_flight.to_be_bytes());
            b.extend_from_slice(&body_len.to_be_bytes());
            b.extend_from_slice(&produced.to_be_bytes());
            b.extend_from_slice(&head_len.to_be_bytes());
            b.extend_from_slice(&head);
            if let Ok(p) = Progress::parse(&b) {
                prop_assert_eq!(emitted(&p), b);
                resume_and_poll(&p);
            }
        }
    }

    /// Resume a parsed record (in_flight bounded to 1 MiB) and pull output.
    fn resume_and_poll(p: &Progress) {
        if p.in_flight() > 1 << 20 {
            return;
        }
        let svc = svc();
        let mut out = vec![0u8; p.in_flight()];
        let mut c = HttpConn::resume(&svc, p, &mut out).expect("a parsed record resumes");
        assert_eq!(c.progress(p.in_flight()).as_ref(), Ok(p));
        let mut tmp = [0u8; 1500];
        for _ in 0..4 {
            c.poll_send(&svc, &mut tmp);
        }
    }
}
