//! Request bodies: `/upload` (length and SHA-256), discarded bodies,
//! `Expect: 100-continue`, malformed framing, head-wait states.

use ipos_http::{HeadWait, HttpConn, Service, MAX_CHUNK_LINE_BYTES};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

mod common;
use common::*;

/// sha256("abc") (FIPS 180-2 test vector).
const SHA_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/// sha256("").
const SHA_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The exact `/upload` answer for `body` from node `n1`.
fn upload_response(body: &[u8], close: bool) -> String {
    let hex = sha_hex(body);
    let text = format!("{} {hex}\n", body.len());
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         X-Upload-Length: {}\r\nX-Upload-Sha256: {hex}\r\nX-Ipos-Node: n1\r\n{}\r\n{text}",
        text.len(),
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
}

/// `body` as a chunked body with chunks of `sizes` (cycled; a 0 in
/// `sizes` is skipped) and the given extension / trailer lines.
fn chunked(body: &[u8], sizes: &[usize], ext: &str, trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        i += 1;
        out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(format!("0{ext}\r\n{trailers}\r\n").as_bytes());
    out
}

fn cl_request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: vip\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn chunked_request(method: &str, path: &str, wire_body: &[u8]) -> Vec<u8> {
    let mut r =
        format!("{method} {path} HTTP/1.1\r\nHost: vip\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    r.extend_from_slice(wire_body);
    r
}

/// A body of `len` bytes that is not a simple pattern.
fn body_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn sha_helper_matches_vectors() {
    assert_eq!(sha_hex(b"abc"), SHA_ABC);
    assert_eq!(sha_hex(b""), SHA_EMPTY);
}

#[test]
fn upload_abc_exact_response() {
    let svc = Service::new("n1");
    for (method, path) in [
        ("POST", "/upload"),
        ("PUT", "/upload"),
        ("POST", "/b/upload"),
    ] {
        let req = cl_request(method, &format!("{path}?x=1"), b"abc");
        let (t, c) = one_shot(svc.clone(), &req);
        assert_eq!(
            t,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 67\r\n\
                 X-Upload-Length: 3\r\nX-Upload-Sha256: {SHA_ABC}\r\nX-Ipos-Node: n1\r\n\r\n\
                 3 {SHA_ABC}\n"
            ),
            "{method} {path}"
        );
        assert!(!c.wants_close());
        let s = c.stats();
        assert_eq!(
            (
                s.requests,
                s.status_2xx,
                s.uploads,
                s.body_bytes,
                s.bodies_discarded
            ),
            (1, 1, 1, 3, 0)
        );
        // Same bytes chunked (with extensions and trailers).
        let req = chunked_request(
            method,
            path,
            &chunked(b"abc", &[1, 2], ";a=b", "X-T: 1\r\n"),
        );
        let (t2, c) = one_shot(svc.clone(), &req);
        assert_eq!(t2, t);
        assert_eq!(c.stats().body_bytes, 3);
    }
}

#[test]
fn empty_uploads() {
    let svc = Service::new("n1");
    let want = upload_response(b"", false);
    assert!(want.contains(SHA_EMPTY));
    for req in [
        &b"POST /upload HTTP/1.1\r\n\r\n"[..],
        b"PUT /upload HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0;x\r\nA: b\r\n\r\n",
    ] {
        let (t, c) = one_shot(svc.clone(), req);
        assert_eq!(t, want, "{:?}", String::from_utf8_lossy(req));
        assert_eq!(c.stats().uploads, 1);
    }
}

#[test]
fn upload_close_and_http10() {
    let svc = Service::new("n1");
    let mut req =
        b"POST /upload HTTP/1.1\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc".to_vec();
    req.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (t, c) = one_shot(svc.clone(), &req);
    assert_eq!(t, upload_response(b"abc", true));
    assert!(c.wants_close());
    let (t, c) = one_shot(
        svc,
        b"PUT /upload HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc",
    );
    assert_eq!(
        t,
        upload_response(b"abc", false).replace(
            "X-Ipos-Node: n1\r\n",
            "X-Ipos-Node: n1\r\nConnection: keep-alive\r\n"
        )
    );
    assert!(!c.wants_close());
}

