//! CUBIC congestion control (RFC 9438), the default [`Congestion`](super::cc::Congestion).
//!
//! - Section 4.6 (multiplicative decrease): a loss sets `ssthresh` to β = 0.7 of the
//!   window (of `base`: FlightSize, or min(FlightSize, cwnd)), never below 2 SMSS,
//!   and remembers W_max, the window where it happened, with fast convergence
//!   (section 4.7: a loss below the previous W_max lowers W_max to W * (1 + β) / 2).
//! - Section 4.2: congestion avoidance starts an epoch at its first ACK; the window
//!   follows W_cubic(t) = C * (t - K)^3 + W_max with C = 0.4 segments per second
//!   cubed and K = cbrt((W_max - cwnd_epoch) / C), concave up to W_max and convex
//!   past it. A window that starts the epoch above W_max uses it as the origin (K = 0).
//! - Section 4.3 (Reno-friendly region): W_est grows by α = 3(1 - β)/(1 + β) SMSS per
//!   window of ACKs (1 SMSS once it reaches the window before the loss); while
//!   W_cubic(t) is below it, the window is W_est.
//! - Sections 4.4 and 4.5: otherwise each ACK of one SMSS adds (target - cwnd) / cwnd,
//!   target = W_cubic(t + RTT) clamped to [cwnd, 1.5 cwnd].
//! - Section 4.8: an RTO reduces `ssthresh` as a loss does (`timers.rs` then sets
//!   `cwnd` to one SMSS, and slow start leads back to congestion avoidance).
//!
//! Not done: HyStart++ (slow start ends at `ssthresh` or the first loss, as with
//! NewReno), spurious-loss undo (section 4.9), and the application-limited epoch
//! rule (the epoch runs on while the application sends less than the window).
//! The state is rebuilt on import and by `forget_sack` ([`super::cc`]).

use super::cc::CongestionControl;

/// β_cubic, the multiplicative decrease factor.
const BETA: f64 = 0.7;
/// C, in segments per second cubed.
const C: f64 = 0.4;
/// α_cubic = 3 (1 - β) / (1 + β): the Reno-friendly increase per window, in SMSS.
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);
/// No epoch running.
const NO_EPOCH: i64 = i64::MIN;

/// One connection's CUBIC state (bytes and microseconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cubic {
    /// W_max: the window at the last loss (after fast convergence); 0 before any.
    w_max: u32,
    /// The window just before the last reduction (where α goes to 1).
    cwnd_prior: u32,
    /// When the current congestion-avoidance epoch started, `NO_EPOCH` if none.
    epoch_us: i64,
    /// K: time from the epoch's start to the plateau at `origin`.
    k_us: i64,
    /// W_cubic's plateau: W_max, or the window at the epoch's start if larger.
    origin: u32,
    /// W_est, the Reno-friendly estimate.
    w_est: u32,
}

impl Default for Cubic {
    fn default() -> Cubic {
        Cubic {
            w_max: 0,
            cwnd_prior: 0,
            epoch_us: NO_EPOCH,
            k_us: 0,
            origin: 0,
            w_est: 0,
        }
    }
}

impl Cubic {
    /// W_cubic at `t_us` after the epoch's start, in bytes (section 4.2, eq. 1).
    fn w_cubic(&self, t_us: i64, smss: u32) -> f64 {
        let t = (t_us - self.k_us) as f64 / 1e6;
        (C * t * t * t * f64::from(smss) + f64::from(self.origin)).max(0.0)
    }

    /// Starts an epoch at `now_us` with the window at `cwnd` (section 4.2, eq. 2).
    fn start_epoch(&mut self, cwnd: u32, smss: u32, now_us: i64) {
        self.epoch_us = now_us;
        self.w_est = cwnd;
        if self.w_max > cwnd {
            let segs = f64::from(self.w_max - cwnd) / f64::from(smss.max(1));
            self.k_us = ((segs / C).cbrt() * 1e6) as i64;
            self.origin = self.w_max;
        } else {
            self.k_us = 0;
            self.origin = cwnd;
        }
    }
}

impl CongestionControl for Cubic {
    fn avoid(&mut self, cwnd: u32, acked: u32, smss: u32, now_us: i64, srtt_us: u32) -> u32 {
        let cwnd = cwnd.max(1);
        if self.epoch_us == NO_EPOCH {
            self.start_epoch(cwnd, smss, now_us);
        }
        let t_us = now_us.saturating_sub(self.epoch_us).max(0);
        // Section 4.3: W_est += alpha * acked / cwnd (in SMSS units).
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        let inc = alpha * f64::from(acked) * f64::from(smss) / f64::from(cwnd);
        self.w_est = self.w_est.saturating_add(inc as u32);
        let now_cubic = self.w_cubic(t_us, smss);
        if now_cubic < f64::from(self.w_est) {
            return self.w_est.max(cwnd);
        }
        // Sections 4.4-4.5: towards W_cubic one round trip ahead, at most 1.5 cwnd.
        let target = self
            .w_cubic(t_us.saturating_add(i64::from(srtt_us)), smss)
            .clamp(f64::from(cwnd), 1.5 * f64::from(cwnd));
        let add = (target - f64::from(cwnd)) * f64::from(acked) / f64::from(cwnd);
        cwnd.saturating_add(add as u32)
    }

