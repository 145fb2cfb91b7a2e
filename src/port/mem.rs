//! An in-memory Ethernet switch and its ports, for deterministic tests.
//!
//! Every frame a [`MemPort`] sends goes into the shared [`MemSwitch`], which
//! delivers it to the port owning the destination MAC (or to every other port
//! for broadcast and unknown destinations). A seeded PRNG can drop, duplicate
//! and reorder frames, so the same seed replays the same run exactly.
//!
//! # Test hook
//!
//! [`MemSwitch::set_hook`] installs a per-frame function that sees every
//! frame a port transmits (the sending port's index, see [`MemPort::index`],
//! and the bytes) before anything else happens to it, and answers with a
//! [`HookAction`]:
//!
//! | action | effect |
//! |---|---|
//! | [`HookAction::Deliver`] | the normal path: impairment, then delivery |
//! | [`HookAction::Drop`] | the frame is discarded (counted by [`MemSwitch::hook_dropped`]) |
//! | [`HookAction::Duplicate`] | the normal path, twice |
//! | [`HookAction::Hold`] | kept aside until [`MemSwitch::release_hooked`] |
//! | [`HookAction::Delay`]`(n)` | kept aside until `n` more frames have been transmitted |
//!
//! Frames leaving `Hold` or `Delay` take the normal path then (impairment
//! applies, the hook is not asked again).
//! Frames put aside by the hook are not counted by [`MemSwitch::pending`]
//! (a driver that polls "until the switch is quiet" would otherwise never
//! stop); [`MemSwitch::hooked`] counts them. Without a hook the switch
//! behaves exactly as before. The hook runs while the switch is borrowed: it
//! must not call back into the switch or its ports (share state with the
//! test through `Rc<Cell<_>>` or similar instead).

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
pub struct MemBuf {
    /// `MEM_BUF_SIZE` bytes (empty only while the buffer is dropped).
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

/// Storage a thread's dropped [`MemBuf`]s leave for its next ones, as a
/// mempool recycles mbufs: a buffer costs no allocation and no clearing once
/// the thread has used as many as it holds at once. Like an mbuf's, a recycled
/// buffer's bytes are what its last user left. At most this many are kept.
const POOL_KEEP: usize = 8192;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

impl MemBuf {
    /// An empty buffer.
    pub fn new() -> MemBuf {
        let storage = POOL
            .try_with(|p| p.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| vec![0; MEM_BUF_SIZE]);
        MemBuf {
            storage,
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

impl Clone for MemBuf {
    /// A buffer from the pool holding the same data at the same place.
    fn clone(&self) -> MemBuf {
        let mut b = MemBuf::new();
        b.start = self.start;
        b.len = self.len;
        b.storage[self.start..self.start + self.len].copy_from_slice(self.data());
        b
    }
}

impl Drop for MemBuf {
    fn drop(&mut self) {
        let storage = std::mem::take(&mut self.storage);
        // After the thread's pool is gone (thread exit), the storage is freed.
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_KEEP {
                p.push(storage);
            }
        });
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

/// What a [`MemSwitch`] hook decides for one transmitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    /// The normal path: impairment (if any), then delivery.
    Deliver,
    /// Discard the frame.
    Drop,
    /// Send the frame down the normal path twice.
    Duplicate,
    /// Keep the frame until [`MemSwitch::release_hooked`].
    Hold,
    /// Keep the frame until this many more frames have been transmitted
    /// (0 is the same as [`HookAction::Deliver`]).
    Delay(u32),
}

/// A per-frame test hook: `(sending port index, frame bytes) -> action`.
pub type Hook = Box<dyn FnMut(usize, &[u8]) -> HookAction>;

struct Station {
    mac: EthernetAddress,
    /// One inbox per receive queue (one unless [`MemSwitch::port_queues`]).
    inboxes: Vec<VecDeque<MemBuf>>,
}

impl Station {
    /// The receive queue of a frame, as a NIC with RSS over IPv4 picks
    /// it: IPv4 TCP and UDP by a hash of the addresses and ports (FNV-1a,
    /// unlike the lanes' own hash, so that frames reach a lane that does not
    /// own them as often as not), everything else (ARP, ipOS) to the last
    /// queue, in order.
    fn queue_of(&self, frame: &MemBuf) -> usize {
        let n = self.inboxes.len();
        let d = frame.data();
        if n == 1 {
            return 0;
        }
        let ihl = d.get(14).map_or(0, |b| usize::from(b & 0x0f) * 4);
        let ipv4 = d.len() >= 14 + ihl + 4 && d[12..14] == [0x08, 0x00] && ihl >= 20;
        if !ipv4 || !matches!(d[23], 6 | 17) {
            return n - 1;
        }
        let mut h: u32 = 0x811c_9dc5;
        for &b in d[26..34].iter().chain(&d[14 + ihl..14 + ihl + 4]) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        h as usize % n
    }
}

struct SwitchInner {
    stations: Vec<Station>,
    rng: u64,
    impairment: Impairment,
    /// Decides per frame whether impairment applies (e.g. only ipOS frames).
    filter: Option<fn(&[u8]) -> bool>,
    held: Option<(usize, MemBuf)>,
    dropped: u64,
    hook: Option<Hook>,
    /// Frames the hook put on hold: (sending port, frame).
    hooked: Vec<(usize, MemBuf)>,
    /// Frames the hook delayed: (frames still to wait for, sending port, frame).
    delayed: Vec<(u32, usize, MemBuf)>,
    hook_dropped: u64,
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
        let q = self.stations[idx].queue_of(&frame);
        self.stations[idx].inboxes[q].push_back(frame);
    }

    /// A frame leaves port `from`: the hook decides, then the normal path.
    fn transmit(&mut self, from: usize, frame: MemBuf) {
        // Frames delayed earlier count this one.
        let mut due = Vec::new();
        if !self.delayed.is_empty() {
            for d in self.delayed.iter_mut() {
                d.0 -= 1;
            }
            let mut i = 0;
            while i < self.delayed.len() {
                if self.delayed[i].0 == 0 {
                    let (_, f, b) = self.delayed.remove(i);
                    due.push((f, b));
                } else {
                    i += 1;
                }
            }
        }
        let action = match self.hook.as_mut() {
            Some(h) => h(from, frame.data()),
            None => HookAction::Deliver,
        };
        match action {
            HookAction::Deliver | HookAction::Delay(0) => self.route(from, frame),
            HookAction::Drop => self.hook_dropped += 1,
            HookAction::Duplicate => {
                self.route(from, frame.clone());
                self.route(from, frame);
            }
            HookAction::Hold => self.hooked.push((from, frame)),
            HookAction::Delay(n) => self.delayed.push((n, from, frame)),
        }
        for (f, b) in due {
            self.route(f, b);
        }
    }

    /// The normal path of a frame: impairment, then delivery.
    fn route(&mut self, from: usize, frame: MemBuf) {
        let dst = if frame.len() >= 6 {
            EthernetAddress::from_bytes(&frame.data()[..6])
        } else {
            EthernetAddress::BROADCAST
        };
        // A known unicast MAC reaches its station; anything else floods.
        let known = dst
            .is_unicast()
            .then(|| self.stations.iter().position(|s| s.mac == dst))
            .flatten();
        let mut targets = (0..self.stations.len())
            .filter(move |&i| known.map_or(i != from, |k| i == k))
            .peekable();
        let impaired = self.filter.is_none_or(|f| f(frame.data()));
        // The last station gets the frame itself, the others copies.
        let mut frame = Some(frame);
        while let Some(t) = targets.next() {
            if impaired && self.chance(self.impairment.loss) {
                self.dropped += 1;
                continue;
            }
            let copy = match (targets.peek(), frame.as_ref()) {
                (Some(_), Some(f)) => f.clone(),
                _ => match frame.take() {
                    Some(f) => f,
                    None => break,
                },
            };
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
                hook: None,
                hooked: Vec::new(),
                delayed: Vec::new(),
                hook_dropped: 0,
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
            inboxes: vec![VecDeque::new()],
        });
        MemPort {
            switch: self.clone(),
            idx: s.stations.len() - 1,
            queue: 0,
            mac,
            tx: VecDeque::new(),
            tx_ring: None,
            counters: PortCounters::default(),
        }
    }

