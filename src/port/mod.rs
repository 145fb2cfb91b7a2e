//! The port boundary: burst receive and transmit of packet buffers.
//!
//! A [`Port`] hands out packet buffers ([`PacketBuf`]) on receive and takes
//! them back on transmit; the node never copies a packet it forwards or
//! answers in place. Two implementations exist: [`dpdk::DpdkPort`] over a
//! DPDK ethdev queue (the only `unsafe` code in the crate) and
//! [`mem::MemPort`], an in-memory switch with seeded loss, reordering and
//! duplication for deterministic tests.

pub mod dpdk;
pub mod mem;

use smoltcp::wire::EthernetAddress;

/// Largest receive or transmit burst.
pub const BURST: usize = 32;
/// Frames a port keeps queued while its device's TX ring is full, at most
/// (well below the default pool of 16 383 buffers); beyond it new frames are
/// freed and counted in `tx_dropped`.
pub const TX_BACKLOG: usize = 1024;

/// Why a buffer operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufError {
    /// Not enough headroom in front of the data.
    NoHeadroom,
    /// Not enough room behind the data.
    NoTailroom,
    /// The buffer holds fewer bytes than asked for.
    TooShort,
    /// The buffer is chained (multi-segment); ipos handles single segments.
    Chained,
}

impl core::fmt::Display for BufError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BufError::NoHeadroom => "not enough headroom",
            BufError::NoTailroom => "not enough tailroom",
            BufError::TooShort => "buffer too short",
            BufError::Chained => "chained buffer",
        })
    }
}

impl std::error::Error for BufError {}

/// One packet in a buffer owned by its port's pool; dropping it returns it.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Sets the packet length (grows into the tailroom or shrinks).
    fn set_len(&mut self, len: usize) -> Result<(), BufError>;
    /// Grows the packet by `n` bytes at the front (into the headroom).
    fn prepend(&mut self, n: usize) -> Result<(), BufError>;
    /// Removes `n` bytes at the front.
    fn adj(&mut self, n: usize) -> Result<(), BufError>;
    /// Bytes that `set_len` may still grow by.
    fn tailroom(&self) -> usize;
    /// Packet length.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no byte.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters a port keeps about itself (software side).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortCounters {
    /// Packets received by `rx_burst`.
    pub rx_packets: u64,
    /// Packets handed to the device.
    pub tx_packets: u64,
    /// Packets freed unsent because the TX backlog was full.
    pub tx_dropped: u64,
    /// Packets the device refused (its TX ring was full) that stayed queued for
    /// the next try; a packet that waits several tries counts each time.
    pub tx_deferred: u64,
    /// Buffer allocations that failed (pool empty).
    pub alloc_failed: u64,
    /// Received chained (multi-segment) packets, dropped.
    pub rx_chained: u64,
}

impl PortCounters {
    /// Adds the counters of another queue of the same port.
    pub fn add_all(&mut self, o: &PortCounters) {
        self.rx_packets += o.rx_packets;
        self.tx_packets += o.tx_packets;
        self.tx_dropped += o.tx_dropped;
        self.tx_deferred += o.tx_deferred;
        self.alloc_failed += o.alloc_failed;
        self.rx_chained += o.rx_chained;
    }
}

/// A poll-mode port queue pair as the node sees it.
pub trait Port {
    /// The packet buffer type of this port.
    type Buf: PacketBuf;
    /// The port's MAC address.
    fn mac(&self) -> EthernetAddress;
    /// Receives up to `BURST - out.len()` packets, appending them to `out`.
    /// `out` must have capacity for [`BURST`] buffers; this never allocates.
    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>) -> usize;
    /// A fresh empty buffer from the port's pool.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// Queues a packet for transmission; a full burst is handed to the
    /// device at once. When [`TX_BACKLOG`] packets already wait, the packet is
    /// freed and counted (`tx_dropped`).
    fn send(&mut self, buf: Self::Buf);
    /// Hands queued packets to the device until it refuses some (its TX ring
    /// is full); those stay queued, in order, for the next `flush` (counted in
    /// `tx_deferred`).
    fn flush(&mut self);
    /// Packets queued and not yet taken by the device. Producers that can
    /// wait (TCP endpoints) stop while this is high.
    fn tx_backlog(&self) -> usize;
    /// Software counters.
    fn counters(&self) -> PortCounters;
}
