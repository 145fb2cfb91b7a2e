//! Parse arbitrary bytes as a server-state advertisement: no panic; whatever
//! parses re-emits and parses to the same advert.

#![no_main]

use ipos_policy::AdvertRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = AdvertRepr::parse(data) else {
        return;
    };
    let mut buf = [0u8; 512];
    let n = a.emit(&mut buf).expect("a parsed advert re-emits");
    assert_eq!(n, a.buffer_len());
    assert_eq!(AdvertRepr::parse(&buf[..n]), Ok(a));
});
