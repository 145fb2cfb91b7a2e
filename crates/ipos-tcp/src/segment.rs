//! TCP segment parsing and emission (RFC 9293 section 3.1, options from RFC 7323 and RFC 2018).
//!
//! The writer ([`TcpHeader`], [`TcpOptions`], [`write_header`], [`fill_checksum`]) is
//! public: it is the one the endpoint uses, and the node uses it for the bare segments it
//! writes itself (RSTs, rebuilt client segments).
//!
//! Parsing never panics: every length is checked before it is read. Unknown options are
//! skipped; SACK blocks (RFC 2018, at most 4 fit in the option space) are returned as-is
//! for the endpoint to validate against its send sequence space.

use core::fmt;

use smoltcp::wire::Ipv4Address;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Minimum TCP header length.
pub const HEADER_LEN: usize = 20;

/// Why a received segment was rejected. The segment is ignored; the endpoint is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentError {
    /// Shorter than 20 bytes, or shorter than its data offset says.
    Truncated,
    /// Data offset below 5 words.
    BadHeaderLength,
    /// An option with an impossible length.
    BadOption,
    /// Illegal flag combination (SYN+FIN, SYN+RST).
    BadFlags,
    /// `accept` was given something other than a plain SYN.
    NotSyn,
    /// The ports do not belong to this connection.
    PortMismatch,
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SegmentError::Truncated => "truncated TCP segment",
            SegmentError::BadHeaderLength => "bad TCP data offset",
            SegmentError::BadOption => "malformed TCP option",
            SegmentError::BadFlags => "illegal TCP flag combination",
            SegmentError::NotSyn => "segment is not a connection-opening SYN",
            SegmentError::PortMismatch => "segment ports do not match the connection",
        };
        f.write_str(s)
    }
}

impl std::error::Error for SegmentError {}

/// A parsed view of a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// Number of SACK blocks in `sack` (0..=4).
    pub sack_blocks: u8,
    /// SACK blocks `(left edge, right edge)` as received; only the first `sack_blocks` are valid.
    pub sack: [(u32, u32); 4],
    /// (TSval, TSecr)
    pub timestamp: Option<(u32, u32)>,
    pub payload: &'a [u8],
}

