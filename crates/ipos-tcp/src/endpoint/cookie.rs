//! SYN cookies at the endpoint (RFC 4987 section 3.6, as Linux does them; the
//! encoding is [`crate::syncookie`]'s): the SYN-ACK that answers a SYN without
//! creating anything, and the endpoint created straight in ESTABLISHED from the
//! ACK that returns its cookie.
//!
//! Promises:
//! - [`Endpoint::write_cookie_syn_ack`] allocates nothing and keeps no state: its
//!   ISS is the cookie, its options are those an ordinary passive open would answer
//!   with (MSS; window scale, SACK-permitted and timestamps only when the SYN carried
//!   timestamps, since only the TSval can carry them back), its window the one an
//!   ordinary SYN-ACK would advertise (the receive buffer, at most 65535, within the
//!   owner's cap), its TSval the endpoint's own TSval clock (derived from the ISS)
//!   with the option bits in its low 6 bits.
//! - [`Endpoint::from_cookie`] accepts only an ACK (no SYN, no RST) whose cookie
//!   checks out for its 4-tuple and sequence number within the cookie's lifetime, and
//!   rebuilds what the handshake agreed: the peer's MSS (rounded down to the cookie
//!   table), window scaling, SACK and timestamps (from the echoed TSecr; none of them
//!   without a timestamp in the ACK), the ISS and the client's ISN, the window the
//!   SYN-ACK promised. The endpoint starts with its buffers and then processes the
//!   ACK itself (its window, any data or FIN it carries). No RTT sample is taken
//!   from it: the SYN-ACK's TSval was rounded down, not a clock reading.

use smoltcp::time::Instant;

use super::{ts_offset_from_iss, Config, Endpoint, Flow, State, DEFAULT_MSS};
use crate::segment::{
    fill_checksum, write_header, Segment, SegmentError, TcpHeader, TcpOptions, ACK, FIN,
    HEADER_LEN, RST, SYN,
};
use crate::syncookie::{CookieError, CookieOptions, SynCookies};
use crate::tcb::*;

/// The window a SYN-ACK advertises (never scaled, RFC 7323 section 2.2): the receive
/// buffer, at most 65535, within the owner's cap (as `write_segment` does for a SYN).
fn syn_ack_window(cfg: &Config, cap: Option<u32>) -> u16 {
    (cfg.rcv_buf.clamp(1, 65535) as u32).min(cap.unwrap_or(u32::MAX)) as u16
}

impl Endpoint {
    /// Writes into `out` the SYN-ACK answering `syn` (a whole TCP segment, checksum
    /// verified by the caller) with a SYN cookie, and returns its length. `flow` is the
    /// SYN's flow (source = the client); `rcv_window_cap` the cap the connection will
    /// have ([`Endpoint::set_rcv_window_cap`]), which bounds the SYN-ACK's window.
    /// Errors: `syn` does not parse, is not a plain SYN, its ports are not `flow`'s, or
    /// `out` is too small (`Truncated`).
    pub fn write_cookie_syn_ack(
        cfg: &Config,
        cookies: &SynCookies,
        flow: Flow,
        syn: &[u8],
        rcv_window_cap: Option<u32>,
        now: Instant,
        out: &mut [u8],
    ) -> Result<usize, SegmentError> {
        let seg = Segment::parse(syn)?;
        if !seg.has(SYN) || seg.has(ACK) || seg.has(RST) || seg.has(FIN) {
            return Err(SegmentError::NotSyn);
        }
        if seg.dst_port != flow.dst_port || seg.src_port != flow.src_port {
            return Err(SegmentError::PortMismatch);
        }
        let peer_mss = seg.mss.unwrap_or(DEFAULT_MSS);
        let (cookie, _) = cookies.make(&flow, seg.seq, peer_mss, now);
        let mut opts = TcpOptions {
            mss: Some(cfg.mss.max(64)),
            ..TcpOptions::default()
        };
        match seg.timestamp {
            Some((peer_tsval, _)) if cfg.timestamps => {
                let kept = CookieOptions {
                    wscale: seg.wscale.map(|w| w.min(14)),
                    sack: seg.sack_permitted && cfg.sack_permitted,
                    ecn: false,
                };
                opts.wscale = seg.wscale.map(|_| cfg.window_scale.min(14));
                opts.sack_permitted = kept.sack;
                // The clock the endpoint made from this cookie will run (its ISS).
                let clock = (now.total_millis() as u32).wrapping_add(ts_offset_from_iss(cookie));
                opts.timestamp = Some((kept.tsval(clock), peer_tsval));
            }
            // Nowhere to keep window scaling or SACK: offer neither (as Linux).
            _ => {}
        }
        if out.len() < HEADER_LEN + opts.len() {
            return Err(SegmentError::Truncated);
        }
        let h = TcpHeader {
            src_port: flow.dst_port,
            dst_port: flow.src_port,
            seq: cookie,
            ack: seg.seq.wrapping_add(1),
            flags: SYN | ACK,
            window: syn_ack_window(cfg, rcv_window_cap),
        };
        let n = write_header(out, &h, &opts);
        fill_checksum(flow.dst_addr, flow.src_addr, &mut out[..n]);
        Ok(n)
    }

