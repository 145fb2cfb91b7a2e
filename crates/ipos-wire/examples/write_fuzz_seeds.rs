//! Write real ipOS frames, one per file, as a seed corpus for the fuzz target.
//!
//! ```text
//! cargo run -p ipos-wire --example write_fuzz_seeds -- fuzz/seeds/frame
//! ```

use ipos_wire::checksum::checksum;
use ipos_wire::{
    emit_ack, emit_data_header, emit_extension, emit_tcp_connection, emit_udp_connection,
    ExtensionKind, Flow, MacAddrs, Protocol, DATA_HEADROOM, DEFAULT_ETHERTYPE, TCB_LEN,
};
use smoltcp::wire::{EthernetAddress, Ipv4Address};
use std::path::PathBuf;

/// IPv4 + TCP (`tcp == true`, PSH|ACK) or UDP packet from `flow`'s source to
/// its destination, valid checksums.
fn inner(flow: &Flow, tcp: bool, payload: &[u8]) -> Vec<u8> {
    let (proto, hl) = if tcp { (6u8, 20) } else { (17u8, 8) };
    let seg_len = hl + payload.len();
    let mut seg = vec![0u8; seg_len];
    seg[0..2].copy_from_slice(&flow.src_port.to_be_bytes());
    seg[2..4].copy_from_slice(&flow.dst_port.to_be_bytes());
    if tcp {
        seg[4..8].copy_from_slice(&0x1000_0001u32.to_be_bytes());
        seg[8..12].copy_from_slice(&0x2000_0001u32.to_be_bytes());
        seg[12] = 0x50;
        seg[13] = 0x18;
        seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    } else {
        seg[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
    }
    seg[hl..].copy_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&flow.src_addr.octets());
    pseudo[4..8].copy_from_slice(&flow.dst_addr.octets());
    pseudo[9] = proto;
    pseudo[10..12].copy_from_slice(&(seg_len as u16).to_be_bytes());
    let c = checksum(&[&pseudo, &seg]);
    let at = if tcp { 16 } else { 6 };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());

    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + seg_len) as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&flow.src_addr.octets());
    ip[16..20].copy_from_slice(&flow.dst_addr.octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut out = ip.to_vec();
    out.extend_from_slice(&seg);
    out
}

fn data_frame(macs: &MacAddrs, packet: &[u8], padding: usize) -> Vec<u8> {
    let mut buf = vec![0u8; DATA_HEADROOM];
    buf.extend_from_slice(packet);
    buf.resize(buf.len() + padding, 0);
    let n = emit_data_header(&mut buf, DEFAULT_ETHERTYPE, macs).expect("valid inner packet");
    buf.truncate(n + padding);
    buf
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: write_fuzz_seeds DIR")?
        .into();
    std::fs::create_dir_all(&dir)?;
    let et = DEFAULT_ETHERTYPE;
    let macs = MacAddrs {
        dst: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
        src: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
    };
    let web = Flow {
        src_addr: Ipv4Address::new(198, 18, 0, 1),
        src_port: 49152,
        dst_addr: Ipv4Address::new(198, 19, 1, 10),
        dst_port: 80,
    };
    let dns = Flow {
        dst_port: 53,
        ..web
    };
    let server = Ipv4Address::new(198, 18, 0, 2);
    let tcb: [u8; TCB_LEN] = core::array::from_fn(|i| (i * 7) as u8);

    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 256];
    let n = emit_tcp_connection(&mut buf, et, &macs, &web, server, 8080, &tcb)?;
    seeds.push(("tcp_connection", buf[..n].to_vec()));
    let n = emit_udp_connection(&mut buf, et, &macs, &dns, server, 5353)?;
    seeds.push(("udp_connection", buf[..n].to_vec()));
    let mut padded = buf[..n].to_vec();
    padded.resize(60, 0);
    seeds.push(("udp_connection_padded", padded));
    let n = emit_ack(&mut buf, et, &macs, &web, Protocol::Tcp)?;
    seeds.push(("ack_tcp", buf[..n].to_vec()));
    let n = emit_ack(&mut buf, et, &macs, &dns, Protocol::Udp)?;
    let mut padded = buf[..n].to_vec();
    padded.resize(60, 0);
    seeds.push(("ack_udp_padded", padded));
    let n = emit_extension(
        &mut buf,
        et,
        &macs,
        &web,
        ExtensionKind::ServerState,
        Protocol::Tcp,
        &[0, 0, 0, 12, 0, 40, 0, 0, 1, 0],
    )?;
    seeds.push(("ext_server_state", buf[..n].to_vec()));
    let n = emit_extension(
        &mut buf,
        et,
        &macs,
        &web,
        ExtensionKind::ConnectionNotice,
        Protocol::Tcp,
        &[],
    )?;
    seeds.push(("ext_connection_notice", buf[..n].to_vec()));
    let get = b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n";
    seeds.push(("tcp_data", data_frame(&macs, &inner(&web, true, get), 0)));
    seeds.push((
        "tcp_data_ack_only_padded",
        data_frame(&macs, &inner(&web, true, &[]), 6),
    ));
    seeds.push((
        "udp_data",
        data_frame(&macs, &inner(&dns, false, b"query"), 0),
    ));
    seeds.push((
        "udp_data_empty_padded",
        data_frame(&macs, &inner(&dns, false, &[]), 2),
    ));

    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("wrote {} seeds to {}", seeds.len(), dir.display());
    Ok(())
}
