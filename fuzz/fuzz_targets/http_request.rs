//! Arbitrary bytes to the HTTP service and the request peeker: no panic, and
//! the service never produces more than a bounded response head for garbage.

#![no_main]

use ipos_http::{peek_request, HttpConn, Service};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(head)) = peek_request(data) {
        let _ = head.path();
        let _ = head.cookie("IPOSID");
        assert!(head.head_len <= data.len());
    }
    let svc = Service::new("f");
    let mut conn = HttpConn::new();
    let mut out = [0u8; 4096];
    let mut fed = 0;
    for _ in 0..64 {
        fed += conn.on_recv(&svc, &data[fed..]);
        let mut sent = 0;
        while conn.has_pending_output() && sent < 1 << 20 {
            let n = conn.poll_send(&svc, &mut out);
            if n == 0 {
                break;
            }
            sent += n;
        }
        if fed >= data.len() || conn.wants_close() {
            break;
        }
    }
});
