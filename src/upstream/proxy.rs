//! The PROXY protocol version 2 header (HAProxy's specification, section 2.2),
//! which nginx (`listen ... proxy_protocol`), HAProxy and Envoy read: the
//! first bytes a relayed connection sends its upstream, so that the
//! application sees the client's address instead of the node's.
//!
//! Only the form ipos needs is written: command PROXY, family TCP over IPv4,
//! no TLVs: 16 bytes of header and 12 of addresses.
//!
//! | bytes | field | value |
//! |---|---|---|
//! | 0..12 | signature | `0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A` |
//! | 12 | version and command | `0x21`: version 2, PROXY |
//! | 13 | family and transport | `0x11`: AF_INET, STREAM |
//! | 14..16 | address length | 12, big-endian |
//! | 16..20 | source address | the client's IPv4 address |
//! | 20..24 | destination address | the address the client connected to (the VIP) |
//! | 24..26 | source port | the client's port |
//! | 26..28 | destination port | the service port |

use ipos_wire::Flow;

/// The protocol's 12-byte signature.
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// The length of the header [`header`] writes.
pub const HEADER_LEN: usize = 28;

/// The PROXY v2 header of a client connection (`flow` names the client as
/// its source and the address it connected to as its destination).
pub fn header(flow: &Flow) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..12].copy_from_slice(&SIGNATURE);
    h[12] = 0x21;
    h[13] = 0x11;
    h[14..16].copy_from_slice(&12u16.to_be_bytes());
    h[16..20].copy_from_slice(&flow.src_addr.octets());
    h[20..24].copy_from_slice(&flow.dst_addr.octets());
    h[24..26].copy_from_slice(&flow.src_port.to_be_bytes());
    h[26..28].copy_from_slice(&flow.dst_port.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    #[test]
    fn the_header_of_a_client_connection_byte_for_byte() {
        let flow = Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: 40000,
            dst_addr: Ipv4Address::new(198, 18, 0, 100),
            dst_port: 80,
        };
        let want: [u8; 28] = [
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54,
            0x0A, // signature
            0x21, 0x11, 0x00, 0x0C, // v2 PROXY, TCP over IPv4, 12 bytes
            198, 18, 0, 1, // source
            198, 18, 0, 100, // destination
            0x9C, 0x40, // 40000
            0x00, 0x50, // 80
        ];
        assert_eq!(header(&flow), want);
    }
}
