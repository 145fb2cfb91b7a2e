//! The `reassembly` and `endpoint` targets: a server endpoint after a real
//! handshake with a scripted peer, fed segment sequences decoded from the
//! input, with time advancing, checked against models of the byte streams.
//!
//! Every byte either side sends is a function of its sequence number
//! ([`bytes_in`], [`bytes_out`]), so whatever segments the input makes up, the
//! bytes the application reads and the bytes the endpoint sends can be
//! checked one by one.

use crate::input::{Reader, Writer};
use ipos::migration::{Reassembly, CHUNK, MAX_CARRIED};
use ipos_tcp::{
    checksum_ok, fill_checksum, write_header, Config, Endpoint, Flow, Instant, Ipv4Address,
    Segment, State, Tcb, TcpHeader, TcpOptions, ACK, FIN, PSH, RST, SYN,
};
use smoltcp::time::Duration;
use std::sync::OnceLock;

/// Longest run of stream bytes [`bytes_in`] and [`bytes_out`] give at once.
pub const MAX_RUN: usize = 70_000;

/// Bytes of one side's stream, a function of the sequence number with a
/// period of 2^16 (a divisor of 2^32, so the stream goes on across the
/// wrap), laid out twice so that any run is one slice (compared with one
/// `memcmp`, not byte by byte).
fn table(salt: u32) -> Vec<u8> {
    (0..65_536 + MAX_RUN as u32)
        .map(|i| {
            let x = (i & 0xffff).wrapping_add(salt).wrapping_mul(0x9E37_79B1);
            (x >> 24) as u8 ^ (x >> 11) as u8
        })
        .collect()
}

/// The `n` bytes (at most [`MAX_RUN`]) the peer sends from sequence number `seq`.
pub fn bytes_in(seq: u32, n: usize) -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    &T.get_or_init(|| table(0x51))[(seq & 0xffff) as usize..][..n]
}

/// The `n` bytes (at most [`MAX_RUN`]) the server application writes from
/// sequence number `seq`.
pub fn bytes_out(seq: u32, n: usize) -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    &T.get_or_init(|| table(0xa7c3))[(seq & 0xffff) as usize..][..n]
}

/// The connection: client (the scripted peer) -> server.
pub fn flow() -> Flow {
    Flow {
        src_addr: Ipv4Address::new(198, 18, 0, 1),
        src_port: 40_000,
        dst_addr: Ipv4Address::new(198, 18, 0, 100),
        dst_port: 80,
    }
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// How the connection is set up: the first bytes of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// The peer's initial sequence number.
    pub peer_isn: u32,
    /// The server's initial sequence number.
    pub iss: u32,
    /// Bit 0 timestamps, 1 SACK-permitted, 2 window scale offered by the
    /// peer; bits 3-5 the server's window-scale shift; bits 6-7 buffer size.
    pub options: u8,
    /// The peer's advertised MSS (at least 64).
    pub peer_mss: u16,
}

impl Setup {
    /// Decodes the set-up.
    pub fn read(r: &mut Reader<'_>) -> Setup {
        Setup {
            peer_isn: r.u32(),
            iss: r.u32(),
            options: r.u8(),
            peer_mss: r.u16(),
        }
    }

    /// Encodes it.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.peer_isn)
            .u32(self.iss)
            .u8(self.options)
            .u16(self.peer_mss);
    }

    fn timestamps(&self) -> bool {
        self.options & 1 != 0
    }

    /// The server's configuration: small buffers (1, 4, 16 or 64 KiB), so
    /// that windows close and rings wrap.
    pub fn config(&self) -> Config {
        let buf = 1024 << (2 * (self.options >> 6));
        Config {
            rcv_buf: buf,
            snd_buf: buf,
            window_scale: (self.options >> 3) & 7,
            mss: 536,
            ..Config::default()
        }
    }
}

