//! Parse arbitrary bytes as an HTTP progress record: no panic; whatever
//! parses re-emits to the same bytes, resumes (records with more than 1 MiB
//! in flight are skipped: the importer bounds the buffer by its send buffer),
//! gives the same record again from `progress`, and produces output.

#![no_main]

use ipos_http::{HttpConn, Progress, Service, MAX_PROGRESS_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Progress::parse(data) else {
        return;
    };
    let mut wire = [0u8; MAX_PROGRESS_LEN];
    let n = p.emit(&mut wire).expect("a parsed record fits");
    assert_eq!(&wire[..n], data);
    if p.in_flight() > 1 << 20 {
        return;
    }
    let svc = Service::new("f");
    let mut out = vec![0u8; p.in_flight()];
    let mut conn = HttpConn::resume(&svc, &p, &mut out).expect("a parsed record resumes");
    assert_eq!(conn.progress(p.in_flight()), Ok(p));
    let mut tx = [0u8; 4096];
    for _ in 0..8 {
        if conn.poll_send(&svc, &mut tx) == 0 {
            break;
        }
    }
});
