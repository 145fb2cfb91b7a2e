//! Node counters: every packet a node receives is either handled (and counted
//! under what it was) or dropped and counted under exactly one reason.

use std::fmt::Write as _;

macro_rules! drop_reasons {
    ($($variant:ident => $label:literal, $doc:literal;)*) => {
        /// Why a node dropped a received frame.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();
            /// Stable snake_case label used in stats output.
            pub fn label(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated", "Shorter than an Ethernet header.";
    OtherMac => "other_mac", "Unicast to a MAC that is not ours.";
    UnknownEthertype => "unknown_ethertype", "An EtherType the node does not handle.";
    ArpMalformed => "arp_malformed", "An ARP packet that does not parse.";
    ArpNotForUs => "arp_not_for_us", "An ARP request for an address we do not own, or a reply.";
    Ipv4Malformed => "ipv4_malformed", "A bad IPv4 header or length.";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum wrong.";
    Ipv4Fragment => "ipv4_fragment", "IPv4 fragments are not reassembled.";
    Ipv4NotForUs => "ipv4_not_for_us", "IPv4 destination is not one of our addresses.";
    Ipv4OtherProtocol => "ipv4_other_protocol", "IP protocol other than ICMP, TCP.";
    IcmpMalformed => "icmp_malformed", "An ICMP message that does not parse or has a bad checksum.";
    IcmpIgnored => "icmp_ignored", "ICMP other than echo request.";
    TcpMalformed => "tcp_malformed", "A TCP header that does not parse.";
    TcpBadChecksum => "tcp_bad_checksum", "TCP checksum wrong.";
    TcpNoListener => "tcp_no_listener", "SYN to a port we do not serve (RST sent).";
    TcpNoConnection => "tcp_no_connection", "Segment for no known connection (RST sent unless it was a RST).";
    TcpRejected => "tcp_rejected", "Segment the endpoint refused as invalid.";
    TcpTableFull => "tcp_table_full", "SYN refused: the local connection table is full.";
    IposTruncated => "ipos_truncated", "ipOS frame shorter than its kind needs.";
    IposBadChecksum => "ipos_bad_checksum", "ipOS checksum wrong.";
    IposUnknownType => "ipos_unknown_type", "ipOS type value unknown.";
    IposUnknownProtocol => "ipos_unknown_protocol", "ipOS protocol value unknown.";
    IposBadInner => "ipos_bad_inner", "ipOS data frame whose inner packet is invalid or does not match.";
    IposBadLength => "ipos_bad_length", "ipOS frame length inconsistent.";
    IposUnexpected => "ipos_unexpected", "A valid ipOS frame this node has no use for (no such connection or role).";
    TxNoBuffer => "tx_no_buffer", "A reply could not be sent: no free packet buffer.";
}

/// Per-node counters. Owned by one poll loop; copied out for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames handed to the port for sending.
    pub tx_frames: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ICMP echo replies sent.
    pub icmp_echo_replies: u64,
    /// TCP connections accepted.
    pub tcp_accepted: u64,
    /// TCP connections that ended and were removed.
    pub tcp_closed: u64,
    /// TCP segments given to an endpoint.
    pub tcp_segments_in: u64,
    /// TCP segments sent by endpoints.
    pub tcp_segments_out: u64,
    /// RSTs sent for segments without a connection.
    pub tcp_resets_sent: u64,
    /// Valid ipOS frames received, by type (connection, data, ack, extension).
    pub ipos_rx: [u64; 4],
    /// Dropped frames by reason.
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx_frames: 0,
            tx_frames: 0,
            arp_replies: 0,
            icmp_echo_replies: 0,
            tcp_accepted: 0,
            tcp_closed: 0,
            tcp_segments_in: 0,
            tcp_segments_out: 0,
            tcp_resets_sent: 0,
            ipos_rx: [0; 4],
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Counts a drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// The count for one drop reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every counter as `(name, value)` pairs, drops as `drop.<reason>`.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = vec![
            ("rx_frames".into(), self.rx_frames),
            ("tx_frames".into(), self.tx_frames),
            ("arp_replies".into(), self.arp_replies),
            ("icmp_echo_replies".into(), self.icmp_echo_replies),
            ("tcp_accepted".into(), self.tcp_accepted),
            ("tcp_closed".into(), self.tcp_closed),
            ("tcp_segments_in".into(), self.tcp_segments_in),
            ("tcp_segments_out".into(), self.tcp_segments_out),
            ("tcp_resets_sent".into(), self.tcp_resets_sent),
            ("ipos_rx_connection".into(), self.ipos_rx[0]),
            ("ipos_rx_data".into(), self.ipos_rx[1]),
            ("ipos_rx_ack".into(), self.ipos_rx[2]),
            ("ipos_rx_extension".into(), self.ipos_rx[3]),
        ];
        for r in DropReason::ALL {
            v.push((format!("drop.{}", r.label()), self.dropped(*r)));
        }
        v
    }

    /// One line of the non-zero counters, for the periodic log.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.pairs() {
            if v != 0 {
                let _ = write!(s, "{k}={v} ");
            }
        }
        s.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unique_and_indexed() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(seen.insert(r.label()), "duplicate label {}", r.label());
        }
        let mut c = Counters::default();
        c.drop(DropReason::IposBadChecksum);
        c.drop(DropReason::IposBadChecksum);
        assert_eq!(c.dropped(DropReason::IposBadChecksum), 2);
        assert_eq!(c.total_drops(), 2);
        assert!(c.summary().contains("drop.ipos_bad_checksum=2"));
    }
}
