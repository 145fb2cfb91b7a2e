//! Request-body framing (RFC 9112 §6, §7.1): which framing a head asks for,
//! and a resumable, allocation-free decoder that hands the content bytes to
//! a sink as they arrive and tells where the body ends.
//!
//! Accepted syntax (strict where leniency would let two parsers disagree
//! about where a body ends):
//! * `Content-Length`: ASCII decimal that fits a `u64`; repeated headers or
//!   comma-separated lists are accepted only when every value is the same;
//! * `Transfer-Encoding`: one header whose value is exactly `chunked`
//!   (ASCII case-insensitive, surrounding whitespace ignored), HTTP/1.1 only,
//!   never together with `Content-Length`;
//! * chunk-size line: `1*HEXDIG [BWS ";" extensions] CRLF`; the size fits a
//!   `u64`; extensions are ignored (any HTAB / SP / VCHAR / obs-text bytes);
//! * chunk data is followed by exactly CRLF;
//! * trailer section: header lines (`token ":" value CRLF`), read and
//!   discarded, then CRLF;
//! * every line ends with CRLF (no bare LF, no CR elsewhere); a chunk-size
//!   line and the whole trailer section are at most [`MAX_CHUNK_LINE_BYTES`]
//!   bytes each (line terminators excluded).

use crate::parse::{trim_ows, RequestHead, Version};

/// Longest chunk-size line (with its extensions) and longest trailer
/// section accepted, CRLFs not counted.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No `Content-Length` and no `Transfer-Encoding`: no body.
    None,
    /// `Content-Length: n` (possibly 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Framing {
    /// Whether a body (possibly an empty chunked one) follows the head.
    pub(crate) fn has_body(self) -> bool {
        !matches!(self, Framing::None | Framing::Length(0))
    }

    /// A decoder positioned at the first body byte.
    pub(crate) fn decoder(self) -> Body {
        match self {
            Framing::None => Body::Length { left: 0 },
            Framing::Length(n) => Body::Length { left: n },
            Framing::Chunked => Body::Size {
                size: 0,
                line: 0,
                at: SizeAt::Digits,
            },
        }
    }
}

/// The framing a request head declares; `Err` for any malformed or
/// ambiguous combination (answered 400, connection closed).
pub(crate) fn framing(head: &RequestHead<'_>) -> Result<Framing, ()> {
    let mut length: Option<u64> = None;
    let mut te_headers = 0u32;
    let mut chunked = false;
    for (name, value) in head.headers() {
        if name.eq_ignore_ascii_case("content-length") {
            for item in value.split(|&b| b == b',') {
                let n = parse_decimal(trim_ows(item)).ok_or(())?;
                match length {
                    Some(m) if m != n => return Err(()),
                    _ => length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te_headers = te_headers.saturating_add(1);
            chunked = trim_ows(value).eq_ignore_ascii_case(b"chunked");
        }
    }
    match (length, te_headers) {
        (None, 0) => Ok(Framing::None),
        (Some(n), 0) => Ok(Framing::Length(n)),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        (None, 1) if chunked && head.version == Version::Http11 => Ok(Framing::Chunked),
        _ => Err(()),
    }
}

/// Non-empty ASCII decimal, overflow-checked.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
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

/// Where in a chunk-size line the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeAt {
    /// Hex digits (none yet when `line == 0`).
    Digits,
    /// Whitespace after the digits (before `;` or CR).
    Space,
    /// Inside the extensions, after `;`.
    Ext,
    /// CR seen, LF expected.
    Cr,
}

/// Where in the trailer section the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrailerAt {
    /// Start of a line: CR (end of the section) or a field name.
    LineStart,
    /// Field-name bytes (at least one seen), `:` expected eventually.
    Name,
    /// Field value, up to CR.
    Value,
    /// CR ending a field line seen, LF expected.
    LineCr,
    /// CR of the final empty line seen, LF expected.
    EndCr,
}

