//! Request-head parsing: a resumable, allocation-free scanner plus a
//! borrowing view ([`RequestHead`]) over a complete head.
//!
//! Accepted syntax (RFC 9112, slightly lenient):
//! * any number of empty lines before the request line are ignored;
//! * lines end with CRLF or a bare LF (a CR anywhere else is an error);
//! * request line: `method SP request-target SP HTTP/d.d`, single spaces,
//!   method a token, target visible ASCII;
//! * header line: `token ":" OWS value OWS`, no whitespace before the colon,
//!   no obs-fold (continuation lines), value bytes HTAB / SP / VCHAR / obs-text;
//! * the head ends with an empty line.
//!
//! No size limit is applied here; [`crate::HttpConn`] enforces its own.

use core::fmt;

/// HTTP protocol version of a request. Only 1.0 and 1.1 are supported;
/// any other `HTTP/d.d` is reported as [`HttpError::VersionNotSupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Why a request head was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line or header line (400).
    BadRequest,
    /// Request head larger than the configured limit (431).
    /// Never returned by [`peek_request`], which has no limit.
    HeadTooLarge,
    /// Well-formed `HTTP/d.d` version other than 1.0 / 1.1 (505).
    VersionNotSupported,
}

impl HttpError {
    /// The HTTP status code answered for this error.
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadRequest => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            HttpError::BadRequest => "malformed request head",
            HttpError::HeadTooLarge => "request head too large",
            HttpError::VersionNotSupported => "HTTP version not supported",
        };
        f.write_str(s)
    }
}

impl std::error::Error for HttpError {}

/// A parsed request head borrowing from the caller's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// Request method, e.g. `GET` (case-sensitive token).
    pub method: &'a str,
    /// Request target exactly as sent (origin-form `/path?query` or
    /// absolute-form `http://host/path`, ...).
    pub target: &'a str,
    pub version: Version,
    /// Number of bytes of the head, including leading empty lines and the
    /// terminating empty line. The request body (if any) or the next
    /// pipelined request starts at this offset.
    pub head_len: usize,
    /// Raw header lines (after the request line, up to and including the
    /// terminating empty line). Already validated.
    headers_raw: &'a [u8],
}

impl<'a> RequestHead<'a> {
    /// Iterate over `(name, value)` pairs in order of appearance; values
    /// are trimmed of surrounding whitespace.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.headers_raw,
        }
    }

    /// Value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Value of the first cookie called `name` (case-sensitive) across all
    /// `Cookie` headers. Surrounding double quotes are removed. Returns
    /// `None` if absent or if the value is not UTF-8.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        for (hn, hv) in self.headers() {
            if !hn.eq_ignore_ascii_case("cookie") {
                continue;
            }
            for pair in hv.split(|&b| b == b';') {
                let pair = trim_ows(pair);
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if trim_ows(&pair[..eq]) != name.as_bytes() {
                    continue;
                }
                let mut v = trim_ows(&pair[eq + 1..]);
                if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
                    v = &v[1..v.len() - 1];
                }
                return core::str::from_utf8(v).ok();
            }
        }
        None
    }

    /// The path part of the target: absolute-form `http://host/p?q` gives
    /// `/p`, origin-form `/p?q` gives `/p`. `None` for other target forms
    /// (`*`, authority-form, relative garbage).
    pub fn path(&self) -> Option<&'a str> {
        target_path(self.target)
    }
}

/// Path of a request target (see [`RequestHead::path`]).
pub fn target_path(target: &str) -> Option<&str> {
    let t = target.as_bytes();
    let after_scheme = if starts_with_ignore_case(t, b"http://") {
        Some(7)
    } else if starts_with_ignore_case(t, b"https://") {
        Some(8)
    } else {
        None
    };
    let origin = match after_scheme {
        Some(s) => match target[s..].find('/') {
            Some(i) => &target[s + i..],
            None => {
                // `http://host` or `http://host?q`: path is "/".
                return Some("/");
            }
        },
        None if target.starts_with('/') => target,
        None => return None,
    };
    let end = origin.find(['?', '#']).unwrap_or(origin.len());
    Some(&origin[..end])
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Iterator over validated header lines of a [`RequestHead`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[self.rest.len()..]),
            };
            self.rest = rest;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if let Ok((name, value)) = parse_header_line(line) {
                if let Ok(name) = core::str::from_utf8(name) {
                    return Some((name, value));
                }
            }
        }
        None
    }
}

