//! Client TCP: a packet from the wire or out of a tunnel is forwarded to its
//! endpoint's owner, given to the endpoint held here, carried into an
//! incoming move, or starts a new connection (or, under a SYN flood, is
//! answered with a SYN cookie: [`super::syn_flood`]); endpoints are driven (the
//! application pumped, their segments sent) and removed once closed.

use super::app::AppCtx;
use super::{Conn, Node, Origin, Phase, Via};
use crate::counters::{DropReason, Event};
use crate::migration::rehome::Boundary;
use crate::migration::Notice;
use crate::port::{PacketBuf, Port};
use crate::tables::ForwardKey;
use crate::upstream::conn::RelayCx;
use ipos_http::HeadWait;
use ipos_tcp::{Endpoint, State};
use ipos_wire::headers::{ETHERNET_LEN, IPV4_LEN};
use ipos_wire::Flow;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, Ipv4Packet, TcpPacket};

/// Application <-> endpoint exchanges per service call, at most.
const PUMP_ROUNDS: usize = 64;

impl<P: Port> Node<P> {
    /// A client TCP packet, from the wire or out of an ipOS data frame.
    pub(crate) fn handle_tcp(&mut self, now: Instant, mut buf: P::Buf, via: Via) {
        let off = via.offset();
        let (flow, syn, ack, rst) = {
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            let tcp = match TcpPacket::new_checked(ip.payload()) {
                Ok(t) => t,
                Err(_) => return self.counters.drop(DropReason::TcpMalformed),
            };
            let flow = Flow {
                src_addr: ip.src_addr(),
                src_port: tcp.src_port(),
                dst_addr: ip.dst_addr(),
                dst_port: tcp.dst_port(),
            };
            (flow, tcp.syn(), tcp.ack(), tcp.rst())
        };
        // Forwarded connections first: no checksum work, the owner verifies.
        if let Some(entry) = self.forward_entry_for(now, &flow) {
            if let Via::Tunnel { from } = via {
                if self.peers.mac(from) == entry.target_mac {
                    // It came from where we would send it: a loop, and nobody
                    // holds the connection. Our entry goes; the next packet finds
                    // none here and the sender is told (`on_unknown_tunnelled`).
                    self.forward.remove(&ForwardKey::of(&flow));
                    return self.counters.drop(DropReason::ForwardLoop);
                }
                // Forwarded to us and on again (a chain, or a loop of three
                // nodes or more): each such hop spends one of the client
                // packet's TTL, as at a router, so no loop outlives it.
                if !spend_ttl(buf.data_mut(), off) {
                    self.forward.remove(&ForwardKey::of(&flow));
                    return self.counters.drop(DropReason::ForwardTtlExpired);
                }
            }
            return self.forward_packet(buf, off, &entry, Event::PacketsForwarded);
        }
        let checksum_ok = {
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            let (src, dst) = (
                IpAddress::Ipv4(flow.src_addr),
                IpAddress::Ipv4(flow.dst_addr),
            );
            TcpPacket::new_unchecked(ip.payload()).verify_checksum(&src, &dst)
        };
        if !checksum_ok {
            return self.counters.drop(DropReason::TcpBadChecksum);
        }
        let plain_syn = syn && !ack && !rst;
        let mut reused = None;
        if let Some(slot) = self.conns.find(&flow) {
            if !plain_syn {
                return self.deliver(now, slot, buf, off);
            }
            // A new connection from a port whose old one is in TIME-WAIT here?
            match self.end_time_wait(slot, &buf, off) {
                Some(old) => reused = Some(old),
                None => return self.deliver(now, slot, buf, off),
            }
        }
        let (origin, peer_mac) = match (via, reused) {
            // The same client port again: fed as the old one was.
            (_, Some((origin, mac))) => (origin, mac),
            (Via::Wire, None) => (
                Origin::Accepted,
                EthernetAddress::from_bytes(&buf.data()[6..12]),
            ),
            (Via::Tunnel { from }, None) => {
                return self.on_unknown_tunnelled(now, &flow, from, buf, plain_syn);
            }
        };
        if plain_syn {
            // A cookie instead of an entry only for a fresh SYN from the wire.
            let cookie_ok = matches!(via, Via::Wire) && reused.is_none();
            return self.accept(now, flow, buf, off, origin, peer_mac, cookie_ok);
        }
        if self.closed.contains_key(&flow) {
            // A late duplicate (the ACK of a retransmitted FIN, say) of a
            // connection that just closed: a RST would only alarm the client.
            return self.counters.drop(DropReason::TcpAfterClose);
        }
        if ack
            && !syn
            && !rst
            && self.cookies_in_use(now)
            && self.id.service_ports.contains(&flow.dst_port)
        {
            return self.accept_cookie(now, flow, buf, off);
        }
        self.counters.drop(DropReason::TcpNoConnection);
        if !rst {
            self.send_reset(buf);
        }
    }

