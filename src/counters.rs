//! Node counters: every packet a node receives is either handled (and counted
//! under what it was) or dropped and counted under exactly one reason.

use std::fmt::Write as _;

/// Defines a counter enum: one variant per counter, each with a stable
/// snake_case label and a doc line, plus `ALL`, `COUNT` and `label()`.
macro_rules! labelled_counters {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $label:literal, $doc:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum $name {
            $(#[doc = $doc] $variant,)*
        }

        impl $name {
            /// Every variant, in counter order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();
            /// Stable snake_case label used in stats output.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)*
                }
            }
        }
    };
}

labelled_counters! {
    /// Why a node dropped a received frame.
    DropReason {
        EthTruncated => "eth_truncated", "Shorter than an Ethernet header.";
        OtherMac => "other_mac", "Unicast to a MAC that is not ours.";
        UnknownEthertype => "unknown_ethertype", "An EtherType the node does not handle.";
        ArpMalformed => "arp_malformed", "An ARP packet that does not parse.";
        ArpNotForUs => "arp_not_for_us", "An ARP request for an address we do not own, or a reply.";
        Ipv4Malformed => "ipv4_malformed", "A bad IPv4 header or length.";
        Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum wrong.";
        Ipv4Fragment => "ipv4_fragment", "IPv4 fragments are not reassembled.";
        Ipv4NotForUs => "ipv4_not_for_us", "IPv4 destination is not one of our addresses.";
        Ipv4OtherProtocol => "ipv4_other_protocol", "IP protocol other than ICMP, TCP, UDP.";
        UdpMalformed => "udp_malformed", "A UDP header that does not parse or has a bad checksum.";
        UdpNoService => "udp_no_service", "UDP to a port with no service.";
        UdpServerSource => "udp_server_source", "UDP from a source port below 1024 (echo, chargen, DNS...): never echoed, so two echo services cannot bounce a datagram forever.";
        UdpRateLimited => "udp_rate_limited", "UDP echo refused: over the node's echo rate (udp_echo_rate).";
        UdpTableFull => "udp_table_full", "New UDP flow refused: the UDP flow table is full.";
        ArpWaitFull => "arp_wait_full", "Reply dropped while its next hop's MAC was being resolved (queue full).";
        LaneRingFull => "lane_ring_full", "A frame for another lane of this node whose inbound ring was full.";
        ArpUnsolicited => "arp_unsolicited", "An ARP reply to us that we did not ask for: it refreshes a known entry, creates none.";
        ArpUnresolved => "arp_unresolved", "A reply that waited for its next hop's MAC, freed because ARP got no answer in time (after its retries).";
        IcmpMalformed => "icmp_malformed", "An ICMP message that does not parse or has a bad checksum.";
        IcmpIgnored => "icmp_ignored", "ICMP other than echo request.";
        TcpMalformed => "tcp_malformed", "A TCP header that does not parse.";
        TcpBadChecksum => "tcp_bad_checksum", "TCP checksum wrong.";
        TcpNoListener => "tcp_no_listener", "SYN to a port we do not serve (RST sent).";
        TcpNoConnection => "tcp_no_connection", "Segment for no known connection (RST sent unless it was a RST).";
        TcpAfterClose => "tcp_after_close", "A late segment (no SYN) of a connection that closed here a moment ago: dropped without a RST.";
        TcpRejected => "tcp_rejected", "Segment the endpoint refused as invalid.";
        TcpTableFull => "tcp_table_full", "A connection refused because the local connection table is full (an imported port reuse's SYN, or the ACK returning a SYN cookie: the client sends it again).";
        TcpBadCookie => "tcp_bad_cookie", "An ACK for no connection, while SYN cookies are in use, whose cookie does not check out (RST sent).";
        IposTruncated => "ipos_truncated", "ipOS frame shorter than its kind needs.";
        IposBadChecksum => "ipos_bad_checksum", "ipOS checksum wrong.";
        IposUnknownType => "ipos_unknown_type", "ipOS type value unknown.";
        IposUnknownProtocol => "ipos_unknown_protocol", "ipOS protocol value unknown.";
        IposBadInner => "ipos_bad_inner", "ipOS data frame whose inner packet is invalid, does not match the header, or has a bad IPv4 header checksum.";
        IposBadLength => "ipos_bad_length", "ipOS frame length inconsistent.";
        IposUnexpected => "ipos_unexpected", "A valid ipOS frame this node has no use for (no such connection or role).";
        TxNoBuffer => "tx_no_buffer", "A reply could not be sent: no free packet buffer.";
        IposUnknownSender => "ipos_unknown_sender", "A valid ipOS frame from a MAC that is not a farm node's.";
        IposBadTcb => "ipos_bad_tcb", "Connection packet whose TCB does not parse or import.";
        MigrationHoldFull => "migration_hold_full", "Client packet for a migrating endpoint beyond the hold limit.";
        HoldBudgetFull => "hold_budget_full", "Client packet for a moving endpoint or flow dropped: all moves together hold max_held packets already.";
        PendingFull => "pending_full", "Incoming migration refused: too many migrations in progress.";
        BadChunk => "bad_chunk", "Carried request chunk out of range.";
        AdvertMalformed => "advert_malformed", "Server-state advertisement that does not parse.";
        NoticeMalformed => "notice_malformed", "Connection notice that does not parse or names no known node.";
        ForwardNoTarget => "forward_no_target", "Data frame for a connection this node neither owns nor forwards (its sender is told the connection is closed).";
        ForwardLoop => "forward_loop", "Data frame from the node this node forwards its connection to: the two point at each other and neither holds it (a stale or replayed notice); the entry is removed, so the next packet finds none.";
        ForwardTtlExpired => "forward_ttl_expired", "Data frame whose client packet would be forwarded once more with its IP TTL spent: forwarded on from node to node (a loop of three nodes or more, from stale or replayed notices); the entry is removed, so the next packet finds none.";
        RecommitRate => "recommit_rate", "Acknowledgement for a connection that moved away, answered with a commit no more (the re-commit budget, 64 a second, is spent: two nodes answering each other).";
        AuthNoTrailer => "auth_no_trailer", "ipOS frame too short to carry the farm authentication trailer (the farm has a key; the sender has none, or the frame was cut).";
        AuthWrongMode => "auth_wrong_mode", "ipOS frame whose trailer names another mode than this farm's (authenticated or encrypted), or an unknown one.";
        AuthUnknownKey => "auth_unknown_key", "ipOS frame sealed with a key id this node does not hold.";
        AuthBadTag => "auth_bad_tag", "ipOS frame whose authentication tag does not verify: forged, corrupted, or from another farm's key.";
        AuthReplayed => "auth_replayed", "ipOS frame whose sequence number was seen already or is older than the replay window.";
        AuthOldEpoch => "auth_old_epoch", "ipOS frame from an earlier boot of its sender (a replay across a restart).";
        NoticeNotOwner => "notice_not_owner", "Connection notice from a node that is not the connection's current owner (forwarder) or source (target).";
        ConnNotOurService => "conn_not_our_service", "Connection packet for an address or port this farm does not serve (not the VIP or a service port).";
        ServiceStateMalformed => "service_state_malformed", "A service-state record that does not parse, does not match its TCB (length, send bytes), or comes from another node than the move's source.";
        Draining => "draining", "A connection packet (an incoming move) refused because this node is draining: its source keeps the connection.";
        TunnelTooBig => "tunnel_too_big", "A client packet that would not fit in a data frame on the farm segment (farm MTU).";
    }
}

