use ipos_http::{fill_pattern, pattern_byte, peek_request, HttpConn, HttpError, Service, Version};
use proptest::prelude::*;

mod common;
use common::*;

const ROOT_N1: &str = "HTTP/1.1 200 OK\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 72\r\n\
X-Ipos-Node: n1\r\n\
\r\n\
ipos node n1\n\
GET /bytes/<n> returns n bytes where byte i is (i mod 251)\n";

const BYTES10_N1: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/octet-stream\r\n\
Content-Length: 10\r\n\
X-Ipos-Node: n1\r\n\
\r\n\
\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09";

#[test]
fn exact_root_response() {
    let (t, c) = one_shot(Service::new("n1"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(t, ROOT_N1);
    assert!(!c.wants_close());
    assert!(!c.has_pending_output());
    let s = c.stats();
    assert_eq!(
        (s.requests, s.status_2xx, s.status_4xx, s.status_5xx),
        (1, 1, 0, 0)
    );
    assert_eq!(s.bytes_sent, ROOT_N1.len() as u64);
}

#[test]
fn exact_bytes10_response() {
    let mut g = Glue::new(Service::new("n1"));
    g.feed(b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(g.out, BYTES10_N1);
    assert!(!g.conn.wants_close());
}

#[test]
fn exact_close_and_http10_responses() {
    let (t, c) = one_shot(
        Service::new("n1"),
        b"GET /bytes/0 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        t,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\n\
         X-Ipos-Node: n1\r\nConnection: close\r\n\r\n"
    );
    assert!(c.wants_close());

    let (t, c) = one_shot(Service::new("n1"), b"GET /bytes/1 HTTP/1.0\r\n\r\n");
    assert_eq!(
        t,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\
         X-Ipos-Node: n1\r\nConnection: close\r\n\r\n\0"
    );
    assert!(c.wants_close());

    let (t, c) = one_shot(
        Service::new("n1"),
        b"GET /bytes/1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    );
    assert_eq!(
        t,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\
         X-Ipos-Node: n1\r\nConnection: keep-alive\r\n\r\n\0"
    );
    assert!(!c.wants_close());
}

#[test]
fn exact_error_responses() {
    // POST elsewhere than /upload: the body is read, the connection stays.
    let (t, c) = one_shot(
        Service::new("n1"),
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(
        t,
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 23\r\nAllow: GET, HEAD\r\nX-Ipos-Node: n1\r\n\r\n\
         405 Method Not Allowed\n"
    );
    assert!(!c.wants_close());
    assert_eq!(c.stats().bodies_discarded, 1);

    // Other methods close, with the methods of the path in Allow.
    let (t, c) = one_shot(Service::new("n1"), b"DELETE /b/upload HTTP/1.1\r\n\r\n");
    assert_eq!(
        t,
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 23\r\nAllow: GET, HEAD, POST, PUT\r\nX-Ipos-Node: n1\r\n\
         Connection: close\r\n\r\n405 Method Not Allowed\n"
    );
    assert!(c.wants_close());

    let (t, c) = one_shot(Service::new("n1"), b"GET /a/nope HTTP/1.1\r\n\r\n");
    assert_eq!(
        t,
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 14\r\nX-Ipos-Node: n1\r\n\r\n404 Not Found\n"
    );
    assert!(!c.wants_close());
    assert_eq!(c.stats().status_4xx, 1);
}

#[test]
fn large_body_in_random_small_chunks() {
    const N: u64 = 3_000_017;
    let svc = Service::new("big");
    let mut c = HttpConn::new();
    let req = format!("GET /bytes/{N} HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.on_recv(&svc, req.as_bytes()), req.len());
    let mut out = Vec::new();
    let mut buf = [0u8; 997];
    // Deterministic xorshift for chunk sizes 0..=997.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while c.has_pending_output() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = (x % 998) as usize;
        let n = c.poll_send(&svc, &mut buf[..k]);
        assert!(n <= k);
        assert!(k == 0 || n > 0);
        out.extend_from_slice(&buf[..n]);
    }
    let (r, used) = parse_response(&out, false).unwrap();
    assert_eq!(used, out.len());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(N.to_string().as_str()));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.body.len() as u64, N);
    for (i, &b) in r.body.iter().enumerate() {
        assert_eq!(b, (i % 251) as u8, "byte {i}");
    }
    assert_eq!(c.poll_send(&svc, &mut buf), 0);
    assert!(!c.wants_close());
}

#[test]
fn huge_n_streams_without_allocating() {
    // 10^12 bytes: only check that the head is right and the body starts
    // at the right phase; the state machine holds only a counter.
    let svc = Service::new("n");
    let mut c = HttpConn::new();
    c.on_recv(&svc, b"GET /bytes/1000000000000 HTTP/1.1\r\n\r\n");
    let mut buf = vec![0u8; 1 << 16];
    let n = c.poll_send(&svc, &mut buf);
    assert_eq!(n, buf.len());
    let text = String::from_utf8_lossy(&buf[..200]).into_owned();
    assert!(text.contains("Content-Length: 1000000000000\r\n"));
    let start = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    for (i, &b) in buf[start..].iter().enumerate() {
        assert_eq!(b, pattern_byte(i as u64));
    }
    assert!(c.has_pending_output());
    let (t, _) = one_shot(svc, b"GET /bytes/1000000000001 HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&t), 400);
}

#[test]
fn prefix_routing() {
    let svc = Service::new("n1");
    let (t, _) = one_shot(svc.clone(), b"GET /b/bytes/10 HTTP/1.1\r\n\r\n");
    assert_eq!(t.as_bytes(), BYTES10_N1);
    for path in ["/b/", "/b", "/app/", "/bytes"] {
        let (t, _) = one_shot(
            svc.clone(),
            format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(t, ROOT_N1, "{path}");
    }
    // Absolute-form and query strings.
    let (t, _) = one_shot(
        svc.clone(),
        b"GET http://vip/b/bytes/10?x=1 HTTP/1.1\r\n\r\n",
    );
    assert_eq!(t.as_bytes(), BYTES10_N1);
    for (path, status) in [
        ("/a/b/bytes/10", 404),
        ("/a/b/", 404),
        ("//bytes/10", 404),
        ("/bytes/ten", 400),
        ("/b/bytes/-1", 400),
        ("/bytes/10/", 400),
    ] {
        let (t, c) = one_shot(
            svc.clone(),
            format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&t), status, "{path}");
        assert_eq!(c.wants_close(), status != 404, "{path}");
    }
}

#[test]
fn head_requests() {
    let (t, _) = one_shot(Service::new("n1"), b"HEAD /bytes/10 HTTP/1.1\r\n\r\n");
    assert_eq!(t.as_bytes(), &BYTES10_N1[..BYTES10_N1.len() - 10]);
    let (t, _) = one_shot(Service::new("n1"), b"HEAD /b HTTP/1.1\r\n\r\n");
    assert_eq!(t, ROOT_N1[..ROOT_N1.find("\r\n\r\n").unwrap() + 4]);
    let (t, _) = one_shot(Service::new("n1"), b"HEAD /x/y HTTP/1.1\r\n\r\n");
    assert!(t.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(t.ends_with("\r\n\r\n"));
}

#[test]
fn error_statuses_and_close() {
    let svc = Service::new("n1");
    let cases: &[(&[u8], u16)] = &[
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"\x00\x01\x02\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            400,
        ),
        (
            b"DELETE /bytes/1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            405,
        ),
        (b"GET * HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\n\r\n", 505),
        (b"DELETE /bytes/1 HTTP/1.1\r\n\r\n", 405),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", 405),
        (b"get / HTTP/1.1\r\n\r\n", 405),
    ];
    for &(req, status) in cases {
        let mut g = Glue::new(svc.clone());
        g.feed(req);
        // A following request on the same connection is ignored.
        g.feed(b"GET / HTTP/1.1\r\n\r\n");
        let t = g.text();
        let [r] = parse_all(&g.out, &[req.starts_with(b"HEAD")])
            .try_into()
            .unwrap();
        assert_eq!(
            r.status,
            status,
            "{:?} -> {t}",
            String::from_utf8_lossy(req)
        );
        assert_eq!(r.header("Connection"), Some("close"));
        assert_eq!(r.header("Allow").is_some(), status == 405);
        assert!(g.conn.wants_close());
        assert!(!g.conn.has_pending_output());
        let s = g.conn.stats();
        assert_eq!(s.requests, 1);
        assert_eq!(s.status_4xx + s.status_5xx, 1);
    }
    // Content-Length: 0 is fine.
    let (t, c) = one_shot(svc, b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(t, ROOT_N1);
    assert!(!c.wants_close());
}

#[test]
fn head_too_large_431() {
    let svc = Service::new("n1").with_max_head_bytes(256);
    let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(400, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    // All at once, and byte by byte.
    for bytewise in [false, true] {
        let mut g = Glue::new(svc.clone());
        if bytewise {
            for b in &big {
                g.feed(std::slice::from_ref(b));
            }
        } else {
            g.feed(&big);
        }
        let t = g.text();
        assert_eq!(status_of(&t), 431, "{t}");
        assert!(t.contains("Connection: close\r\n"));
        assert!(g.conn.wants_close());
    }
    // Exactly at the limit is accepted; one byte more is not.
    for (extra, status) in [(0usize, 200u16), (1, 431)] {
        let mut req = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        req.resize(256 - 4 + extra, b'a');
        req.extend_from_slice(b"\r\n\r\n");
        for split in [req.len(), 10] {
            let mut g = Glue::new(svc.clone());
            g.feed(&req[..split]);
            g.feed(&req[split..]);
            assert_eq!(status_of(&g.text()), status, "extra {extra} split {split}");
        }
    }
    // Default limit is 8192.
    let mut req = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    req.resize(9000, b'a');
    let (t, _) = one_shot(Service::new("n"), &req);
    assert_eq!(status_of(&t), 431);
}

#[test]
fn keep_alive_vs_close() {
    let svc = Service::new("n1");
    let mut g = Glue::new(svc.clone());
    for _ in 0..3 {
        g.feed(b"GET /bytes/10 HTTP/1.1\r\n\r\n");
        assert!(!g.conn.wants_close());
    }
    g.feed(b"GET /bytes/10 HTTP/1.1\r\nConnection: foo, close\r\n\r\n");
    assert!(g.conn.wants_close());
    let rs = parse_all(&g.out, &[false; 4]);
    assert!(rs[..3].iter().all(|r| r.header("Connection").is_none()));
    assert_eq!(rs[3].header("Connection"), Some("close"));
    assert_eq!(g.conn.stats().requests, 4);
    // Nothing more after the closing response.
    g.feed(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(g.conn.stats().requests, 4);

    // HTTP/1.0 keep-alive sequence, then a plain 1.0 request closes.
    let mut g = Glue::new(svc);
    g.feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(!g.conn.wants_close());
    g.feed(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(!g.conn.wants_close());
    g.feed(b"GET / HTTP/1.0\r\n\r\n");
    assert!(g.conn.wants_close());
    let rs = parse_all(&g.out, &[false, true, false]);
    assert_eq!(rs[0].header("Connection"), Some("keep-alive"));
    assert_eq!(rs[1].header("Connection"), Some("keep-alive"));
    assert_eq!(rs[2].header("Connection"), Some("close"));
}

#[test]
fn pipelined_requests_in_one_chunk() {
    let svc = Service::new("n1");
    let mut c = HttpConn::new();
    let reqs = b"GET /bytes/10 HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\n\
GET /a/nope HTTP/1.1\r\n\r\nGET /b/bytes/300 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n\
GET /bytes/5 HTTP/1.1\r\n\r\n";
    // Backpressure: only the first request is consumed while busy.
    let n = c.on_recv(&svc, reqs);
    assert_eq!(n, b"GET /bytes/10 HTTP/1.1\r\n\r\n".len());
    assert_eq!(c.on_recv(&svc, &reqs[n..]), 0);
    let mut g = Glue::new(svc);
    g.chunk = 7;
    g.feed(reqs);
    let rs = parse_all(&g.out, &[false, true, false, false, false]);
    let st: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(st, [200, 200, 404, 200, 200]);
    assert_eq!(rs[0].body, (0..10).collect::<Vec<u8>>());
    let mut want = vec![0u8; 300];
    fill_pattern(0, &mut want);
    assert_eq!(rs[3].body, want);
    assert!(rs[4].body.starts_with(b"ipos node n1\n"));
    assert_eq!(rs[4].header("Connection"), Some("close"));
    assert!(g.conn.wants_close());
    assert_eq!(g.conn.stats().requests, 5);
}

#[test]
fn head_split_byte_by_byte() {
    let svc = Service::new("n1");
    let mut g = Glue::new(svc);
    let req = b"\r\nGET /bytes/10 HTTP/1.1\r\nHost: example\r\nCookie: a=1\r\n\r\n\
GET / HTTP/1.1\nHost: x\n\n";
    for b in req.iter() {
        assert!(g.out.is_empty() || g.out.len() >= BYTES10_N1.len());
        g.feed(std::slice::from_ref(b));
    }
    let mut want = BYTES10_N1.to_vec();
    want.extend_from_slice(ROOT_N1.as_bytes());
    assert_eq!(g.out, want);
    // Direct use: every byte is consumed while idle.
    let svc = Service::new("n1");
    let mut c = HttpConn::new();
    let req = b"GET / HTTP/1.1\r\n\r\n";
    for (i, b) in req.iter().enumerate() {
        assert!(!c.has_pending_output());
        assert_eq!(c.on_recv(&svc, std::slice::from_ref(b)), 1, "byte {i}");
    }
    assert!(c.has_pending_output());
}

#[test]
fn partial_head_completed_with_pipelined_tail() {
    let svc = Service::new("n1");
    let mut c = HttpConn::new();
    let first = b"GET /bytes/10 HTTP/1.1\r\nHo";
    assert_eq!(c.on_recv(&svc, first), first.len());
    assert!(!c.has_pending_output());
    let tail = b"st: x\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    // Only the rest of the first head is consumed; the second request waits.
    assert_eq!(c.on_recv(&svc, tail), b"st: x\r\n\r\n".len());
    let mut buf = [0u8; 4096];
    let n = c.poll_send(&svc, &mut buf);
    assert_eq!(&buf[..n], BYTES10_N1);
    assert_eq!(c.on_recv(&svc, &tail[9..]), tail.len() - 9);
    let n = c.poll_send(&svc, &mut buf);
    assert_eq!(&buf[..n], ROOT_N1.as_bytes());
}

#[test]
fn bad_bytes_detected_early() {
    // An invalid request line is answered before any CRLF arrives.
    let (t, c) = one_shot(Service::new("n1"), b"\x16\x03\x01\x02\x00\x01\x00");
    assert_eq!(status_of(&t), 400);
    assert!(c.wants_close());
}

#[test]
fn peer_fin() {
    let svc = Service::new("n1");
    let mut c = HttpConn::new();
    c.on_recv(&svc, b"GET /bytes/100 HTTP/1.1\r\n\r\n");
    c.on_peer_fin();
    assert!(c.wants_close());
    assert!(c.has_pending_output());
    let mut buf = [0u8; 4096];
    let n = c.poll_send(&svc, &mut buf);
    let (r, used) = parse_response(&buf[..n], false).unwrap();
    assert_eq!(used, n);
    assert_eq!(r.body.len(), 100);
    assert!(!c.has_pending_output());
    assert!(c.wants_close());
    // Idle connection.
    let mut c = HttpConn::new();
    assert!(!c.wants_close());
    c.on_peer_fin();
    assert!(c.wants_close());
    assert!(!c.has_pending_output());
}

#[test]
fn node_name_sanitized() {
    let svc = Service::new("a\r\nX-Evil: 1");
    assert_eq!(svc.node_name(), "a__X-Evil: 1");
    let (t, _) = one_shot(svc, b"GET / HTTP/1.1\r\n\r\n");
    assert!(t.contains("X-Ipos-Node: a__X-Evil: 1\r\n"));
}

#[test]
fn peek_request_cookies_and_headers() {
    let d = b"GET /shop/cart HTTP/1.1\r\nHost: vip\r\nCookie: a=1; IPOSID=c; b=2\r\n\r\nGET";
    let h = peek_request(d).unwrap().unwrap();
    assert_eq!(h.cookie("IPOSID"), Some("c"));
    assert_eq!(h.cookie("a"), Some("1"));
    assert_eq!(h.cookie("b"), Some("2"));
    assert_eq!(h.cookie("x"), None);
    assert_eq!(h.method, "GET");
    assert_eq!(h.target, "/shop/cart");
    assert_eq!(h.path(), Some("/shop/cart"));
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.head_len, d.len() - 3);
    assert_eq!(h.header("HOST"), Some(&b"vip"[..]));
    assert_eq!(peek_request(&d[..20]), Ok(None));
    assert_eq!(peek_request(b""), Ok(None));
    assert_eq!(
        peek_request(b"GET / HTTP/3.0\r\n\r\n"),
        Err(HttpError::VersionNotSupported)
    );
    assert_eq!(HttpError::HeadTooLarge.status(), 431);
}

// ---------------------------------------------------------------- proptest

/// Drive `input` (split at `cuts`) through a conn with `chunk`-sized sends;
/// returns the output. Checks the consumption/backpressure invariants.
fn drive_checked(svc: &Service, input: &[u8], cuts: &[usize], chunk: usize) -> (Vec<u8>, HttpConn) {
    let mut c = HttpConn::new();
    let mut rx: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut tmp = vec![0u8; chunk];
    let mut fed = 0;
    let mut points: Vec<usize> = cuts.iter().map(|&x| x % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    for p in points {
        rx.extend_from_slice(&input[fed..p.max(fed)]);
        fed = p.max(fed);
        loop {
            let n = c.on_recv(svc, &rx);
            assert!(n <= rx.len());
            rx.drain(..n);
            if !c.has_pending_output() {
                assert!(rx.is_empty());
                break;
            }
            let mut budget = 0;
            while c.has_pending_output() && budget < 4 << 20 {
                let k = c.poll_send(svc, &mut tmp);
                assert!(k > 0);
                budget += k;
                out.extend_from_slice(&tmp[..k]);
            }
            if c.has_pending_output() {
                return (out, c); // huge body: stop here
            }
        }
    }
    (out, c)
}

/// Every byte of output must be a sequence of well-formed responses.
/// A response whose remaining bytes start another response (or end) is
/// taken as a HEAD response.
fn check_output(out: &[u8], conn: &HttpConn, truncated: bool) {
    let mut rest = out;
    let mut count = 0;
    let mut last_close = false;
    while !rest.is_empty() {
        rest = strip_continues(rest).1;
        if rest.is_empty() {
            break;
        }
        let (mut r, head_used) = match parse_response(rest, true) {
            Ok(v) => v,
            Err(_) if truncated => return,
            Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(rest)),
        };
        let cl: usize = r.header("content-length").unwrap().parse().unwrap();
        let after = &rest[head_used..];
        // A HEAD response is followed directly by the next response (or
        // the end of output); no body of ours starts with "HTTP/".
        let used = if after.is_empty() || after.starts_with(b"HTTP/1.1 ") {
            head_used
        } else if after.len() >= cl {
            r.body = after[..cl].to_vec();
            head_used + cl
        } else if truncated {
            return;
        } else {
            panic!("truncated body");
        };
        assert!(
            [200, 400, 404, 405, 431, 505].contains(&r.status),
            "status {}",
            r.status
        );
        if r.status == 200 && r.header("content-type") == Some("application/octet-stream") {
            for (i, &b) in r.body.iter().enumerate() {
                assert_eq!(b, pattern_byte(i as u64));
            }
        }
        assert!(!last_close, "response after a closing response");
        last_close = r.header("connection") == Some("close");
        if ![200, 404, 405].contains(&r.status) {
            assert!(last_close);
        }
        if let Some(len) = r.header("x-upload-length") {
            assert_eq!(r.status, 200);
            let hex = r.header("x-upload-sha256").unwrap();
            assert_eq!(r.body, format!("{len} {hex}\n").into_bytes());
        }
        rest = &rest[used..];
        count += 1;
    }
    if !truncated {
        assert_eq!(conn.stats().requests, count);
        if last_close {
            assert!(conn.wants_close());
        }
    }
}

fn request_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET ".to_vec()),
        Just(b"HEAD ".to_vec()),
        Just(b"POST ".to_vec()),
        Just(b"/".to_vec()),
        Just(b"/bytes/".to_vec()),
        Just(b"/b/bytes/".to_vec()),
        (0u64..3000).prop_map(|n| n.to_string().into_bytes()),
        Just(b" HTTP/1.1\r\n".to_vec()),
        Just(b" HTTP/1.0\r\n".to_vec()),
        Just(b" HTTP/2.0\r\n".to_vec()),
        Just(b"Host: x\r\n".to_vec()),
        Just(b"Connection: close\r\n".to_vec()),
        Just(b"Connection: keep-alive\r\n".to_vec()),
        Just(b"Content-Length: 0\r\n".to_vec()),
        Just(b"Content-Length: 4\r\n".to_vec()),
        Just(b"Cookie: a=1; IPOSID=c\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Expect: 100-continue\r\n".to_vec()),
        Just(b"/upload".to_vec()),
        Just(b"4\r\nabcd\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Mostly well-formed requests, with occasional junk pieces in between.
fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![4 => Just("GET"), 2 => Just("HEAD"), 1 => Just("PUT"), 2 => Just("POST")],
        prop_oneof![
            Just("/".to_string()),
            Just("/upload".to_string()),
            Just("/b/upload".to_string()),
            Just("/x".to_string()),
            Just("/x/y/z".to_string()),
            (0u64..5000, any::<bool>()).prop_map(|(n, p)| if p {
                format!("/pfx/bytes/{n}")
            } else {
                format!("/bytes/{n}")
            }),
        ],
        prop_oneof![4 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0"), 1 => Just("HTTP/1.2")],
        proptest::collection::vec(
            prop_oneof![
                Just("Host: h\r\n"),
                Just("Connection: keep-alive\r\n"),
                Just("Connection: close\r\n"),
                Just("Cookie: IPOSID=1\r\n"),
                Just("Content-Length: 0\r\n"),
                Just("Content-Length: 1\r\n"),
                Just("Expect: 100-continue\r\n"),
            ],
            0..3,
        ),
        // Body: none, or with a matching Content-Length / chunked framing.
        prop_oneof![
            2 => Just(None),
            1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Some((false, b))),
            1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Some((true, b))),
        ],
    )
        .prop_map(|(m, p, v, h, body)| {
            let mut req = format!("{m} {p} {v}\r\n{}", h.concat()).into_bytes();
            match body {
                None => req.extend_from_slice(b"\r\n"),
                Some((false, b)) => {
                    req.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes(),
                    );
                    req.extend_from_slice(&b);
                }
                Some((true, b)) => {
                    req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for c in b.chunks(7) {
                        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        req.extend_from_slice(c);
                        req.extend_from_slice(b"\r\n");
                    }
                    req.extend_from_slice(b"0\r\n\r\n");
                }
            }
            req
        })
}

fn structured_input() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![6 => request(), 1 => request_piece()], 0..12)
        .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        chunk in 1usize..200,
        max in prop_oneof![Just(8192usize), 0usize..64],
    ) {
        let svc = Service::new("p").with_max_head_bytes(max);
        let (out, c) = drive_checked(&svc, &input, &cuts, chunk);
        check_output(&out, &c, c.has_pending_output());
        let _ = peek_request(&input);
    }

    #[test]
    fn structured_requests_valid_or_wait(
        input in structured_input(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        chunk in 1usize..3000,
    ) {
        let svc = Service::new("p");
        let (out, c) = drive_checked(&svc, &input, &cuts, chunk);
        check_output(&out, &c, c.has_pending_output());
        // Same input in one piece gives the same output (chunking is invisible).
        let (out2, _) = drive_checked(&svc, &input, &[], 4096);
        prop_assert_eq!(out, out2);
    }

    #[test]
    fn peek_request_agrees_with_prefixes(input in structured_input()) {
        // If a prefix is an error, every extension is too; if a complete
        // head is found, its prefixes are incomplete or the same head.
        match peek_request(&input) {
            Ok(Some(h)) => {
                prop_assert!(h.head_len <= input.len());
                let again = peek_request(&input[..h.head_len]).unwrap().unwrap();
                prop_assert_eq!(again, h);
                for i in 0..h.head_len {
                    prop_assert_eq!(peek_request(&input[..i]), Ok(None));
                }
            }
            Ok(None) => {
                for i in 0..input.len() {
                    prop_assert_eq!(peek_request(&input[..i]), Ok(None));
                }
            }
            Err(e) => {
                let mut more = input.clone();
                more.extend_from_slice(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n");
                prop_assert_eq!(peek_request(&more).map(|_| ()), Err(e));
            }
        }
    }
}