/// The scripted peer: what it sent so far.
pub struct Peer {
    /// Its next TSval (it only ever grows, so PAWS never drops a segment
    /// for the wrong reason).
    pub tsval: u32,
    /// The last TSval the server sent (echoed).
    pub ts_recent: u32,
    /// Whether timestamps are in use.
    pub ts: bool,
    /// The sequence number of the peer's first data byte.
    pub base: u32,
}

impl Peer {
    /// A segment from the peer at `seq` with the bytes that belong there.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        out: &mut Vec<u8>,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        len: usize,
        sack: &[(u32, u32)],
    ) {
        let ts = self.ts.then(|| {
            self.tsval = self.tsval.wrapping_add(1);
            (self.tsval, self.ts_recent)
        });
        let n = sack.len().min(if ts.is_some() { 3 } else { 4 });
        let mut opts = TcpOptions {
            timestamp: ts,
            sack_n: n as u8,
            ..TcpOptions::default()
        };
        opts.sack[..n].copy_from_slice(&sack[..n]);
        let f = flow();
        let h = TcpHeader {
            src_port: f.src_port,
            dst_port: f.dst_port,
            seq,
            ack,
            flags,
            window,
        };
        out.clear();
        out.resize(20 + opts.len() + len, 0);
        let hl = write_header(out, &h, &opts);
        let first = seq.wrapping_add(u32::from(flags & SYN != 0));
        out[hl..].copy_from_slice(bytes_in(first, len));
        fill_checksum(f.src_addr, f.dst_addr, out);
    }

    /// Notes what a server segment echoes.
    pub fn saw(&mut self, seg: &Segment<'_>) {
        if let Some((tsval, _)) = seg.timestamp {
            self.ts_recent = tsval;
        }
    }
}

/// A server endpoint that completed a handshake with the peer at `now`.
pub fn established(setup: &Setup, now: Instant) -> (Endpoint, Peer) {
    let f = flow();
    let ts = setup.timestamps();
    let opts = TcpOptions {
        mss: Some(setup.peer_mss.max(64)),
        wscale: (setup.options & 4 != 0).then_some(7),
        sack_permitted: setup.options & 2 != 0,
        timestamp: ts.then_some((1, 0)),
        ..TcpOptions::default()
    };
    let mut syn = vec![0u8; 20 + opts.len()];
    let h = TcpHeader {
        src_port: f.src_port,
        dst_port: f.dst_port,
        seq: setup.peer_isn,
        ack: 0,
        flags: SYN,
        window: 65535,
    };
    write_header(&mut syn, &h, &opts);
    fill_checksum(f.src_addr, f.dst_addr, &mut syn);
    let mut ep = Endpoint::accept(&setup.config(), f, &syn, setup.iss, now).expect("a SYN");
    let mut peer = Peer {
        tsval: 1,
        ts_recent: 0,
        ts,
        base: setup.peer_isn.wrapping_add(1),
    };
    let mut buf = [0u8; 1600];
    let n = ep.poll_transmit(now, &mut buf).expect("a SYN-ACK");
    let synack = Segment::parse(&buf[..n]).expect("a SYN-ACK parses");
    peer.saw(&synack);
    let mut ack = Vec::new();
    peer.segment(
        &mut ack,
        peer.base,
        setup.iss.wrapping_add(1),
        ACK,
        65535,
        0,
        &[],
    );
    ep.on_segment(now, &ack).expect("the handshake's ACK");
    assert_eq!(ep.state(), State::Established);
    (ep, peer)
}

/// Reads everything the application can; checks it against [`bytes_in`].
fn consume(ep: &mut Endpoint, read: &mut u64, base: u32, limit: usize) {
    let mut left = limit;
    while left > 0 {
        let s = ep.recv_slice();
        if s.is_empty() {
            break;
        }
        let n = s.len().min(left).min(MAX_RUN);
        let seq = base.wrapping_add(*read as u32);
        assert!(s[..n] == *bytes_in(seq, n), "bytes {}.. read differ", *read);
        ep.recv_consume(n);
        *read += n as u64;
        left -= n;
    }
}

