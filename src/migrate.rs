//! Endpoint migration: the pieces of the protocol that need no I/O.
//!
//! # Protocol (source S, target T, front/forwarder F; S = F on a first move)
//!
//! 1. S freezes the endpoint (it stops sending on it and holds every client
//!    packet that arrives meanwhile: the connection is in the *temporary*
//!    state), exports its TCB and sends T a **TCP connection packet**
//!    (type 0x01/0x01): server IP and port = T's, the 140-byte TCB. In the
//!    TCB's node-owned fields, `link_addr` is the client's next-hop MAC and
//!    `next_hop` the IPv4 address of F, the node that receives the client's
//!    packets and will forward them.
//! 2. Bytes S received but its application did not consume (the request
//!    head, typically) travel as **TCP data frames** (0x02/0x01) right after
//!    the connection packet: each holds a client IPv4/TCP packet rebuilt by S
//!    (client -> VIP, `seq` = the byte's sequence number, ACK|PSH, valid
//!    checksums), cut into [`CHUNK`]-byte pieces at fixed offsets from
//!    `rcv_nxt - rcv_data_len`. Sent-but-unacknowledged data is never
//!    carried: S migrates only established endpoints whose send buffer is
//!    empty and whose peer has not closed its side (so the carried bytes end
//!    exactly at `rcv_nxt`); any other keeps its connection.
//! 3. T keeps a [`Reassembly`] per connection until all `rcv_data_len` bytes
//!    are there, then imports the endpoint (*forward-connect* entry: owned
//!    here, fed by F) and answers with a **migration acknowledgement** (0x03).
//!    It does not send the client a single segment yet.
//! 4. On the acknowledgement S installs a **forward** entry (client IP and
//!    port -> T), answers T with an acknowledgement of its own (the *commit*,
//!    an ipos use of type 0x03 in the other direction), sends T the client
//!    packets it held, and drops its copy of the endpoint. If S is not F (a
//!    chained move), S also tells F with a *connection notice* so that F
//!    forwards to T directly. On the commit T starts serving: its segments go
//!    straight to the client, from the VIP.
//! 5. Lost frames: S resends steps 1 and 2 after a retry interval that
//!    doubles each time up to 8 times the first (40, 80, 160, 320, 320 ms...);
//!    T answers a repeated connection packet for an endpoint it already holds
//!    with another acknowledgement, and repeats its acknowledgement on the
//!    same schedule until the commit arrives; S answers an acknowledgement for
//!    a connection it already forwards to T with another commit. After its
//!    bounded retries S thaws the endpoint, serves the connection itself, and
//!    sends T a connection notice naming S as the owner; T drops its silent
//!    copy on that notice, or by itself after twice S's retries. Because T
//!    says nothing before the commit, the client never hears from two owners:
//!    no byte is sent twice, whichever frames are lost.
//! 6. A node that receives a connection packet for a client it forwards
//!    (the endpoint comes back, a -> b -> a) drops its forward entry first.
//!    A SYN from a forwarded client port starts a new connection: the stale
//!    entry (its close notice was lost) is removed.
//! 7. End: when T's endpoint closes, T sends F a connection notice with owner
//!    0.0.0.0:0 and F removes its forward entry; idle forward entries expire.
//!
//! # Connection notice (ipos extension type 0x11, body 6 bytes)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | new owner IPv4 address (0.0.0.0: the connection closed; the sender's own address, sent to a target: "I kept it, forget yours") |
//! | 4 | 2 | new owner port |
//!
//! The ipOS header's flow names the connection (client IP/port, VIP/port).

use ipos_tcp::Tcb;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket};

/// Moves one connection may make (a -> b -> c is two); a node holding an
/// endpoint that has moved this often keeps it, whatever its policy says.
pub const MAX_MOVES: u16 = 2;
/// Payload bytes per rebuilt request segment.
pub const CHUNK: usize = 1400;
/// Most chunks a migration carries (so at most 89 600 unconsumed bytes).
pub const MAX_CHUNKS: usize = 64;
/// Most unconsumed bytes a migration carries; more keeps the connection local.
pub const MAX_CARRIED: usize = CHUNK * MAX_CHUNKS;
/// Length of a connection notice body.
pub const NOTICE_LEN: usize = 6;