#[inline]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl<'a> Segment<'a> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Sequence space occupied: payload plus one for SYN and one for FIN.
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.has(SYN)) + u32::from(self.has(FIN))
    }

    /// Parse a whole TCP segment (header, options, payload).
    pub fn parse(buf: &'a [u8]) -> Result<Segment<'a>, SegmentError> {
        if buf.len() < HEADER_LEN {
            return Err(SegmentError::Truncated);
        }
        let doff = usize::from(buf[12] >> 4) * 4;
        if doff < HEADER_LEN {
            return Err(SegmentError::BadHeaderLength);
        }
        if doff > buf.len() {
            return Err(SegmentError::Truncated);
        }
        let flags = buf[13];
        if flags & SYN != 0 && flags & (FIN | RST) != 0 {
            return Err(SegmentError::BadFlags);
        }
        let mut seg = Segment {
            src_port: be16(buf, 0),
            dst_port: be16(buf, 2),
            seq: be32(buf, 4),
            ack: be32(buf, 8),
            flags,
            window: be16(buf, 14),
            mss: None,
            wscale: None,
            sack_permitted: false,
            sack_blocks: 0,
            sack: [(0, 0); 4],
            timestamp: None,
            payload: &buf[doff..],
        };
        let opts = &buf[HEADER_LEN..doff];
        let mut i = 0;
        while i < opts.len() {
            let kind = opts[i];
            match kind {
                0 => break,
                1 => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if i + 1 >= opts.len() {
                return Err(SegmentError::BadOption);
            }
            let len = usize::from(opts[i + 1]);
            if len < 2 || i + len > opts.len() {
                return Err(SegmentError::BadOption);
            }
            let body = &opts[i + 2..i + len];
            match kind {
                2 => {
                    if len != 4 {
                        return Err(SegmentError::BadOption);
                    }
                    seg.mss = Some(be16(body, 0));
                }
                3 => {
                    if len != 3 {
                        return Err(SegmentError::BadOption);
                    }
                    seg.wscale = Some(body[0]);
                }
                4 => {
                    if len != 2 {
                        return Err(SegmentError::BadOption);
                    }
                    seg.sack_permitted = true;
                }
                5 => {
                    if (len - 2) % 8 != 0 || len == 2 {
                        return Err(SegmentError::BadOption);
                    }
                    // The 40-byte option space holds at most 4 blocks (2 + 4 * 8 = 34).
                    let n = ((len - 2) / 8).min(4);
                    for k in 0..n {
                        seg.sack[k] = (be32(body, 8 * k), be32(body, 8 * k + 4));
                    }
                    seg.sack_blocks = n as u8;
                }
                8 => {
                    if len != 10 {
                        return Err(SegmentError::BadOption);
                    }
                    seg.timestamp = Some((be32(body, 0), be32(body, 4)));
                }
                _ => {}
            }
            i += len;
        }
        Ok(seg)
    }
}

/// The TCP options [`write_header`] writes after the fixed header. `Default` is none:
/// a bare 20-byte header.
///
/// Written in this order and layout (every option 4-byte aligned, NOPs for padding):
/// MSS (kind 2); SACK-permitted (kind 4) and timestamps (kind 8, RFC 7323) sharing one
/// 12-byte slot; window scale (kind 3, after a NOP); then SACK blocks (kind 5, RFC 2018)
/// after two NOPs. The TCP option space is 40 bytes: the caller keeps the combination
/// within it (the endpoint's own segments always are: at most 20 bytes on a SYN, at most
/// 3 SACK blocks next to a timestamp, 4 without).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window-scale shift (SYN only).
    pub wscale: Option<u8>,
    /// SACK-permitted (SYN only).
    pub sack_permitted: bool,
    /// `(TSval, TSecr)`.
    pub timestamp: Option<(u32, u32)>,
    /// SACK blocks `(left edge, right edge)`; the first `sack_n` are written.
    pub sack: [(u32, u32); 4],
    /// Number of valid entries in `sack` (0..=4; larger values count as 4).
    pub sack_n: u8,
}

impl TcpOptions {
    /// Bytes the options take after the 20-byte fixed header (a multiple of 4).
    pub fn len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamp.is_some() || self.sack_permitted {
            n += 12;
        }
        if self.wscale.is_some() {
            n += 4;
        }
        let sack_n = self.sack_blocks();
        if sack_n > 0 {
            n += 4 + 8 * sack_n;
        }
        n
    }

    /// True when there is no option: the header is 20 bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sack_blocks(&self) -> usize {
        usize::from(self.sack_n.min(4))
    }
}

/// The fixed fields of a TCP header (RFC 9293 section 3.1) that [`write_header`] writes.
/// The data offset follows from the options, the checksum is filled in afterwards by
/// [`fill_checksum`], and the urgent pointer is always zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with [`ACK`]; write 0 otherwise).
    pub ack: u32,
    /// Control bits: an OR of [`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`].
    pub flags: u8,
    /// Window field, as sent (already scaled down by the sender's shift).
    pub window: u16,
}

