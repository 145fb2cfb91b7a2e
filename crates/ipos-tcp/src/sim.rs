//! A deterministic in-memory link between two endpoints, with a virtual clock and
//! seeded loss, reordering (jitter) and duplication. Test support: it allocates freely
//! and panics on protocol bugs (bad checksum, an endpoint that never stops emitting,
//! a timer that never advances).

use crate::{
    checksum_ok, fill_checksum, write_header, Config, Duration, Endpoint, Flow, Instant,
    Ipv4Address, TcpHeader, TcpOptions,
};

/// Hand-craft a segment travelling on `flow`, from `flow.src` to `flow.dst` (for tests
/// of odd inputs). A segment for endpoint `ep` travels on `ep.flow()`.
pub fn craft(
    flow: Flow,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    timestamp: Option<(u32, u32)>,
    payload: &[u8],
) -> Vec<u8> {
    let opts = TcpOptions {
        timestamp,
        ..TcpOptions::default()
    };
    let mut out = vec![0u8; 20 + opts.len() + payload.len()];
    let h = TcpHeader {
        src_port: flow.src_port,
        dst_port: flow.dst_port,
        seq,
        ack,
        flags,
        window,
    };
    let n = write_header(&mut out, &h, &opts);
    out[n..].copy_from_slice(payload);
    fill_checksum(flow.src_addr, flow.dst_addr, &mut out);
    out
}

/// Like [`craft`] (an ACK without payload), with SACK blocks: up to 3 with a timestamp,
/// 4 without; extra blocks are left out.
pub fn craft_sack(
    flow: Flow,
    seq: u32,
    ack: u32,
    window: u16,
    timestamp: Option<(u32, u32)>,
    blocks: &[(u32, u32)],
) -> Vec<u8> {
    // 40 bytes of options: 3 blocks fit next to a timestamp, 4 without.
    let n = blocks.len().min(if timestamp.is_some() { 3 } else { 4 });
    let mut opts = TcpOptions {
        timestamp,
        sack_n: n as u8,
        ..TcpOptions::default()
    };
    opts.sack[..n].copy_from_slice(&blocks[..n]);
    let mut out = vec![0u8; 20 + opts.len()];
    let h = TcpHeader {
        src_port: flow.src_port,
        dst_port: flow.dst_port,
        seq,
        ack,
        flags: crate::ACK,
        window,
    };
    write_header(&mut out, &h, &opts);
    fill_checksum(flow.src_addr, flow.dst_addr, &mut out);
    out
}

/// xorshift64* — tiny, seedable, good enough for test schedules.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // splitmix64 finaliser so that nearby seeds give unrelated streams
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `permille / 1000`.
    pub fn chance(&mut self, permille: u32) -> bool {
        self.below(1000) < u64::from(permille)
    }
}

/// Link behaviour, the same in both directions.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// One-way delay.
    pub delay: Duration,
    /// Extra random delay in `0..jitter` per packet (reorders packets).
    pub jitter: Duration,
    pub loss_permille: u32,
    pub dup_permille: u32,
    /// Size of the buffer handed to `poll_transmit` (TCP header + payload).
    pub seg_buf: usize,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss_permille: 0,
            dup_permille: 0,
            seg_buf: 1480,
        }
    }
}

/// A segment on the wire.
#[derive(Clone, Debug)]
pub struct Packet {
    pub at: Instant,
    pub to_server: bool,
    pub data: Vec<u8>,
    id: u64,
}

/// Decides the fate of each emitted segment: `(now, to_server, bytes) -> deliver?`.
pub type Filter = Box<dyn FnMut(Instant, bool, &[u8]) -> bool>;

pub struct Sim {
    pub now: Instant,
    pub client: Endpoint,
    pub server: Endpoint,
    pub link: LinkConfig,
    pub rng: XorShift,
    pub in_flight: Vec<Packet>,
    /// Sees every emitted segment before loss is applied; returning false drops it.
    pub filter: Option<Filter>,
    /// Segments the receiving endpoint rejected with an error.
    pub rejected: u64,
    /// The server host's clock runs this many microseconds ahead of the client's.
    pub server_skew_us: i64,
    /// While true the server is neither polled nor fed; segments to it are lost
    /// (models the moment of a migration).
    pub server_down: bool,
    /// A shadow server driven with exactly the same inputs as `server`; every output
    /// (segments, errors, timeouts, state) must be identical or the sim panics.
    pub twin: Option<Endpoint>,
    next_id: u64,
}

/// The server endpoint's flow, which is also the flow of every segment the client
/// sends: client 198.18.0.1:40000 -> server 198.18.0.2:80.
pub fn server_flow() -> Flow {
    Flow {
        src_addr: Ipv4Address::new(198, 18, 0, 1),
        src_port: 40000,
        dst_addr: Ipv4Address::new(198, 18, 0, 2),
        dst_port: 80,
    }
}