    /// Attaches one station with MAC `mac` and `n` receive queues, and
    /// returns a port per queue (as a multi-queue NIC gives one queue pair
    /// per lcore); frames to the station spread over its queues.
    pub fn port_queues(&self, mac: EthernetAddress, n: usize) -> Vec<MemPort> {
        let mut s = self.inner.borrow_mut();
        s.stations.push(Station {
            mac,
            inboxes: (0..n.max(1)).map(|_| VecDeque::new()).collect(),
        });
        let idx = s.stations.len() - 1;
        (0..n.max(1))
            .map(|queue| MemPort {
                switch: self.clone(),
                idx,
                queue,
                mac,
                tx: VecDeque::new(),
                tx_ring: None,
                counters: PortCounters::default(),
            })
            .collect()
    }

    /// A fresh port on the station of port `idx` (same MAC, same index): a
    /// host that restarts on the same link. Frames waiting in its inbox are
    /// discarded (counted by [`MemSwitch::hook_dropped`]).
    pub fn reattach(&self, idx: usize) -> MemPort {
        let mut s = self.inner.borrow_mut();
        let waiting: usize = s.stations[idx].inboxes.iter().map(VecDeque::len).sum();
        s.stations[idx].inboxes.iter_mut().for_each(VecDeque::clear);
        s.hook_dropped += waiting as u64;
        MemPort {
            switch: self.clone(),
            idx,
            queue: 0,
            mac: s.stations[idx].mac,
            tx: VecDeque::new(),
            tx_ring: None,
            counters: PortCounters::default(),
        }
    }