/// One step of a `reassembly` input (endpoint mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasmOp {
    /// Stream bytes `[off, off + len)` (offsets modulo the stream length),
    /// with a FIN when they reach the end and `fin` is set.
    Segment { off: u16, len: u16, fin: bool },
    /// The application reads up to `n` bytes (0: all).
    Consume { n: u16 },
    /// `ms + 1` milliseconds pass.
    Advance { ms: u8 },
    /// The endpoint sends what it wants to (ACKs).
    Poll,
}

impl ReasmOp {
    /// Decodes the next operation.
    pub fn read(r: &mut Reader<'_>) -> ReasmOp {
        match r.u8() % 8 {
            0..=3 => ReasmOp::Segment {
                off: r.u16(),
                len: r.u16(),
                fin: r.bool(),
            },
            4 | 5 => ReasmOp::Consume { n: r.u16() },
            6 => ReasmOp::Advance { ms: r.u8() },
            _ => ReasmOp::Poll,
        }
    }

    /// Encodes it.
    pub fn write(&self, w: &mut Writer) {
        match *self {
            ReasmOp::Segment { off, len, fin } => {
                w.u8(0).u16(off).u16(len).bool(fin);
            }
            ReasmOp::Consume { n } => {
                w.u8(4).u16(n);
            }
            ReasmOp::Advance { ms } => {
                w.u8(6).u8(ms);
            }
            ReasmOp::Poll => {
                w.u8(7);
            }
        }
    }
}

/// The model of the receive side: which stream bytes the peer sent, as
/// sorted, disjoint, non-adjacent ranges.
struct StreamModel {
    ranges: Vec<(usize, usize)>,
    fin_sent: bool,
}

impl StreamModel {
    /// The peer sent `[start, end)`.
    fn add(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        self.ranges.retain(|&(a, b)| {
            if a <= e && b >= s {
                s = s.min(a);
                e = e.max(b);
                false
            } else {
                true
            }
        });
        let at = self.ranges.partition_point(|&(a, _)| a < s);
        self.ranges.insert(at, (s, e));
    }

    /// Bytes from the start the peer sent without a gap.
    fn prefix(&self) -> usize {
        match self.ranges.first() {
            Some(&(0, e)) => e,
            _ => 0,
        }
    }

    /// Disjoint runs of sent bytes beyond `from`.
    fn runs_after(&self, from: usize) -> usize {
        self.ranges.iter().filter(|&&(a, _)| a > from).count()
    }
}

/// Runs a `reassembly` input: the first byte chooses the endpoint's
/// out-of-order reassembly (even) or a move's carried-bytes reassembly (odd).
pub fn run_reassembly(data: &[u8]) {
    let mut r = Reader::new(data);
    if r.u8() & 1 == 0 {
        endpoint_reassembly(&mut r);
    } else {
        carried_reassembly(&mut r);
    }
}

/// Most out-of-order ranges the endpoint describes (`MAX_OOO` in ipos-tcp).
const MAX_OOO: usize = 8;

