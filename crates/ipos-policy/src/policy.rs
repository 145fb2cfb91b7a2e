//! The target choice: which server of the farm should own a new connection.
//!
//! [`choose`] reads one [`FarmView`] snapshot and the request, takes no lock,
//! allocates nothing, reads no clock, and always returns a target; keeping
//! the connection on the front node is always a valid answer.
//!
//! # Order
//!
//! A server is *eligible* when it is live at `now_ms` (the local node, or a
//! fresh server-state row; see [`view`](crate::view)) and its listening
//! sockets table has an entry for `service_port`.
//!
//! 1. **Cookie** ([`Reason::Cookie`]): the request's cookie ID maps, in the
//!    cookie map, to an eligible server. Session affinity wins over load, so
//!    resources are not checked here.
//! 2. **URL** ([`Reason::Url`]): the longest URL-map prefix of the path that
//!    has at least one eligible server; among that prefix's eligible servers
//!    the lowest load cost wins (ties spread as below). A prefix whose
//!    servers are all ineligible falls back to the next shorter one.
//! 3. **Load** ([`Reason::Load`]): among the eligible servers of the server
//!    state table whose free resources cover the application listening on
//!    `service_port` there (its application-information row: free memory >=
//!    memory required and `1000 - cpu_permille` >= its CPU permille; a
//!    process without a row needs nothing), the lowest load cost wins. The
//!    cost formula is in [`config`](crate::config).
//! 4. **Local** ([`Reason::Local`]): nothing qualified; the front node keeps
//!    the connection.
//!
//! # Ties
//!
//! Servers whose cost is within [`Weights::tie_band`](crate::Weights) of the
//! lowest are tied. They are ordered by IP address and one is picked by the
//! caller's [`RequestInfo::spread_key`] (mixed by a multiplicative hash and
//! scaled onto the number of tied servers), so different connections spread
//! over equal servers and the same key always gives the same choice.
//!
//! # Between advertisements
//!
//! [`choose_placed`] adds to each server's advertised connection count the
//! connections the caller placed there since that server's row was written
//! ([`Placed`]), so the decisions of one advertisement interval see each
//! other. [`choose`] is the same without that record.

use crate::placed::Placed;
use crate::view::FarmView;
use crate::Ipv4Address;

/// What [`choose`] needs to know about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo<'a> {
    /// The request path (as matched against the URL map).
    pub path: &'a str,
    /// The value of the farm's affinity cookie (named
    /// [`FarmView::cookie_name`]), if the request carries it; extracted by
    /// the caller.
    pub cookie_value: Option<&'a str>,
    /// The TCP port the client connected to.
    pub service_port: u16,
    /// The front node's own address: always live, and the fallback target.
    pub local_ip: Ipv4Address,
    /// Any per-connection value (the client's port, a hash of the client
    /// address and port, a round-robin counter); used only to break ties.
    /// Passing the same value for every connection sends every tie to the
    /// same server.
    pub spread_key: u32,
}

/// Why [`choose`] picked its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The cookie map named an eligible server.
    Cookie,
    /// The URL map's longest matching prefix named an eligible server.
    Url,
    /// The least-loaded eligible server with room for the application.
    Load,
    /// Nothing qualified; the connection stays on the front node.
    Local,
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The server that should own the connection (may be the local node).
    pub target: Ipv4Address,
    /// Which rule picked it.
    pub reason: Reason,
}

impl Decision {
    /// Whether the connection stays where it is (`target == local_ip`), i.e.
    /// no migration is needed.
    pub fn is_local(&self, local_ip: Ipv4Address) -> bool {
        self.target == local_ip
    }
}

/// Pick the server that should own the connection described by `req`, from
/// snapshot `view`, at the caller's time `now_ms`. See the module docs for
/// the rules.
pub fn choose(view: &FarmView, req: &RequestInfo<'_>, now_ms: u64) -> Decision {
    choose_placed(view, &Placed::NONE, req, now_ms)
}