    /// Frames dropped by impairment so far.
    pub fn dropped(&self) -> u64 {
        self.inner.borrow().dropped
    }

    /// Releases a frame held back for reordering.
    pub fn release_held(&self) {
        let mut s = self.inner.borrow_mut();
        if let Some((h, f)) = s.held.take() {
            s.deliver_to(h, f);
        }
    }

    /// Installs the per-frame test hook (see the module docs), replacing any
    /// previous one. Frames already put aside stay put aside.
    pub fn set_hook(&self, hook: impl FnMut(usize, &[u8]) -> HookAction + 'static) {
        self.inner.borrow_mut().hook = Some(Box::new(hook));
    }

    /// Removes the hook: every later frame takes the normal path.
    pub fn clear_hook(&self) {
        self.inner.borrow_mut().hook = None;
    }

    /// Sends every frame the hook put on hold down the normal path, in the
    /// order they were held; returns how many.
    pub fn release_hooked(&self) -> usize {
        let mut s = self.inner.borrow_mut();
        let frames = std::mem::take(&mut s.hooked);
        let n = frames.len();
        for (from, f) in frames {
            s.route(from, f);
        }
        n
    }

    /// Discards every frame the hook put on hold or delayed; returns how many.
    pub fn discard_hooked(&self) -> usize {
        let mut s = self.inner.borrow_mut();
        let n = s.hooked.len() + s.delayed.len();
        s.hooked.clear();
        s.delayed.clear();
        s.hook_dropped += n as u64;
        n
    }

    /// Frames the hook holds or delays right now.
    pub fn hooked(&self) -> usize {
        let s = self.inner.borrow();
        s.hooked.len() + s.delayed.len()
    }

    /// Frames the hook dropped so far (not included in [`MemSwitch::dropped`]).
    pub fn hook_dropped(&self) -> u64 {
        self.inner.borrow().hook_dropped
    }