fn endpoint_reassembly(r: &mut Reader<'_>) {
    let setup = Setup::read(r);
    // 1 to 16 KiB of stream.
    let len = usize::from(r.u16() % 16_384) + 1;
    let mut now = Instant::from_millis(10);
    let (mut ep, mut peer) = established(&setup, now);
    let cfg = setup.config();
    let iss1 = setup.iss.wrapping_add(1);
    let base = peer.base;
    let mut model = StreamModel {
        ranges: Vec::new(),
        fin_sent: false,
    };
    // Exact while the whole stream fits the receive ring and the first
    // window (so nothing is ever trimmed) and no more ranges were out of
    // order than the endpoint can describe.
    let mut exact = len + 1024 <= cfg.rcv_buf;
    let mut read = 0u64;
    let mut seg = Vec::new();
    let mut buf = [0u8; 1600];
    let mut ops = 0;
    let check = |ep: &Endpoint, model: &StreamModel, read: u64, exact: bool| {
        let delivered = read as usize + ep.recv_available();
        let prefix = model.prefix();
        assert!(
            delivered <= prefix,
            "{delivered} bytes delivered, only {prefix} sent without a gap"
        );
        if ep.peer_fin_received() {
            assert!(model.fin_sent && delivered == len, "FIN accepted early");
        }
        if exact {
            assert_eq!(delivered, prefix, "in-order bytes not delivered");
            assert_eq!(ep.ooo_ranges(), model.runs_after(prefix), "ranges held");
            if model.fin_sent && prefix == len {
                assert!(
                    ep.peer_fin_received(),
                    "FIN after the last byte not accepted"
                );
                assert_eq!(ep.state(), State::CloseWait);
            }
        }
    };
    while !r.is_empty() && ops < 400 {
        ops += 1;
        match ReasmOp::read(r) {
            ReasmOp::Segment { off, len: n, fin } => {
                let off = usize::from(off) % len;
                let n = (usize::from(n) % 1461).min(len - off);
                let fin = fin && off + n == len;
                let flags = ACK | if fin { FIN } else { PSH };
                peer.segment(
                    &mut seg,
                    base.wrapping_add(off as u32),
                    iss1,
                    flags,
                    65535,
                    n,
                    &[],
                );
                ep.on_segment(now, &seg).expect("a well-formed segment");
                model.add(off, off + n);
                model.fin_sent |= fin;
                if model.runs_after(model.prefix()) > MAX_OOO {
                    exact = false;
                }
            }
            ReasmOp::Consume { n } => {
                let limit = if n == 0 { usize::MAX } else { usize::from(n) };
                consume(&mut ep, &mut read, base, limit);
            }
            ReasmOp::Advance { ms } => now += Duration::from_millis(u64::from(ms) + 1),
            ReasmOp::Poll => {
                let mut k = 0;
                while let Some(m) = ep.poll_transmit(now, &mut buf) {
                    let s = Segment::parse(&buf[..m]).expect("the endpoint's segment parses");
                    peer.saw(&s);
                    let acked = s.ack.wrapping_sub(base) as usize;
                    assert!(
                        acked <= model.prefix() + usize::from(model.fin_sent),
                        "ACK of bytes not received"
                    );
                    k += 1;
                    assert!(k < 100, "the endpoint does not stop sending");
                }
            }
        }
        check(&ep, &model, read, exact);
    }
    // The peer sends the whole stream again, in order: all of it arrives.
    let mut k = 0;
    loop {
        consume(&mut ep, &mut read, base, usize::MAX);
        while ep.poll_transmit(now, &mut buf).is_some() {}
        let at = read as usize;
        if at >= len || k > len / 256 + 64 {
            break;
        }
        let n = (len - at).min(512);
        let fin = model.fin_sent && at + n == len;
        peer.segment(
            &mut seg,
            base.wrapping_add(at as u32),
            iss1,
            ACK | if fin { FIN } else { PSH },
            65535,
            n,
            &[],
        );
        let _ = ep.on_segment(now, &seg);
        now += Duration::from_millis(1);
        k += 1;
    }
    assert_eq!(read as usize, len, "the stream did not arrive whole");
    if model.fin_sent {
        if !ep.peer_fin_received() {
            peer.segment(
                &mut seg,
                base.wrapping_add(len as u32),
                iss1,
                ACK | FIN,
                65535,
                0,
                &[],
            );
            let _ = ep.on_segment(now, &seg);
        }
        assert!(ep.peer_fin_received(), "the FIN was not accepted");
    }
}

