//! Who a node is, and the farm it belongs to: every node's name, MAC and
//! address, looked up by MAC (who sent an ipOS frame) or by address (where the
//! policy sends a connection), and whether each one is heard.
//!
//! # Liveness
//!
//! A peer is [`Liveness::Unheard`] until its first advert is taken, then
//! [`Liveness::Up`]; a peer whose adverts stop for
//! [`NodeOptions::peer_down_after`](super::NodeOptions::peer_down_after) is
//! [`Liveness::Down`] (one timer per peer in the node's wheel finds out,
//! see `src/node/advert.rs`), and `Up` again with its next advert, whatever
//! its sequence. Each peer has an *epoch*: it grows when the peer goes down
//! and when its adverts show a restart. A forward entry records its target's
//! epoch; an entry of an older epoch, or whose target is down, points at
//! endpoints that are gone.

use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// Another node of the farm (or this one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Node name.
    pub name: String,
    /// Its MAC on the farm network.
    pub mac: EthernetAddress,
    /// Its address.
    pub ip: Ipv4Address,
}

/// Who a node is and what it serves. [`crate::config::FarmConfig::identity`]
/// builds it from the farm file.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Node name, as in the farm file.
    pub name: String,
    /// The MAC its port uses.
    pub mac: EthernetAddress,
    /// Its own IPv4 address.
    pub ip: Ipv4Address,
    /// The VIP, when this node fronts it (answers ARP and accepts on it).
    pub vip: Option<Ipv4Address>,
    /// The farm's VIP, whoever fronts it: the address of every connection
    /// that moves (a connection packet for any other is refused).
    pub farm_vip: Option<Ipv4Address>,
    /// TCP ports served.
    pub service_ports: Vec<u16>,
    /// EtherType of ipOS frames.
    pub ethertype: u16,
    /// UDP echo service port, if any.
    pub udp_echo_port: Option<u16>,
    /// Every node of the farm, this one included.
    pub peers: Vec<Peer>,
    /// The farm key and mode that seal and check every ipOS frame; `None`:
    /// frames travel without the authentication trailer.
    pub auth: Option<crate::auth::AuthConfig>,
}

impl NodeIdentity {
    /// True when `ip` is one of this node's addresses (its own, or the VIP it fronts).
    pub fn owns_ip(&self, ip: Ipv4Address) -> bool {
        ip == self.ip || Some(ip) == self.vip
    }
}

/// A farm node, as an index into [`Peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(u16);

impl PeerId {
    /// Its position in the farm's node list.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A peer's addresses, copied where a frame is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    /// Its MAC.
    pub mac: EthernetAddress,
    /// Its IPv4 address.
    pub ip: Ipv4Address,
}

/// Whether a peer is heard: one phase per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// No advert taken from it yet.
    Unheard,
    /// Its last advert was taken at `last`.
    Up {
        /// When its last advert was taken.
        last: Instant,
    },
    /// Silent since `last` (its last advert), for longer than the node allows.
    Down {
        /// When its last advert was taken.
        last: Instant,
    },
}

/// A peer's liveness and epoch.
#[derive(Debug, Clone, Copy)]
struct PeerState {
    live: Liveness,
    epoch: u32,
}

/// Every node of the farm, this one included.
#[derive(Debug, Clone)]
pub struct Peers {
    list: Vec<PeerAddr>,
    names: Vec<String>,
    state: Vec<PeerState>,
    down: usize,
    me: PeerId,
}

impl Peers {
    /// The farm of `id` (`id` itself is added when its peer list lacks it).
    pub fn new(id: &NodeIdentity) -> Peers {
        let mut list: Vec<PeerAddr> = id
            .peers
            .iter()
            .map(|p| PeerAddr {
                mac: p.mac,
                ip: p.ip,
            })
            .collect();
        let mut names: Vec<String> = id.peers.iter().map(|p| p.name.clone()).collect();
        let me = match list.iter().position(|p| p.ip == id.ip) {
            Some(i) => i,
            None => {
                list.push(PeerAddr {
                    mac: id.mac,
                    ip: id.ip,
                });
                names.push(id.name.clone());
                list.len() - 1
            }
        };
        let state = vec![
            PeerState {
                live: Liveness::Unheard,
                epoch: 0,
            };
            list.len()
        ];
        Peers {
            list,
            names,
            state,
            down: 0,
            me: PeerId(me as u16),
        }
    }

    /// Every peer, this node included.
    pub fn ids(&self) -> impl Iterator<Item = PeerId> {
        (0..self.list.len() as u16).map(PeerId)
    }

    /// The name of `id`, as in the farm file.
    pub fn name(&self, id: PeerId) -> &str {
        &self.names[usize::from(id.0)]
    }

    /// Whether `id` is heard.
    pub fn liveness(&self, id: PeerId) -> Liveness {
        self.state[usize::from(id.0)].live
    }

    /// True when `id` is down.
    pub fn is_down(&self, id: PeerId) -> bool {
        matches!(self.liveness(id), Liveness::Down { .. })
    }

    /// Peers down now.
    pub fn down_count(&self) -> usize {
        self.down
    }

    /// The epoch of `id` (see the module docs).
    pub fn epoch(&self, id: PeerId) -> u32 {
        self.state[usize::from(id.0)].epoch
    }