/// [`choose`], with the connections this node placed since each server's
/// last advertisement ([`Placed`]) added to that server's connection count,
/// so that a burst of decisions between two advertisements spreads by load
/// instead of all going where the last advertisement looked cheapest.
pub fn choose_placed(
    view: &FarmView,
    placed: &Placed,
    req: &RequestInfo<'_>,
    now_ms: u64,
) -> Decision {
    let eligible = |ip: Ipv4Address| {
        view.is_live(ip, now_ms, req.local_ip)
            && view.listening().get(ip, req.service_port).is_some()
    };

    if let Some(ip) = req.cookie_value.and_then(|c| view.cookie_map().get(c)) {
        if eligible(ip) {
            return Decision {
                target: ip,
                reason: Reason::Cookie,
            };
        }
    }

    for (_, servers) in view.url_map().matches(req.path) {
        let candidates = servers.iter().copied().filter(|&ip| eligible(ip));
        if let Some(ip) = least_loaded(view, placed, candidates, req.spread_key) {
            return Decision {
                target: ip,
                reason: Reason::Url,
            };
        }
    }

    let candidates = view
        .servers()
        .iter()
        .map(|(ip, _)| ip)
        .filter(|&ip| eligible(ip) && has_room(view, ip, req.service_port));
    if let Some(ip) = least_loaded(view, placed, candidates, req.spread_key) {
        return Decision {
            target: ip,
            reason: Reason::Load,
        };
    }

    Decision {
        target: req.local_ip,
        reason: Reason::Local,
    }
}

/// The load cost of `ip` in `view`, its connections counted with those
/// `placed` there since; a server without a state row (only the local node
/// can be eligible without one) scores as an all-zero row.
fn cost(view: &FarmView, placed: &Placed, ip: Ipv4Address) -> u64 {
    let w = view.weights();
    let row = view.servers().get(ip);
    let established = placed.established(view, ip, row.map_or(0, |s| s.established));
    match row {
        Some(s) => w.cost(
            established,
            s.cpu_permille,
            s.mem_avail_mib,
            s.bw_avail_mbps,
        ),
        None => w.cost(established, 0, 0, 0),
    }
}

/// Whether `ip`'s advertised free memory and CPU headroom cover the
/// application listening on `port` there.
fn has_room(view: &FarmView, ip: Ipv4Address, port: u16) -> bool {
    let Some(pid) = view.listening().get(ip, port) else {
        return false;
    };
    let Some(app) = view.apps().get(ip, pid) else {
        return true;
    };
    let (mem, headroom) = view
        .servers()
        .get(ip)
        .map_or((0, 1000), |s| (s.mem_avail_mib, s.cpu_headroom_permille()));
    mem >= app.mem_required_mib && headroom >= app.cpu_permille
}

/// The lowest-cost server of `candidates` (in ascending IP order), ties
/// within the tie band broken by `spread_key`. Two passes over the iterator,
/// no allocation.
fn least_loaded<I>(
    view: &FarmView,
    placed: &Placed,
    candidates: I,
    spread_key: u32,
) -> Option<Ipv4Address>
where
    I: Iterator<Item = Ipv4Address> + Clone,
{
    let best = candidates.clone().map(|ip| cost(view, placed, ip)).min()?;
    let limit = best.saturating_add(u64::from(view.weights().tie_band));
    let tied = candidates
        .clone()
        .filter(|&ip| cost(view, placed, ip) <= limit);
    let n = tied.clone().count();
    tied.clone().nth(spread_index(spread_key, n))
}