/// A connection notice: the connection moved to `owner`, or closed when the
/// owner is 0.0.0.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// New owner address (unspecified: closed).
    pub owner_ip: Ipv4Address,
    /// New owner port.
    pub owner_port: u16,
}

impl Notice {
    /// The "closed" notice.
    pub const CLOSED: Notice = Notice {
        owner_ip: Ipv4Address::UNSPECIFIED,
        owner_port: 0,
    };

    /// Parses a notice body (trailing padding ignored).
    pub fn parse(body: &[u8]) -> Option<Notice> {
        if body.len() < NOTICE_LEN {
            return None;
        }
        Some(Notice {
            owner_ip: Ipv4Address::new(body[0], body[1], body[2], body[3]),
            owner_port: u16::from_be_bytes([body[4], body[5]]),
        })
    }

    /// Writes the 6-byte body.
    pub fn emit(&self) -> [u8; NOTICE_LEN] {
        let o = self.owner_ip.octets();
        let p = self.owner_port.to_be_bytes();
        [o[0], o[1], o[2], o[3], p[0], p[1]]
    }

    /// True for the "closed" notice.
    pub fn is_closed(&self) -> bool {
        self.owner_ip.is_unspecified()
    }
}

/// Number of chunks needed for `len` carried bytes.
pub fn chunk_count(len: usize) -> usize {
    len.div_ceil(CHUNK)
}

/// Writes a client IPv4/TCP packet (client -> VIP) carrying `payload` at
/// sequence number `seq` into `out`; returns its length, or None when `out`
/// is too small.
#[allow(clippy::too_many_arguments)]
pub fn emit_request_segment(
    out: &mut [u8],
    client: (Ipv4Address, u16),
    vip: (Ipv4Address, u16),
    seq: u32,
    ack: u32,
    window: u16,
    ident: u16,
    payload: &[u8],
) -> Option<usize> {
    let total = 20 + 20 + payload.len();
    if out.len() < total || total > u16::MAX as usize {
        return None;
    }
    let out = &mut out[..total];
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut out[..20]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_dscp(0);
        ip.set_ecn(0);
        ip.set_total_len(total as u16);
        ip.set_ident(ident);
        ip.clear_flags();
        ip.set_dont_frag(true);
        ip.set_frag_offset(0);
        ip.set_hop_limit(64);
        ip.set_next_header(IpProtocol::Tcp);
        ip.set_src_addr(client.0);
        ip.set_dst_addr(vip.0);
        ip.fill_checksum();
    }
    let t = &mut out[20..];
    t[0..2].copy_from_slice(&client.1.to_be_bytes());
    t[2..4].copy_from_slice(&vip.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x18; // ACK | PSH
    t[14..16].copy_from_slice(&window.to_be_bytes());
    t[16..20].fill(0);
    t[20..].copy_from_slice(payload);
    TcpPacket::new_unchecked(&mut t[..])
        .fill_checksum(&IpAddress::Ipv4(client.0), &IpAddress::Ipv4(vip.0));
    Some(total)
}

/// Why a carried chunk was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Not at a chunk boundary, or beyond the carried range, or wrong size.
    OutOfRange,
}

/// A target's temporary state for an incoming migration: the TCB and the
/// carried bytes received so far.
#[derive(Debug)]
pub struct Reassembly {
    /// The imported TCB (parsed).
    pub tcb: Tcb,
    /// The forwarder's IPv4 address (from the TCB's `next_hop`).
    pub forwarder_ip: Ipv4Address,
    /// The sender of the connection packet (source MAC), acknowledged on completion.
    pub source_mac: EthernetAddress,
    /// When the first connection packet arrived.
    pub started: Instant,
    base: u32,
    data: Vec<u8>,
    have: u64,
    need: u64,
}

impl Reassembly {
    /// Starts reassembly for `tcb`; None when it carries too many bytes.
    pub fn new(tcb: Tcb, source_mac: EthernetAddress, now: Instant) -> Option<Reassembly> {
        let len = tcb.rcv_data_len as usize;
        if len > MAX_CARRIED {
            return None;
        }
        let n = chunk_count(len);
        let need = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let nh = tcb.next_hop;
        Some(Reassembly {
            base: tcb.rcv_nxt.wrapping_sub(tcb.rcv_data_len),
            forwarder_ip: Ipv4Address::new(nh[0], nh[1], nh[2], nh[3]),
            tcb,
            source_mac,
            started: now,
            data: vec![0; len],
            have: 0,
            need,
        })
    }