/// The carried-bytes mode: a move's [`Reassembly`] of `len` bytes ending
/// at `rcv_nxt` (both from the input, up to a little more than a move may
/// carry), then chunks, each `index` (u8), `skew` (u16: added to the chunk's
/// offset when its top nibble is 0), `cut` (u16: the payload length modulo
/// `CHUNK + 2` when its top nibble is 0, else the right length) and a tag
/// byte for the content. Checked against a model: which chunks are in, and
/// their bytes.
fn carried_reassembly(r: &mut Reader<'_>) {
    let rcv_nxt = r.u32();
    // Up to a little more than a move may carry.
    let len = r.u32() % (MAX_CARRIED as u32 + 2 * CHUNK as u32);
    let setup = Setup {
        peer_isn: 1,
        iss: 2,
        options: 0xc0,
        peer_mss: 1460,
    };
    let now = Instant::from_millis(0);
    let (ep, _) = established(&setup, now);
    let mut tcb: Tcb = ep.export(now);
    tcb.rcv_nxt = rcv_nxt;
    tcb.rcv_data_len = len;
    let mac = smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, 1]);
    let made = Reassembly::new(tcb, mac, now);
    assert_eq!(made.is_some(), len as usize <= MAX_CARRIED);
    let Some(mut re) = made else { return };
    let len = len as usize;
    let base = rcv_nxt.wrapping_sub(len as u32);
    let chunks = len.div_ceil(CHUNK);
    let mut have = vec![false; chunks];
    let mut model = vec![0u8; len];
    let mut payload = Vec::new();
    let mut ops = 0;
    while !r.is_empty() && ops < 200 {
        ops += 1;
        let index = usize::from(r.u8());
        let skew = r.u16();
        let cut = r.u16();
        let tag = r.u8();
        // Mostly a real chunk boundary and size; sometimes not.
        let off = index * CHUNK
            + if skew & 0xf000 == 0 {
                usize::from(skew)
            } else {
                0
            };
        let want = if off < len {
            CHUNK.min(len - off)
        } else {
            CHUNK
        };
        let plen = if cut & 0xf000 == 0 {
            usize::from(cut) % (CHUNK + 2)
        } else {
            want
        };
        payload.clear();
        payload.extend((0..plen).map(|i| (i as u8).wrapping_mul(7) ^ tag));
        let res = re.add(base.wrapping_add(off as u32), &payload);
        let ok = off.is_multiple_of(CHUNK) && off < len && plen == want;
        assert_eq!(
            res.is_ok(),
            ok,
            "chunk at {off} of {plen} bytes (carried {len})"
        );
        if ok {
            have[off / CHUNK] = true;
            model[off..off + plen].copy_from_slice(&payload);
        }
        assert_eq!(re.is_complete(), have.iter().all(|h| *h));
    }
    if re.is_complete() {
        assert_eq!(re.data(), &model[..], "carried bytes");
    }
}

/// One step of an `endpoint` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpOp {
    /// A peer segment: sequence number `seq_delta` (signed) from the peer's
    /// next byte, acknowledgement `ack_delta` (signed) from the server's
    /// `snd_una`, flags, window, `len` payload bytes, and `sack` blocks
    /// over what the server sent (low 2 bits: count).
    Segment {
        seq_delta: i16,
        ack_delta: i16,
        flags: u8,
        window: u16,
        len: u16,
        sack: u8,
    },
    /// The server application writes `n` bytes.
    Send { n: u16 },
    /// The server application reads up to `n` bytes (0: all).
    Consume { n: u16 },
    /// The server application closes.
    Close,
    /// The server application aborts.
    Abort,
    /// `ms` milliseconds pass (times 100 above 200).
    Advance { ms: u8 },
    /// The server sends what it wants to.
    Poll,
    /// The endpoint moves: `export`, the TCB's bytes, `import`; from then on
    /// a twin (the original) must behave exactly like the imported one.
    Migrate,
}

impl EpOp {
    /// Decodes the next operation.
    pub fn read(r: &mut Reader<'_>) -> EpOp {
        match r.u8() % 12 {
            0..=3 => EpOp::Segment {
                seq_delta: r.u16() as i16,
                ack_delta: r.u16() as i16,
                flags: r.u8(),
                window: r.u16(),
                len: r.u16(),
                sack: r.u8(),
            },
            4 => EpOp::Send { n: r.u16() },
            5 => EpOp::Consume { n: r.u16() },
            6 => EpOp::Close,
            7 => EpOp::Abort,
            8 => EpOp::Advance { ms: r.u8() },
            9 | 10 => EpOp::Poll,
            _ => EpOp::Migrate,
        }
    }

