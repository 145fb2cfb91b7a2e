//! Builders of inner client packets for tests.

use crate::checksum;
use crate::header::Flow;

fn ipv4_header(flow: &Flow, protocol: u8, total_len: u16, ident: u16) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&flow.src_addr.octets());
    h[16..20].copy_from_slice(&flow.dst_addr.octets());
    let c = checksum::checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn pseudo(flow: &Flow, protocol: u8, len: u16) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&flow.src_addr.octets());
    p[4..8].copy_from_slice(&flow.dst_addr.octets());
    p[9] = protocol;
    p[10..12].copy_from_slice(&len.to_be_bytes());
    p
}

/// IPv4/TCP packet from the flow's source to its destination, PSH|ACK.
pub fn tcp_packet(flow: &Flow, payload: &[u8]) -> Vec<u8> {
    let seg_len = 20 + payload.len();
    let mut seg = vec![0u8; seg_len];
    seg[0..2].copy_from_slice(&flow.src_port.to_be_bytes());
    seg[2..4].copy_from_slice(&flow.dst_port.to_be_bytes());
    seg[4..8].copy_from_slice(&1u32.to_be_bytes());
    seg[8..12].copy_from_slice(&1u32.to_be_bytes());
    seg[12] = 0x50;
    seg[13] = 0x18;
    seg[14..16].copy_from_slice(&1024u16.to_be_bytes());
    seg[20..].copy_from_slice(payload);
    let c = checksum::checksum(&[&pseudo(flow, 6, seg_len as u16), &seg]);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    let mut out = ipv4_header(flow, 6, (20 + seg_len) as u16, 1).to_vec();
    out.extend_from_slice(&seg);
    out
}

/// IPv4/UDP packet from the flow's source to its destination.
pub fn udp_packet(flow: &Flow, payload: &[u8]) -> Vec<u8> {
    let seg_len = 8 + payload.len();
    let mut seg = vec![0u8; seg_len];
    seg[0..2].copy_from_slice(&flow.src_port.to_be_bytes());
    seg[2..4].copy_from_slice(&flow.dst_port.to_be_bytes());
    seg[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
    seg[8..].copy_from_slice(payload);
    let c = checksum::checksum(&[&pseudo(flow, 17, seg_len as u16), &seg]);
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    let mut out = ipv4_header(flow, 17, (20 + seg_len) as u16, 2).to_vec();
    out.extend_from_slice(&seg);
    out
}
