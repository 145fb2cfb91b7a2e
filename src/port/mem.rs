//! An in-memory Ethernet switch and its ports, for deterministic tests.
//!
//! Every frame a [`MemPort`] sends goes into the shared [`MemSwitch`], which
//! delivers it to the port owning the destination MAC (or to every other port
//! for broadcast and unknown destinations). A seeded PRNG can drop, duplicate
//! and reorder frames, so the same seed replays the same run exactly.

use super::{BufError, PacketBuf, Port, PortCounters};
use smoltcp::wire::EthernetAddress;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Buffer size of a [`MemBuf`], like a default DPDK mbuf data room.
pub const MEM_BUF_SIZE: usize = 2048;
/// Headroom left in front of a fresh [`MemBuf`], as DPDK's RTE_PKTMBUF_HEADROOM.
pub const MEM_HEADROOM: usize = 128;

/// A heap packet buffer with DPDK-like headroom.
#[derive(Clone)]
pub struct MemBuf {
    storage: Box<[u8; MEM_BUF_SIZE]>,
    start: usize,
    len: usize,
}

impl MemBuf {
    /// An empty buffer.
    pub fn new() -> MemBuf {
        MemBuf {
            storage: Box::new([0; MEM_BUF_SIZE]),
            start: MEM_HEADROOM,
            len: 0,
        }
    }

    /// A buffer holding a copy of `bytes` (at most `MEM_BUF_SIZE - MEM_HEADROOM`).
    pub fn from_slice(bytes: &[u8]) -> MemBuf {
        let mut b = MemBuf::new();
        let n = bytes.len().min(MEM_BUF_SIZE - MEM_HEADROOM);
        b.storage[MEM_HEADROOM..MEM_HEADROOM + n].copy_from_slice(&bytes[..n]);
        b.len = n;
        b
    }
}

impl Default for MemBuf {
    fn default() -> Self {
        MemBuf::new()
    }
}

impl PacketBuf for MemBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
    fn set_len(&mut self, len: usize) -> Result<(), BufError> {
        if self.start + len > MEM_BUF_SIZE {
            return Err(BufError::NoTailroom);
        }
        self.len = len;
        Ok(())
    }
    fn prepend(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.start {
            return Err(BufError::NoHeadroom);
        }
        self.start -= n;
        self.len += n;
        Ok(())
    }
    fn adj(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.len {
            return Err(BufError::TooShort);
        }
        self.start += n;
        self.len -= n;
        Ok(())
    }
    fn tailroom(&self) -> usize {
        MEM_BUF_SIZE - self.start - self.len
    }
}

/// What the switch does to frames, in percent (0..=100).
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    /// Chance a frame is dropped.
    pub loss: u32,
    /// Chance a frame is delivered twice.
    pub duplicate: u32,
    /// Chance a frame is delivered after the next one.
    pub reorder: u32,
}

struct Station {
    mac: EthernetAddress,
    inbox: VecDeque<MemBuf>,
}

struct SwitchInner {
    stations: Vec<Station>,
    rng: u64,
    impairment: Impairment,
    /// Decides per frame whether impairment applies (e.g. only ipOS frames).
    filter: Option<fn(&[u8]) -> bool>,
    held: Option<(usize, MemBuf)>,
    dropped: u64,
    delivered: u64,
}

impl SwitchInner {
    fn next_rand(&mut self) -> u32 {
        // xorshift64*: small, deterministic, good enough for test impairments.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    fn chance(&mut self, percent: u32) -> bool {
        percent > 0 && self.next_rand() % 100 < percent
    }

    fn deliver_to(&mut self, idx: usize, frame: MemBuf) {
        self.delivered += 1;
        self.stations[idx].inbox.push_back(frame);
    }

    fn transmit(&mut self, from: usize, frame: MemBuf) {
        let dst = if frame.len() >= 6 {
            EthernetAddress::from_bytes(&frame.data()[..6])
        } else {
            EthernetAddress::BROADCAST
        };
        let targets: Vec<usize> = if dst.is_unicast() {
            match self.stations.iter().position(|s| s.mac == dst) {
                Some(i) => vec![i],
                None => (0..self.stations.len()).filter(|&i| i != from).collect(),
            }
        } else {
            (0..self.stations.len()).filter(|&i| i != from).collect()
        };
        let impaired = self.filter.is_none_or(|f| f(frame.data()));
        for t in targets {
            if impaired && self.chance(self.impairment.loss) {
                self.dropped += 1;
                continue;
            }
            let copy = frame.clone();
            if impaired && self.chance(self.impairment.duplicate) {
                self.deliver_to(t, copy.clone());
            }
            if impaired && self.held.is_none() && self.chance(self.impairment.reorder) {
                self.held = Some((t, copy));
                continue;
            }
            self.deliver_to(t, copy);
            if let Some((h, f)) = self.held.take() {
                self.deliver_to(h, f);
            }
        }
    }
}

