//! Policy settings: the static rules (URL map, cookie map), the cookie name,
//! the load-score weights and the staleness limit for advertisements.
//!
//! # Load score
//!
//! For rule (c) of [`choose`](crate::choose) every candidate server gets a
//! *cost* (lower is better, saturating `u64` arithmetic):
//!
//! ```text
//! cost = per_connection  * established
//!      + per_cpu_permille * cpu_permille
//!      + per_mib_short    * max(0, mem_ref_mib - mem_avail_mib)
//!      + per_mbps_short   * max(0, bw_ref_mbps - bw_avail_mbps)
//! ```
//!
//! Memory and bandwidth count only as a *shortfall* below a reference
//! amount: above `mem_ref_mib` free MiB (or `bw_ref_mbps` free Mbit/s) more
//! headroom earns nothing, so a node with a huge idle memory bank does not
//! attract every connection regardless of its CPU and connection count.
//!
//! With the defaults, one established connection costs 10, 1 % CPU costs 10,
//! a server with no free memory pays 1024 (about 100 connections, or a fully
//! busy CPU), and a saturated link pays 1000.
//!
//! Servers whose cost is within `tie_band` of the best are *tied*; the
//! caller's per-connection `spread_key` picks among them, so equal servers
//! share new connections instead of the lowest address taking them all.

use crate::tables::{CookieMap, UrlMap};
use crate::Ipv4Address;

/// Default name of the farm's affinity cookie.
pub const DEFAULT_COOKIE_NAME: &str = "IPOSID";
/// Default staleness limit: a server silent for longer than this (ms) is
/// not chosen.
pub const DEFAULT_STALE_AFTER_MS: u64 = 3_000;

/// Weights and reference amounts of the load score (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// Cost of one established TCP connection. Default 10.
    pub per_connection: u32,
    /// Cost of one permille of CPU utilisation. Default 1.
    pub per_cpu_permille: u32,
    /// Cost of each MiB by which free memory falls short of `mem_ref_mib`.
    /// Default 1.
    pub per_mib_short: u32,
    /// Free memory (MiB) at and above which memory adds no cost. Default 1024.
    pub mem_ref_mib: u32,
    /// Cost of each Mbit/s by which free bandwidth falls short of
    /// `bw_ref_mbps`. Default 1.
    pub per_mbps_short: u32,
    /// Free bandwidth (Mbit/s) at and above which bandwidth adds no cost.
    /// Default 1000.
    pub bw_ref_mbps: u32,
    /// Costs at most this far above the best count as tied. Default 10 (one
    /// connection's worth, so advertisement jitter does not herd every new
    /// connection onto one server between adverts).
    pub tie_band: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            per_connection: 10,
            per_cpu_permille: 1,
            per_mib_short: 1,
            mem_ref_mib: 1024,
            per_mbps_short: 1,
            bw_ref_mbps: 1000,
            tie_band: 10,
        }
    }
}

impl Weights {
    /// The cost of a server with these figures (lower is better); see the
    /// module docs for the formula.
    pub fn cost(
        &self,
        established: u32,
        cpu_permille: u16,
        mem_avail_mib: u32,
        bw_avail_mbps: u32,
    ) -> u64 {
        let term = |w: u32, x: u32| u64::from(w).saturating_mul(u64::from(x));
        term(self.per_connection, established)
            .saturating_add(term(self.per_cpu_permille, u32::from(cpu_permille)))
            .saturating_add(term(
                self.per_mib_short,
                self.mem_ref_mib.saturating_sub(mem_avail_mib),
            ))
            .saturating_add(term(
                self.per_mbps_short,
                self.bw_ref_mbps.saturating_sub(bw_avail_mbps),
            ))
    }
}

/// Everything the policy is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// URL map rules: (path prefix, server).
    pub url_rules: Vec<(String, Ipv4Address)>,
    /// Name of the affinity cookie whose value is the cookie ID. Default
    /// `"IPOSID"`.
    pub cookie_name: String,
    /// Cookie map rules: (cookie ID, server).
    pub cookie_rules: Vec<(String, Ipv4Address)>,
    /// Load-score weights.
    pub weights: Weights,
    /// A server whose last update is older than this (ms) is not chosen.
    /// Default 3000.
    pub stale_after_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            url_rules: Vec::new(),
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            cookie_rules: Vec::new(),
            weights: Weights::default(),
            stale_after_ms: DEFAULT_STALE_AFTER_MS,
        }
    }
}

impl PolicyConfig {
    /// The URL map these rules describe.
    pub fn url_map(&self) -> UrlMap {
        UrlMap::from_rules(self.url_rules.iter().map(|(p, ip)| (p.as_str(), *ip)))
    }

    /// The cookie map these rules describe.
    pub fn cookie_map(&self) -> CookieMap {
        CookieMap::from_rules(self.cookie_rules.iter().map(|(c, ip)| (c.as_str(), *ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_formula() {
        let w = Weights::default();
        // Idle server with plenty of memory and bandwidth costs nothing.
        assert_eq!(w.cost(0, 0, 1 << 20, 10_000), 0);
        // 3 connections, 25 % CPU, 24 MiB short, 100 Mbit/s short.
        assert_eq!(w.cost(3, 250, 1000, 900), 30 + 250 + 24 + 100);
        // No overflow at the extremes.
        let max = Weights {
            per_connection: u32::MAX,
            per_cpu_permille: u32::MAX,
            per_mib_short: u32::MAX,
            mem_ref_mib: u32::MAX,
            per_mbps_short: u32::MAX,
            bw_ref_mbps: u32::MAX,
            tie_band: u32::MAX,
        };
        assert_eq!(max.cost(u32::MAX, u16::MAX, 0, 0), u64::MAX);
    }
}