    /// Frames waiting in any inbox (and a frame held back for reordering);
    /// frames put aside by the hook are not counted (see [`MemSwitch::hooked`]).
    pub fn pending(&self) -> usize {
        let s = self.inner.borrow();
        s.stations
            .iter()
            .flat_map(|st| st.inboxes.iter())
            .map(VecDeque::len)
            .sum::<usize>()
            + s.held.is_some() as usize
    }
}

/// A port on a [`MemSwitch`].
pub struct MemPort {
    switch: MemSwitch,
    idx: usize,
    /// The station's receive queue this port reads.
    queue: usize,
    mac: EthernetAddress,
    tx: VecDeque<MemBuf>,
    /// Frames the simulated device takes per `flush` (None: all).
    tx_ring: Option<usize>,
    counters: PortCounters,
}

impl MemPort {
    /// This port's index on its switch, as passed to a [`MemSwitch`] hook
    /// (ports are numbered 0, 1, ... in the order they were attached).
    pub fn index(&self) -> usize {
        self.idx
    }

    /// Makes the simulated device take at most `n` frames per `flush` (as a
    /// small TX ring would), or all of them (None, the default).
    pub fn set_tx_ring(&mut self, n: Option<usize>) {
        self.tx_ring = n;
    }

    /// Injects a frame as if it had arrived from the wire.
    pub fn inject(&self, frame: &[u8]) {
        let mut s = self.switch.inner.borrow_mut();
        s.stations[self.idx].inboxes[self.queue].push_back(MemBuf::from_slice(frame));
    }

    /// Takes every frame waiting for this port (for a test playing a host).
    pub fn take_all(&self) -> Vec<MemBuf> {
        let mut s = self.switch.inner.borrow_mut();
        s.stations[self.idx].inboxes[self.queue].drain(..).collect()
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
            match s.stations[self.idx].inboxes[self.queue].pop_front() {
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
        if self.tx.len() >= super::TX_BACKLOG {
            self.counters.tx_dropped += 1;
            return;
        }
        self.tx.push_back(buf);
        if self.tx.len() >= super::BURST && self.tx_ring.is_none() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let n = self.tx_ring.unwrap_or(usize::MAX).min(self.tx.len());
        self.counters.tx_packets += n as u64;
        let mut s = self.switch.inner.borrow_mut();
        for f in self.tx.drain(..n) {
            s.transmit(self.idx, f);
        }
        self.counters.tx_deferred += self.tx.len() as u64;
    }

    fn tx_backlog(&self) -> usize {
        self.tx.len()
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M0: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const M1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn frame(tag: u8) -> MemBuf {
        let mut f = [0u8; 20];
        f[0..6].copy_from_slice(M1.as_bytes());
        f[6..12].copy_from_slice(M0.as_bytes());
        f[14] = tag;
        MemBuf::from_slice(&f)
    }

    fn tags(p: &MemPort) -> Vec<u8> {
        p.take_all().iter().map(|b| b.data()[14]).collect()
    }

    #[test]
    fn hook_drops_duplicates_holds_and_delays() {
        let sw = MemSwitch::new(1);
        let mut p0 = sw.port(M0);
        let p1 = sw.port(M1);
        // Without a hook every frame is delivered once.
        p0.send(frame(0));
        p0.flush();
        assert_eq!(tags(&p1), vec![0]);
        sw.set_hook(|from, f| {
            assert_eq!(from, 0);
            match f[14] {
                1 => HookAction::Drop,
                2 => HookAction::Duplicate,
                3 => HookAction::Hold,
                4 => HookAction::Delay(2),
                _ => HookAction::Deliver,
            }
        });
        for t in [1, 2, 3, 4, 5, 6, 7] {
            p0.send(frame(t));
        }
        p0.flush();
        // 4 waits for two more frames (5 and 6) and comes after 6.
        assert_eq!(tags(&p1), vec![2, 2, 5, 6, 4, 7]);
        assert_eq!(sw.hooked(), 1);
        assert_eq!(sw.pending(), 0);
        assert_eq!(sw.hook_dropped(), 1);
        assert_eq!(sw.release_hooked(), 1);
        assert_eq!(tags(&p1), vec![3]);
        sw.clear_hook();
        p0.send(frame(1));
        p0.flush();
        assert_eq!(tags(&p1), vec![1]);
        assert_eq!(p0.index(), 0);
        assert_eq!(p1.index(), 1);
    }
}
