//! SYN flood defence (RFC 4987): a budget of half-open connections, stateless
//! SYN cookies beyond it, and connections made from the ACKs that return them.
//!
//! - **The budget.** At most `syn_backlog` connections ([`NodeOptions`]) sit in
//!   SYN-RECEIVED with a table entry (each holds its endpoint's small state and
//!   no buffers: those come with ESTABLISHED). The node counts them as they come
//!   and go (`Conn::half_open`), never by walking the table.
//! - **Cookies.** A SYN from the wire that finds the budget or the connection
//!   table full (`syn_backlog_full`) is answered in its own buffer with a SYN-ACK
//!   whose ISS is a SYN cookie ([`ipos_tcp::syncookie`], Linux's encoding):
//!   no table entry, no allocation (`syn_cookies_sent`). The SYN's options come
//!   back in the TSecr of the client's ACK when it sent timestamps; without them
//!   the SYN-ACK offers neither window scaling nor SACK, as Linux does.
//! - **Cookie ACKs.** While a cookie may still come back (two counter periods
//!   after the last one went out, as Linux's `tcp_synq_no_recent_overflow`), an
//!   ACK for no connection on a service port is checked: a valid cookie makes
//!   the connection, ESTABLISHED at once, with the window cap and the TCP
//!   configuration of any new connection on that address (so it waits for its
//!   request head and may move like every other: the head decides its owner);
//!   `syn_cookies_accepted`. An invalid one gets a RST (`drop.tcp_bad_cookie`),
//!   as in Linux. A valid one that finds the table full is dropped without a RST
//!   (`drop.tcp_table_full`): the client sends it again.
//!
//! SYNs that follow a forward entry to a connection's owner, or that reuse a
//! port in TIME-WAIT, never get cookies: they are handled before, as always.
//!
//! [`NodeOptions`]: super::NodeOptions

use super::{Conn, Node, Origin, Phase};
use crate::counters::{DropReason, Event};
use crate::port::{PacketBuf, Port};
use ipos_tcp::syncookie::VALID_US;
use ipos_tcp::Endpoint;
use ipos_wire::headers::{ETHERNET_LEN, IPV4_LEN};
use ipos_wire::Flow;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Packet, TcpPacket};

/// The longest TCP header (data offset 15).
const MAX_TCP_HEADER: usize = 60;

impl<P: Port> Node<P> {
    /// How a new connection on `flow` starts: whether it may move (its MSS
    /// then fits a data frame), and whether it waits for its request head
    /// before the policy places it (its receive window capped meanwhile).
    pub(crate) fn placement(&self, flow: &Flow, origin: Origin) -> (bool, bool) {
        // Connections to the VIP may move; one fed by a forwarder travels in
        // data frames already.
        // A raw TCP service relayed to an upstream, or an in-process one, has
        // no request head to place it by: it is served where it was accepted.
        let raw_tcp =
            self.upstreams.iter().any(|(u, _)| {
                u.port == flow.dst_port && u.kind == crate::upstream::UpstreamKind::Tcp
            }) || self.opts.services.iter().any(|s| s.port == flow.dst_port);
        if raw_tcp && !origin.is_imported() {
            return (false, false);
        }
        let may_move =
            (self.opts.migration && Some(flow.dst_addr) == self.id.vip) || origin.is_imported();
        (may_move, may_move && self.opts.migration)
    }

    /// The TCP configuration of a new connection.
    pub(crate) fn tcp_config(&self, may_move: bool) -> &ipos_tcp::Config {
        if may_move {
            &self.tcp_movable
        } else {
            &self.tcp_direct
        }
    }

    /// True (and counted) when a new SYN must get a cookie: the SYN-RECEIVED
    /// budget or the connection table is full.
    pub(crate) fn syn_needs_cookie(&mut self) -> bool {
        let full = self.half_open >= self.opts.syn_backlog || self.conns.is_full();
        if full {
            self.counters.inc(Event::SynBacklogFull);
        }
        full
    }