    /// Encodes it.
    pub fn write(&self, w: &mut Writer) {
        match *self {
            EpOp::Segment {
                seq_delta,
                ack_delta,
                flags,
                window,
                len,
                sack,
            } => {
                w.u8(0)
                    .u16(seq_delta as u16)
                    .u16(ack_delta as u16)
                    .u8(flags)
                    .u16(window)
                    .u16(len)
                    .u8(sack);
            }
            EpOp::Send { n } => {
                w.u8(4).u16(n);
            }
            EpOp::Consume { n } => {
                w.u8(5).u16(n);
            }
            EpOp::Close => {
                w.u8(6);
            }
            EpOp::Abort => {
                w.u8(7);
            }
            EpOp::Advance { ms } => {
                w.u8(8).u8(ms);
            }
            EpOp::Poll => {
                w.u8(9);
            }
            EpOp::Migrate => {
                w.u8(11);
            }
        }
    }
}

/// The endpoint harness: the server endpoint, its twin once it has moved,
/// and what the application and the peer did.
struct EpHarness {
    ep: Endpoint,
    /// The endpoint before its last move, fed the same inputs.
    twin: Option<Endpoint>,
    peer: Peer,
    cfg: Config,
    iss1: u32,
    /// Bytes the application wrote.
    written: u64,
    /// Bytes the application read.
    read: u64,
    /// The farthest sequence number (exclusive) the server put on the wire.
    sent_end: u32,
    /// The farthest right edge of the receive window the server advertised.
    edge: Option<u32>,
    buf: Vec<u8>,
    twin_buf: Vec<u8>,
    closed_by_app: bool,
    /// Sequence numbers of every FIN the peer sent.
    peer_fins: Vec<u32>,
}

impl EpHarness {
    fn both(&mut self, f: impl Fn(&mut Endpoint)) {
        f(&mut self.ep);
        if let Some(t) = self.twin.as_mut() {
            f(t);
        }
    }

    fn segment(&mut self, now: Instant, seg: &[u8]) {
        let r = self.ep.on_segment(now, seg);
        if let Some(t) = self.twin.as_mut() {
            assert_eq!(t.on_segment(now, seg), r, "twin refused differently");
        }
    }

    fn poll(&mut self, now: Instant) {
        let f = flow();
        for k in 0.. {
            let out = self.ep.poll_transmit(now, &mut self.buf);
            if let Some(t) = self.twin.as_mut() {
                let o = t.poll_transmit(now, &mut self.twin_buf);
                assert_eq!(
                    o.map(|n| &self.twin_buf[..n]),
                    out.map(|n| &self.buf[..n]),
                    "the moved endpoint and its twin sent different segments"
                );
            }
            let Some(n) = out else { break };
            assert!(k < 1000, "the endpoint does not stop sending");
            let seg = &self.buf[..n];
            assert!(checksum_ok(f.dst_addr, f.src_addr, seg), "bad checksum");
            let s = Segment::parse(seg).expect("the endpoint's segment parses");
            assert_eq!((s.src_port, s.dst_port), (f.dst_port, f.src_port));
            self.peer.saw(&s);
            let first = s.seq.wrapping_add(u32::from(s.has(SYN)));
            assert!(
                *s.payload == *bytes_out(first, s.payload.len()),
                "sent bytes differ"
            );
            // A RST's sequence number may come from the segment it answers;
            // a pure ACK after our FIN is one beyond the data.
            if (s.has(FIN) || !s.payload.is_empty()) && !s.has(RST) {
                let data_end = first.wrapping_add(s.payload.len() as u32);
                assert!(
                    u64::from(data_end.wrapping_sub(self.iss1)) <= self.written,
                    "sent bytes the application never wrote: seq {} flags {:#x} len {} written {}",
                    s.seq.wrapping_sub(self.iss1),
                    s.flags,
                    s.payload.len(),
                    self.written
                );
                let end = data_end.wrapping_add(u32::from(s.has(FIN)));
                if seq_lt(self.sent_end, end) {
                    self.sent_end = end;
                }
            }
            if s.has(ACK) && !s.has(SYN) && !s.has(RST) {
                let tcb = self.ep.export(now);
                let edge = s.ack.wrapping_add(u32::from(s.window) << tcb.rcv_wscale);
                // Window scaling rounds the field to 2^rcv_wscale bytes: the
                // edge may recede by less than one unit (RFC 7323 section 2.4),
                // never by more.
                let unit = 1u32 << tcb.rcv_wscale;
                if let Some(e) = self.edge {
                    assert!(
                        !seq_lt(edge.wrapping_add(unit - 1), e),
                        "the receive window's right edge shrank by a scale unit or more"
                    );
                }
                if self.edge.is_none_or(|e| seq_lt(e, edge)) {
                    self.edge = Some(edge);
                }
            }
        }
    }