/// Parse a request head from possibly-partial bytes without consuming.
///
/// * `Ok(Some(head))`: a complete head of `head.head_len` bytes;
/// * `Ok(None)`: everything so far is valid but the head is incomplete;
/// * `Err(_)`: the bytes can never form a valid head (reported as early
///   as possible, e.g. on the first invalid byte of the request line).
pub fn peek_request(data: &[u8]) -> Result<Option<RequestHead<'_>>, HttpError> {
    let mut scan = Scan::default();
    match scan.advance(data)? {
        Some(len) => build_head(data, &scan, len).map(Some),
        None => Ok(None),
    }
}

/// Resumable head scanner. Feeding it a growing buffer (same prefix each
/// time) costs O(total bytes): each byte is classified once and each
/// complete line is validated once.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scan {
    /// Next byte to look at.
    pos: usize,
    /// Start of the current (incomplete) line.
    line_start: usize,
    /// Whether the request line has been seen (and validated).
    have_request_line: bool,
    /// Request line span (start, end after its LF).
    req_start: usize,
    req_end: usize,
}

impl Scan {
    /// Continue scanning `data` (which must extend the bytes previously
    /// scanned). Returns the head length once the terminating empty line
    /// is found.
    pub(crate) fn advance(&mut self, data: &[u8]) -> Result<Option<usize>, HttpError> {
        while self.pos < data.len() {
            let b = data[self.pos];
            self.pos += 1;
            if b != b'\n' {
                let ok = if self.have_request_line {
                    is_header_byte(b)
                } else {
                    is_request_line_byte(b)
                };
                if !ok {
                    return Err(HttpError::BadRequest);
                }
                continue;
            }
            let raw = &data[self.line_start..self.pos - 1];
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            let start = self.line_start;
            self.line_start = self.pos;
            if !self.have_request_line {
                if line.is_empty() {
                    continue; // leading empty line, ignored
                }
                parse_request_line(line)?;
                self.have_request_line = true;
                self.req_start = start;
                self.req_end = self.pos;
            } else {
                if line.is_empty() {
                    return Ok(Some(self.pos));
                }
                parse_header_line(line)?;
            }
        }
        Ok(None)
    }
}

pub(crate) fn build_head<'a>(
    data: &'a [u8],
    scan: &Scan,
    head_len: usize,
) -> Result<RequestHead<'a>, HttpError> {
    let raw = data
        .get(scan.req_start..scan.req_end)
        .ok_or(HttpError::BadRequest)?;
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let line = raw.strip_suffix(b"\r").unwrap_or(raw);
    let (method, target, version) = parse_request_line(line)?;
    let headers_raw = data
        .get(scan.req_end..head_len)
        .ok_or(HttpError::BadRequest)?;
    Ok(RequestHead {
        method,
        target,
        version,
        head_len,
        headers_raw,
    })
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_request_line_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\r'
}

fn is_header_byte(b: u8) -> bool {
    b == b'\t' || b == b'\r' || (0x20..0x7f).contains(&b) || b >= 0x80
}

fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_request_line(line: &[u8]) -> Result<(&str, &str, Version), HttpError> {
    let sp1 = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(HttpError::BadRequest)?;
    let method = &line[..sp1];
    let rest = &line[sp1 + 1..];
    let sp2 = rest
        .iter()
        .position(|&b| b == b' ')
        .ok_or(HttpError::BadRequest)?;
    let target = &rest[..sp2];
    let version = &rest[sp2 + 1..];
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::BadRequest);
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(HttpError::BadRequest);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', maj, b'.', min]
            if maj.is_ascii_digit() && min.is_ascii_digit() =>
        {
            return Err(HttpError::VersionNotSupported)
        }
        _ => return Err(HttpError::BadRequest),
    };
    let method = core::str::from_utf8(method).map_err(|_| HttpError::BadRequest)?;
    let target = core::str::from_utf8(target).map_err(|_| HttpError::BadRequest)?;
    Ok((method, target, version))
}