/// The client endpoint's flow, which is also the flow of every segment the server
/// sends: [`server_flow`] reversed.
pub fn client_flow() -> Flow {
    server_flow().reversed()
}

/// A byte pattern that does not repeat with a short period.
pub fn pattern(i: u64) -> u8 {
    let x = i ^ (i >> 8) ^ (i >> 17);
    (x.wrapping_mul(0x9E37_79B1) >> 7) as u8
}

/// `Duration` cannot be negative: apply a signed skew as an `Instant` difference.
fn skew(us: i64) -> SkewDelta {
    SkewDelta(us)
}

#[derive(Clone, Copy)]
struct SkewDelta(i64);

impl core::ops::Add<SkewDelta> for Instant {
    type Output = Instant;
    fn add(self, d: SkewDelta) -> Instant {
        Instant::from_micros(self.total_micros() + d.0)
    }
}

impl core::ops::Sub<SkewDelta> for Instant {
    type Output = Instant;
    fn sub(self, d: SkewDelta) -> Instant {
        Instant::from_micros(self.total_micros() - d.0)
    }
}

impl Sim {
    /// Client `connect`s; its first SYN reaches the server, which `accept`s it.
    pub fn new(ccfg: &Config, scfg: &Config, link: LinkConfig, seed: u64) -> Sim {
        let mut rng = XorShift::new(seed);
        let now = Instant::from_millis(1_000 + rng.below(1_000_000) as i64);
        let cf = client_flow();
        let mut client = Endpoint::connect(ccfg, cf, rng.next_u64() as u32, now);
        let mut buf = vec![0u8; link.seg_buf];
        let n = client.poll_transmit(now, &mut buf).expect("client SYN");
        let server = Endpoint::accept(scfg, cf.reversed(), &buf[..n], rng.next_u64() as u32, now)
            .expect("server accepts SYN");
        Sim {
            now,
            client,
            server,
            link,
            rng,
            in_flight: Vec::new(),
            filter: None,
            rejected: 0,
            server_skew_us: 0,
            server_down: false,
            twin: None,
            next_id: 0,
        }
    }

    /// The server host's clock reading.
    pub fn server_now(&self) -> Instant {
        self.now + skew(self.server_skew_us)
    }

    fn local_now(&self, server: bool) -> Instant {
        if server {
            self.server_now()
        } else {
            self.now
        }
    }

    /// Queue data on the server (and its twin).
    pub fn server_send(&mut self, data: &[u8]) -> usize {
        let n = self.server.send_slice(data);
        if let Some(t) = self.twin.as_mut() {
            assert_eq!(t.send_slice(data), n, "twin send_slice");
        }
        n
    }

    /// Consume received data on the server (and its twin).
    pub fn server_consume(&mut self, n: usize) {
        self.server.recv_consume(n);
        if let Some(t) = self.twin.as_mut() {
            t.recv_consume(n);
        }
    }

    /// Close the server (and its twin).
    pub fn server_close(&mut self) {
        self.server.close();
        if let Some(t) = self.twin.as_mut() {
            t.close();
        }
    }

    fn check_twin(&self) {
        if let Some(t) = self.twin.as_ref() {
            let s = &self.server;
            assert_eq!(t.state(), s.state(), "twin state");
            assert_eq!(t.poll_timeout(), s.poll_timeout(), "twin timeout");
            let cat = |(a, b): (&[u8], &[u8])| [a, b].concat();
            assert!(
                cat(t.unconsumed()) == cat(s.unconsumed()),
                "twin receive buffer differs"
            );
            assert!(
                cat(t.unacked_and_unsent()) == cat(s.unacked_and_unsent()),
                "twin send buffer differs"
            );
            assert_eq!(t.peer_fin_received(), s.peer_fin_received());
        }
    }

    fn endpoint(&mut self, server: bool) -> &mut Endpoint {
        if server {
            &mut self.server
        } else {
            &mut self.client
        }
    }

    /// Runs until the server has sent `total` bytes of [`pattern`] and closed, and the
    /// client has read and checked every one of them (panics on a wrong byte) and seen
    /// the FIN, for at most an hour of virtual time; `on_step` runs after each step.
    /// Returns the bytes the client got (`total` on success).
    pub fn stream_pattern(&mut self, total: u64, mut on_step: impl FnMut(&mut Sim)) -> u64 {
        let (mut sent, mut got) = (0u64, 0u64);
        self.run_until(Duration::from_secs(3600), |s| {
            while sent < total {
                let n = s.server.send_with(|b| {
                    let n = (b.len() as u64).min(total - sent) as usize;
                    for (i, x) in b[..n].iter_mut().enumerate() {
                        *x = pattern(sent + i as u64);
                    }
                    n
                });
                if n == 0 {
                    break;
                }
                sent += n as u64;
                if sent == total {
                    s.server.close();
                }
            }
            loop {
                let chunk = s.client.recv_slice();
                if chunk.is_empty() {
                    break;
                }
                for (i, &x) in chunk.iter().enumerate() {
                    assert_eq!(
                        x,
                        pattern(got + i as u64),
                        "byte {} differs",
                        got + i as u64
                    );
                }
                let n = chunk.len();
                got += n as u64;
                s.client.recv_consume(n);
            }
            on_step(s);
            got == total && s.client.peer_fin_received()
        });
        got
    }