    fn check(&self, now: Instant) {
        let ep = &self.ep;
        if ep.state() == State::Closed {
            return;
        }
        let tcb = ep.export(now);
        assert!(!seq_lt(tcb.snd_nxt, tcb.snd_una) && !seq_lt(tcb.snd_max, tcb.snd_nxt));
        // Acknowledged never exceeds sent: snd_una stays within what went out.
        assert!(
            !seq_lt(self.sent_end, tcb.snd_una),
            "acknowledged beyond what was sent"
        );
        let (a, b) = ep.unacked_and_unsent();
        let buffered = (a.len() + b.len()) as u64;
        let acked = u64::from(tcb.snd_una.wrapping_sub(self.iss1));
        let acked_data = self.written - buffered;
        assert!(
            acked_data <= acked && acked <= acked_data + 1,
            "send buffer {buffered} bytes, written {}, acknowledged {acked}",
            self.written
        );
        let fin = u64::from(ep.peer_fin_received());
        let received = u64::from(tcb.rcv_nxt.wrapping_sub(self.peer.base));
        assert_eq!(
            self.read + ep.recv_available() as u64 + fin,
            received,
            "bytes delivered != rcv_nxt"
        );
        if let Some(t) = &self.twin {
            assert_eq!(t.state(), ep.state());
            let len = |(a, b): (&[u8], &[u8])| a.len() + b.len();
            assert_eq!(len(t.unacked_and_unsent()), len(ep.unacked_and_unsent()));
            assert_eq!(len(t.unconsumed()), len(ep.unconsumed()));
        }
    }

    /// The twin holds the same bytes as the endpoint (checked at the end:
    /// every byte sent and read was checked on the way).
    fn check_twin_bytes(&self) {
        if let Some(t) = &self.twin {
            let same = |(a, b): (&[u8], &[u8]), (c, d): (&[u8], &[u8])| {
                a.iter().chain(b).eq(c.iter().chain(d))
            };
            assert!(same(t.unacked_and_unsent(), self.ep.unacked_and_unsent()));
            assert!(same(t.unconsumed(), self.ep.unconsumed()));
        }
    }

    fn migrate(&mut self, now: Instant) {
        let rcv_nxt = self.ep.export(now).rcv_nxt;
        let fin_beyond =
            !self.ep.peer_fin_received() && self.peer_fins.iter().any(|&f| seq_lt(rcv_nxt, f));
        if self.ep.state() == State::Closed || self.ep.ooo_ranges() > 0 || fin_beyond {
            // Out-of-order data (and a FIN beyond a gap) is not carried: it
            // was never acknowledged. A twin would differ.
            return;
        }
        self.ep.forget_sack();
        let tcb = self.ep.export(now);
        let bytes = tcb.to_bytes();
        let parsed = Tcb::parse(&bytes).expect("an exported TCB parses");
        let (a, b) = self.ep.unacked_and_unsent();
        let snd = [a, b].concat();
        let (a, b) = self.ep.unconsumed();
        let rcv = [a, b].concat();
        let moved = Endpoint::import(&self.cfg, &parsed, self.ep.flow(), &snd, &rcv, now)
            .expect("an exported endpoint imports");
        assert_eq!(
            moved.export(now).to_bytes(),
            bytes,
            "import(export(s)) != s"
        );
        let old = std::mem::replace(&mut self.ep, moved);
        self.twin = Some(old);
    }
}