/// The shared medium of a set of [`MemPort`]s.
#[derive(Clone)]
pub struct MemSwitch {
    inner: Rc<RefCell<SwitchInner>>,
}

impl MemSwitch {
    /// A switch with no impairment; `seed` drives the PRNG.
    pub fn new(seed: u64) -> MemSwitch {
        MemSwitch {
            inner: Rc::new(RefCell::new(SwitchInner {
                stations: Vec::new(),
                rng: seed | 1,
                impairment: Impairment::default(),
                filter: None,
                held: None,
                dropped: 0,
                delivered: 0,
            })),
        }
    }

    /// Sets the impairment, applied to the frames `filter` accepts (all when None).
    pub fn set_impairment(&self, imp: Impairment, filter: Option<fn(&[u8]) -> bool>) {
        let mut s = self.inner.borrow_mut();
        s.impairment = imp;
        s.filter = filter;
    }

    /// Attaches a new port with MAC `mac`.
    pub fn port(&self, mac: EthernetAddress) -> MemPort {
        let mut s = self.inner.borrow_mut();
        s.stations.push(Station {
            mac,
            inbox: VecDeque::new(),
        });
        MemPort {
            switch: self.clone(),
            idx: s.stations.len() - 1,
            mac,
            tx: Vec::new(),
            counters: PortCounters::default(),
        }
    }

    /// Frames dropped by impairment so far.
    pub fn dropped(&self) -> u64 {
        self.inner.borrow().dropped
    }

    /// Frames delivered so far.
    pub fn delivered(&self) -> u64 {
        self.inner.borrow().delivered
    }

    /// Releases a frame held back for reordering.
    pub fn release_held(&self) {
        let mut s = self.inner.borrow_mut();
        if let Some((h, f)) = s.held.take() {
            s.deliver_to(h, f);
        }
    }

    /// Frames waiting in any inbox.
    pub fn pending(&self) -> usize {
        let s = self.inner.borrow();
        s.stations.iter().map(|st| st.inbox.len()).sum::<usize>() + s.held.is_some() as usize
    }
}

/// A port on a [`MemSwitch`].
pub struct MemPort {
    switch: MemSwitch,
    idx: usize,
    mac: EthernetAddress,
    tx: Vec<MemBuf>,
    counters: PortCounters,
}

impl MemPort {
    /// Injects a frame as if it had arrived from the wire.
    pub fn inject(&self, frame: &[u8]) {
        let mut s = self.switch.inner.borrow_mut();
        s.stations[self.idx]
            .inbox
            .push_back(MemBuf::from_slice(frame));
    }

    /// Takes every frame waiting for this port (for a test playing a host).
    pub fn take_all(&self) -> Vec<MemBuf> {
        let mut s = self.switch.inner.borrow_mut();
        s.stations[self.idx].inbox.drain(..).collect()
    }
}

impl Port for MemPort {
    type Buf = MemBuf;

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn rx_burst(&mut self, out: &mut Vec<MemBuf>) -> usize {
        let mut s = self.switch.inner.borrow_mut();
        let mut n = 0;
        while out.len() < super::BURST {
            match s.stations[self.idx].inbox.pop_front() {
                Some(f) => {
                    out.push(f);
                    n += 1;
                }
                None => break,
            }
        }
        self.counters.rx_packets += n as u64;
        n
    }

    fn alloc(&mut self) -> Option<MemBuf> {
        Some(MemBuf::new())
    }

    fn send(&mut self, buf: MemBuf) {
        self.tx.push(buf);
        if self.tx.len() >= super::BURST {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let frames: Vec<MemBuf> = self.tx.drain(..).collect();
        self.counters.tx_packets += frames.len() as u64;
        let mut s = self.switch.inner.borrow_mut();
        for f in frames {
            s.transmit(self.idx, f);
        }
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }
}