    fn reduce(&mut self, cwnd: u32, base: u32, smss: u32) -> u32 {
        // Section 4.7, fast convergence: a loss before the last W_max was reached
        // releases bandwidth for newer flows.
        self.w_max = if cwnd < self.w_max {
            (f64::from(cwnd) * (1.0 + BETA) / 2.0) as u32
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        self.epoch_us = NO_EPOCH;
        // base * BETA, in integers (BETA = 7 / 10).
        ((u64::from(base) * 7 / 10) as u32).max(2 * smss)
    }

    fn restart(&mut self, cwnd: u32) {
        *self = Cubic {
            w_max: cwnd,
            cwnd_prior: cwnd,
            ..Cubic::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMSS: u32 = 1000;

    /// Feeds one window of one-SMSS ACKs per round trip for `rtts` round trips.
    fn run(c: &mut Cubic, mut cwnd: u32, rtt_us: i64, rtts: usize, t0: i64) -> (u32, i64) {
        let mut t = t0;
        for _ in 0..rtts {
            let acks = (cwnd / SMSS).max(1);
            for i in 0..acks {
                let at = t + rtt_us * i64::from(i) / i64::from(acks);
                cwnd = c.avoid(cwnd, SMSS, SMSS, at, rtt_us as u32);
            }
            t += rtt_us;
        }
        (cwnd, t)
    }

    #[test]
    fn a_loss_keeps_seven_tenths_and_remembers_where() {
        let mut c = Cubic::default();
        assert_eq!(c.reduce(100 * SMSS, 100 * SMSS, SMSS), 70 * SMSS);
        assert_eq!(c.w_max, 100 * SMSS);
        // Fast convergence: the next loss comes at 90 SMSS, below W_max.
        assert_eq!(c.reduce(90 * SMSS, 90 * SMSS, SMSS), 63 * SMSS);
        assert_eq!(c.w_max, 76_500, "90 * 1.7 / 2 SMSS");
        assert_eq!(
            c.reduce(2 * SMSS, 2 * SMSS, SMSS),
            2 * SMSS,
            "never below 2 SMSS"
        );
    }

    #[test]
    fn k_is_the_cube_root_of_the_gap_over_c() {
        // RFC 9438 eq. 2: W_max 100, cwnd_epoch 70: K = cbrt(30 / 0.4) = 4.217 s.
        let mut c = Cubic::default();
        c.reduce(100 * SMSS, 100 * SMSS, SMSS);
        c.start_epoch(70 * SMSS, SMSS, 0);
        assert!((c.k_us - 4_217_163).abs() < 1_000, "{}", c.k_us);
        assert_eq!(c.w_cubic(c.k_us, SMSS) as u32, 100 * SMSS);
        assert!((c.w_cubic(0, SMSS) - f64::from(70 * SMSS)).abs() < 1.0);
    }

    #[test]
    fn the_window_climbs_back_to_w_max_by_k_and_then_probes_beyond() {
        // 100 ms round trips: the cubic region, far above Reno's one SMSS per RTT.
        let mut c = Cubic::default();
        let ssthresh = c.reduce(100 * SMSS, 100 * SMSS, SMSS);
        let (half, t) = run(&mut c, ssthresh, 100_000, 21, 0);
        assert!(
            half > 90 * SMSS && half < 100 * SMSS,
            "concave: {half} at 2.1 s"
        );
        let (at_k, t) = run(&mut c, half, 100_000, 21, t);
        assert!(
            at_k.abs_diff(100 * SMSS) < 3 * SMSS,
            "plateau: {at_k} at 4.2 s"
        );
        let (beyond, _) = run(&mut c, at_k, 100_000, 40, t);
        assert!(beyond > 110 * SMSS, "convex: {beyond} at 8.2 s");
    }

    #[test]
    fn on_short_round_trips_the_reno_friendly_estimate_leads() {
        // 1 ms round trips: in 50 ms W_cubic barely leaves 14 SMSS, while W_est grows
        // by alpha = 0.53 SMSS per window up to the 20 SMSS before the loss (11.3
        // windows), then by 1 SMSS per window: 20 + 38.7 = 58.7 SMSS.
        let mut c = Cubic::default();
        let ssthresh = c.reduce(20 * SMSS, 20 * SMSS, SMSS);
        assert_eq!(ssthresh, 14 * SMSS);
        let (cwnd, t) = run(&mut c, ssthresh, 1_000, 50, 0);
        assert!(c.w_cubic(t, SMSS) < f64::from(15 * SMSS));
        assert!((55 * SMSS..=59 * SMSS).contains(&cwnd), "{cwnd}");
    }

    #[test]
    fn a_restart_continues_from_the_window_without_a_jump() {
        let mut c = Cubic::default();
        c.restart(30 * SMSS);
        let w = c.avoid(30 * SMSS, SMSS, SMSS, 5_000_000, 10_000);
        assert!((30 * SMSS..31 * SMSS).contains(&w), "{w}");
    }
}