labelled_counters! {
    /// Things a node counts besides drops.
    Event {
        RxFrames => "rx_frames", "Frames received.";
        TxFrames => "tx_frames", "Frames handed to the port for sending.";
        ArpReplies => "arp_replies", "ARP replies sent.";
        IcmpEchoReplies => "icmp_echo_replies", "ICMP echo replies sent.";
        TcpAccepted => "tcp_accepted", "TCP connections accepted.";
        TcpClosed => "tcp_closed", "TCP connections that ended and were removed.";
        TcpSegmentsIn => "tcp_segments_in", "TCP segments given to an endpoint.";
        TcpSegmentsOut => "tcp_segments_out", "TCP segments sent by endpoints.";
        TcpResetsSent => "tcp_resets_sent", "RSTs sent for segments without a connection.";
        IposRxConnection => "ipos_rx_connection", "Valid ipOS connection packets received.";
        IposRxData => "ipos_rx_data", "Valid ipOS data frames received.";
        IposRxAck => "ipos_rx_ack", "Valid ipOS migration acknowledgements received.";
        IposRxExtension => "ipos_rx_extension", "Valid ipOS extension frames received.";
        DecisionLocal => "decision_local", "Requests the policy kept on this node.";
        DecisionUrl => "decision_url", "Requests routed by the URL map.";
        DecisionCookie => "decision_cookie", "Requests routed by the cookie map.";
        DecisionLoad => "decision_load", "Requests routed by server load.";
        MigrationsStarted => "migrations_started", "Endpoint migrations this node started.";
        MigrationsSent => "migrations_sent", "Connection packets sent (first tries and retries).";
        MigrationsRetried => "migrations_retried", "Connection packets sent again after a time-out.";
        MigrationsAcked => "migrations_acked", "Migrations acknowledged by their target.";
        MigrationsFallback => "migrations_fallback", "Migrations given up after the retries: served locally.";
        MigrationCommitsSent => "migration_commits_sent", "Commits (acknowledgements back to a target) sent.";
        MigrationsCommitted => "migrations_committed", "Imported endpoints whose source committed the move.";
        MigrationsAborted => "migrations_aborted", "Imported endpoints dropped because their source served them after all.";
        MigrationsReceived => "migrations_received", "Endpoints imported from another node.";
        MigrationAcksSent => "migration_acks_sent", "Migration acknowledgements sent.";
        MigrationAcksDuplicate => "migration_acks_duplicate", "Acknowledgements for migrations already done (ignored).";
        MigrationChunksSent => "migration_chunks_sent", "Carried request chunks sent.";
        MigrationOutOfOrderSent => "migration_out_of_order_sent", "Segments rebuilt from bytes the client sent out of order (SACKed, not yet in sequence) and sent to the new owner after the commit, so that it does not renege on them.";
        MovesMidResponse => "moves_mid_response", "Moves started in the middle of a response (or with response bytes unacknowledged): the service state travels and the target regenerates the send buffer.";
        ServiceStatesSent => "service_states_sent", "Service-state records sent after a connection packet (first tries and retries).";
        ServiceStatesDuplicate => "service_states_duplicate", "Service-state records for a move already imported here (a retry after a lost acknowledgement): ignored.";
        DrainsStarted => "drains_started", "Drains started (SIGTERM): the node advertises no listening socket and moves what it serves.";
        DrainMoves => "drain_moves", "Moves a draining node started (mid-response ones are counted under moves_mid_response too).";
        DrainClosed => "drain_closed", "Connections a draining node finished in place after its deadline and closed with a FIN.";
        PlacedFull => "placed_full", "A decision the policy could not record for the rest of the advert interval: the record of placements (64 servers) was full of live entries, so the next choices see that server's advertised load only.";
        RebalanceMoves => "rebalance_moves", "Long-lived connections a node far above the farm's average load moved to the least loaded nodes ([policy] rebalance).";
        RehomeMoves => "rehome_moves", "Keep-alive connections moved at a later request, by a URL or cookie rule (also counted under decision_url or decision_cookie).";
        RehomeOverBudget => "rehome_over_budget", "Later requests a rule gave to another node, served here because their connection had made max_moves moves.";
        MigrationsRefused => "migrations_refused", "Migrations not started (forward table full, state not migratable).";
        MigrationsForwardFull => "migrations_forward_full", "Acknowledged moves abandoned because the forward table was full: served here, the target told to drop its copy.";
        PacketsForwarded => "packets_forwarded", "Client packets forwarded to their endpoint's owner.";
        PacketsHeld => "packets_held", "Client packets held while their endpoint was migrating.";
        ForwardClosed => "forward_closed", "Forward entries removed on the owner's close notice.";
        ForwardMoved => "forward_moved", "Forward entries moved to a new owner (chained migration).";
        ForwardExpired => "forward_expired", "Forward entries removed after the idle time-out.";
        ForwardTargetDown => "forward_target_down", "Forward entries removed because their target went down or restarted (at the client's next segment, which gets a RST, or by the sweep), and UDP flows forwarded to a node that went down (at their next datagram, which starts a new flow).";
        ForwardReset => "forward_reset", "Forward entries removed because their owner no longer knows the connection (it restarted, or forgot it): the client's next segment gets a RST.";
        PeersDown => "peers_down", "Times a farm member went down (no advert for peer_down_after).";
        PeersUp => "peers_up", "Times a farm member that was down was heard again.";
        PeersRestarted => "peers_restarted", "Times a farm member's adverts showed a restart while it was up.";
        NoticesSent => "notices_sent", "Connection notices sent to forwarders.";
        UdpEchoed => "udp_echoed", "UDP datagrams echoed.";
        UdpMigrationsStarted => "udp_migrations_started", "UDP flows this node started to move.";
        UdpMigrationsAcked => "udp_migrations_acked", "UDP flow moves acknowledged.";
        UdpMigrationsReceived => "udp_migrations_received", "UDP flows taken over from a front.";
        UdpMigrationsFallback => "udp_migrations_fallback", "UDP flow moves given up: served locally.";
        UdpForwarded => "udp_forwarded", "UDP datagrams forwarded to their flow's owner.";
        UdpHeld => "udp_held", "UDP datagrams held while their flow was moving.";
        UdpFlowsExpired => "udp_flows_expired", "UDP flow entries removed after the idle time-out.";
        PendingExpired => "pending_expired", "Incoming moves dropped because their carried bytes did not all arrive in time.";
        ArpRequestsSent => "arp_requests_sent", "ARP requests sent to resolve a client's MAC (first tries and retries).";
        ArpCacheFull => "arp_cache_full", "Addresses not learned because the ARP cache was full.";
        ArpExpired => "arp_expired", "ARP cache entries removed after ARP_MAX_AGE without being heard.";
        TxBackpressure => "tx_backpressure", "Times an endpoint held its segments back because the port's transmit queue was backed up.";
        ConnIdleClosed => "conn_idle_closed", "TCP connections aborted after the idle time-out.";
        SynCookiesSent => "syn_cookies_sent", "SYNs answered with a stateless SYN cookie SYN-ACK (RFC 4987).";
        SynCookiesAccepted => "syn_cookies_accepted", "Connections created ESTABLISHED from the ACK that returned a valid SYN cookie.";
        SynBacklogFull => "syn_backlog_full", "SYNs that found the SYN-RECEIVED budget (tcp.syn_backlog) or the connection table full (each answered with a cookie).";
        TcpTimeWaitReused => "tcp_time_wait_reused", "Connections in TIME-WAIT ended by a new SYN from the same client port (RFC 6191), which opened a new connection.";
        TcpHalfOpenTimeouts => "tcp_half_open_timeouts", "Half-open connections aborted because the client never completed the handshake within the request-head time-out (the SYNs of a flood).";
        HttpHeadTimeouts => "http_head_timeouts", "Connections aborted because the client did not send a whole request head in time.";
        HttpResponses => "http_responses", "HTTP responses this node's service gave (counted when their connection leaves the node).";
        HttpUploads => "http_uploads", "Upload bodies read to the end and answered (counted when their connection leaves the node).";
        HttpBodyBytes => "http_body_bytes", "Request body bytes read (counted when their connection leaves the node).";
        AdvertsSent => "adverts_sent", "Server-state advertisements sent.";
        AdvertsReceived => "adverts_received", "Server-state advertisements applied.";
        TcbClamped => "tcb_clamped", "Imported TCBs with a field outside its sane range (MSS, windows, congestion window, RTO), clamped into it.";
        LaneHops => "lane_hops", "Frames handed to the lane (lcore) that owns their flow, or that checks their seal.";
        LaneCopies => "lane_copies", "Copies of adverts and ARP frames handed to every other lane.";
        PeerEpochs => "peer_epochs", "Authenticated frames that began a new epoch of their sender: the first frames heard from it, or its restart.";
        UpstreamOpened => "upstream_opened", "Connections this node began to relay to its upstream (a process behind a service port).";
        UpstreamConnects => "upstream_connects", "Connections the upstream accepted.";
        UpstreamConnectFailures => "upstream_connect_failures", "Connections the upstream refused or that could not be made.";
        UpstreamErrors => "upstream_errors", "Relayed connections whose upstream socket failed after it was made (a reset).";
        UpstreamBytesUp => "upstream_bytes_up", "Bytes written to upstreams (PROXY headers included).";
        UpstreamBytesDown => "upstream_bytes_down", "Bytes read from upstreams.";
        UpstreamBadGateway => "upstream_bad_gateway", "502 Bad Gateway answers: the upstream failed before it answered an HTTP request.";
        UpstreamResets => "upstream_resets", "Clients reset because their upstream failed (after it began answering, or on a raw TCP service).";
        UpstreamQueueFull => "upstream_queue_full", "Commands to the relay thread that found its queue full (an open fails its connection; a lost kick makes the relay look at every connection).";
        UpstreamEventsLost => "upstream_events_lost", "Events from the relay thread that found the queue full (the poll loop then looks at every relayed connection).";
    }
}

