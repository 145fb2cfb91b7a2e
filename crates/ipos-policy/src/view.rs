//! [`FarmView`]: one immutable, internally consistent snapshot of the five
//! read-mostly tables plus the policy settings.
//!
//! A `FarmView` is a value. Readers never see it change: a writer derives a
//! *new* view from the old one ([`apply_advert`], [`FarmView::prune`],
//! [`FarmView::reconfigure`], or `clone()` followed by the `*_mut`
//! accessors) and publishes it whole through a
//! [`SharedFarmView`](crate::SharedFarmView). Each table sits behind its own
//! `Arc`, so deriving a view copies only the tables that change (an advert
//! copies server state, listening sockets and application info; the URL and
//! cookie maps are shared with the old view).
//!
//! # Liveness
//!
//! A server is *live* at `now_ms` when it is the local node (the front node
//! may always keep a connection) or it has a server-state row whose
//! `last_update_ms` is at most `stale_after_ms` old. Staleness is judged at
//! choice time with the caller's clock, so a view need not be pruned to stop
//! choosing a silent server; [`FarmView::prune`] only reclaims the rows.
//!
//! # Advertisements
//!
//! [`apply_advert`] replaces the advertising server's state row, all of its
//! listening sockets and all of its application rows with what the
//! advertisement carries, stamped with the caller's `now_ms`. An
//! advertisement is taken when
//!
//! 1. its sequence number is newer (serial-number arithmetic, RFC 1982
//!    style) than the one that wrote the row, or
//! 2. the row has gone stale (the server was silent for `stale_after_ms`:
//!    down): its next advertisement is taken whatever its sequence, or
//! 3. it shows a restart ([`shows_restart`]): a restarted node counts from 1
//!    again, so a sequence of at most [`RESTART_MAX_SEQ`] after one of at
//!    least [`RESTART_MIN_PREV`] is a new run of that node, heard at once
//!    rather than after `stale_after_ms`.
//!
//! Any other advertisement is a duplicate or arrived out of order and
//! changes nothing. (A duplicate delayed by the 56 advertisement intervals
//! that rule 3 needs does not happen on a farm segment.)

use std::sync::Arc;

use crate::advert::AdvertRepr;
use crate::config::{PolicyConfig, Weights};
use crate::tables::{
    AppInfo, AppInfoTable, CookieMap, ListeningTable, ServerState, ServerStateTable, UrlMap,
};
use crate::Ipv4Address;

/// The sequence numbers a restarted node sends first (it counts from 1).
pub const RESTART_MAX_SEQ: u32 = 8;
/// The least sequence number after which a sequence of at most
/// [`RESTART_MAX_SEQ`] is taken as a restart rather than as a late duplicate.
pub const RESTART_MIN_PREV: u32 = 64;

/// Whether an advertisement with sequence `seq`, after one with `prev`, shows
/// that its node restarted (see the module docs, rule 3).
pub fn shows_restart(prev: u32, seq: u32) -> bool {
    seq <= RESTART_MAX_SEQ && prev >= RESTART_MIN_PREV
}

/// One consistent snapshot of the farm's read-mostly tables and the policy
/// settings that go with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarmView {
    servers: Arc<ServerStateTable>,
    listening: Arc<ListeningTable>,
    apps: Arc<AppInfoTable>,
    urls: Arc<UrlMap>,
    cookies: Arc<CookieMap>,
    cookie_name: Arc<str>,
    weights: Weights,
    stale_after_ms: u64,
}

impl Default for FarmView {
    /// Empty tables and [`PolicyConfig::default`] settings.
    fn default() -> Self {
        FarmView::new(&PolicyConfig::default())
    }
}

impl FarmView {
    /// A view with the static parts (URL map, cookie map, cookie name,
    /// weights, staleness limit) from `config` and empty dynamic tables.
    pub fn new(config: &PolicyConfig) -> Self {
        FarmView {
            servers: Arc::default(),
            listening: Arc::default(),
            apps: Arc::default(),
            urls: Arc::new(config.url_map()),
            cookies: Arc::new(config.cookie_map()),
            cookie_name: config.cookie_name.as_str().into(),
            weights: config.weights,
            stale_after_ms: config.stale_after_ms,
        }
    }

