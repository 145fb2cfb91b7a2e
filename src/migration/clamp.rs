//! Sane ranges for an imported TCB: a connection packet comes from a farm
//! member (authenticated, when the farm has a key), but what it says about
//! the connection is still checked, so that one bad or buggy node cannot make
//! another send oversized segments, burst a whole window at once, or wait
//! for ever. `Tcb::validate` has checked the TCB's shape (states, sequence
//! order, non-zero RTO and cwnd) already; here each tunable is put into the
//! range this node's own configuration allows, and a TCB whose client MAC
//! could not be a client's is refused.

use ipos_tcp::{Config, Tcb};
use smoltcp::wire::EthernetAddress;

/// Longest smoothed RTT, RTT variation or relative timer an import may carry.
const MAX_TIMER_US: u32 = 120_000_000;
/// Largest RTO backoff shift (the endpoint caps the backed-off RTO at `max_rto` anyway).
const MAX_BACKOFF: u8 = 16;
/// The smallest MSS a node sends with (RFC 9293 §3.7.1 requires hosts to take 536).
const MIN_MSS: u16 = 536;

/// Why an imported TCB is refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client MAC (`link_addr`) is not a unicast address, or is zero.
    LinkAddr,
}

/// Clamps `tcb`'s tunables into this node's ranges (`cfg` is the
/// configuration of connections that may move, `mss` the MSS they use);
/// returns whether any field changed.
pub fn clamp_imported(tcb: &mut Tcb, cfg: &Config, mss: u16) -> Result<bool, Refused> {
    let mac = EthernetAddress(tcb.link_addr);
    if !mac.is_unicast() || tcb.link_addr == [0; 6] {
        return Err(Refused::LinkAddr);
    }
    let mut changed = false;
    let mut clamp = |v: &mut u32, lo: u32, hi: u32| {
        let c = (*v).clamp(lo, hi.max(lo));
        changed |= c != *v;
        *v = c;
    };
    let mut mss32 = u32::from(tcb.mss);
    clamp(&mut mss32, u32::from(MIN_MSS.min(mss)), u32::from(mss));
    let mss = mss32 as u16;
    let min_rto = cfg.min_rto.total_micros().min(u64::from(u32::MAX)) as u32;
    let max_rto = cfg.max_rto.total_micros().min(u64::from(u32::MAX)) as u32;
    clamp(&mut tcb.rto_us, min_rto, max_rto);
    clamp(&mut tcb.srtt_us, 0, MAX_TIMER_US);
    clamp(&mut tcb.rttvar_us, 0, MAX_TIMER_US);
    for t in [
        &mut tcb.rtx_timer_us,
        &mut tcb.delack_timer_us,
        &mut tcb.syn_timer_us,
    ] {
        // TIMER_OFF (u32::MAX) stays off.
        if *t != u32::MAX {
            clamp(t, 0, MAX_TIMER_US);
        }
    }
    // A window scale of at most 14 is checked by `validate`; the largest
    // window the peer can offer is 65535 << snd_wscale.
    let max_wnd = 65_535u32 << tcb.snd_wscale.min(14);
    clamp(&mut tcb.snd_wnd, 0, max_wnd);
    clamp(&mut tcb.max_snd_wnd, 0, max_wnd);
    // Never more in flight than the send buffer holds, never below one segment.
    let snd_buf = cfg.snd_buf.min(u32::MAX as usize) as u32;
    clamp(&mut tcb.cwnd, u32::from(mss), snd_buf);
    clamp(&mut tcb.ssthresh, 2 * u32::from(mss), u32::MAX);
    let mut backoff = u32::from(tcb.backoff);
    clamp(&mut backoff, 0, u32::from(MAX_BACKOFF));
    tcb.backoff = backoff as u8;
    tcb.mss = mss;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TCB of a real endpoint (an active opener: the values its
    /// configuration starts with), with a client MAC as a front fills in.
    fn tcb() -> Tcb {
        let flow = ipos_wire::Flow {
            src_addr: smoltcp::wire::Ipv4Address::new(198, 18, 0, 1),
            src_port: 40000,
            dst_addr: smoltcp::wire::Ipv4Address::new(198, 18, 0, 100),
            dst_port: 80,
        };
        let now = smoltcp::time::Instant::from_millis(0);
        let mut t = ipos_tcp::Endpoint::connect(&Config::default(), flow, 7, now).export(now);
        t.mss = 1408;
        t.link_addr = [2, 0, 0, 0, 0, 1];
        t
    }

    #[test]
    fn sane_tcbs_pass_unchanged() {
        let cfg = Config::default();
        let mut t = tcb();
        let before = t.clone();
        assert_eq!(clamp_imported(&mut t, &cfg, 1408), Ok(false));
        assert_eq!(t, before);
    }

    #[test]
    fn wild_fields_are_brought_into_range() {
        let cfg = Config::default();
        let mut t = tcb();
        t.mss = 9000;
        t.rto_us = 1;
        t.srtt_us = u32::MAX - 1;
        t.cwnd = u32::MAX;
        t.ssthresh = 1;
        t.snd_wnd = u32::MAX;
        t.backoff = 200;
        t.rtx_timer_us = u32::MAX - 1;
        t.delack_timer_us = u32::MAX;
        assert_eq!(clamp_imported(&mut t, &cfg, 1408), Ok(true));
        assert_eq!(t.mss, 1408);
        assert_eq!(t.rto_us, 200_000);
        assert_eq!(t.srtt_us, MAX_TIMER_US);
        assert_eq!(t.cwnd, 256 * 1024);
        assert_eq!(t.ssthresh, 2 * 1408);
        assert_eq!(t.snd_wnd, 65_535 << t.snd_wscale);
        assert_eq!(t.backoff, MAX_BACKOFF);
        assert_eq!(t.rtx_timer_us, MAX_TIMER_US);
        assert_eq!(t.delack_timer_us, u32::MAX, "an off timer stays off");
        let mut t = tcb();
        t.mss = 64;
        assert_eq!(clamp_imported(&mut t, &cfg, 1408), Ok(true));
        assert_eq!(t.mss, 536);
    }

    #[test]
    fn a_non_client_mac_is_refused() {
        let cfg = Config::default();
        for mac in [[0xff; 6], [0; 6], [1, 0, 0x5e, 0, 0, 1]] {
            let mut t = tcb();
            t.link_addr = mac;
            assert_eq!(clamp_imported(&mut t, &cfg, 1408), Err(Refused::LinkAddr));
        }
    }
}
