//! D-SACK (RFC 2883) both ways, and the undo of a window reduction that D-SACKs
//! show was spurious (as Linux does; RFC 3708 describes the detection).
//!
//! - Receiver (RFC 2883 section 4): a segment whose data we already had (wholly
//!   below `rcv_nxt`, or its part below it) is reported in the first SACK block of
//!   the next segment we send, ahead of the out-of-order ranges; one report, then it
//!   is forgotten.
//! - Sender: a first SACK block below the cumulative ACK, or inside the second
//!   block, is a D-SACK (section 4). A SACK recovery episode remembers the window
//!   and threshold it started from and how many segments it retransmitted; when
//!   D-SACKs for the episode's sequence range have covered every one of those
//!   retransmissions, none was needed (the "loss" was reordering or a delayed ACK):
//!   the window and threshold go back to at least what they were, recovery ends if
//!   it is still on, and `spurious_undos` counts it. A new episode or an RTO
//!   forgets the old one's record. Nothing of this travels in the TCB.

use super::cc::CongestionControl;
use super::Endpoint;
use crate::seq::{ge, gt, le};
use crate::tcb::*;

/// The record of the latest SACK recovery episode, for its undo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Undo {
    /// An episode whose reduction may still be undone.
    pub(super) active: bool,
    /// The window and threshold before the reduction.
    cwnd: u32,
    ssthresh: u32,
    /// `counters.retransmits` when the episode started.
    rtx_base: u64,
    /// Segments of the episode reported twice by D-SACKs.
    dsacked: u32,
    /// The episode's sequence range [snd_una, snd_max) when it started.
    lo: u32,
    hi: u32,
}

impl Endpoint {
    /// A SACK recovery episode starts (before its reduction).
    pub(super) fn undo_start(&mut self) {
        self.cold.undo = Undo {
            active: true,
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            rtx_base: self.cold.counters.retransmits,
            dsacked: 0,
            lo: self.snd_una,
            hi: self.snd_max,
        };
    }

    /// Forget the episode's record (an RTO: that reduction stays).
    pub(super) fn undo_forget(&mut self) {
        self.cold.undo.active = false;
    }

    /// The ACK's SACK blocks start with a D-SACK? (RFC 2883 section 4.)
    pub(super) fn dsack_of(blocks: &[(u32, u32)], ack: u32) -> Option<(u32, u32)> {
        let &(l, r) = blocks.first()?;
        if !gt(r, l) {
            return None;
        }
        let below = le(r, ack);
        let inside = blocks
            .get(1)
            .is_some_and(|&(l1, r1)| le(l1, l) && le(r, r1));
        (below || inside).then_some((l, r))
    }

    /// A D-SACK for [l, r): counts against the episode's retransmissions, and undoes
    /// the reduction once they are all accounted for.
    pub(super) fn on_dsack(&mut self, l: u32, r: u32) {
        let u = self.cold.undo;
        if !(u.active && ge(l, u.lo) && le(r, u.hi)) {
            return;
        }
        let smss = self.smss().max(1);
        let segs = r.wrapping_sub(l).div_ceil(smss);
        let u = &mut self.cold.undo;
        u.dsacked = u.dsacked.saturating_add(segs);
        let retransmitted = self.cold.counters.retransmits.saturating_sub(u.rtx_base);
        if retransmitted == 0 || u64::from(u.dsacked) < retransmitted {
            return;
        }
        let (cwnd, ssthresh) = (u.cwnd, u.ssthresh);
        u.active = false;
        self.cwnd = self.cwnd.max(cwnd);
        self.ssthresh = self.ssthresh.max(ssthresh);
        self.cold.cc.restart(self.cwnd);
        self.flags &= !(TCB_F_RECOVERY | TCB_F_RETX_ONE);
        self.dupacks = 0;
        self.cold.counters.spurious_undos += 1;
    }

    /// Data [seq, end) arrived that we already had: report it in the next segment.
    pub(super) fn dsack_note(&mut self, seq: u32, end: u32) {
        if self.has(TCB_F_SACK) && gt(end, seq) {
            self.cold.dsack = Some((seq, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn a_first_block_below_the_ack_or_inside_the_second_is_a_dsack() {
        assert_eq!(Endpoint::dsack_of(&[(100, 200)], 300), Some((100, 200)));
        assert_eq!(Endpoint::dsack_of(&[(400, 500)], 300), None);
        assert_eq!(
            Endpoint::dsack_of(&[(450, 500), (400, 600)], 300),
            Some((450, 500))
        );
        assert_eq!(Endpoint::dsack_of(&[(400, 500), (600, 700)], 300), None);
        assert_eq!(Endpoint::dsack_of(&[], 300), None);
        assert_eq!(Endpoint::dsack_of(&[(5, 5)], 300), None, "empty block");
    }
}
