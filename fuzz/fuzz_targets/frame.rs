//! Parse arbitrary bytes as an ipOS frame with the default ethertype; whatever
//! parses must re-emit to the same bytes (up to padding) and parse again to the
//! same frame. Data frames are also rebuilt in place with `emit_data_header`.

#![no_main]

use ipos_wire::{emit_data_header, Frame, Message, DATA_HEADROOM, DEFAULT_ETHERTYPE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::parse(data, DEFAULT_ETHERTYPE) else {
        return;
    };
    let len = frame.buffer_len();
    assert!(len <= data.len());

    let mut out = vec![0u8; len];
    let n = frame
        .emit(&mut out, DEFAULT_ETHERTYPE)
        .expect("a parsed frame re-emits");
    assert_eq!(n, len);
    // Byte-exact, except that a stored checksum 0xffff (ones'-complement
    // "negative zero") verifies where the emitter writes 0x0000.
    let mut expect = data[..len].to_vec();
    if expect[28..30] == [0xff, 0xff] && out[28..30] == [0, 0] {
        expect[28..30].copy_from_slice(&[0, 0]);
    }
    assert_eq!(out, expect, "re-emitted bytes differ");
    assert_eq!(Frame::parse(&out, DEFAULT_ETHERTYPE), Ok(frame));

    // Too small a buffer is an error, never a panic.
    assert!(frame.emit(&mut out[..len - 1], DEFAULT_ETHERTYPE).is_err());

    if let Message::TcpData { packet, .. } | Message::UdpData { packet, .. } = frame.message {
        let mut in_place = vec![0u8; DATA_HEADROOM + packet.len()];
        in_place[DATA_HEADROOM..].copy_from_slice(packet);
        let m = emit_data_header(&mut in_place, DEFAULT_ETHERTYPE, &frame.macs)
            .expect("a parsed inner packet frames again");
        assert_eq!(&in_place[..m], &out[..]);
    }
});