    /// A new view with the static parts replaced from `config` and the
    /// dynamic tables (server state, listening sockets, application info)
    /// kept.
    pub fn reconfigure(&self, config: &PolicyConfig) -> Self {
        FarmView {
            servers: Arc::clone(&self.servers),
            listening: Arc::clone(&self.listening),
            apps: Arc::clone(&self.apps),
            ..FarmView::new(config)
        }
    }

    /// The server state table.
    pub fn servers(&self) -> &ServerStateTable {
        &self.servers
    }

    /// The listening sockets table.
    pub fn listening(&self) -> &ListeningTable {
        &self.listening
    }

    /// The application information table.
    pub fn apps(&self) -> &AppInfoTable {
        &self.apps
    }

    /// The URL map.
    pub fn url_map(&self) -> &UrlMap {
        &self.urls
    }

    /// The cookie map.
    pub fn cookie_map(&self) -> &CookieMap {
        &self.cookies
    }

    /// Name of the affinity cookie whose value the caller passes as the
    /// cookie ID.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Load-score weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Staleness limit, ms.
    pub fn stale_after_ms(&self) -> u64 {
        self.stale_after_ms
    }

    /// Mutable server state table of this (unpublished) view; copies it
    /// first if another view shares it.
    pub fn servers_mut(&mut self) -> &mut ServerStateTable {
        Arc::make_mut(&mut self.servers)
    }

    /// Mutable listening sockets table (copy-on-write, as
    /// [`servers_mut`](Self::servers_mut)).
    pub fn listening_mut(&mut self) -> &mut ListeningTable {
        Arc::make_mut(&mut self.listening)
    }

    /// Mutable application information table (copy-on-write).
    pub fn apps_mut(&mut self) -> &mut AppInfoTable {
        Arc::make_mut(&mut self.apps)
    }

    /// Mutable URL map (copy-on-write).
    pub fn url_map_mut(&mut self) -> &mut UrlMap {
        Arc::make_mut(&mut self.urls)
    }

    /// Mutable cookie map (copy-on-write).
    pub fn cookie_map_mut(&mut self) -> &mut CookieMap {
        Arc::make_mut(&mut self.cookies)
    }

    /// Replace the load-score weights.
    pub fn set_weights(&mut self, weights: Weights) {
        self.weights = weights;
    }

    /// Replace the staleness limit.
    pub fn set_stale_after_ms(&mut self, stale_after_ms: u64) {
        self.stale_after_ms = stale_after_ms;
    }

    /// Whether `server` may be chosen at `now_ms`: it is `local_ip`, or its
    /// state row is fresh (see the module docs).
    pub fn is_live(&self, server: Ipv4Address, now_ms: u64, local_ip: Ipv4Address) -> bool {
        server == local_ip
            || self
                .servers
                .get(server)
                .is_some_and(|s| s.is_fresh(now_ms, self.stale_after_ms))
    }

    /// The view with `advert` applied at `now_ms`, or `None` when the advert
    /// is a duplicate or older than the one already applied (see the module
    /// docs), so the caller can skip publishing and count it.
    pub fn try_apply_advert(&self, advert: &AdvertRepr, now_ms: u64) -> Option<FarmView> {
        let ip = advert.node_ip;
        let old = self.servers.get(ip);
        if let Some(old) = old {
            if let Some(prev) = old.advert_sequence {
                // Serial-number order: newer iff the forward distance is in
                // 1..2^31.
                let newer = (advert.sequence.wrapping_sub(prev) as i32) > 0;
                if !newer
                    && !shows_restart(prev, advert.sequence)
                    && old.is_fresh(now_ms, self.stale_after_ms)
                {
                    return None;
                }
            }
        }
        let state = ServerState {
            established: advert.established,
            cpu_permille: advert.cpu_permille,
            mem_avail_mib: advert.mem_avail_mib,
            bw_avail_mbps: advert.bw_avail_mbps,
            last_update_ms: now_ms,
            advert_sequence: Some(advert.sequence),
            node_name: old.and_then(|o| o.node_name.clone()),
        };
        let mut next = self.clone();
        next.servers_mut().insert(ip, state);
        let listening = next.listening_mut();
        listening.remove_server(ip);
        for e in advert.listening() {
            listening.insert(ip, e.port, e.pid);
        }
        let apps = next.apps_mut();
        apps.remove_server(ip);
        for a in advert.apps() {
            apps.insert(
                ip,
                a.pid,
                AppInfo {
                    mem_required_mib: a.mem_mib,
                    cpu_permille: a.cpu_permille,
                },
            );
        }
        Some(next)
    }