/// Resumable body decoder (a few words; no buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// `Content-Length` body: bytes still to come.
    Length { left: u64 },
    /// In a chunk-size line: the size so far and the line length so far.
    Size { size: u64, line: u16, at: SizeAt },
    /// In chunk data: bytes still to come (never 0).
    Data { left: u64 },
    /// After chunk data: CR (`cr == false`) or LF expected.
    DataEnd { cr: bool },
    /// In the trailer section: its length so far.
    Trailer { len: u16, at: TrailerAt },
}

/// Result of feeding bytes to a [`Body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// All given bytes belong to the body; more are needed.
    More,
    /// The body ended after this many of the given bytes.
    Done(usize),
    /// Malformed framing at this byte offset.
    Bad,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

/// One more byte on a bounded line counter; `None` past the bound.
fn bump(n: u16) -> Option<u16> {
    let n = n.checked_add(1)?;
    (usize::from(n) <= MAX_CHUNK_LINE_BYTES).then_some(n)
}

impl Body {
    /// Feed the next bytes of the body. Content bytes are passed to `sink`
    /// (in order, possibly in several calls). Returns how the body stands
    /// after them; after `Done` or `Bad` the decoder must not be fed again.
    pub(crate) fn advance(&mut self, data: &[u8], sink: &mut impl FnMut(&[u8])) -> Progress {
        let mut i = 0;
        loop {
            // Bulk states first: they end the body (or a chunk) without
            // looking at bytes, so `Length { left: 0 }` ends even on no input.
            match self {
                Body::Length { left } | Body::Data { left } => {
                    let avail = data.len().saturating_sub(i);
                    // `take <= avail`, so the conversion back cannot truncate.
                    let take = (*left).min(avail as u64) as usize;
                    if take > 0 {
                        sink(&data[i..i + take]);
                        i += take;
                        *left -= take as u64;
                    }
                    if *left > 0 {
                        return Progress::More;
                    }
                    match self {
                        Body::Length { .. } => return Progress::Done(i),
                        _ => *self = Body::DataEnd { cr: false },
                    }
                    continue;
                }
                _ => {}
            }
            let Some(&b) = data.get(i) else {
                return Progress::More;
            };
            i += 1;
            let next = match *self {
                Body::Length { .. } | Body::Data { .. } => None, // handled above
                Body::Size { size, line, at } => Self::size_byte(size, line, at, b),
                Body::DataEnd { cr: false } if b == b'\r' => Some(Body::DataEnd { cr: true }),
                Body::DataEnd { cr: true } if b == b'\n' => Some(Body::Size {
                    size: 0,
                    line: 0,
                    at: SizeAt::Digits,
                }),
                Body::DataEnd { .. } => None,
                Body::Trailer {
                    at: TrailerAt::EndCr,
                    ..
                } => {
                    if b == b'\n' {
                        return Progress::Done(i);
                    }
                    None
                }
                Body::Trailer { len, at } => Self::trailer_byte(len, at, b),
            };
            match next {
                Some(s) => *self = s,
                None => return Progress::Bad,
            }
        }
    }

    fn size_byte(size: u64, line: u16, at: SizeAt, b: u8) -> Option<Body> {
        if at == SizeAt::Cr {
            if b != b'\n' {
                return None;
            }
            return Some(if size == 0 {
                Body::Trailer {
                    len: 0,
                    at: TrailerAt::LineStart,
                }
            } else {
                Body::Data { left: size }
            });
        }
        if b == b'\r' {
            // A size line needs at least one digit; whitespace after the
            // size is only allowed before `;` (it is BWS of an extension).
            if (at == SizeAt::Digits && line == 0) || at == SizeAt::Space {
                return None;
            }
            return Some(Body::Size {
                size,
                line,
                at: SizeAt::Cr,
            });
        }
        let line = bump(line)?;
        let (size, at) = match at {
            SizeAt::Digits => match (b as char).to_digit(16) {
                Some(d) => (size.checked_mul(16)?.checked_add(u64::from(d))?, at),
                None if line == 1 => return None,
                None if b == b' ' || b == b'\t' => (size, SizeAt::Space),
                None if b == b';' => (size, SizeAt::Ext),
                None => return None,
            },
            SizeAt::Space => match b {
                b' ' | b'\t' => (size, at),
                b';' => (size, SizeAt::Ext),
                _ => return None,
            },
            SizeAt::Ext if is_value_byte(b) => (size, at),
            SizeAt::Ext | SizeAt::Cr => return None,
        };
        Some(Body::Size { size, line, at })
    }