    /// True when the peer whose MAC is `mac` is up (or unheard) and still in
    /// `epoch`: the endpoints a forward entry of that epoch points at may live.
    pub fn is_current(&self, mac: EthernetAddress, epoch: u32) -> bool {
        self.by_mac(mac).is_some_and(|p| {
            let s = self.state[usize::from(p.0)];
            s.epoch == epoch && !matches!(s.live, Liveness::Down { .. })
        })
    }

    /// An advert of `id` was taken at `now`; returns its liveness before.
    pub fn heard(&mut self, id: PeerId, now: Instant) -> Liveness {
        let s = &mut self.state[usize::from(id.0)];
        let before = s.live;
        if matches!(before, Liveness::Down { .. }) {
            self.down -= 1;
        }
        s.live = Liveness::Up { last: now };
        before
    }

    /// `id` is down since its last advert: a new epoch begins.
    pub fn set_down(&mut self, id: PeerId) {
        let s = &mut self.state[usize::from(id.0)];
        if let Liveness::Up { last } = s.live {
            s.live = Liveness::Down { last };
            s.epoch = s.epoch.wrapping_add(1);
            self.down += 1;
        }
    }

    /// `id` restarted while up: what it held is gone, a new epoch begins.
    pub fn restarted(&mut self, id: PeerId) {
        let s = &mut self.state[usize::from(id.0)];
        s.epoch = s.epoch.wrapping_add(1);
    }

    /// This node.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// The node whose MAC is `mac`.
    pub fn by_mac(&self, mac: EthernetAddress) -> Option<PeerId> {
        self.list
            .iter()
            .position(|p| p.mac == mac)
            .map(|i| PeerId(i as u16))
    }

    /// The node whose address is `ip`.
    pub fn by_ip(&self, ip: Ipv4Address) -> Option<PeerId> {
        self.list
            .iter()
            .position(|p| p.ip == ip)
            .map(|i| PeerId(i as u16))
    }

    /// The addresses of `id`.
    pub fn addr(&self, id: PeerId) -> PeerAddr {
        self.list[usize::from(id.0)]
    }

    /// The address of `id`.
    pub fn ip(&self, id: PeerId) -> Ipv4Address {
        self.addr(id).ip
    }

    /// The MAC of `id`.
    pub fn mac(&self, id: PeerId) -> EthernetAddress {
        self.addr(id).mac
    }

    /// Every node's address, this one included.
    pub fn ips(&self) -> impl Iterator<Item = Ipv4Address> + '_ {
        self.list.iter().map(|p| p.ip)
    }

    /// Every node's MAC, in [`PeerId`] order.
    pub fn macs(&self) -> impl Iterator<Item = EthernetAddress> + '_ {
        self.list.iter().map(|p| p.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(peers: Vec<Peer>) -> NodeIdentity {
        NodeIdentity {
            name: "a".into(),
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ip: Ipv4Address::new(198, 18, 0, 11),
            vip: Some(Ipv4Address::new(198, 18, 0, 100)),
            farm_vip: Some(Ipv4Address::new(198, 18, 0, 100)),
            service_ports: vec![80],
            ethertype: 7,
            udp_echo_port: None,
            peers,
            auth: None,
        }
    }

    #[test]
    fn lookups_and_self() {
        let b = Peer {
            name: "b".into(),
            mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ip: Ipv4Address::new(198, 18, 0, 12),
        };
        let p = Peers::new(&id(vec![b.clone()]));
        assert_eq!(p.ips().count(), 2, "the node itself is added");
        let me = p.me();
        assert_eq!(p.ip(me), Ipv4Address::new(198, 18, 0, 11));
        let pb = p.by_mac(b.mac).unwrap();
        assert_eq!(p.by_ip(b.ip), Some(pb));
        assert_eq!(
            p.addr(pb),
            PeerAddr {
                mac: b.mac,
                ip: b.ip
            }
        );
        assert!(p.by_mac(EthernetAddress([2, 0, 0, 0, 0, 9])).is_none());
        assert!(id(vec![]).owns_ip(Ipv4Address::new(198, 18, 0, 100)));
        assert_eq!(p.name(pb), "b");
        assert_eq!(p.name(me), "a", "the node's own name when it is added");
    }

    #[test]
    fn liveness_and_epochs() {
        let b = Peer {
            name: "b".into(),
            mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ip: Ipv4Address::new(198, 18, 0, 12),
        };
        let mut p = Peers::new(&id(vec![b.clone()]));
        let pb = p.by_mac(b.mac).unwrap();
        let t = Instant::from_millis(10);
        assert_eq!(p.liveness(pb), Liveness::Unheard);
        assert!(p.is_current(b.mac, 0));
        p.set_down(pb);
        assert_eq!(p.liveness(pb), Liveness::Unheard, "never heard: not down");
        assert_eq!(p.heard(pb, t), Liveness::Unheard);
        p.set_down(pb);
        assert!(p.is_down(pb));
        assert_eq!(p.down_count(), 1);
        assert!(!p.is_current(b.mac, 0), "down");
        assert!(!p.is_current(b.mac, 1), "down, whatever the epoch");
        assert_eq!(p.heard(pb, t), Liveness::Down { last: t });
        assert_eq!(p.down_count(), 0);
        assert!(p.is_current(b.mac, 1));
        assert!(!p.is_current(b.mac, 0), "an entry of the old epoch is dead");
        p.restarted(pb);
        assert_eq!(p.epoch(pb), 2);
        assert!(!p.is_current(EthernetAddress([2, 0, 0, 0, 0, 9]), 0));
    }
}