    /// Ends the connection in `slot` if it is in TIME-WAIT and the SYN in
    /// `buf` may open a new incarnation of it (RFC 6191); returns how the old
    /// one was fed and its client's MAC, for the new one.
    fn end_time_wait(
        &mut self,
        slot: u32,
        buf: &P::Buf,
        off: usize,
    ) -> Option<(Origin, EthernetAddress)> {
        let c = self.conns.get(slot)?;
        let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
        if !c.ep.accepts_reuse(ip.payload()) {
            return None;
        }
        let old = (c.origin, c.peer_mac);
        self.remove_conn(slot);
        self.counters.inc(Event::TcpTimeWaitReused);
        Some(old)
    }

    /// A segment for the connection in `slot`.
    fn deliver(&mut self, now: Instant, slot: u32, buf: P::Buf, off: usize) {
        let hold_limit = self.opts.hold_limit;
        let budget_full = self.held >= self.opts.max_held;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if let Phase::Exporting(export) = conn.phase_mut() {
            if export.held.len() >= hold_limit {
                self.counters.drop(DropReason::MigrationHoldFull);
            } else if budget_full {
                self.counters.drop(DropReason::HoldBudgetFull);
            } else {
                export
                    .held
                    .reserve_exact(hold_limit.saturating_sub(export.held.len()));
                export.held.push((buf, off));
                self.held += 1;
                self.counters.inc(Event::PacketsHeld);
            }
            return;
        }
        self.counters.inc(Event::TcpSegmentsIn);
        conn.last_active = now;
        let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
        if conn.ep.on_segment(now, ip.payload()).is_err() {
            self.counters.drop(DropReason::TcpRejected);
        }
        drop(buf);
        self.service(now, slot)
    }

