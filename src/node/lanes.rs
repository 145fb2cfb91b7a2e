//! Many lcores, one node: *lanes*.
//!
//! A node that polls several lcores runs one [`Node`](super::Node) per lcore,
//! a *lane*, each on its own receive and transmit queue pair of the port,
//! each with its own tables and timers (no lock, no shared write). The lanes
//! share the node's identity (MAC, address, peers, farm key) and split its
//! connections by flow: a flow belongs to lane `L(flow)`, the Toeplitz hash
//! of its addresses and ports ([`flow_hash`], with the symmetric key, so both
//! directions of a flow hash alike) taken through a 128-entry redirection
//! table as a NIC's default one fills it (`(hash % 128) % lanes`).
//!
//! **Order.** A move's frames must reach the target's owning lane in the
//! order they were sent (the connection packet before the carried request
//! chunks). A NIC keeps them in order on one queue (RSS hashes IPv4 only;
//! `net_tap`'s queue choice is by flow too), and a lane's ring is FIFO from
//! each producer, so frames that arrive in order on one queue are handled in
//! order: by the lane of that queue straight to the owner, or through lane 0
//! when sealed. That is also why one lane opens every sealed frame: a
//! replayed frame always meets the windows that saw it, and frames of one
//! sender are never reordered between two opening lanes. Its cost is lane
//! 0's time per sealed frame received (see the README's figures).
//!
//! **How a frame reaches its lane.** A NIC with RSS configured with the same
//! key sends most client packets to the right queue already; whatever arrives
//! elsewhere (every ipOS frame, which no NIC hashes by the flow inside it;
//! client packets on a device without RSS, such as `net_tap`) takes one
//! *software hop*: the lane that received it pushes it onto the owner's
//! inbound ring (a bounded lock-free [`crossbeam`] `ArrayQueue`, one per
//! lane, [`RING`] frames; full: dropped and counted `drop.lane_ring_full`),
//! and the owner handles it at its next poll. A hop costs one enqueue and one
//! dequeue of a pointer (the frame is not copied) and the cache misses of
//! touching the frame on another core.
//!
//! | frame | lane |
//! |---|---|
//! | client TCP or UDP | `L(flow)` |
//! | ipOS, farm without a key | `L(flow)` of the connection it is about (for a data frame, the flow of the packet inside) |
//! | ipOS, farm with a key | first lane 0, which checks (and decrypts) every sealed frame with the one set of replay windows, then `L(flow)` |
//! | ipOS advert | every lane (copies): each keeps its view of the farm and of which peers are up |
//! | ARP | the lane that received it answers; every lane learns (copies) |
//! | anything else | the lane that received it |
//!
//! Lane 0 alone sends the node's adverts; the load it advertises is the sum
//! of what every lane serves (each lane publishes its count after each poll),
//! and every lane puts that same row in its own view. A peer's restart found
//! by one lane (a new epoch in its sealed frames) is told to the others on
//! the same rings, so each acts on it once.
//!
//! Limits (`max_connections`, the forward table...) are per lane.

use super::PeerId;
use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use ipos_wire::Flow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Frames a lane's inbound ring holds.
pub const RING: usize = 4096;

/// Lanes a node may have (the farm key's sequence numbers name at most as many).
pub const MAX_LANES: usize = crate::auth::MAX_LANES;

/// Entries of the redirection table the lane of a hash is taken through.
const RETA_SIZE: u32 = 128;

/// The symmetric RSS key (0x6d5a repeated): the hash of a flow and of its
/// reverse are equal.
pub const RSS_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Input bytes of the IPv4 4-tuple hash: source and destination address,
/// source and destination port, in network order.
const TUPLE_LEN: usize = 12;

/// `TABLE[p][v]`: the Toeplitz hash contribution of byte value `v` at input
/// position `p`, computed at compile time from [`RSS_KEY`].
static TABLE: [[u32; 256]; TUPLE_LEN] = {
    let mut t = [[0u32; 256]; TUPLE_LEN];
    let mut p = 0;
    while p < TUPLE_LEN {
        let mut v = 0;
        while v < 256 {
            let mut h = 0u32;
            let mut b = 0;
            while b < 8 {
                if (v >> (7 - b)) & 1 == 1 {
                    h ^= key_window(p * 8 + b);
                }
                b += 1;
            }
            t[p][v] = h;
            v += 1;
        }
        p += 1;
    }
    t
};

/// The 32 key bits starting at bit `bit` (most significant bit first).
const fn key_window(bit: usize) -> u32 {
    let mut w = 0u32;
    let mut i = 0;
    while i < 32 {
        let k = bit + i;
        let set = (RSS_KEY[k / 8] >> (7 - (k % 8))) & 1;
        w = (w << 1) | set as u32;
        i += 1;
    }
    w
}

