//! The connection notice (ipos extension type 0x11, body 6 bytes): a
//! connection moved to a new owner, closed, or was kept by its source.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | owner IPv4 address: the new owner (to a forwarder: "forward to it now"); 0.0.0.0 (to a forwarder: "the connection closed"); the sender's own address, sent by a source to a target ("I kept it, forget your copy") |
//! | 4 | 2 | owner port; with owner 0.0.0.0, why: 0 the connection ended (the forwarder drops the client's late duplicates quietly for a while), 1 the owner does not know it (it restarted, or forgot it: the forwarder lets the client's next segment get a RST) |
//!
//! The ipOS header's flow names the connection (client IP/port, VIP/port).

use smoltcp::wire::Ipv4Address;

/// Length of a connection notice body.
pub const NOTICE_LEN: usize = 6;

/// A connection notice: the connection is now owned by `owner`, or closed
/// when the owner is 0.0.0.0.
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

    /// "I do not know this connection" (it restarted, or forgot it): the
    /// forwarder drops its entry without remembering the flow, so that the
    /// client's next segment gets a RST instead of silence.
    pub const RESET: Notice = Notice {
        owner_ip: Ipv4Address::UNSPECIFIED,
        owner_port: 1,
    };

    /// "The connection lives at `ip`:`port` now": to a forwarder, a move;
    /// from a source to its target, with the source's own address, "I kept
    /// it, forget your copy".
    pub const fn owner(ip: Ipv4Address, port: u16) -> Notice {
        Notice {
            owner_ip: ip,
            owner_port: port,
        }
    }

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

    /// True for the "closed" notice (and for [`Notice::RESET`]).
    pub fn is_closed(&self) -> bool {
        self.owner_ip.is_unspecified()
    }

    /// True for [`Notice::RESET`]: closed because the owner does not know it.
    pub fn is_reset(&self) -> bool {
        self.is_closed() && self.owner_port == 1
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
        assert!(!Notice::parse(&[0; 6]).unwrap().is_reset());
        assert_eq!(Notice::RESET.emit(), [0, 0, 0, 0, 0, 1]);
        let r = Notice::parse(&Notice::RESET.emit()).unwrap();
        assert!(r.is_closed() && r.is_reset());
        assert!(!n.is_reset());
        assert_eq!(Notice::owner(Ipv4Address::new(198, 18, 0, 13), 80), n);
    }
}