    /// A SYN with no connection: a new one on a service port. `origin`
    /// says how its packets reach us (straight, or from a forwarder when
    /// the client reused the port of a connection that lived here). With
    /// `cookie_ok`, a SYN that finds the SYN-RECEIVED budget or the table
    /// full gets a SYN cookie instead of an entry (see [`super::syn_flood`]).
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        now: Instant,
        flow: Flow,
        buf: P::Buf,
        off: usize,
        origin: Origin,
        peer_mac: EthernetAddress,
        cookie_ok: bool,
    ) {
        if !self.id.service_ports.contains(&flow.dst_port) {
            self.counters.drop(DropReason::TcpNoListener);
            return match origin {
                Origin::Accepted => self.send_reset(buf),
                Origin::Imported { .. } => {}
            };
        }
        let (may_move, awaits_head) = self.placement(&flow, origin);
        if cookie_ok && self.syn_needs_cookie() {
            return self.send_cookie_syn_ack(now, &flow, buf, off, may_move, awaits_head);
        }
        // Room first: no endpoint is made for a connection the table refuses.
        if self.conns.is_full() {
            self.conns.full_refusals += 1;
            return self.counters.drop(DropReason::TcpTableFull);
        }
        let iss = self.initial_sequence(&flow, now);
        let cfg = self.tcp_config(may_move);
        let mut ep = {
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            match Endpoint::accept(cfg, flow, ip.payload(), iss, now) {
                Ok(ep) => ep,
                Err(_) => return self.counters.drop(DropReason::TcpRejected),
            }
        };
        let phase = if awaits_head {
            // Few bytes until the policy has placed it: they may have to travel.
            ep.set_rcv_window_cap(Some(self.opts.head_window));
            Phase::AwaitingHead
        } else {
            Phase::Serving
        };
        let mut conn = Conn::new(ep, now, peer_mac, phase, origin, 0);
        conn.half_open = true;
        match self.insert_conn(flow, conn) {
            Ok(slot) => {
                self.half_open += 1;
                self.counters.inc(Event::TcpAccepted);
                self.counters.inc(Event::TcpSegmentsIn);
                self.service(now, slot);
            }
            Err(_) => self.counters.drop(DropReason::TcpTableFull),
        }
    }

    /// RFC 6528-style initial sequence number: a keyed hash of the flow
    /// plus a 4-microsecond clock.
    fn initial_sequence(&self, flow: &Flow, now: Instant) -> u32 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.iss_secret.hash(&mut h);
        flow.hash(&mut h);
        (h.finish() as u32).wrapping_add((now.total_micros() / 4) as u32)
    }

    /// Drives the connection in `slot`: decides where it lives once its
    /// request head is in, moves data between its endpoint and its
    /// application, sends what the endpoint has to send, and removes the
    /// connection once closed.
    pub(crate) fn service(&mut self, now: Instant, slot: u32) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.half_open && conn.ep.state() != State::SynReceived {
            // Handshake done (or given up): out of the SYN-RECEIVED budget.
            // (An entry removed while half-open leaves it in `remove_conn`.)
            conn.half_open = false;
            self.half_open -= 1;
        }
        if conn.phase().is_frozen() {
            return; // while it moves, or until its source commits the move
        }
        if let Phase::AwaitingHead = conn.phase() {
            if let Some(target) = self.decide(now, slot) {
                if self.start_migration(now, slot, target) {
                    return;
                }
            }
        }
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.phase().is_serving() {
            let flow = conn.ep.flow();
            let placed = std::mem::take(&mut conn.placed);
            let mut gate = if !placed && self.rehomes(&flow) {
                Gate::Stop
            } else {
                Gate::Off
            };
            // Each round serves at least one request (the one passed), so
            // pipelined requests each get their own decision.
            for _ in 0..PUMP_ROUNDS {
                let conn = self.conns.get_mut(slot).expect("live slot");
                let port = flow.dst_port;
                if let Some((up, addr)) = self.upstreams.iter().find(|(u, _)| u.port == port) {
                    conn.app.serve_upstream(up, addr);
                } else if let Some(s) = self.opts.services.iter().find(|s| s.port == port) {
                    conn.app.serve_in_process(s, &flow);
                }
                if conn.app.relay_token().is_none() {
                    self.relay_gen = self.relay_gen.wrapping_add(1);
                }
                let mut ctx = AppCtx {
                    service: &mut self.service,
                    relay: RelayCx {
                        relay: self.relay.as_mut(),
                        counters: &mut self.counters,
                        bad_gateway: &self.bad_gateway,
                        token: (u64::from(slot) << 32) | u64::from(self.relay_gen),
                        flow,
                    },
                };
                if !pump(conn, &mut ctx, gate) {
                    conn.track_head(now);
                    break;
                }
                match self.at_boundary(now, slot) {
                    Boundary::Move(target) if self.start_migration(now, slot, target) => return,
                    Boundary::WaitHead => {
                        // The next request's first bytes wait in the
                        // receive buffer: the head timer runs from the
                        // first time they were seen, never restarted by
                        // later segments (a slow head is a Slowloris).
                        let conn = self.conns.get_mut(slot).expect("live slot");
                        conn.head_since.get_or_insert(now);
                        break;
                    }
                    Boundary::WaitDrain => {
                        // A whole head waits for the earlier responses to
                        // be acknowledged: the client is not late.
                        let conn = self.conns.get_mut(slot).expect("live slot");
                        conn.head_since = None;
                        break;
                    }
                    // Served here: the application reads this request,
                    // and the pump stops again at the next one.
                    Boundary::Serve | Boundary::Move(_) => gate = Gate::PassOne,
                }
            }
        }
        self.send_segments(now, slot);
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        if !conn.ep.is_closed() {
            return self.arm_conn(slot, now);
        }
        let forwarder = conn.origin.remote_forwarder(self.peers.me());
        let flow = conn.ep.flow();
        self.remove_conn(slot);
        self.counters.inc(Event::TcpClosed);
        self.remember_closed(flow, now);
        if let Some(f) = forwarder {
            self.send_notice(&flow, f, Notice::CLOSED);
        }
    }

    /// Transmits every segment the endpoint in `slot` has ready, unless the
    /// port's transmit queue is backed up: then the endpoint keeps its data
    /// (nothing is lost) and the connection is looked at again next tick.
    fn send_segments(&mut self, now: Instant, slot: u32) {
        if self.port.tx_backlog() >= self.opts.tx_high_water {
            self.counters.inc(Event::TxBackpressure);
            return self.arm_conn_at(slot, now + self.opts.timer_tick);
        }
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let peer_mac = conn.peer_mac;
        let flow = conn.ep.flow();
        // An IPv4 packet to the client never exceeds the client path's MTU.
        let max_frame = ETHERNET_LEN + usize::from(self.opts.client_mtu);
        let head = ETHERNET_LEN + IPV4_LEN;
        loop {
            let Some(mut buf) = self.alloc() else { break };
            let room = (buf.len() + buf.tailroom()).min(max_frame);
            if buf.set_len(room).is_err() {
                self.counters.drop(DropReason::TxNoBuffer);
                break;
            }
            let conn = self.conns.get_mut(slot).expect("live slot");
            let Some(n) = conn.ep.poll_transmit(now, &mut buf.data_mut()[head..]) else {
                self.spare = Some(buf);
                break;
            };
            if buf.set_len(head + n).is_err() {
                continue;
            }
            self.wrap_tcp(buf.data_mut(), peer_mac, flow.dst_addr, flow.src_addr, n);
            self.counters.inc(Event::TcpSegmentsOut);
            self.transmit(buf);
        }
    }
}