fn parse_header_line(line: &[u8]) -> Result<(&[u8], &[u8]), HttpError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::BadRequest)?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        // Also rejects obs-fold (line starting with SP/HTAB) and
        // whitespace between the name and the colon.
        return Err(HttpError::BadRequest);
    }
    let value = trim_ows(&line[colon + 1..]);
    if !value.iter().all(|&b| is_value_byte(b)) {
        return Err(HttpError::BadRequest);
    }
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_head() {
        let d = b"GET /x?y HTTP/1.1\r\nHost: a\r\nX-A:  b c \r\n\r\nrest";
        let h = peek_request(d).unwrap().unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/x?y");
        assert_eq!(h.path(), Some("/x"));
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.head_len, d.len() - 4);
        assert_eq!(h.header("host"), Some(&b"a"[..]));
        assert_eq!(h.header("x-a"), Some(&b"b c"[..]));
        assert_eq!(h.header("nope"), None);
        let all: Vec<_> = h.headers().collect();
        assert_eq!(all, vec![("Host", &b"a"[..]), ("X-A", &b"b c"[..])]);
    }

    #[test]
    fn incomplete_is_none_at_every_prefix() {
        let d = b"\r\nGET / HTTP/1.0\nA: b\r\n\n";
        for i in 0..d.len() {
            assert_eq!(peek_request(&d[..i]), Ok(None), "prefix {i}");
        }
        let h = peek_request(d).unwrap().unwrap();
        assert_eq!(h.head_len, d.len());
        assert_eq!(h.version, Version::Http10);
        assert_eq!(h.header("a"), Some(&b"b"[..]));
    }

    #[test]
    fn errors() {
        let bad: &[&[u8]] = &[
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET /\r\n\r\n",
            b"G@T / HTTP/1.1\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/1.10\r\n\r\n",
            b"GET / HTTP/1.1\r\nA : b\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\0c\r\n\r\n",
            b"GET / HTTP/1.1\r\nnocolon\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ];
        for b in bad {
            assert_eq!(
                peek_request(b),
                Err(HttpError::BadRequest),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(
            peek_request(b"GET / HTTP/2.0\r\n"),
            Err(HttpError::VersionNotSupported)
        );
        // Early detection of a bad byte in an incomplete request line.
        assert_eq!(peek_request(b"GE\x01"), Err(HttpError::BadRequest));
    }

    #[test]
    fn obs_text_in_value_ok() {
        let h = peek_request(b"GET / HTTP/1.1\r\nA: \xc3\xa9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.header("A"), Some(&b"\xc3\xa9"[..]));
    }

    #[test]
    fn cookies() {
        let d = b"GET / HTTP/1.1\r\nCookie: a=1; IPOSID=c; b=2\r\nCookie: z=\"q\"\r\n\r\n";
        let h = peek_request(d).unwrap().unwrap();
        assert_eq!(h.cookie("IPOSID"), Some("c"));
        assert_eq!(h.cookie("a"), Some("1"));
        assert_eq!(h.cookie("b"), Some("2"));
        assert_eq!(h.cookie("z"), Some("q"));
        assert_eq!(h.cookie("iposid"), None);
        assert_eq!(h.cookie("c"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(target_path("/a/b?c"), Some("/a/b"));
        assert_eq!(target_path("http://h:80/a?x"), Some("/a"));
        assert_eq!(target_path("HTTPS://h"), Some("/"));
        assert_eq!(target_path("*"), None);
        assert_eq!(target_path("h:80"), None);
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
    }
}