    /// True while a SYN cookie sent by this node may still come back.
    pub(crate) fn cookies_in_use(&self, now: Instant) -> bool {
        self.last_cookie_at
            .is_some_and(|t| now.total_micros() - t.total_micros() < VALID_US)
    }

    /// Answers the SYN at `off` in `buf` (from the wire) with a cookie SYN-ACK
    /// written over it; nothing is kept.
    pub(crate) fn send_cookie_syn_ack(
        &mut self,
        now: Instant,
        flow: &Flow,
        mut buf: P::Buf,
        off: usize,
        may_move: bool,
        awaits_head: bool,
    ) {
        // The SYN's TCP header, copied out: the reply is written over it.
        let mut syn = [0u8; MAX_TCP_HEADER];
        let syn_len = {
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            let seg = ip.payload();
            let hlen = usize::from(seg.get(12).copied().unwrap_or(0) >> 4) * 4;
            let n = hlen.min(seg.len()).min(MAX_TCP_HEADER);
            syn[..n].copy_from_slice(&seg[..n]);
            n
        };
        let src_mac = EthernetAddress::from_bytes(&buf.data()[6..12]);
        let head = ETHERNET_LEN + IPV4_LEN;
        if buf.set_len(head + MAX_TCP_HEADER).is_err() {
            return self.counters.drop(DropReason::TxNoBuffer);
        }
        let cap = awaits_head.then_some(self.opts.head_window);
        let written = Endpoint::write_cookie_syn_ack(
            self.tcp_config(may_move),
            &self.cookies,
            *flow,
            &syn[..syn_len],
            cap,
            now,
            &mut buf.data_mut()[head..],
        );
        let Ok(n) = written else {
            return self.counters.drop(DropReason::TcpRejected);
        };
        if buf.set_len(head + n).is_err() {
            return self.counters.drop(DropReason::TxNoBuffer);
        }
        self.wrap_tcp(buf.data_mut(), src_mac, flow.dst_addr, flow.src_addr, n);
        self.counters.inc(Event::SynCookiesSent);
        self.last_cookie_at = Some(now);
        self.transmit(buf);
    }

    /// The ACK at `off` in `buf` (from the wire, no SYN, no RST) belongs to no
    /// connection while cookies are in use: a connection if it returns a valid
    /// cookie, else a RST.
    pub(crate) fn accept_cookie(&mut self, now: Instant, flow: Flow, buf: P::Buf, off: usize) {
        if self.conns.is_full() {
            // No endpoint (and no buffer) is made: only the cookie is checked.
            let valid = {
                let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
                let tcp = TcpPacket::new_unchecked(ip.payload());
                let (seq, ack) = (tcp.seq_number().0 as u32, tcp.ack_number().0 as u32);
                self.cookies.check(&flow, seq, ack, now).is_ok()
            };
            if valid {
                return self.counters.drop(DropReason::TcpTableFull);
            }
            self.counters.drop(DropReason::TcpBadCookie);
            return self.send_reset(buf);
        }
        let (may_move, awaits_head) = self.placement(&flow, Origin::Accepted);
        let cap = awaits_head.then_some(self.opts.head_window);
        let made = {
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            Endpoint::from_cookie(
                self.tcp_config(may_move),
                &self.cookies,
                flow,
                ip.payload(),
                cap,
                now,
            )
        };
        let ep = match made {
            Ok(ep) => ep,
            Err(_) => {
                self.counters.drop(DropReason::TcpBadCookie);
                return self.send_reset(buf);
            }
        };
        let peer_mac = EthernetAddress::from_bytes(&buf.data()[6..12]);
        drop(buf);
        let phase = if awaits_head {
            Phase::AwaitingHead
        } else {
            Phase::Serving
        };
        let conn = Conn::new(ep, now, peer_mac, phase, Origin::Accepted, 0);
        match self.insert_conn(flow, conn) {
            Ok(slot) => {
                self.counters.inc(Event::SynCookiesAccepted);
                self.counters.inc(Event::TcpAccepted);
                self.counters.inc(Event::TcpSegmentsIn);
                self.service(now, slot);
            }
            Err(_) => self.counters.drop(DropReason::TcpTableFull),
        }
    }
}