/// The Toeplitz hash (RSS) of an IPv4 4-tuple with [`RSS_KEY`], as a NIC
/// computes it over `src addr, dst addr, src port, dst port`.
pub fn flow_hash(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> u32 {
    let mut input = [0u8; TUPLE_LEN];
    input[0..4].copy_from_slice(&src);
    input[4..8].copy_from_slice(&dst);
    input[8..10].copy_from_slice(&sport.to_be_bytes());
    input[10..12].copy_from_slice(&dport.to_be_bytes());
    let mut h = 0;
    for (p, &v) in input.iter().enumerate() {
        h ^= TABLE[p][v as usize];
    }
    h
}

/// The lane of a hash among `lanes`, through a default redirection table.
pub fn lane_of_hash(hash: u32, lanes: usize) -> usize {
    ((hash % RETA_SIZE) as usize) % lanes.max(1)
}

/// The lane of a flow among `lanes` (either direction of it).
pub fn lane_of_flow(flow: &Flow, lanes: usize) -> usize {
    lane_of_hash(
        flow_hash(
            flow.src_addr.octets(),
            flow.dst_addr.octets(),
            flow.src_port,
            flow.dst_port,
        ),
        lanes,
    )
}

/// How a frame on a lane's inbound ring reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// From this lane's own device queue: not yet steered.
    Wire,
    /// A client or ARP frame another lane steered here: handle it.
    Steered,
    /// An ipOS frame for this lane to check (and open) first.
    Sealed,
    /// An ipOS frame another lane checked and opened: handle it.
    Opened,
    /// A copy for every lane: an opened advert, or an ARP frame to learn
    /// from (not to answer).
    Copy,
}

/// What one lane hands another.
pub(crate) enum Hop<B> {
    /// A frame, and how far it got.
    Frame(B, Stage),
    /// Peer `peer` restarted: its frames now carry `epoch`.
    PeerEpoch { peer: PeerId, epoch: u64 },
}

/// What each lane publishes for the others, on its own cache line.
#[derive(Default)]
struct Published {
    /// Connections the lane serves.
    serving: AtomicUsize,
    /// Polls, and polls that found work, since the lane started.
    polls: AtomicU64,
    busy_polls: AtomicU64,
}

struct Group<B> {
    /// The node's boot epoch, the same on every lane (sealed frames carry it).
    epoch: u64,
    rings: Vec<ArrayQueue<Hop<B>>>,
    published: Vec<CachePadded<Published>>,
}

/// One lane's end of its node's lanes: its number, its inbound ring and the
/// others'.
pub struct Lane<B> {
    me: usize,
    group: Arc<Group<B>>,
    /// The epoch of each peer this lane has acted on (index: peer).
    pub(crate) peer_epochs: Vec<u64>,
    /// Cumulative polls and busy polls of all lanes at the last advert.
    pub(crate) advert_polls: (u64, u64),
    polls: u64,
    busy_polls: u64,
}

impl<B> Lane<B> {
    /// The `n` lanes of one node (1 ..= [`MAX_LANES`]), lane 0 first.
    pub fn group(n: usize) -> Vec<Lane<B>> {
        assert!((1..=MAX_LANES).contains(&n), "1 to {MAX_LANES} lanes");
        let group = Arc::new(Group {
            epoch: crate::auth::boot_epoch(),
            rings: (0..n).map(|_| ArrayQueue::new(RING)).collect(),
            published: (0..n)
                .map(|_| CachePadded::new(Published::default()))
                .collect(),
        });
        (0..n)
            .map(|me| Lane {
                me,
                group: Arc::clone(&group),
                peer_epochs: Vec::new(),
                advert_polls: (0, 0),
                polls: 0,
                busy_polls: 0,
            })
            .collect()
    }

    /// This lane's number.
    pub fn index(&self) -> usize {
        self.me
    }

    /// The node's boot epoch, shared by its lanes.
    pub fn epoch(&self) -> u64 {
        self.group.epoch
    }

    /// How many lanes the node has.
    pub fn count(&self) -> usize {
        self.group.rings.len()
    }

    /// Hands `hop` to lane `to`; gives it back when that lane's ring is full.
    pub(crate) fn push(&self, to: usize, hop: Hop<B>) -> Result<(), Hop<B>> {
        self.group.rings[to].push(hop)
    }

    /// The next hop another lane handed this one.
    pub(crate) fn pop(&self) -> Option<Hop<B>> {
        self.group.rings[self.me].pop()
    }