/// Where [`pump`] stops for a decision: before the application reads the
/// first byte of a later request, so that the caller can decide where that
/// request is served ([`Boundary`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Never (the connection is not re-homed, or was just placed here).
    Off,
    /// At the next request boundary.
    Stop,
    /// Not at this boundary (its request was decided: served here), but at
    /// the one after it.
    PassOne,
}

/// Application <-> endpoint, until neither side makes progress; then the
/// close handshake in both directions. Returns true when it stopped at a
/// request boundary for a decision ([`Gate`]).
fn pump<B>(conn: &mut Conn<B>, ctx: &mut AppCtx<'_>, mut gate: Gate) -> bool {
    for _ in 0..PUMP_ROUNDS {
        let mut progress = false;
        let avail = conn.ep.recv_slice();
        if !avail.is_empty() && conn.app.head_wait() == HeadWait::Idle {
            match gate {
                // A later request starts: the caller decides where it is served.
                Gate::Stop => return true,
                Gate::PassOne => gate = Gate::Stop,
                Gate::Off => {}
            }
        }
        if !avail.is_empty() {
            let n = conn.app.on_recv(ctx, avail);
            if n > 0 {
                conn.ep.recv_consume(n);
                progress = true;
            }
        }
        if conn.app.has_pending_output() && conn.ep.send_space() > 0 {
            let app = &mut conn.app;
            if conn.ep.send_with(|b| app.poll_send(ctx, b)) > 0 {
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    if conn.app.wants_reset() {
        // Its upstream failed after it began to answer: the client must not
        // take a cut answer for a whole one.
        conn.ep.abort();
        conn.close_requested = true;
        return false;
    }
    if conn.ep.peer_fin_received() && conn.ep.recv_available() == 0 {
        conn.app.on_peer_fin(ctx);
    }
    if !conn.close_requested && conn.app.wants_close() && !conn.app.has_pending_output() {
        conn.ep.close();
        conn.close_requested = true;
    }
    false
}

/// Takes one off the TTL of the IPv4 packet at `off` in `frame` and rewrites
/// its header checksum; false, and the packet unchanged, when the TTL is 1
/// or less (it may not be forwarded again).
fn spend_ttl(frame: &mut [u8], off: usize) -> bool {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[off..]);
    let ttl = ip.hop_limit();
    if ttl <= 1 {
        return false;
    }
    ip.set_hop_limit(ttl - 1);
    ip.fill_checksum();
    true
}