    fn trailer_byte(len: u16, at: TrailerAt, b: u8) -> Option<Body> {
        let at = match (at, b) {
            (TrailerAt::LineStart, b'\r') => {
                return Some(Body::Trailer {
                    len,
                    at: TrailerAt::EndCr,
                })
            }
            (TrailerAt::LineCr, b'\n') => {
                return Some(Body::Trailer {
                    len,
                    at: TrailerAt::LineStart,
                })
            }
            (TrailerAt::LineStart | TrailerAt::Name, b) if is_tchar(b) => TrailerAt::Name,
            (TrailerAt::Name, b':') => TrailerAt::Value,
            (TrailerAt::Value, b'\r') => TrailerAt::LineCr,
            (TrailerAt::Value, b) if is_value_byte(b) => TrailerAt::Value,
            _ => return None,
        };
        // CRs of field lines are not counted; everything else is.
        let len = if at == TrailerAt::LineCr {
            len
        } else {
            bump(len)?
        };
        Some(Body::Trailer { len, at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `data` in one piece; returns (content, progress).
    fn decode(framing: Framing, data: &[u8]) -> (Vec<u8>, Progress) {
        let mut out = Vec::new();
        let mut body = framing.decoder();
        let p = body.advance(data, &mut |b: &[u8]| out.extend_from_slice(b));
        (out, p)
    }

    #[test]
    fn content_length() {
        assert_eq!(
            decode(Framing::Length(3), b"abcdef"),
            (b"abc".to_vec(), Progress::Done(3))
        );
        assert_eq!(
            decode(Framing::Length(0), b"x"),
            (vec![], Progress::Done(0))
        );
        assert_eq!(decode(Framing::Length(0), b""), (vec![], Progress::Done(0)));
        assert_eq!(
            decode(Framing::Length(5), b"abc"),
            (b"abc".to_vec(), Progress::More)
        );
    }

    #[test]
    fn chunked_ok() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"000\r\n\r\n", b""),
            (b"3\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n", b"0123456789x"),
            (
                b"a;ext=1;q=\"x y\"\r\n0123456789\r\n0 ; e\r\n\r\n",
                b"0123456789",
            ),
            (b"2 \t; e\r\nab\r\n0\r\nT-A: 1\r\nT-B:\r\n\r\n", b"ab"),
            (b"00000000000000000000000001\r\nz\r\n0\r\n\r\n", b"z"),
        ];
        for &(wire, want) in cases {
            let (got, p) = decode(Framing::Chunked, &[wire, b"NEXT"].concat());
            assert_eq!(
                p,
                Progress::Done(wire.len()),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
            assert_eq!(got, want);
            // Byte by byte.
            let mut body = Framing::Chunked.decoder();
            let mut out = Vec::new();
            for (i, b) in wire.iter().enumerate() {
                let p = body.advance(std::slice::from_ref(b), &mut |b: &[u8]| {
                    out.extend_from_slice(b)
                });
                let want_p = if i + 1 == wire.len() {
                    Progress::Done(1)
                } else {
                    Progress::More
                };
                assert_eq!(p, want_p, "byte {i}");
            }
            assert_eq!(out, want);
        }
    }

    #[test]
    fn chunked_bad() {
        let cases: &[&[u8]] = &[
            b"\r\n",
            b"x\r\n",
            b";e\r\n",
            b" 1\r\n",
            b"1\n",
            b"1\r\r",
            b"1\r\nab\r\n",
            b"1\r\na\n",
            b"1\r\na\r\r",
            b"1 x\r\n",
            b"1 \r\n",
            b"1;\x00\r\n",
            b"10000000000000000\r\n",
            b"0\r\nno-colon\r\n",
            b"0\r\nA : b\r\n",
            b"0\r\n: b\r\n",
            b"0\r\nA: b\n",
            b"0\r\nA: b\x01\r\n",
            b"0\r\n\rx",
            b"0\r\n\n",
            b"0\r\n GET / HTTP/1.1\r\n",
            b"0\r\nGET / HTTP/1.1\r\n",
        ];
        for &wire in cases {
            assert_eq!(
                decode(Framing::Chunked, wire).1,
                Progress::Bad,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        // The largest size still parses (as an incomplete body).
        assert_eq!(
            decode(Framing::Chunked, b"ffffffffffffffff\r\nab").1,
            Progress::More
        );
    }

    #[test]
    fn line_bounds() {
        let mut ok = b"1;".to_vec();
        ok.resize(MAX_CHUNK_LINE_BYTES, b'e');
        ok.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(decode(Framing::Chunked, &ok).1, Progress::Done(ok.len()));
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE_BYTES + 1, b'e');
        assert_eq!(decode(Framing::Chunked, &long).1, Progress::Bad);
        // Leading zeros count too.
        let zeros = vec![b'0'; MAX_CHUNK_LINE_BYTES + 1];
        assert_eq!(decode(Framing::Chunked, &zeros).1, Progress::Bad);

        // Trailer section: at most MAX_CHUNK_LINE_BYTES bytes without CRLFs.
        let section = |len: usize| {
            let mut t = b"0\r\n".to_vec();
            let mut used = 0;
            while used < len {
                let n = (len - used).min(100);
                let mut line = b"T:".to_vec();
                line.resize(n.max(2), b'v');
                used += line.len();
                t.extend_from_slice(&line);
                t.extend_from_slice(b"\r\n");
            }
            t.extend_from_slice(b"\r\n");
            t
        };
        let t = section(MAX_CHUNK_LINE_BYTES);
        assert_eq!(decode(Framing::Chunked, &t).1, Progress::Done(t.len()));
        let t = section(MAX_CHUNK_LINE_BYTES + 2);
        assert_eq!(decode(Framing::Chunked, &t).1, Progress::Bad);
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
    fn framing_from_headers() {
        let f = |extra: &str, v: &str| {
            let d = format!("POST / {v}\r\n{extra}\r\n");
            let h = crate::peek_request(d.as_bytes()).unwrap().unwrap();
            framing(&h)
        };
        let ok: &[(&str, Framing)] = &[
            ("", Framing::None),
            ("Content-Length: 0\r\n", Framing::Length(0)),
            ("Content-Length: 12\r\n", Framing::Length(12)),
            (
                "Content-Length: 5\r\ncontent-length: 5\r\n",
                Framing::Length(5),
            ),
            ("Content-Length: 5, 5\r\n", Framing::Length(5)),
            ("Transfer-Encoding: chunked\r\n", Framing::Chunked),
            ("transfer-encoding:  ChUnKeD \r\n", Framing::Chunked),
        ];
        for &(h, want) in ok {
            assert_eq!(f(h, "HTTP/1.1"), Ok(want), "{h:?}");
        }
        let bad = [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: 5,\r\n",
            "Content-Length: \r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 1 2\r\n",
            "Content-Length: 18446744073709551616\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: \r\n",
        ];
        for h in bad {
            assert_eq!(f(h, "HTTP/1.1"), Err(()), "{h:?}");
        }
        assert_eq!(f("Transfer-Encoding: chunked\r\n", "HTTP/1.0"), Err(()));
        assert_eq!(
            f("Content-Length: 3\r\n", "HTTP/1.0"),
            Ok(Framing::Length(3))
        );
    }
}