/// Runs an `endpoint` input.
pub fn run_endpoint(data: &[u8]) {
    let mut r = Reader::new(data);
    let setup = Setup::read(&mut r);
    let mut now = Instant::from_millis(10);
    let (ep, peer) = established(&setup, now);
    let cfg = setup.config();
    let mut h = EpHarness {
        ep,
        twin: None,
        peer,
        cfg,
        iss1: setup.iss.wrapping_add(1),
        written: 0,
        read: 0,
        sent_end: setup.iss.wrapping_add(1),
        edge: None,
        buf: vec![0; 1600],
        twin_buf: vec![0; 1600],
        closed_by_app: false,
        peer_fins: Vec::new(),
    };
    // An imported endpoint from the start, when the set-up says so.
    if setup.peer_mss & 0x8000 != 0 {
        h.migrate(now);
    }
    let mut seg = Vec::new();
    let mut ops = 0;
    while !r.is_empty() && ops < 300 {
        ops += 1;
        match EpOp::read(&mut r) {
            EpOp::Segment {
                seq_delta,
                ack_delta,
                flags,
                window,
                len,
                sack,
            } => {
                let tcb = h.ep.export(now);
                let seq = tcb.rcv_nxt.wrapping_add(seq_delta as i32 as u32);
                let ack = tcb.snd_una.wrapping_add(ack_delta as i32 as u32);
                let n = usize::from(len) % 1200;
                let flags = flags & (FIN | SYN | RST | PSH | ACK);
                // SACK blocks over the server's flight.
                let span = tcb.snd_max.wrapping_sub(tcb.snd_una).max(1);
                let mut blocks = [(0u32, 0u32); 4];
                let k = usize::from(sack & 3);
                for (i, b) in blocks.iter_mut().enumerate().take(k) {
                    let x = u32::from(sack >> 2).wrapping_mul(i as u32 + 1) % span;
                    let l = tcb.snd_una.wrapping_add(x);
                    *b = (l, l.wrapping_add((span - x).min(536)));
                }
                h.peer
                    .segment(&mut seg, seq, ack, flags, window, n, &blocks[..k]);
                if flags & FIN != 0 {
                    let syn = u32::from(flags & SYN != 0);
                    h.peer_fins
                        .push(seq.wrapping_add(syn).wrapping_add(n as u32));
                }
                h.segment(now, &seg);
            }
            EpOp::Send { n } => {
                if h.closed_by_app {
                    continue;
                }
                let start = h.iss1.wrapping_add(h.written as u32);
                let data = bytes_out(start, usize::from(n) % 4096);
                let k = h.ep.send_slice(data);
                if let Some(t) = h.twin.as_mut() {
                    assert_eq!(t.send_slice(data), k);
                }
                h.written += k as u64;
            }
            EpOp::Consume { n } => {
                let limit = if n == 0 { usize::MAX } else { usize::from(n) };
                let mut read = h.read;
                consume(&mut h.ep, &mut read, h.peer.base, limit);
                if let Some(t) = h.twin.as_mut() {
                    let mut tr = h.read;
                    consume(t, &mut tr, h.peer.base, limit);
                    assert_eq!(tr, read);
                }
                h.read = read;
            }
            EpOp::Close => {
                h.closed_by_app = true;
                h.both(|e| e.close());
            }
            EpOp::Abort => {
                h.closed_by_app = true;
                h.both(|e| e.abort());
            }
            EpOp::Advance { ms } => {
                let ms = if ms > 200 {
                    u64::from(ms - 200) * 100
                } else {
                    u64::from(ms)
                };
                now += Duration::from_millis(ms);
            }
            EpOp::Poll => h.poll(now),
            EpOp::Migrate => {
                h.check_twin_bytes();
                h.migrate(now);
            }
        }
        h.check(now);
    }
    h.poll(now);
    h.check(now);
    h.check_twin_bytes();
}