/// Map `key` onto `0..n` (n >= 1): Fibonacci hashing, then the high 32 bits
/// of `hash * n`, so consecutive keys (ports, counters) fall evenly.
fn spread_index(key: u32, n: usize) -> usize {
    let hash = u64::from(key.wrapping_mul(0x9E37_79B9));
    ((hash * n as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advert::{AdvertRepr, AppEntry, ListenEntry};
    use crate::config::{PolicyConfig, Weights};
    use crate::view::apply_advert;

    const LOCAL: Ipv4Address = Ipv4Address::new(198, 18, 0, 100);
    const A: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const B: Ipv4Address = Ipv4Address::new(198, 18, 0, 2);
    const C: Ipv4Address = Ipv4Address::new(198, 18, 0, 3);
    const NOW: u64 = 10_000;
    const PORT: u16 = 80;

    /// An advert from `ip`: `est` connections, `cpu` permille, `mem` MiB
    /// free, 1000 Mbit/s free, listening on PORT with pid 7 which needs
    /// `app` = (MiB, permille).
    fn adv(ip: Ipv4Address, est: u32, cpu: u16, mem: u32, app: (u32, u16)) -> AdvertRepr {
        let mut r = AdvertRepr::new(ip, 1);
        r.established = est;
        r.cpu_permille = cpu;
        r.mem_avail_mib = mem;
        r.bw_avail_mbps = 1000;
        r.push_listening(ListenEntry { port: PORT, pid: 7 })
            .unwrap();
        r.push_app(AppEntry {
            pid: 7,
            mem_mib: app.0,
            cpu_permille: app.1,
        })
        .unwrap();
        r
    }

    fn idle(ip: Ipv4Address) -> AdvertRepr {
        adv(ip, 0, 0, 4096, (0, 0))
    }

    fn view_with(config: &PolicyConfig, adverts: &[(AdvertRepr, u64)]) -> FarmView {
        adverts
            .iter()
            .fold(FarmView::new(config), |v, (a, t)| apply_advert(&v, a, *t))
    }

    fn req<'a>(path: &'a str, cookie: Option<&'a str>) -> RequestInfo<'a> {
        RequestInfo {
            path,
            cookie_value: cookie,
            service_port: PORT,
            local_ip: LOCAL,
            spread_key: 0,
        }
    }

    fn rules() -> PolicyConfig {
        PolicyConfig {
            url_rules: vec![("/img/".into(), B), ("/img/big/".into(), C)],
            cookie_rules: vec![("c".into(), A)],
            ..PolicyConfig::default()
        }
    }

    #[test]
    fn cookie_beats_url_beats_load() {
        // C is the most loaded, so Load alone would never pick it.
        let v = view_with(
            &rules(),
            &[
                (adv(A, 50, 500, 4096, (0, 0)), NOW),
                (adv(B, 50, 500, 4096, (0, 0)), NOW),
                (adv(C, 90, 900, 4096, (0, 0)), NOW),
                (idle(Ipv4Address::new(198, 18, 0, 4)), NOW),
            ],
        );
        let d = choose(&v, &req("/img/big/x.png", Some("c")), NOW);
        assert_eq!((d.target, d.reason), (A, Reason::Cookie));
        let d = choose(&v, &req("/img/big/x.png", Some("unknown")), NOW);
        assert_eq!((d.target, d.reason), (C, Reason::Url));
        let d = choose(&v, &req("/img/x.png", None), NOW);
        assert_eq!((d.target, d.reason), (B, Reason::Url));
        let d = choose(&v, &req("/index.html", None), NOW);
        assert_eq!(
            (d.target, d.reason),
            (Ipv4Address::new(198, 18, 0, 4), Reason::Load)
        );
    }

    #[test]
    fn stale_server_excluded_everywhere() {
        let mut cfg = rules();
        cfg.stale_after_ms = 1_000;
        // A (the cookie target) and C (the long URL target) last spoke at
        // NOW - 1001: stale. B is fresh but busier than A was.
        let v = view_with(
            &cfg,
            &[
                (idle(A), NOW - 1_001),
                (adv(B, 80, 800, 4096, (0, 0)), NOW),
                (idle(C), NOW - 1_001),
            ],
        );
        let d = choose(&v, &req("/img/big/x", Some("c")), NOW);
        // Cookie target stale, longest prefix's server stale: next prefix.
        assert_eq!((d.target, d.reason), (B, Reason::Url));
        let d = choose(&v, &req("/", None), NOW);
        assert_eq!((d.target, d.reason), (B, Reason::Load));
        // Exactly at the limit A is still live.
        let d = choose(&v, &req("/", Some("c")), NOW - 1);
        assert_eq!((d.target, d.reason), (A, Reason::Cookie));
        // Everything stale: keep it local.
        let d = choose(&v, &req("/", None), NOW + 1_001);
        assert_eq!((d.target, d.reason), (LOCAL, Reason::Local));
    }

    #[test]
    fn non_listening_server_excluded() {
        let mut a = idle(A);
        a = {
            // Same load, but listening on 8080 only.
            let mut r = AdvertRepr::new(A, 1);
            r.mem_avail_mib = a.mem_avail_mib;
            r.bw_avail_mbps = a.bw_avail_mbps;
            r.push_listening(ListenEntry { port: 8080, pid: 7 })
                .unwrap();
            r
        };
        let v = view_with(&rules(), &[(a, NOW), (adv(B, 30, 300, 4096, (0, 0)), NOW)]);
        let d = choose(&v, &req("/", Some("c")), NOW);
        assert_eq!((d.target, d.reason), (B, Reason::Load));
        let mut r = req("/", Some("c"));
        r.service_port = 8080;
        let d = choose(&v, &r, NOW);
        assert_eq!((d.target, d.reason), (A, Reason::Cookie));
        r.service_port = 9999;
        let d = choose(&v, &r, NOW);
        assert_eq!((d.target, d.reason), (LOCAL, Reason::Local));
    }

    #[test]
    fn insufficient_memory_or_cpu_excluded() {
        let cfg = PolicyConfig::default();
        // A: idle but only 100 MiB free for an app needing 512.
        // B: plenty of memory but 950 permille busy for an app needing 100.
        // C: busiest by score, but fits.
        let v = view_with(
            &cfg,
            &[
                (adv(A, 0, 0, 100, (512, 10)), NOW),
                (adv(B, 0, 950, 8192, (64, 100)), NOW),
                (adv(C, 200, 800, 1024, (512, 100)), NOW),
            ],
        );
        let d = choose(&v, &req("/", None), NOW);
        assert_eq!((d.target, d.reason), (C, Reason::Load));
        // Exact fit counts as room.
        let v = view_with(&cfg, &[(adv(A, 0, 900, 512, (512, 100)), NOW)]);
        assert_eq!(choose(&v, &req("/", None), NOW).target, A);
        // Nobody fits: local.
        let v = view_with(&cfg, &[(adv(A, 0, 901, 512, (512, 100)), NOW)]);
        let d = choose(&v, &req("/", None), NOW);
        assert_eq!((d.target, d.reason), (LOCAL, Reason::Local));
    }

    #[test]
    fn least_loaded_chosen() {
        let cfg = PolicyConfig::default();
        let servers = [
            (adv(A, 40, 300, 4096, (0, 0)), NOW), // 400 + 300 = 700
            (adv(B, 10, 100, 4096, (0, 0)), NOW), // 100 + 100 = 200
            (adv(C, 5, 100, 924, (0, 0)), NOW),   // 50 + 100 + 100 short = 250
        ];
        let v = view_with(&cfg, &servers);
        for key in 0..50 {
            let mut r = req("/", None);
            r.spread_key = key;
            let d = choose(&v, &r, NOW);
            assert_eq!((d.target, d.reason), (B, Reason::Load), "key {key}");
        }
        // Bandwidth shortfall counts too: B with 300 Mbit/s free now costs
        // 200 + 700 and C wins.
        let mut b = servers[1].0;
        b.sequence = 2;
        b.bw_avail_mbps = 300;
        let v = apply_advert(&v, &b, NOW);
        assert_eq!(choose(&v, &req("/", None), NOW).target, C);
    }

    /// 300 decisions between two adverts, A advertising 20 connections'
    /// worth of CPU more than B and C: without a record of its own
    /// decisions every one goes to B or C; with [`Placed`] B and C fill up
    /// to A's cost and then all three share.
    #[test]
    fn a_burst_between_adverts_sees_its_own_decisions() {
        let cfg = PolicyConfig::default();
        let v = view_with(
            &cfg,
            &[
                (adv(A, 0, 200, 4096, (0, 0)), NOW),
                (idle(B), NOW),
                (idle(C), NOW),
            ],
        );
        let burst = |placed: Option<&mut Placed>| {
            let mut counts = [0u32; 3];
            let mut placed = placed;
            for i in 0..300u32 {
                let mut r = req("/", None);
                r.spread_key = i;
                let d = match placed.as_deref_mut() {
                    Some(p) => {
                        let d = choose_placed(&v, p, &r, NOW);
                        assert!(p.add(&v, d.target, 1));
                        d
                    }
                    None => choose(&v, &r, NOW),
                };
                assert_eq!(d.reason, Reason::Load);
                counts[usize::from(d.target.octets()[3]) - 1] += 1;
            }
            counts
        };
        assert_eq!(burst(None)[0], 0, "the herd: A gets nothing");
        let mut placed = Placed::default();
        let [a, b, c] = burst(Some(&mut placed));
        // B and C each take A's 20 first, then the 260 left split in three.
        assert!((80..=95).contains(&a), "a {a} b {b} c {c}");
        assert!(b.abs_diff(c) <= 2, "a {a} b {b} c {c}");
        assert_eq!(placed.delta(&v, A), a as i32);
        // The next advert from B voids B's record: B is cheap again.
        let mut b_adv = idle(B);
        b_adv.sequence = 2;
        let v2 = apply_advert(&v, &b_adv, NOW + 500);
        let d = choose_placed(&v2, &placed, &req("/", None), NOW + 500);
        assert_eq!(d.target, B);
    }

    #[test]
    fn equal_servers_share_connections() {
        let v = view_with(
            &PolicyConfig::default(),
            &[(idle(A), NOW), (idle(B), NOW), (idle(C), NOW)],
        );
        for base in [0u32, 40_000, u32::MAX - 150] {
            let mut counts = [0u32; 3];
            for i in 0..300u32 {
                let mut r = req("/", None);
                r.spread_key = base.wrapping_add(i);
                let d = choose(&v, &r, NOW);
                assert_eq!(d.reason, Reason::Load);
                let slot = usize::from(d.target.octets()[3]) - 1;
                counts[slot] += 1;
            }
            assert!(counts.iter().all(|&c| c >= 50), "base {base}: {counts:?}");
        }
        // Deterministic: the same key, the same server.
        let mut r = req("/", None);
        r.spread_key = 12345;
        assert_eq!(choose(&v, &r, NOW), choose(&v, &r, NOW));
    }

    #[test]
    fn tie_band_counts_near_equal_as_equal() {
        // A has one more connection (cost +10): inside the default band.
        let v = view_with(
            &PolicyConfig::default(),
            &[(adv(A, 1, 0, 4096, (0, 0)), NOW), (idle(B), NOW)],
        );
        let hits_a = (0..100)
            .filter(|&k| {
                let mut r = req("/", None);
                r.spread_key = k;
                choose(&v, &r, NOW).target == A
            })
            .count();
        assert!((30..=70).contains(&hits_a), "{hits_a}");
        // With a zero band the strictly less loaded B always wins.
        let cfg = PolicyConfig {
            weights: Weights {
                tie_band: 0,
                ..Weights::default()
            },
            ..PolicyConfig::default()
        };
        let v = view_with(&cfg, &[(adv(A, 1, 0, 4096, (0, 0)), NOW), (idle(B), NOW)]);
        assert!((0..100).all(|k| {
            let mut r = req("/", None);
            r.spread_key = k;
            choose(&v, &r, NOW).target == B
        }));
    }

    #[test]
    fn url_prefix_with_several_servers_spreads_and_skips_ineligible() {
        let cfg = PolicyConfig {
            url_rules: vec![("/api".into(), A), ("/api".into(), B), ("/api".into(), C)],
            ..PolicyConfig::default()
        };
        // C never advertised: not live.
        let v = view_with(&cfg, &[(idle(A), NOW), (idle(B), NOW)]);
        let mut seen = [0u32; 2];
        for k in 0..100 {
            let mut r = req("/api/v1", None);
            r.spread_key = k;
            let d = choose(&v, &r, NOW);
            assert_eq!(d.reason, Reason::Url);
            assert_ne!(d.target, C);
            seen[usize::from(d.target.octets()[3]) - 1] += 1;
        }
        assert!(seen.iter().all(|&c| c >= 20), "{seen:?}");
    }

    #[test]
    fn local_node_is_live_without_fresh_advert() {
        let cfg = PolicyConfig {
            cookie_rules: vec![("me".into(), LOCAL)],
            ..PolicyConfig::default()
        };
        let mut v = FarmView::new(&cfg);
        v.listening_mut().insert(LOCAL, PORT, 1);
        // No state row for LOCAL at all, yet the cookie may name it.
        let d = choose(&v, &req("/", Some("me")), NOW);
        assert_eq!((d.target, d.reason), (LOCAL, Reason::Cookie));
        assert!(d.is_local(LOCAL));
        // With an ancient row it still competes on load.
        let v = apply_advert(&v, &idle(LOCAL), 0);
        let d = choose(&v, &req("/", None), NOW * 100);
        assert_eq!((d.target, d.reason), (LOCAL, Reason::Load));
    }

    #[test]
    fn empty_view_keeps_local() {
        let v = FarmView::default();
        let d = choose(&v, &req("/", Some("x")), 0);
        assert_eq!(
            d,
            Decision {
                target: LOCAL,
                reason: Reason::Local
            }
        );
    }

    #[test]
    fn spread_index_in_range() {
        for n in 1..10usize {
            for key in [0u32, 1, 7, u32::MAX, 0x8000_0000] {
                assert!(spread_index(key, n) < n);
            }
        }
    }
}
