//! Parse arbitrary bytes as a 140-byte TCB: no panic; whatever parses must
//! re-emit to bytes that parse to the same TCB, and importing it must not
//! panic either (it may refuse).

#![no_main]

use ipos_tcp::{Config, Endpoint, Instant, Ipv4Address, Tcb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tcb) = Tcb::parse(data) else {
        return;
    };
    let bytes = tcb.to_bytes();
    let again = Tcb::parse(&bytes).expect("an emitted TCB parses");
    assert_eq!(again.to_bytes(), bytes);
    let flow = ipos_tcp::Flow {
        src_addr: Ipv4Address::new(198, 18, 0, 1),
        src_port: 40000,
        dst_addr: Ipv4Address::new(198, 18, 0, 100),
        dst_port: 80,
    };
    let snd = vec![7u8; (tcb.snd_data_len as usize).min(1 << 16)];
    let rcv = vec![9u8; (tcb.rcv_data_len as usize).min(1 << 16)];
    let now = Instant::from_millis(1000);
    if let Ok(mut ep) = Endpoint::import(&Config::default(), &tcb, flow, &snd, &rcv, now) {
        let mut out = [0u8; 1600];
        for _ in 0..8 {
            if ep.poll_transmit(now, &mut out).is_none() {
                break;
            }
        }
    }
});