    /// Hops waiting on this lane's ring.
    pub fn waiting(&self) -> usize {
        self.group.rings[self.me].len()
    }

    /// Counts one poll and publishes this lane's load and poll counts.
    pub(crate) fn record_poll(&mut self, busy: bool, serving: usize) {
        self.polls += 1;
        self.busy_polls += u64::from(busy);
        let p = &self.group.published[self.me];
        p.serving.store(serving, Ordering::Relaxed);
        p.polls.store(self.polls, Ordering::Relaxed);
        p.busy_polls.store(self.busy_polls, Ordering::Relaxed);
    }

    /// Busy polls per thousand over every lane since the last call.
    pub(crate) fn take_permille(&mut self) -> u16 {
        let (polls, busy) = self.total_polls();
        let (p0, b0) = self.advert_polls;
        self.advert_polls = (polls, busy);
        let p = (busy.saturating_sub(b0) * 1000)
            .checked_div(polls.saturating_sub(p0))
            .unwrap_or(0);
        p.min(1000) as u16
    }

    /// Connections served by every lane, as last published.
    pub(crate) fn total_serving(&self) -> usize {
        self.group
            .published
            .iter()
            .map(|p| p.serving.load(Ordering::Relaxed))
            .sum()
    }

    /// Polls and busy polls of every lane, as last published.
    pub(crate) fn total_polls(&self) -> (u64, u64) {
        self.group.published.iter().fold((0, 0), |(a, b), p| {
            (
                a + p.polls.load(Ordering::Relaxed),
                b + p.busy_polls.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Toeplitz by its definition, bit by bit, for any key.
    fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
        let window = |bit: usize| {
            (0..32).fold(0u32, |w, i| {
                let k = bit + i;
                (w << 1) | u32::from((key[k / 8] >> (7 - (k % 8))) & 1)
            })
        };
        let mut h = 0u32;
        for (i, byte) in input.iter().enumerate() {
            for b in 0..8 {
                if byte >> (7 - b) & 1 == 1 {
                    h ^= window(i * 8 + b);
                }
            }
        }
        h
    }

    #[test]
    fn toeplitz_matches_the_rss_verification_vector() {
        // Microsoft's RSS verification suite, IPv4 with TCP ports:
        // 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178.
        let ms_key: [u8; 40] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        let mut input = [66, 9, 149, 187, 161, 142, 100, 80, 0, 0, 0, 0];
        input[8..10].copy_from_slice(&2794u16.to_be_bytes());
        input[10..12].copy_from_slice(&1766u16.to_be_bytes());
        assert_eq!(toeplitz(&ms_key, &input), 0x51cc_c178);
        // The table-driven hash is the definition with the symmetric key.
        let mut input = [198, 18, 0, 1, 198, 18, 0, 100, 0, 0, 0, 0];
        input[8..10].copy_from_slice(&40000u16.to_be_bytes());
        input[10..12].copy_from_slice(&80u16.to_be_bytes());
        let a = flow_hash([198, 18, 0, 1], [198, 18, 0, 100], 40000, 80);
        assert_eq!(toeplitz(&RSS_KEY, &input), a);
        // With the symmetric key both directions of a flow hash alike.
        assert_eq!(a, flow_hash([198, 18, 0, 100], [198, 18, 0, 1], 80, 40000));
        assert_ne!(a, flow_hash([198, 18, 0, 1], [198, 18, 0, 100], 40001, 80));
    }

    #[test]
    fn flows_spread_over_the_lanes() {
        let mut per = [0usize; 4];
        for port in 1024..5120u16 {
            let f = Flow {
                src_addr: smoltcp::wire::Ipv4Address::new(198, 18, 0, 1),
                src_port: port,
                dst_addr: smoltcp::wire::Ipv4Address::new(198, 18, 0, 100),
                dst_port: 80,
            };
            per[lane_of_flow(&f, 4)] += 1;
        }
        for n in per {
            assert!((700..1350).contains(&n), "{per:?}");
        }
    }

    #[test]
    fn rings_are_bounded() {
        let lanes: Vec<Lane<u32>> = Lane::group(2);
        for i in 0..RING as u32 {
            assert!(lanes[0].push(1, Hop::Frame(i, Stage::Steered)).is_ok());
        }
        assert!(lanes[0].push(1, Hop::Frame(0, Stage::Steered)).is_err());
        assert_eq!(lanes[1].waiting(), RING);
        assert!(matches!(
            lanes[1].pop(),
            Some(Hop::Frame(0, Stage::Steered))
        ));
        assert!(lanes[0].pop().is_none());
    }
}
