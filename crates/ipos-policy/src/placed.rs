//! [`Placed`]: the connections one node has placed on each server since that
//! server's last advertisement.
//!
//! A server's row in the [`FarmView`] changes only when its advertisement
//! arrives (every 500 ms by default). Every decision in between reads the
//! same figures, so a burst of new connections, say 300 requests sent in the
//! same millisecond, would all go to whichever servers looked cheapest at
//! the last advertisement, and none to a server whose cost was a little
//! higher. A node therefore counts what it decided itself: each connection
//! it sends to a server (or keeps) adds one connection to that server's cost,
//! each one it moves away takes one off, until that server's next
//! advertisement, which carries its own count, replaces the row.
//!
//! A record is tied to the row it was made against (its advertisement
//! sequence and update time). Once the row changes, the record is void: no
//! hook on advertisement arrival is needed, and a record is never counted
//! twice.
//!
//! The table is bounded (the capacity given at construction, reserved up
//! front). When it is full, a void record is reused; when every record is
//! live, the new one is not kept ([`Placed::add`] returns `false`) and the
//! policy then sees only the advertised figures for that server.

use crate::view::FarmView;
use crate::Ipv4Address;

/// Which row of the server state table a record was made against.
type Stamp = (Option<u32>, u64);

/// One server's count of placements since its row was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    server: Ipv4Address,
    stamp: Stamp,
    delta: i32,
}

/// Connections placed on each server since its last advertisement (see the
/// module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    records: Vec<Record>,
    cap: usize,
}

impl Default for Placed {
    /// Room for [`Placed::DEFAULT_CAPACITY`] servers.
    fn default() -> Self {
        Placed::with_capacity(Placed::DEFAULT_CAPACITY)
    }
}

impl Placed {
    /// Servers tracked by [`Placed::default`].
    pub const DEFAULT_CAPACITY: usize = 64;

    /// An empty record that keeps nothing: [`choose`](crate::choose) uses it.
    pub const NONE: Placed = Placed {
        records: Vec::new(),
        cap: 0,
    };

    /// An empty table with room for `cap` servers, reserved now.
    pub fn with_capacity(cap: usize) -> Placed {
        Placed {
            records: Vec::with_capacity(cap),
            cap,
        }
    }

    /// The stamp of `server`'s row in `view` (a server without a row, the
    /// local node before its first advertisement, has the empty stamp).
    fn stamp(view: &FarmView, server: Ipv4Address) -> Stamp {
        view.servers()
            .get(server)
            .map_or((None, 0), |s| (s.advert_sequence, s.last_update_ms))
    }

    /// Counts `delta` connections placed on (positive) or taken from
    /// (negative) `server`, against its row in `view`. Returns `false` when
    /// the table is full of live records and this one was not kept.
    pub fn add(&mut self, view: &FarmView, server: Ipv4Address, delta: i32) -> bool {
        let stamp = Placed::stamp(view, server);
        if let Some(r) = self.records.iter_mut().find(|r| r.server == server) {
            if r.stamp != stamp {
                r.stamp = stamp;
                r.delta = 0;
            }
            r.delta = r.delta.saturating_add(delta);
            return true;
        }
        let record = Record {
            server,
            stamp,
            delta,
        };
        if self.records.len() < self.cap {
            self.records.push(record);
            return true;
        }
        match self
            .records
            .iter_mut()
            .find(|r| r.stamp != Placed::stamp(view, r.server))
        {
            Some(void) => {
                *void = record;
                true
            }
            None => false,
        }
    }

    /// The connections placed on `server` (net of those taken away) since
    /// its row in `view` was written; 0 once that row has changed.
    pub fn delta(&self, view: &FarmView, server: Ipv4Address) -> i32 {
        self.records
            .iter()
            .find(|r| r.server == server)
            .filter(|r| r.stamp == Placed::stamp(view, server))
            .map_or(0, |r| r.delta)
    }

    /// `server`'s advertised connection count corrected by [`Placed::delta`],
    /// never below zero.
    pub fn established(&self, view: &FarmView, server: Ipv4Address, advertised: u32) -> u32 {
        let d = self.delta(view, server);
        if d >= 0 {
            advertised.saturating_add(d as u32)
        } else {
            advertised.saturating_sub(d.unsigned_abs())
        }
    }

    /// Records kept (live or void).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advert::AdvertRepr;
    use crate::config::PolicyConfig;
    use crate::view::apply_advert;

    const A: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const B: Ipv4Address = Ipv4Address::new(198, 18, 0, 2);
    const C: Ipv4Address = Ipv4Address::new(198, 18, 0, 3);

    fn view(adverts: &[(Ipv4Address, u32, u64)]) -> FarmView {
        adverts.iter().fold(
            FarmView::new(&PolicyConfig::default()),
            |v, &(ip, seq, t)| apply_advert(&v, &AdvertRepr::new(ip, seq), t),
        )
    }

    #[test]
    fn counts_until_the_next_advert() {
        let v1 = view(&[(A, 1, 100), (B, 1, 100)]);
        let mut p = Placed::default();
        assert!(p.add(&v1, B, 1));
        assert!(p.add(&v1, B, 1));
        assert!(p.add(&v1, A, -1));
        assert_eq!(p.delta(&v1, B), 2);
        assert_eq!(p.established(&v1, B, 5), 7);
        // Never below zero.
        assert_eq!(p.established(&v1, A, 0), 0);
        // B advertises again: its count now includes ours.
        let v2 = apply_advert(&v1, &AdvertRepr::new(B, 2), 600);
        assert_eq!(p.delta(&v2, B), 0);
        assert_eq!(p.delta(&v2, A), -1, "A's row did not change");
        assert!(p.add(&v2, B, 1));
        assert_eq!(p.delta(&v2, B), 1, "a void record starts again from 0");
    }

    #[test]
    fn a_server_without_a_row_is_counted_too() {
        let v = view(&[]);
        let mut p = Placed::default();
        assert!(p.add(&v, A, 1));
        assert_eq!(p.delta(&v, A), 1);
        // Its first advert voids the record.
        let v = apply_advert(&v, &AdvertRepr::new(A, 1), 10);
        assert_eq!(p.delta(&v, A), 0);
    }

    #[test]
    fn bounded_reusing_void_records() {
        let v1 = view(&[(A, 1, 100), (B, 1, 100), (C, 1, 100)]);
        let mut p = Placed::with_capacity(2);
        assert!(p.add(&v1, A, 1));
        assert!(p.add(&v1, B, 1));
        assert!(!p.add(&v1, C, 1), "full of live records");
        assert_eq!(p.delta(&v1, C), 0);
        assert_eq!(p.len(), 2);
        // A advertises: its record is void and C takes its place.
        let v2 = apply_advert(&v1, &AdvertRepr::new(A, 2), 600);
        assert!(p.add(&v2, C, 3));
        assert_eq!(p.delta(&v2, C), 3);
        assert_eq!(p.delta(&v2, B), 1);
        assert_eq!(p.delta(&v2, A), 0);
        assert_eq!(p.len(), 2);
    }
}
