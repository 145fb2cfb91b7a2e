//! Feed arbitrary bytes as TCP segments to endpoints in several states: no
//! panic, whatever the bytes.

#![no_main]

use ipos_tcp::{Config, Endpoint, Instant, Ipv4Address};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let flow = ipos_tcp::Flow {
        src_addr: Ipv4Address::new(198, 18, 0, 1),
        src_port: 40000,
        dst_addr: Ipv4Address::new(198, 18, 0, 100),
        dst_port: 80,
    };
    let now = Instant::from_millis(5);
    let cfg = Config::default();
    let mut out = [0u8; 1600];
    // As a SYN to a listener.
    if let Ok(mut ep) = Endpoint::accept(&cfg, flow, data, 1, now) {
        let _ = ep.poll_transmit(now, &mut out);
    }
    // Split in segments and fed to an active opener.
    let mut ep = Endpoint::connect(&cfg, flow, 1, now);
    let _ = ep.poll_transmit(now, &mut out);
    for chunk in data.split(|&b| b == 0xA5).take(16) {
        let _ = ep.on_segment(now, chunk);
        while ep.poll_transmit(now, &mut out).is_some() {}
    }
});