    /// Takes a carried chunk at sequence number `seq`.
    pub fn add(&mut self, seq: u32, payload: &[u8]) -> Result<(), ChunkError> {
        let off = seq.wrapping_sub(self.base) as usize;
        if !off.is_multiple_of(CHUNK) || off >= self.data.len() {
            return Err(ChunkError::OutOfRange);
        }
        let want = CHUNK.min(self.data.len() - off);
        if payload.len() != want {
            return Err(ChunkError::OutOfRange);
        }
        self.data[off..off + want].copy_from_slice(payload);
        self.have |= 1u64 << (off / CHUNK);
        Ok(())
    }

    /// True when every carried byte is here.
    pub fn is_complete(&self) -> bool {
        self.have & self.need == self.need
    }

    /// The carried bytes (valid once complete).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_round_trip() {
        let n = Notice {
            owner_ip: Ipv4Address::new(198, 18, 0, 13),
            owner_port: 80,
        };
        assert_eq!(n.emit(), [198, 18, 0, 13, 0, 80]);
        assert_eq!(Notice::parse(&n.emit()), Some(n));
        assert_eq!(Notice::parse(&[0; 5]), None);
        assert!(Notice::parse(&[0; 6]).unwrap().is_closed());
    }

    #[test]
    fn request_segment_has_valid_checksums() {
        let mut buf = [0u8; 100];
        let c = (Ipv4Address::new(198, 18, 0, 1), 40000);
        let v = (Ipv4Address::new(198, 18, 0, 100), 80);
        let n = emit_request_segment(
            &mut buf,
            c,
            v,
            1000,
            2000,
            512,
            7,
            b"GET / HTTP/1.1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(n, 58);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&IpAddress::Ipv4(c.0), &IpAddress::Ipv4(v.0)));
        assert_eq!(tcp.seq_number().0, 1000);
        assert_eq!(tcp.payload(), b"GET / HTTP/1.1\r\n\r\n");
        assert!(emit_request_segment(&mut buf[..50], c, v, 0, 0, 0, 0, b"0123456789abc").is_none());
    }

    fn tcb_with(rcv_nxt: u32, len: u32) -> Tcb {
        let tuple = ipos_tcp::FourTuple {
            local_ip: Ipv4Address::new(198, 18, 0, 1),
            local_port: 40000,
            remote_ip: Ipv4Address::new(198, 18, 0, 100),
            remote_port: 80,
        };
        let now = Instant::from_millis(0);
        let mut t =
            ipos_tcp::Endpoint::connect(&ipos_tcp::Config::default(), tuple, 1, now).export(now);
        t.rcv_nxt = rcv_nxt;
        t.rcv_data_len = len;
        t
    }

    #[test]
    fn reassembly_needs_every_chunk() {
        let len = CHUNK + 100;
        let mut r = Reassembly::new(
            tcb_with(5000u32.wrapping_add(len as u32), len as u32),
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            Instant::from_millis(0),
        )
        .unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert!(!r.is_complete());
        assert_eq!(r.add(5000 + CHUNK as u32, &data[CHUNK..]), Ok(()));
        assert!(!r.is_complete());
        assert_eq!(
            r.add(5001, &data[1..CHUNK + 1]),
            Err(ChunkError::OutOfRange)
        );
        assert_eq!(r.add(5000, &data[..10]), Err(ChunkError::OutOfRange));
        assert_eq!(r.add(5000, &data[..CHUNK]), Ok(()));
        // Duplicates are harmless.
        assert_eq!(r.add(5000, &data[..CHUNK]), Ok(()));
        assert!(r.is_complete());
        assert_eq!(r.data(), &data[..]);
        assert!(Reassembly::new(
            tcb_with(0, (MAX_CARRIED + 1) as u32),
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            Instant::from_millis(0)
        )
        .is_none());
    }
}