#[test]
fn uploads_byte_by_byte() {
    let svc = Service::new("n1");
    let body = body_bytes(1000, 7);
    let reqs = [
        cl_request("POST", "/upload", &body),
        chunked_request(
            "PUT",
            "/x/upload",
            &chunked(&body, &[1, 100, 3, 500], "", ""),
        ),
        chunked_request(
            "POST",
            "/upload",
            &chunked(
                &body,
                &[333],
                "; name=\"v; x\"",
                "A: 1\r\nBb: two words\r\n",
            ),
        ),
    ];
    for req in &reqs {
        let mut c = HttpConn::new();
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        for (i, b) in req.iter().enumerate() {
            assert!(!c.has_pending_output(), "answered before the body ended");
            // Every byte is consumed as it arrives.
            assert_eq!(c.on_recv(&svc, std::slice::from_ref(b)), 1, "byte {i}");
        }
        while c.has_pending_output() {
            let n = c.poll_send(&svc, &mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            upload_response(&body, false)
        );
        assert_eq!(c.stats().body_bytes, 1000);
        assert_eq!(c.head_wait(), HeadWait::Idle);
    }
}

#[test]
fn pipelined_upload_then_get() {
    let svc = Service::new("n1");
    let upload = cl_request("POST", "/upload", b"hello");
    let get = b"GET /bytes/10 HTTP/1.1\r\n\r\n";
    let input = [&upload[..], get].concat();
    // Backpressure: exactly the upload (head + body) is consumed.
    let mut c = HttpConn::new();
    assert_eq!(c.on_recv(&svc, &input), upload.len());
    assert!(c.has_pending_output());
    assert_eq!(c.on_recv(&svc, get), 0);
    // Through the glue, in several chunk sizes, with a chunked upload too.
    let chunked_upload = chunked_request("POST", "/upload", &chunked(b"hello", &[2], "", ""));
    for first in [upload, chunked_upload] {
        for chunk in [1, 7, 1500] {
            let mut g = Glue::new(svc.clone());
            g.chunk = chunk;
            g.feed(&[&first[..], get].concat());
            let rs = parse_all(&g.out, &[false, false]);
            assert_eq!(rs[0].header("X-Upload-Length"), Some("5"));
            assert_eq!(
                rs[0].header("X-Upload-Sha256"),
                Some(sha_hex(b"hello").as_str())
            );
            assert_eq!(rs[1].status, 200);
            assert_eq!(rs[1].body, (0..10).collect::<Vec<u8>>());
            assert!(!g.conn.wants_close());
        }
    }
}

#[test]
fn expect_100_continue() {
    let svc = Service::new("n1");
    let head = b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    let mut c = HttpConn::new();
    assert_eq!(c.on_recv(&svc, head), head.len());
    // The interim response is ready before any body byte (1 byte at a time).
    assert!(c.has_pending_output());
    let mut got = Vec::new();
    let mut one = [0u8; 1];
    while c.has_pending_output() {
        assert_eq!(c.poll_send(&svc, &mut one), 1);
        got.push(one[0]);
    }
    assert_eq!(got, CONTINUE);
    assert_eq!(c.head_wait(), HeadWait::NotWaiting);
    assert_eq!(c.stats().requests, 0);
    // Then the body, then the final response.
    assert_eq!(c.on_recv(&svc, b"abc"), 3);
    let mut buf = [0u8; 1024];
    let n = c.poll_send(&svc, &mut buf);
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        upload_response(b"abc", false)
    );
    assert!(!c.has_pending_output());

    // Head and body in one piece: interim first, then the final response.
    let whole = [&head[..], b"abc"].concat();
    let (t, _) = one_shot(svc.clone(), &whole);
    assert_eq!(
        t,
        format!(
            "{}{}",
            String::from_utf8_lossy(CONTINUE),
            upload_response(b"abc", false)
        )
    );

    // A chunked upload and a discarded body get it too; the value is
    // case-insensitive.
    let req = b"PUT /upload HTTP/1.1\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let (t, _) = one_shot(svc.clone(), req);
    let (n, rest) = strip_continues(t.as_bytes());
    assert_eq!(n, 1);
    assert_eq!(rest, upload_response(b"abc", false).as_bytes());
    let req = b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab";
    let (t, c) = one_shot(svc.clone(), req);
    let (n, rest) = strip_continues(t.as_bytes());
    assert_eq!(n, 1);
    assert_eq!(status_of(std::str::from_utf8(rest).unwrap()), 405);
    assert!(!c.wants_close());

    // No interim response: HTTP/1.0, no body, a closing error, another
    // expectation.
    for req in [
        &b"POST /upload HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        b"DELETE /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nExpect: something\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        let (t, _) = one_shot(svc.clone(), req);
        assert!(t.starts_with("HTTP/1.1 "), "{t}");
        assert_eq!(strip_continues(t.as_bytes()).0, 0, "{t}");
        assert!(!t.contains(" 100 "), "{t}");
    }
}