    /// The view without the servers that are stale at `now_ms`, and without
    /// their listening sockets and application rows. Returns a view sharing
    /// every table with `self` when nothing is stale.
    pub fn prune(&self, now_ms: u64) -> FarmView {
        let stale: Vec<Ipv4Address> = self
            .servers
            .iter()
            .filter(|(_, s)| !s.is_fresh(now_ms, self.stale_after_ms))
            .map(|(ip, _)| ip)
            .collect();
        let mut next = self.clone();
        if stale.is_empty() {
            return next;
        }
        for ip in stale {
            next.servers_mut().remove(ip);
            next.listening_mut().remove_server(ip);
            next.apps_mut().remove_server(ip);
        }
        next
    }
}

/// `view` with `advert` applied at `now_ms` (its server's state row,
/// listening sockets and application rows replaced); `view` unchanged (a
/// cheap clone) when the advert is a duplicate or out of order. See
/// [`FarmView::try_apply_advert`].
pub fn apply_advert(view: &FarmView, advert: &AdvertRepr, now_ms: u64) -> FarmView {
    view.try_apply_advert(advert, now_ms)
        .unwrap_or_else(|| view.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advert::{AppEntry, ListenEntry};

    const A: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const B: Ipv4Address = Ipv4Address::new(198, 18, 0, 2);

    fn advert(ip: Ipv4Address, seq: u32, ports: &[(u16, u32)]) -> AdvertRepr {
        let mut r = AdvertRepr::new(ip, seq);
        r.established = seq;
        r.cpu_permille = 100;
        r.mem_avail_mib = 2048;
        r.bw_avail_mbps = 500;
        for &(port, pid) in ports {
            r.push_listening(ListenEntry { port, pid }).unwrap();
            r.push_app(AppEntry {
                pid,
                mem_mib: 64,
                cpu_permille: 5,
            })
            .unwrap();
        }
        r
    }

    #[test]
    fn advert_replaces_that_servers_rows_only() {
        let v = FarmView::default();
        let v = apply_advert(&v, &advert(A, 1, &[(80, 10), (443, 11)]), 100);
        let v = apply_advert(&v, &advert(B, 1, &[(80, 20)]), 100);
        assert_eq!(v.listening().len(), 3);
        let v = apply_advert(&v, &advert(A, 2, &[(8080, 12)]), 200);
        let s = v.servers().get(A).unwrap();
        assert_eq!(
            (s.established, s.last_update_ms, s.advert_sequence),
            (2, 200, Some(2))
        );
        assert_eq!(v.listening().get(A, 80), None);
        assert_eq!(v.listening().get(A, 8080), Some(12));
        assert_eq!(v.listening().get(B, 80), Some(20));
        assert_eq!(v.apps().get(A, 10), None);
        assert_eq!(v.apps().get(A, 12).unwrap().mem_required_mib, 64);
        assert!(v.apps().get(B, 20).is_some());
    }

    #[test]
    fn old_or_duplicate_sequence_ignored_while_fresh() {
        let v = apply_advert(&FarmView::default(), &advert(A, 5, &[(80, 1)]), 100);
        assert!(v.try_apply_advert(&advert(A, 5, &[]), 200).is_none());
        assert!(v.try_apply_advert(&advert(A, 4, &[]), 200).is_none());
        assert_eq!(apply_advert(&v, &advert(A, 4, &[]), 200), v);
        // Wrap-around: u32::MAX -> 0 is newer.
        let w = apply_advert(&FarmView::default(), &advert(A, u32::MAX, &[]), 0);
        assert!(w.try_apply_advert(&advert(A, 0, &[]), 1).is_some());
        // Once stale, a restarted node (sequence 0) is accepted.
        let later = 100 + v.stale_after_ms() + 1;
        let r = v.try_apply_advert(&advert(A, 0, &[]), later).unwrap();
        assert_eq!(r.servers().get(A).unwrap().advert_sequence, Some(0));
    }

    #[test]
    fn restart_is_heard_at_once() {
        let v = apply_advert(&FarmView::default(), &advert(A, 500, &[(80, 1)]), 100);
        // While fresh: a restarted node's first adverts are taken...
        let r = v
            .try_apply_advert(&advert(A, 1, &[]), 200)
            .expect("restart");
        assert_eq!(r.servers().get(A).unwrap().advert_sequence, Some(1));
        assert_eq!(r.listening().get(A, 80), None, "its rows replaced");
        // ...then its sequence goes on as usual.
        assert!(r.try_apply_advert(&advert(A, 2, &[]), 300).is_some());
        assert!(r.try_apply_advert(&advert(A, 1, &[]), 300).is_none());
        // A late duplicate of an early advert of a young node is not a restart.
        let young = apply_advert(&FarmView::default(), &advert(A, 20, &[]), 100);
        assert!(young.try_apply_advert(&advert(A, 3, &[]), 200).is_none());
        // Nor is a sequence beyond the first few.
        assert!(v.try_apply_advert(&advert(A, 9, &[]), 200).is_none());
        assert!(shows_restart(RESTART_MIN_PREV, RESTART_MAX_SEQ));
        assert!(!shows_restart(RESTART_MIN_PREV - 1, 1));
    }

    #[test]
    fn advert_keeps_node_name() {
        let mut v = FarmView::default();
        v.servers_mut().insert(
            A,
            ServerState {
                node_name: Some("alpha".into()),
                ..ServerState::default()
            },
        );
        let v = apply_advert(&v, &advert(A, 1, &[]), 5);
        assert_eq!(
            v.servers().get(A).unwrap().node_name.as_deref(),
            Some("alpha")
        );
    }

    #[test]
    fn liveness_and_prune() {
        let mut v = FarmView::default();
        v.set_stale_after_ms(1000);
        let v = apply_advert(&v, &advert(A, 1, &[(80, 1)]), 0);
        let v = apply_advert(&v, &advert(B, 1, &[(80, 2)]), 600);
        assert!(v.is_live(A, 1000, B));
        assert!(!v.is_live(A, 1001, B));
        // The local node is always live, even without a row.
        let local = Ipv4Address::new(198, 18, 0, 99);
        assert!(v.is_live(local, 1_000_000, local));
        assert!(!v.is_live(local, 0, A));

        let same = v.prune(1000);
        assert!(Arc::ptr_eq(&same.servers, &v.servers));
        let p = v.prune(1001);
        assert!(p.servers().get(A).is_none());
        assert_eq!(p.listening().get(A, 80), None);
        assert!(p.apps().get(A, 1).is_none());
        assert!(p.servers().get(B).is_some());
        assert_eq!(p.listening().get(B, 80), Some(2));
        // The old snapshot is untouched.
        assert!(v.servers().get(A).is_some());
    }

    #[test]
    fn advert_shares_static_tables() {
        let cfg = PolicyConfig {
            url_rules: vec![("/a".into(), A)],
            ..PolicyConfig::default()
        };
        let v = FarmView::new(&cfg);
        let w = apply_advert(&v, &advert(A, 1, &[]), 0);
        assert!(Arc::ptr_eq(&v.urls, &w.urls));
        assert!(Arc::ptr_eq(&v.cookies, &w.cookies));
        let r = w.reconfigure(&PolicyConfig::default());
        assert!(r.url_map().is_empty());
        assert!(Arc::ptr_eq(&r.servers, &w.servers));
    }
}