    /// Let both endpoints emit everything they have now and put it on the link.
    pub fn pump(&mut self) {
        let mut buf = vec![0u8; self.link.seg_buf];
        let mut buf2 = vec![0u8; self.link.seg_buf];
        for from_server in [false, true] {
            if from_server && self.server_down {
                continue;
            }
            let mut count = 0;
            loop {
                let now = self.local_now(from_server);
                let ep = self.endpoint(from_server);
                // What an endpoint writes travels on its flow reversed: dst -> src.
                let flow = ep.flow();
                let out = ep.poll_transmit(now, &mut buf);
                if from_server {
                    if let Some(t) = self.twin.as_mut() {
                        let out2 = t.poll_transmit(now, &mut buf2);
                        assert_eq!(out, out2, "twin poll_transmit length");
                        if let Some(n) = out {
                            assert!(
                                buf[..n] == buf2[..n],
                                "twin segment bytes differ: {:02x?} vs {:02x?}",
                                &buf[..n.min(60)],
                                &buf2[..n.min(60)]
                            );
                        }
                    }
                    self.check_twin();
                }
                let Some(n) = out else {
                    break;
                };
                count += 1;
                assert!(count < 100_000, "endpoint emits forever");
                assert!(n <= buf.len());
                let seg = &buf[..n];
                assert!(
                    checksum_ok(flow.dst_addr, flow.src_addr, seg),
                    "bad checksum"
                );
                self.send(!from_server, seg.to_vec());
            }
        }
    }

    /// Put a segment on the link towards `to_server`, applying filter, loss, dup, jitter.
    pub fn send(&mut self, to_server: bool, data: Vec<u8>) {
        if let Some(f) = self.filter.as_mut() {
            if !f(self.now, to_server, &data) {
                return;
            }
        }
        if self.rng.chance(self.link.loss_permille) {
            return;
        }
        let copies = if self.rng.chance(self.link.dup_permille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter_us = self.link.jitter.total_micros();
            let extra = if jitter_us > 0 {
                self.rng.below(jitter_us)
            } else {
                0
            };
            let at = self.now + self.link.delay + Duration::from_micros(extra);
            self.next_id += 1;
            self.in_flight.push(Packet {
                at,
                to_server,
                data: data.clone(),
                id: self.next_id,
            });
        }
    }

    /// Earliest pending event (delivery or endpoint timer).
    pub fn next_event(&self) -> Option<Instant> {
        let mut t = self.in_flight.iter().map(|p| p.at).min();
        let mut timers = vec![self.client.poll_timeout()];
        if !self.server_down {
            timers.push(
                self.server
                    .poll_timeout()
                    .map(|x| x - skew(self.server_skew_us)),
            );
        }
        for x in timers.into_iter().flatten() {
            t = Some(t.map_or(x, |t| t.min(x)));
        }
        t
    }

    /// Pump, advance the clock to the next event, deliver what is due.
    /// Returns false when nothing at all is pending.
    pub fn step(&mut self) -> bool {
        self.pump();
        let Some(next) = self.next_event() else {
            return false;
        };
        if next > self.now {
            self.now = next;
        }
        let now = self.now;
        let mut due: Vec<Packet> = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].at <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.id));
        for p in due {
            if p.to_server && self.server_down {
                continue;
            }
            let local = self.local_now(p.to_server);
            let r = self.endpoint(p.to_server).on_segment(local, &p.data);
            if p.to_server {
                if let Some(t) = self.twin.as_mut() {
                    assert_eq!(t.on_segment(local, &p.data), r, "twin on_segment");
                }
                self.check_twin();
            }
            if r.is_err() {
                self.rejected += 1;
            }
        }
        true
    }

    /// Step until `done` returns true (checked before every step) or `limit` of virtual
    /// time has passed. Returns whether `done` became true.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let end = self.now + limit;
        let mut stuck = 0u32;
        loop {
            if done(self) {
                return true;
            }
            if self.now > end {
                return false;
            }
            let before = self.now;
            if !self.step() {
                return done(self);
            }
            if self.now == before {
                stuck += 1;
                assert!(stuck < 100_000, "virtual time does not advance");
            } else {
                stuck = 0;
            }
        }
    }

    /// Run for `d` of virtual time, processing every event up to then.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut guard = 0u32;
        loop {
            self.pump();
            match self.next_event() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => break,
            }
            guard += 1;
            assert!(guard < 10_000_000, "run_for does not terminate");
        }
        if self.now < end {
            self.now = end;
        }
        self.pump();
    }
}