#[test]
fn malformed_framing_400_and_close() {
    let svc = Service::new("n1");
    let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE_BYTES));
    let long_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_CHUNK_LINE_BYTES));
    let long_zeros = format!("{}\r\n\r\n", "0".repeat(MAX_CHUNK_LINE_BYTES + 1));
    // (framing headers, body bytes)
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            b"abc".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            b"0\r\n\r\n".to_vec(),
        ),
        (
            "Content-Length: 3\r\nContent-Length: 4\r\n",
            b"abcd".to_vec(),
        ),
        ("Content-Length: 3, 4\r\n", b"abcd".to_vec()),
        ("Content-Length: abc\r\n", vec![]),
        ("Content-Length: -3\r\n", vec![]),
        ("Content-Length: 3.0\r\n", vec![]),
        ("Content-Length: 0x3\r\n", vec![]),
        ("Content-Length: 18446744073709551616\r\n", vec![]),
        ("Content-Length: 99999999999999999999999\r\n", vec![]),
        ("Transfer-Encoding: gzip\r\n", vec![]),
        (
            "Transfer-Encoding: gzip, chunked\r\n",
            b"0\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked, chunked\r\n",
            b"0\r\n\r\n".to_vec(),
        ),
        ("Transfer-Encoding: identity\r\n", vec![]),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            b"0\r\n\r\n".to_vec(),
        ),
        ("Transfer-Encoding: chunked\r\n", b"z\r\n".to_vec()),
        ("Transfer-Encoding: chunked\r\n", b"\r\n".to_vec()),
        ("Transfer-Encoding: chunked\r\n", b"-1\r\n".to_vec()),
        ("Transfer-Encoding: chunked\r\n", b"1\n".to_vec()),
        (
            "Transfer-Encoding: chunked\r\n",
            b"1 \r\nx\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked\r\n",
            b"10000000000000000\r\n".to_vec(),
        ),
        ("Transfer-Encoding: chunked\r\n", b"3\r\nabcd\r\n".to_vec()),
        (
            "Transfer-Encoding: chunked\r\n",
            b"3\r\nabc\n0\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked\r\n",
            b"3\r\nabc0\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked\r\n",
            b"0\r\nbad trailer\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked\r\n",
            b"0\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        ("Transfer-Encoding: chunked\r\n", long_ext.into_bytes()),
        ("Transfer-Encoding: chunked\r\n", long_trailer.into_bytes()),
        ("Transfer-Encoding: chunked\r\n", long_zeros.into_bytes()),
    ];
    for (headers, body) in &cases {
        for (method, path, version) in [
            ("POST", "/upload", "HTTP/1.1"),
            ("GET", "/", "HTTP/1.1"),
            ("PUT", "/b/x", "HTTP/1.1"),
        ] {
            let mut req = format!("{method} {path} {version}\r\n{headers}\r\n").into_bytes();
            req.extend_from_slice(body);
            for bytewise in [false, true] {
                let mut g = Glue::new(svc.clone());
                if bytewise {
                    for b in &req {
                        g.feed(std::slice::from_ref(b));
                    }
                } else {
                    g.feed(&req);
                }
                // A following request on the same connection is ignored.
                g.feed(b"GET / HTTP/1.1\r\n\r\n");
                let what = format!("{method} {headers:?} {:?}", String::from_utf8_lossy(body));
                let [r] = parse_all(&g.out, &[false])
                    .try_into()
                    .unwrap_or_else(|_| panic!("{what}"));
                assert_eq!(r.status, 400, "{what}");
                assert_eq!(r.header("Connection"), Some("close"), "{what}");
                assert!(g.conn.wants_close(), "{what}");
                assert_eq!(g.conn.head_wait(), HeadWait::NotWaiting);
                assert_eq!(g.conn.stats().uploads, 0);
            }
        }
    }
    // Transfer-Encoding in HTTP/1.0 is faulty framing.
    let (t, c) = one_shot(
        svc.clone(),
        b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(status_of(&t), 400);
    assert!(c.wants_close());
    // The largest chunk size is valid (the body is then just long).
    let mut c = HttpConn::new();
    let req = chunked_request("POST", "/upload", b"ffffffffffffffff\r\nabc");
    assert_eq!(c.on_recv(&svc, &req), req.len());
    assert!(!c.has_pending_output());
    assert!(!c.wants_close());
}

