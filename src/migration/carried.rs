//! The bytes a move carries, without I/O.
//!
//! Bytes the source received but its application did not consume travel as
//! client IPv4/TCP packets the source rebuilds ([`emit_request_segment`]),
//! cut into [`CHUNK`]-byte pieces at fixed offsets from
//! `rcv_nxt - rcv_data_len`, each in an ipOS data frame. The target keeps a
//! [`Reassembly`] per incoming move until every piece is in, and the
//! service-state record too when the TCB announces one (`service_len`).

use super::{CHUNK, MAX_CARRIED};
use ipos_tcp::{fill_checksum, write_header, Tcb, TcpHeader, TcpOptions, ACK, PSH};
use ipos_wire::headers::IPV4_LEN;
use ipos_wire::{emit_ipv4_header, Flow, Ipv4Header};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address};

const TCP_HEADER_LEN: usize = 20;

/// Number of chunks needed for `len` carried bytes.
pub fn chunk_count(len: usize) -> usize {
    len.div_ceil(CHUNK)
}

/// Writes a client IPv4/TCP packet of `flow` (client -> VIP) carrying
/// `payload` at sequence number `seq` (ACK|PSH, acknowledging `ack`, window
/// `window`) into `out`; returns its length, or None when `out` is too small.
pub fn emit_request_segment(
    out: &mut [u8],
    flow: &Flow,
    seq: u32,
    ack: u32,
    window: u16,
    ident: u16,
    payload: &[u8],
) -> Option<usize> {
    let tcp_len = TCP_HEADER_LEN + payload.len();
    let total = IPV4_LEN + tcp_len;
    let out = out.get_mut(..total)?;
    let ip = Ipv4Header {
        src: flow.src_addr,
        dst: flow.dst_addr,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len,
        ident,
    };
    emit_ipv4_header(out, &ip).ok()?;
    let t = &mut out[IPV4_LEN..];
    let h = TcpHeader {
        src_port: flow.src_port,
        dst_port: flow.dst_port,
        seq,
        ack,
        flags: ACK | PSH,
        window,
    };
    let hlen = write_header(t, &h, &TcpOptions::default());
    t[hlen..].copy_from_slice(payload);
    fill_checksum(flow.src_addr, flow.dst_addr, t);
    Some(total)
}

/// Why a carried chunk was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Not at a chunk boundary, or beyond the carried range, or wrong size.
    OutOfRange,
    /// A service-state record of another length than the TCB announced.
    ServiceLength,
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
    /// The service-state record (`tcb.service_len` bytes once it is in).
    service: Vec<u8>,
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
            service: Vec::new(),
        })
    }

    /// Takes the service-state record (a repeat replaces it).
    pub fn add_service(&mut self, record: &[u8]) -> Result<(), ChunkError> {
        if record.is_empty() || record.len() != usize::from(self.tcb.service_len) {
            return Err(ChunkError::ServiceLength);
        }
        self.service.clear();
        self.service.extend_from_slice(record);
        Ok(())
    }

    /// The service-state record (empty when none was announced).
    pub fn service(&self) -> &[u8] {
        &self.service
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

    /// True when every carried byte is here, and the service-state record
    /// when the TCB announced one.
    pub fn is_complete(&self) -> bool {
        self.have & self.need == self.need
            && self.service.len() == usize::from(self.tcb.service_len)
    }

    /// The carried bytes (valid once complete).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket};

    #[test]
    fn request_segment_has_valid_checksums() {
        let mut buf = [0u8; 100];
        let c = (Ipv4Address::new(198, 18, 0, 1), 40000);
        let v = (Ipv4Address::new(198, 18, 0, 100), 80);
        let flow = Flow {
            src_addr: c.0,
            src_port: c.1,
            dst_addr: v.0,
            dst_port: v.1,
        };
        let n = emit_request_segment(
            &mut buf,
            &flow,
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
        assert!(
            emit_request_segment(&mut buf[..50], &flow, 0, 0, 0, 0, b"0123456789abc").is_none()
        );
    }

    fn tcb_with(rcv_nxt: u32, len: u32) -> Tcb {
        let flow = ipos_wire::Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 100),
            src_port: 80,
            dst_addr: Ipv4Address::new(198, 18, 0, 1),
            dst_port: 40000,
        };
        let now = Instant::from_millis(0);
        let mut t =
            ipos_tcp::Endpoint::connect(&ipos_tcp::Config::default(), flow, 1, now).export(now);
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
        let mut t = tcb_with(5000, 0);
        t.service_len = 3;
        let mut r = Reassembly::new(t, EthernetAddress([2, 0, 0, 0, 0, 1]), Instant::ZERO).unwrap();
        assert!(!r.is_complete(), "waits for the announced record");
        assert_eq!(r.add_service(b"ab"), Err(ChunkError::ServiceLength));
        assert!(!r.is_complete());
        assert_eq!(r.add_service(b"abc"), Ok(()));
        assert!(r.is_complete());
        assert_eq!(r.service(), b"abc");
        assert!(Reassembly::new(
            tcb_with(0, (MAX_CARRIED + 1) as u32),
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            Instant::from_millis(0)
        )
        .is_none());
    }
}