/// Write the TCP header `h` with options `opts` at the start of `out` and return the
/// header length, `20 + opts.len()`. The checksum field is left zero: put the payload
/// right after the header, then call [`fill_checksum`] over the whole segment.
///
/// # Panics
///
/// If `out` is shorter than `20 + opts.len()`.
///
/// # Example
///
/// A bare RST|ACK, as a node sends to refuse a segment for a connection it does not
/// know (RFC 9293 section 3.10.7.1: `seq` = the segment's ACK field, `ack` = its
/// sequence number plus its length):
///
/// ```
/// use ipos_tcp::{checksum_ok, fill_checksum, write_header, Ipv4Address, TcpHeader, TcpOptions};
/// use ipos_tcp::{ACK, RST};
///
/// let vip = Ipv4Address::new(198, 19, 1, 10);
/// let client = Ipv4Address::new(198, 18, 0, 1);
/// let h = TcpHeader {
///     src_port: 80,
///     dst_port: 49152,
///     seq: 0,
///     ack: 1001,
///     flags: RST | ACK,
///     window: 0,
/// };
/// let mut seg = [0u8; 20];
/// let n = write_header(&mut seg, &h, &TcpOptions::default());
/// assert_eq!(n, 20);
/// fill_checksum(vip, client, &mut seg[..n]);
/// assert!(checksum_ok(vip, client, &seg));
/// assert_eq!(seg[12], 5 << 4); // data offset: 5 words, no options
/// assert_eq!(seg[13], RST | ACK);
/// ```
pub fn write_header(out: &mut [u8], h: &TcpHeader, opts: &TcpOptions) -> usize {
    let hlen = HEADER_LEN + opts.len();
    debug_assert!(hlen <= 60, "TCP options exceed 40 bytes");
    out[0..2].copy_from_slice(&h.src_port.to_be_bytes());
    out[2..4].copy_from_slice(&h.dst_port.to_be_bytes());
    out[4..8].copy_from_slice(&h.seq.to_be_bytes());
    out[8..12].copy_from_slice(&h.ack.to_be_bytes());
    out[12] = ((hlen / 4) as u8) << 4;
    out[13] = h.flags;
    out[14..16].copy_from_slice(&h.window.to_be_bytes());
    out[16..20].fill(0);
    let mut i = HEADER_LEN;
    if let Some(mss) = opts.mss {
        out[i..i + 2].copy_from_slice(&[2, 4]);
        out[i + 2..i + 4].copy_from_slice(&mss.to_be_bytes());
        i += 4;
    }
    match (opts.sack_permitted, opts.timestamp) {
        (true, Some(_)) => {
            out[i..i + 2].copy_from_slice(&[4, 2]);
            i += 2;
        }
        (true, None) => {
            // SACK-permitted padded to a full 12-byte slot with NOPs.
            out[i..i + 12].copy_from_slice(&[1, 1, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
            i += 12;
        }
        (false, Some(_)) => {
            out[i..i + 2].copy_from_slice(&[1, 1]);
            i += 2;
        }
        (false, None) => {}
    }
    if let Some((tsval, tsecr)) = opts.timestamp {
        out[i..i + 2].copy_from_slice(&[8, 10]);
        out[i + 2..i + 6].copy_from_slice(&tsval.to_be_bytes());
        out[i + 6..i + 10].copy_from_slice(&tsecr.to_be_bytes());
        i += 10;
    }
    if let Some(ws) = opts.wscale {
        out[i..i + 4].copy_from_slice(&[1, 3, 3, ws]);
        i += 4;
    }
    let sack_n = opts.sack_blocks();
    if sack_n > 0 {
        out[i..i + 4].copy_from_slice(&[1, 1, 5, (2 + 8 * sack_n) as u8]);
        i += 4;
        for &(l, r) in &opts.sack[..sack_n] {
            out[i..i + 4].copy_from_slice(&l.to_be_bytes());
            out[i + 4..i + 8].copy_from_slice(&r.to_be_bytes());
            i += 8;
        }
    }
    debug_assert_eq!(i, hlen);
    hlen
}

/// The one's-complement checksum of `seg` (with its checksum field as it is) and the
/// IPv4 pseudo-header. A segment with a correct checksum field yields 0. The sum is
/// ipos-wire's (RFC 1071, eight bytes a step).
pub fn tcp_checksum(src: Ipv4Address, dst: Ipv4Address, seg: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = 6;
    pseudo[10..].copy_from_slice(&(seg.len() as u16).to_be_bytes());
    ipos_wire::checksum::checksum(&[&pseudo, seg])
}

/// Fill in the checksum field of a complete TCP segment (header, options, payload) in
/// place: the one's-complement sum over the IPv4 pseudo-header (`src`, `dst`, protocol 6,
/// the segment's length) and the segment with its checksum field zeroed (RFC 9293
/// section 3.1). `src` / `dst` are the addresses of the IPv4 packet that will carry it.
/// Afterwards [`checksum_ok`]`(src, dst, seg)` holds.
///
/// # Panics
///
/// If `seg` is shorter than the 20-byte TCP header.
pub fn fill_checksum(src: Ipv4Address, dst: Ipv4Address, seg: &mut [u8]) {
    assert!(
        seg.len() >= HEADER_LEN,
        "a TCP segment is at least 20 bytes"
    );
    seg[16] = 0;
    seg[17] = 0;
    let c = tcp_checksum(src, dst, seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

/// True when `seg` (sent from `src` to `dst`) carries a correct TCP checksum.
pub fn checksum_ok(src: Ipv4Address, dst: Ipv4Address, seg: &[u8]) -> bool {
    seg.len() >= HEADER_LEN && tcp_checksum(src, dst, seg) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // A SYN from a Linux client: ports 40000 -> 80, seq 0x01020304, window 64240,
    // options MSS 1460, SACK-permitted, TS(0x11223344, 0), NOP, WS 7.
    static SYN_BYTES: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, // ports
        0x01, 0x02, 0x03, 0x04, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urg
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, 0x08, 0x0a, // SACK-permitted, TS kind/len
        0x11, 0x22, 0x33, 0x44, // TSval
        0x00, 0x00, 0x00, 0x00, // TSecr
        0x01, 0x03, 0x03, 0x07, // NOP, WS 7
    ];

    #[test]
    fn parse_linux_syn() {
        let s = Segment::parse(&SYN_BYTES).unwrap();
        assert_eq!(s.src_port, 40000);
        assert_eq!(s.dst_port, 80);
        assert_eq!(s.seq, 0x01020304);
        assert!(s.has(SYN) && !s.has(ACK));
        assert_eq!(s.window, 64240);
        assert_eq!(s.mss, Some(1460));
        assert!(s.sack_permitted);
        assert_eq!(s.timestamp, Some((0x11223344, 0)));
        assert_eq!(s.wscale, Some(7));
        assert!(s.payload.is_empty());
        assert_eq!(s.seg_len(), 1);
    }

    #[test]
    fn emit_roundtrip_and_checksum() {
        let mut out = [0u8; 64];
        let h = TcpHeader {
            src_port: 40000,
            dst_port: 80,
            seq: 0x01020304,
            ack: 0,
            flags: SYN,
            window: 64240,
        };
        let o = TcpOptions {
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamp: Some((0x11223344, 0)),
            ..TcpOptions::default()
        };
        let n = write_header(&mut out, &h, &o);
        assert_eq!(&out[..n], &SYN_BYTES[..]);
        let a = Ipv4Address::new(198, 18, 0, 1);
        let b = Ipv4Address::new(198, 18, 0, 2);
        fill_checksum(a, b, &mut out[..n]);
        assert!(checksum_ok(a, b, &out[..n]));
        out[30] ^= 1;
        assert!(!checksum_ok(a, b, &out[..n]));
    }

    #[test]
    fn bare_rst_header_vector() {
        // RST|ACK from the VIP 198.19.1.10:80 to the client 198.18.0.1:49152.
        #[rustfmt::skip]
        let expect: [u8; 20] = [
            0x00, 0x50, 0xc0, 0x00, // ports 80 -> 49152
            0x01, 0x02, 0x03, 0x04, // seq
            0x0a, 0x0b, 0x0c, 0x0d, // ack
            0x50, 0x14, 0x00, 0x00, // doff 5, RST|ACK, window 0
            // checksum 0x4831, by hand: pseudo-header words 0xc613 + 0x010a + 0xc612
            // + 0x0001 + 0x0006 (protocol) + 0x0014 (length 20), header words 0x0050
            // + 0xc000 + 0x0102 + 0x0304 + 0x0a0b + 0x0c0d + 0x5014 = 0x2b7cc;
            // fold: 0xb7cc + 0x2 = 0xb7ce; complement: 0x4831. Urgent pointer 0.
            0x48, 0x31, 0x00, 0x00,
        ];
        let h = TcpHeader {
            src_port: 80,
            dst_port: 49152,
            seq: 0x0102_0304,
            ack: 0x0a0b_0c0d,
            flags: RST | ACK,
            window: 0,
        };
        let opts = TcpOptions::default();
        assert!(opts.is_empty());
        let mut out = [0xa5u8; 20];
        assert_eq!(write_header(&mut out, &h, &opts), HEADER_LEN);
        let vip = Ipv4Address::new(198, 19, 1, 10);
        let client = Ipv4Address::new(198, 18, 0, 1);
        fill_checksum(vip, client, &mut out);
        assert_eq!(out, expect);
        assert!(checksum_ok(vip, client, &out));
        let p = Segment::parse(&out).unwrap();
        assert_eq!((p.src_port, p.dst_port), (80, 49152));
        assert_eq!(
            (p.seq, p.ack, p.flags, p.window),
            (0x0102_0304, 0x0a0b_0c0d, RST | ACK, 0)
        );
        assert!(p.payload.is_empty());
    }

    #[test]
    fn malformed() {
        assert_eq!(
            Segment::parse(&SYN_BYTES[..19]),
            Err(SegmentError::Truncated)
        );
        assert_eq!(
            Segment::parse(&SYN_BYTES[..39]),
            Err(SegmentError::Truncated)
        );
        let mut b = SYN_BYTES;
        b[12] = 0x40;
        assert_eq!(Segment::parse(&b), Err(SegmentError::BadHeaderLength));
        let mut b = SYN_BYTES;
        b[21] = 0; // MSS option length 0
        assert_eq!(Segment::parse(&b), Err(SegmentError::BadOption));
        let mut b = SYN_BYTES;
        b[21] = 40; // runs past the header
        assert_eq!(Segment::parse(&b), Err(SegmentError::BadOption));
        let mut b = SYN_BYTES;
        b[13] = SYN | FIN;
        assert_eq!(Segment::parse(&b), Err(SegmentError::BadFlags));
        let mut b = SYN_BYTES;
        b[37] = 2; // window-scale option with length 2 is impossible
        assert_eq!(Segment::parse(&b), Err(SegmentError::BadOption));
        // SACK block option with a bad length
        let mut b = SYN_BYTES;
        b[36..40].copy_from_slice(&[5, 4, 0, 0]);
        assert_eq!(Segment::parse(&b), Err(SegmentError::BadOption));
        // SACK block ok: replace TS+WS (16 bytes from 24) with NOP NOP SACK(1 block) NOP NOP NOP NOP
        let mut b = SYN_BYTES;
        b[24..40].copy_from_slice(&[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 1, 1]);
        let s = Segment::parse(&b).unwrap();
        assert_eq!(s.sack_blocks, 1);
        assert_eq!(s.sack[0], (1, 2));
        assert_eq!(s.timestamp, None);
    }

    #[test]
    fn checksum_odd_length() {
        let a = Ipv4Address::new(198, 19, 1, 1);
        let b = Ipv4Address::new(198, 19, 1, 2);
        let mut seg = [0u8; 23];
        seg[..20].copy_from_slice(&SYN_BYTES[..20]);
        seg[12] = 0x50;
        seg[20..].copy_from_slice(b"abc");
        fill_checksum(a, b, &mut seg);
        assert!(checksum_ok(a, b, &seg));
        assert!(!checksum_ok(b, Ipv4Address::new(198, 19, 1, 3), &seg));
    }
}