#[test]
fn discarded_bodies_keep_the_connection_in_sync() {
    let svc = Service::new("n1");
    // Bodies that look like requests must not be taken for one.
    let fake = b"GET /bytes/99 HTTP/1.1\r\n\r\n";
    let next = b"GET /bytes/10 HTTP/1.1\r\n\r\n";
    let cases: Vec<(Vec<u8>, u16, bool)> = vec![
        (cl_request("GET", "/", fake), 200, false),
        (cl_request("HEAD", "/bytes/5", fake), 200, true),
        (cl_request("POST", "/", fake), 405, false),
        (cl_request("PUT", "/bytes/3", fake), 405, false),
        (cl_request("POST", "/a/b", fake), 405, false),
        (cl_request("GET", "/a/b", fake), 404, false),
        (
            chunked_request("GET", "/", &chunked(fake, &[5], ";x", "T: 1\r\n")),
            200,
            false,
        ),
        (
            chunked_request("POST", "/b/", &chunked(fake, &[100], "", "")),
            405,
            false,
        ),
        (
            chunked_request("HEAD", "/", &chunked(fake, &[1], "", "")),
            200,
            true,
        ),
    ];
    for (req, status, head_only) in &cases {
        for chunk in [1, 1500] {
            let mut g = Glue::new(svc.clone());
            g.chunk = chunk;
            let input = [&req[..], next].concat();
            for piece in input.chunks(chunk.max(3)) {
                g.feed(piece);
            }
            let what = String::from_utf8_lossy(req).into_owned();
            let rs = parse_all(&g.out, &[*head_only, false]);
            assert_eq!(rs[0].status, *status, "{what}");
            assert_eq!(rs[0].header("Connection"), None, "{what}");
            if *status == 405 {
                assert_eq!(rs[0].header("Allow"), Some("GET, HEAD"), "{what}");
            }
            assert_eq!(rs[1].status, 200, "{what}");
            assert_eq!(rs[1].body, (0..10).collect::<Vec<u8>>(), "{what}");
            assert!(!g.conn.wants_close(), "{what}");
            let s = g.conn.stats();
            assert_eq!(
                (s.requests, s.bodies_discarded, s.uploads, s.body_bytes),
                (2, 1, 0, fake.len() as u64),
                "{what}"
            );
        }
    }
    // POST without a body elsewhere: 405, connection kept.
    let mut g = Glue::new(svc.clone());
    g.feed(b"POST / HTTP/1.1\r\n\r\n");
    g.feed(next);
    let rs = parse_all(&g.out, &[false, false]);
    assert_eq!((rs[0].status, rs[1].status), (405, 200));
    assert_eq!(g.conn.stats().bodies_discarded, 0);
    // Another method with a body: 405 and close, body not read.
    let (t, c) = one_shot(svc, &cl_request("DELETE", "/upload", fake));
    assert!(t.contains("Allow: GET, HEAD, POST, PUT\r\n"), "{t}");
    assert!(t.contains("Connection: close\r\n"), "{t}");
    assert!(c.wants_close());
    assert_eq!(c.stats().body_bytes, 0);
}