impl From<&ipos_wire::Error> for DropReason {
    /// The drop counter of a frame the wire parser refused.
    fn from(e: &ipos_wire::Error) -> DropReason {
        use ipos_wire::Error as E;
        match e {
            E::Truncated => DropReason::IposTruncated,
            E::BadChecksum => DropReason::IposBadChecksum,
            E::UnknownType(_) => DropReason::IposUnknownType,
            E::UnknownProtocol(_) => DropReason::IposUnknownProtocol,
            E::BadInnerPacket => DropReason::IposBadInner,
            E::BadLength | E::WrongEtherType => DropReason::IposBadLength,
            E::BadTrailer => DropReason::AuthWrongMode,
        }
    }
}

/// Per-node counters. Owned by one poll loop; copied out for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    events: [u64; Event::COUNT],
    drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            events: [0; Event::COUNT],
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

    /// Counts an event.
    #[inline]
    pub fn inc(&mut self, e: Event) {
        self.events[e as usize] += 1;
    }

    /// Counts `n` events.
    #[inline]
    pub fn add(&mut self, e: Event, n: u64) {
        self.events[e as usize] += n;
    }

    /// Sets an event's count (a count kept elsewhere, copied in).
    #[inline]
    pub fn set(&mut self, e: Event, n: u64) {
        self.events[e as usize] = n;
    }

    /// The count of an event.
    pub fn get(&self, e: Event) -> u64 {
        self.events[e as usize]
    }

    /// The count for one drop reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds every counter of `other` (another lane of the same node).
    pub fn add_all(&mut self, other: &Counters) {
        for (a, b) in self.events.iter_mut().zip(other.events.iter()) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }

    /// Every counter as `(name, value)` pairs, drops as `drop.<reason>`.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = Event::ALL
            .iter()
            .map(|e| (e.label().to_string(), self.get(*e)))
            .collect();
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
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
            assert!(seen.insert(e.label()), "duplicate label {}", e.label());
        }
        let mut c = Counters::default();
        c.drop(DropReason::IposBadChecksum);
        c.drop(DropReason::IposBadChecksum);
        assert_eq!(c.dropped(DropReason::IposBadChecksum), 2);
        assert_eq!(c.total_drops(), 2);
        assert!(c.summary().contains("drop.ipos_bad_checksum=2"));
    }
}