    /// An endpoint in ESTABLISHED from `ack` (a whole TCP segment, checksum verified by
    /// the caller) that returns a cookie of [`Endpoint::write_cookie_syn_ack`] made
    /// under `cookies` with the same `cfg` and `rcv_window_cap`; `flow` is the ACK's
    /// flow (source = the client). The ACK is processed too (its window, data, FIN).
    pub fn from_cookie(
        cfg: &Config,
        cookies: &SynCookies,
        flow: Flow,
        ack: &[u8],
        rcv_window_cap: Option<u32>,
        now: Instant,
    ) -> Result<Endpoint, CookieError> {
        let seg = Segment::parse(ack).map_err(|_| CookieError::NotCookieAck)?;
        if !seg.has(ACK)
            || seg.has(SYN)
            || seg.has(RST)
            || seg.dst_port != flow.dst_port
            || seg.src_port != flow.src_port
        {
            return Err(CookieError::NotCookieAck);
        }
        let peer_mss = cookies.check(&flow, seg.seq, seg.ack, now)?;
        let kept = match seg.timestamp {
            None => None,
            Some(_) if !cfg.timestamps => return Err(CookieError::OptionsRefused),
            Some((tsval, tsecr)) => {
                let o = CookieOptions::from_tsecr(tsecr);
                if o.sack && !cfg.sack_permitted {
                    return Err(CookieError::OptionsRefused);
                }
                Some((tsval, o))
            }
        };
        let iss = seg.ack.wrapping_sub(1);
        let mut ep = Endpoint::new(cfg, flow, iss, State::Established, now);
        ep.flags |= TCB_F_PASSIVE;
        ep.peer_mss = peer_mss;
        match kept {
            Some((tsval, o)) => {
                ep.ts_recent = tsval;
                ep.cold.ts_recent_age = now;
                match o.wscale {
                    Some(ws) => {
                        ep.flags |= TCB_F_WSCALE;
                        ep.snd_wscale = ws;
                    }
                    None => {
                        ep.flags &= !TCB_F_WSCALE;
                        ep.snd_wscale = 0;
                        ep.rcv_wscale = 0;
                    }
                }
                if !o.sack {
                    ep.flags &= !TCB_F_SACK;
                }
            }
            None => {
                ep.flags &= !(TCB_F_TIMESTAMPS | TCB_F_SACK | TCB_F_WSCALE);
                ep.snd_wscale = 0;
                ep.rcv_wscale = 0;
            }
        }
        ep.cwnd = ep.initial_cwnd();
        ep.cold.irs = seg.seq.wrapping_sub(1);
        ep.rcv_nxt = seg.seq;
        ep.rcv_adv = seg
            .seq
            .wrapping_add(u32::from(syn_ack_window(cfg, rcv_window_cap)));
        ep.last_ack_sent = seg.seq;
        ep.snd_una = seg.ack;
        ep.snd_nxt = seg.ack;
        ep.snd_max = seg.ack;
        ep.set_snd_wnd(seg.window, ep.snd_wscale, seg.seq, seg.ack);
        ep.cold.rcv_wnd_cap = rcv_window_cap;
        ep.enable_buffers();
        ep.cold.counters.segs_in += 1;
        ep.on_other(now, &seg);
        Ok(ep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::checksum_ok;
    use smoltcp::time::Duration;
    use smoltcp::wire::Ipv4Address;

    const CLIENT: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const SERVER: Ipv4Address = Ipv4Address::new(198, 18, 0, 100);

    fn cookies() -> SynCookies {
        SynCookies::new([[7; 16], [9; 16]])
    }

    /// The server side's flow (source = the client).
    fn server_flow() -> Flow {
        Flow {
            src_addr: CLIENT,
            src_port: 40000,
            dst_addr: SERVER,
            dst_port: 80,
        }
    }

    /// A client endpoint and its SYN.
    fn client(cfg: &Config, now: Instant) -> (Endpoint, Vec<u8>) {
        let mut c = Endpoint::connect(cfg, server_flow().reversed(), 0x1111_2222, now);
        let mut b = vec![0u8; 1600];
        let n = c.poll_transmit(now, &mut b).expect("SYN");
        b.truncate(n);
        (c, b)
    }

    /// SYN -> cookie SYN-ACK -> the client's ACK (and request), returned as segments.
    fn handshake(client_cfg: &Config, server_cfg: &Config) -> (Endpoint, Endpoint, Instant) {
        let now = Instant::from_secs(5000);
        let (mut c, syn) = client(client_cfg, now);
        let mut out = [0u8; 128];
        let n = Endpoint::write_cookie_syn_ack(
            server_cfg,
            &cookies(),
            server_flow(),
            &syn,
            None,
            now,
            &mut out,
        )
        .unwrap();
        assert!(checksum_ok(SERVER, CLIENT, &out[..n]));
        let now = now + Duration::from_millis(3);
        c.on_segment(now, &out[..n]).unwrap();
        assert_eq!(c.state(), State::Established);
        assert_eq!(c.send_slice(b"GET / HTTP/1.1\r\n\r\n"), 18);
        let mut b = [0u8; 1600];
        let n = c.poll_transmit(now, &mut b).expect("ACK with data");
        let s = Endpoint::from_cookie(server_cfg, &cookies(), server_flow(), &b[..n], None, now)
            .unwrap();
        (c, s, now)
    }

    #[test]
    fn cookie_syn_ack_bytes() {
        // A SYN without options: the SYN-ACK carries the MSS only.
        let now = Instant::from_secs(64 * 3);
        let syn = {
            let mut b = [0u8; 20];
            let h = TcpHeader {
                src_port: 40000,
                dst_port: 80,
                seq: 0x0102_0304,
                ack: 0,
                flags: SYN,
                window: 1000,
            };
            write_header(&mut b, &h, &TcpOptions::default());
            b
        };
        let cfg = Config::default();
        let mut out = [0u8; 64];
        let n = Endpoint::write_cookie_syn_ack(
            &cfg,
            &cookies(),
            server_flow(),
            &syn,
            Some(16 * 1024),
            now,
            &mut out,
        )
        .unwrap();
        let cookie = cookies().encode(&server_flow(), 0x0102_0304, 0, 3);
        let mut want = vec![0x00, 0x50, 0x9c, 0x40];
        want.extend_from_slice(&cookie.to_be_bytes());
        want.extend_from_slice(&[0x01, 0x02, 0x03, 0x05]); // ack = ISN + 1
        want.extend_from_slice(&[0x60, 0x12, 0x40, 0x00]); // 24 bytes, SYN|ACK, 16384
        want.extend_from_slice(&out[16..18]); // checksum, checked below
        want.extend_from_slice(&[0, 0, 0x02, 0x04, 0x05, 0xb4]); // MSS 1460
        assert_eq!(&out[..n], &want[..]);
        assert!(checksum_ok(SERVER, CLIENT, &out[..n]));
        // Not a SYN, or too small a buffer: refused.
        let mut ack = syn;
        ack[13] = ACK;
        let e = Endpoint::write_cookie_syn_ack(
            &cfg,
            &cookies(),
            server_flow(),
            &ack,
            None,
            now,
            &mut out,
        );
        assert_eq!(e, Err(SegmentError::NotSyn));
        let e = Endpoint::write_cookie_syn_ack(
            &cfg,
            &cookies(),
            server_flow(),
            &syn,
            None,
            now,
            &mut out[..20],
        );
        assert_eq!(e, Err(SegmentError::Truncated));
    }

    #[test]
    fn options_come_back_from_the_timestamp() {
        let cfg = Config::default();
        let (c, s, now) = handshake(&cfg, &cfg);
        assert_eq!(s.state(), State::Established);
        assert!(s.has_buffers());
        assert!(s.has(TCB_F_TIMESTAMPS) && s.has(TCB_F_PASSIVE));
        assert!(s.has(TCB_F_SACK) && s.has(TCB_F_WSCALE));
        assert_eq!(s.snd_wscale, cfg.window_scale);
        assert_eq!(s.rcv_wscale, cfg.window_scale);
        assert_eq!(s.peer_mss, 1460);
        // The request in the ACK was taken; the server's clock never went back.
        assert_eq!(s.recv_slice(), b"GET / HTTP/1.1\r\n\r\n");
        assert!(s.ts_now(now) >= c.ts_recent);
        assert_eq!(s.irs(), 0x1111_2222);
        let t = s.export(now);
        assert_eq!(t.iss, c.cold.irs);
        assert_eq!(t.snd_una, t.iss.wrapping_add(1));
    }

    #[test]
    fn without_timestamps_no_scaling_and_no_sack() {
        let client_cfg = Config {
            timestamps: false,
            mss: 1400,
            ..Config::default()
        };
        let now = Instant::from_secs(9);
        let (_, syn) = client(&client_cfg, now);
        let mut out = [0u8; 64];
        let n = Endpoint::write_cookie_syn_ack(
            &Config::default(),
            &cookies(),
            server_flow(),
            &syn,
            None,
            now,
            &mut out,
        )
        .unwrap();
        let sa = Segment::parse(&out[..n]).unwrap();
        assert_eq!(
            (sa.mss, sa.wscale, sa.sack_permitted, sa.timestamp),
            (Some(1460), None, false, None)
        );
        let (_, s, _) = handshake(&client_cfg, &Config::default());
        assert!(!s.has(TCB_F_TIMESTAMPS) && !s.has(TCB_F_SACK) && !s.has(TCB_F_WSCALE));
        assert_eq!((s.snd_wscale, s.rcv_wscale), (0, 0));
        assert_eq!(s.peer_mss, 1300, "1400 rounds down to the table's 1300");
    }

    #[test]
    fn the_connection_carries_data_both_ways() {
        let cfg = Config::default();
        let (mut c, mut s, mut now) = handshake(&cfg, &cfg);
        let body = vec![0x5a; 100_000];
        let mut sent = s.send_slice(&body);
        let mut got = Vec::new();
        let mut b = [0u8; 1600];
        for _ in 0..10_000 {
            if got.len() == body.len() {
                break;
            }
            while let Some(n) = s.poll_transmit(now, &mut b) {
                c.on_segment(now, &b[..n]).unwrap();
            }
            got.extend_from_slice(c.recv_slice());
            let k = c.recv_slice().len();
            c.recv_consume(k);
            while let Some(n) = c.poll_transmit(now, &mut b) {
                s.on_segment(now, &b[..n]).unwrap();
            }
            sent += s.send_slice(&body[sent..]);
            now += Duration::from_millis(1);
        }
        assert_eq!(got, body);
        assert_eq!(s.counters().retransmits, 0);
    }

    #[test]
    fn refused_acks() {
        let cfg = Config::default();
        let now = Instant::from_secs(100);
        let (mut c, syn) = client(&cfg, now);
        let mut out = [0u8; 128];
        let n = Endpoint::write_cookie_syn_ack(
            &cfg,
            &cookies(),
            server_flow(),
            &syn,
            None,
            now,
            &mut out,
        )
        .unwrap();
        c.on_segment(now, &out[..n]).unwrap();
        let mut b = [0u8; 128];
        let n = c.poll_transmit(now, &mut b).expect("ACK");
        let ack = b[..n].to_vec();
        let from = |seg: &[u8], flow: Flow, at: Instant| {
            Endpoint::from_cookie(&cfg, &cookies(), flow, seg, None, at).map(|_| ())
        };
        assert_eq!(from(&ack, server_flow(), now), Ok(()));
        // Another client address (same ports): refused.
        let other = Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 2),
            ..server_flow()
        };
        assert!(from(&ack, other, now).is_err());
        // Three periods later: too old.
        let late = now + Duration::from_secs(3 * 64);
        assert_eq!(from(&ack, server_flow(), late), Err(CookieError::TooOld));
        // A tampered acknowledgement number, or sequence number (above the two low
        // bits, which only pick another MSS of the table: see `crate::syncookie`).
        for (at, bit) in [
            (8usize, 0x80u8),
            (9, 0x01),
            (11, 0x04),
            (4, 0x40),
            (7, 0x10),
        ] {
            let mut t = ack.clone();
            t[at] ^= bit;
            assert!(from(&t, server_flow(), now).is_err(), "byte {at}");
        }
        // A RST, or a SYN, never makes a connection.
        for flag in [RST, SYN] {
            let mut t = ack.clone();
            t[13] |= flag;
            assert_eq!(from(&t, server_flow(), now), Err(CookieError::NotCookieAck));
        }
        // Timestamps echoed to a server that does not do them.
        let no_ts = Config {
            timestamps: false,
            ..Config::default()
        };
        assert_eq!(
            Endpoint::from_cookie(&no_ts, &cookies(), server_flow(), &ack, None, now).map(|_| ()),
            Err(CookieError::OptionsRefused)
        );
    }
}