#[test]
fn head_wait_states() {
    let svc = Service::new("n1");
    let mut c = HttpConn::new();
    let mut buf = [0u8; 4096];
    let drain = |c: &mut HttpConn, buf: &mut [u8]| {
        while c.has_pending_output() {
            c.poll_send(&svc, buf);
        }
    };
    assert_eq!(c.head_wait(), HeadWait::FirstRequest);
    c.on_recv(&svc, b"\r\n");
    assert_eq!(c.head_wait(), HeadWait::FirstRequest);
    c.on_recv(&svc, b"POST /upload HTTP/1.1\r\nContent-Le");
    assert_eq!(c.head_wait(), HeadWait::FirstRequest);
    c.on_recv(&svc, b"ngth: 4\r\n\r\nab");
    // Reading the body.
    assert_eq!(c.head_wait(), HeadWait::NotWaiting);
    assert!(!c.has_pending_output());
    c.on_recv(&svc, b"cd");
    // Responding.
    assert!(c.has_pending_output());
    assert_eq!(c.head_wait(), HeadWait::NotWaiting);
    drain(&mut c, &mut buf);
    assert_eq!(c.head_wait(), HeadWait::Idle);
    // Empty lines between requests are not a head.
    c.on_recv(&svc, b"\r\n");
    assert_eq!(c.head_wait(), HeadWait::Idle);
    c.on_recv(&svc, b"G");
    assert_eq!(c.head_wait(), HeadWait::Partial);
    c.on_recv(&svc, b"ET / HTTP/1.1\r\nHost: x\r\n");
    assert_eq!(c.head_wait(), HeadWait::Partial);
    c.on_recv(&svc, b"\r\n");
    assert_eq!(c.head_wait(), HeadWait::NotWaiting);
    drain(&mut c, &mut buf);
    assert_eq!(c.head_wait(), HeadWait::Idle);
    // A request without a body completing in one piece.
    c.on_recv(&svc, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(c.head_wait(), HeadWait::NotWaiting);
    drain(&mut c, &mut buf);
    // Closing.
    assert!(c.wants_close());
    assert_eq!(c.head_wait(), HeadWait::NotWaiting);

    // An error on the first request closes: not waiting.
    let mut c = HttpConn::new();
    c.on_recv(&svc, b"\x16\x03\x01");
    assert_eq!(c.head_wait(), HeadWait::NotWaiting);
    // Peer FIN while idle or partial: closing.
    for first in [&b""[..], b"GET / HT"] {
        let mut c = HttpConn::new();
        c.on_recv(&svc, b"GET / HTTP/1.1\r\n\r\n");
        drain(&mut c, &mut buf);
        c.on_recv(&svc, first);
        assert_eq!(
            c.head_wait(),
            if first.is_empty() {
                HeadWait::Idle
            } else {
                HeadWait::Partial
            }
        );
        c.on_peer_fin();
        assert_eq!(c.head_wait(), HeadWait::NotWaiting);
    }
}

#[test]
fn peer_fin_mid_body_gives_no_response() {
    let svc = Service::new("n1");
    let mut c = HttpConn::new();
    let req = cl_request("POST", "/upload", b"abc");
    assert_eq!(c.on_recv(&svc, &req[..req.len() - 1]), req.len() - 1);
    c.on_peer_fin();
    assert!(c.wants_close());
    assert!(!c.has_pending_output());
    assert_eq!(c.stats().requests, 0);
}

#[test]
fn large_chunk_sizes_and_counts() {
    // A 1 MiB chunk announced in hex, delivered in odd pieces.
    let svc = Service::new("n1");
    let body = body_bytes(1 << 20, 3);
    let req = chunked_request("PUT", "/upload", &chunked(&body, &[1 << 20], "", ""));
    assert!(req.windows(9).any(|w| w == b"\r\n100000\r"));
    let mut g = Glue::new(svc);
    for piece in req.chunks(1447) {
        g.feed(piece);
    }
    assert_eq!(
        String::from_utf8_lossy(&g.out),
        upload_response(&body, false)
    );
}

/// Build an upload request for `body` in one of several framings.
fn framed_upload(body: &[u8], framing: u8, sizes: &[usize]) -> Vec<u8> {
    match framing % 3 {
        0 => cl_request("POST", "/upload", body),
        1 => chunked_request("PUT", "/upload", &chunked(body, sizes, "", "")),
        _ => chunked_request(
            "POST",
            "/p/upload",
            &chunked(body, sizes, ";k=v", "X-A: 1\r\nX-B: 2\r\n"),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any body, any framing, any split of the input, any send size: the
    /// answer is the independently computed length and SHA-256, and the
    /// pipelined request after it is answered too.
    #[test]
    fn uploads_in_random_splits(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        framing in 0u8..3,
        sizes in proptest::collection::vec(0usize..700, 0..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        chunk in 1usize..400,
    ) {
        let svc = Service::new("n1");
        let req = framed_upload(&body, framing, &sizes);
        let next = b"GET /bytes/10 HTTP/1.1\r\n\r\n";
        let input = [&req[..], next].concat();
        let mut points: Vec<usize> = cuts.iter().map(|&x| x % (input.len() + 1)).collect();
        points.push(input.len());
        points.sort_unstable();
        let mut g = Glue::new(svc);
        g.chunk = chunk;
        let mut fed = 0;
        for p in points {
            g.feed(&input[fed..p]);
            fed = p;
        }
        let want = upload_response(&body, false);
        prop_assert!(g.out.starts_with(want.as_bytes()), "{}", String::from_utf8_lossy(&g.out));
        let rs = parse_all(&g.out[want.len()..], &[false]);
        prop_assert_eq!(&rs[0].body, &(0..10).collect::<Vec<u8>>());
        let s = g.conn.stats();
        prop_assert_eq!((s.uploads, s.body_bytes, s.requests), (1, body.len() as u64, 2));
    }
}

/// 10 MB through `on_recv` in TCP-segment pieces: each piece is consumed
/// at once, nothing is answered early, and the answer carries the right
/// length and hash. (That the heap use stays flat is checked inside the
/// crate, `conn::tests::ten_megabytes_in_constant_memory`.)
#[test]
fn ten_megabytes_streamed() {
    const LEN: usize = 10_000_000;
    let svc = Service::new("n1");
    let body = body_bytes(LEN, 11);
    let hex = sha_hex(&body);
    let size_before = std::mem::size_of::<HttpConn>();
    for chunked in [false, true] {
        let mut c = HttpConn::new();
        let head = if chunked {
            "POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
        } else {
            format!("POST /upload HTTP/1.1\r\nContent-Length: {LEN}\r\n\r\n")
        };
        assert_eq!(c.on_recv(&svc, head.as_bytes()), head.len());
        let mut fed = 0;
        for seg in body.chunks(1460) {
            if chunked {
                let line = format!("{:x}\r\n", seg.len());
                assert_eq!(c.on_recv(&svc, line.as_bytes()), line.len());
            }
            assert_eq!(c.on_recv(&svc, seg), seg.len());
            if chunked {
                assert_eq!(c.on_recv(&svc, b"\r\n"), 2);
            }
            fed += seg.len();
            // Answered only once the whole body is in.
            assert_eq!(c.has_pending_output(), fed == LEN && !chunked);
        }
        if chunked {
            assert_eq!(c.on_recv(&svc, b"0\r\n\r\n"), 5);
        }
        let mut out = [0u8; 4096];
        let n = c.poll_send(&svc, &mut out);
        assert!(!c.has_pending_output());
        let text = String::from_utf8_lossy(&out[..n]);
        assert!(
            text.contains(&format!(
                "X-Upload-Length: {LEN}\r\nX-Upload-Sha256: {hex}\r\n"
            )),
            "{text}"
        );
        assert!(text.ends_with(&format!("\r\n\r\n{LEN} {hex}\n")), "{text}");
        let s = c.stats();
        assert_eq!((s.uploads, s.body_bytes), (1, LEN as u64));
    }
    assert_eq!(std::mem::size_of::<HttpConn>(), size_before);
}
