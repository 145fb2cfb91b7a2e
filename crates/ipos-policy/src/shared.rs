//! [`SharedFarmView`]: RCU-style publication of [`FarmView`] snapshots.
//!
//! # Concurrency promise
//!
//! * **Readers never wait.** [`SharedFarmView::load`] takes no lock and does
//!   not allocate: it records the current snapshot in a per-thread slot
//!   (arc-swap's "debt" list) and returns a [`ViewGuard`]. The first load on
//!   a thread registers that thread once; a thread holding more guards at
//!   once than it has slots (8 in arc-swap 1.x) gets a reference-count
//!   increment instead, still without locking or allocating.
//! * **Readers never block writers.** [`store`](SharedFarmView::store) and
//!   [`update`](SharedFarmView::update) swap the pointer atomically and
//!   return without waiting for readers to finish; a snapshot is freed when
//!   its last guard (or `Arc`) is dropped, by whichever thread drops it.
//! * **Snapshots are consistent.** A guard derefs to one immutable
//!   [`FarmView`]: every table a reader looks at through one guard belongs to
//!   the same publication, however many writers publish meanwhile.
//! * **Updates are not lost.** [`update`](SharedFarmView::update) is a
//!   compare-and-swap loop: if another writer published between reading the
//!   old view and installing the new one, the closure runs again on the newer
//!   view. Keep the closure free of side effects. [`store`] replaces the view
//!   unconditionally.
//!
//! Guards are meant to be short-lived (one packet, one decision); a reader
//! that holds one for long keeps that snapshot alive, nothing more.
//!
//! ```
//! use ipos_policy::{AdvertRepr, FarmView, Ipv4Address, SharedFarmView};
//!
//! let shared = SharedFarmView::new(FarmView::default());
//! // The poll loop received a state advertisement:
//! let advert = AdvertRepr::new(Ipv4Address::new(198, 18, 0, 2), 1);
//! shared.try_update(|view| view.try_apply_advert(&advert, 1_000));
//! // Data path:
//! let view = shared.load();
//! assert!(view.servers().get(Ipv4Address::new(198, 18, 0, 2)).is_some());
//! ```
//!
//! [`store`]: SharedFarmView::store

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::view::FarmView;

/// The published, atomically replaceable [`FarmView`] (see the module docs
/// for the concurrency promise). Share it between threads with an `Arc` or a
/// `&'static`.
pub struct SharedFarmView {
    inner: ArcSwap<FarmView>,
}

/// A reader's handle on one snapshot; derefs to [`FarmView`].
pub struct ViewGuard(Guard<Arc<FarmView>>);

impl Deref for ViewGuard {
    type Target = FarmView;

    fn deref(&self) -> &FarmView {
        &self.0
    }
}

impl ViewGuard {
    /// Turn the guard into an owned `Arc` (for a snapshot kept long).
    pub fn into_arc(self) -> Arc<FarmView> {
        Guard::into_inner(self.0)
    }
}

impl fmt::Debug for ViewGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ViewGuard").field(&**self).finish()
    }
}

impl fmt::Debug for SharedFarmView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedFarmView")
            .field(&*self.inner.load())
            .finish()
    }
}

impl Default for SharedFarmView {
    fn default() -> Self {
        SharedFarmView::new(FarmView::default())
    }
}

impl SharedFarmView {
    /// Publish `view` as the first snapshot.
    pub fn new(view: FarmView) -> Self {
        SharedFarmView {
            inner: ArcSwap::from_pointee(view),
        }
    }

    /// The current snapshot: no lock, no allocation (see the module docs).
    pub fn load(&self) -> ViewGuard {
        ViewGuard(self.inner.load())
    }

    /// The current snapshot as an owned `Arc` (one reference-count
    /// increment).
    pub fn load_full(&self) -> Arc<FarmView> {
        self.inner.load_full()
    }

    /// Publish `view`, replacing whatever is current.
    pub fn store(&self, view: FarmView) {
        self.inner.store(Arc::new(view));
    }

    /// Publish `f(current)`; retried on the newer view if another writer
    /// published meanwhile. Returns the snapshot this call published.
    pub fn update(&self, mut f: impl FnMut(&FarmView) -> FarmView) -> Arc<FarmView> {
        let mut current = self.inner.load_full();
        loop {
            match self.publish_over(&current, f(&current)) {
                Ok(new) => return new,
                Err(newer) => current = newer,
            }
        }
    }

    /// Like [`update`](Self::update), but `f` may decline by returning
    /// `None` (e.g. a duplicate advertisement), in which case nothing is
    /// published and `None` is returned.
    pub fn try_update(
        &self,
        mut f: impl FnMut(&FarmView) -> Option<FarmView>,
    ) -> Option<Arc<FarmView>> {
        let mut current = self.inner.load_full();
        loop {
            match self.publish_over(&current, f(&current)?) {
                Ok(new) => return Some(new),
                Err(newer) => current = newer,
            }
        }
    }

    /// Install `new` if `current` is still the published snapshot
    /// (`Ok(new)`); otherwise leave everything as is and return the snapshot
    /// that replaced `current` (`Err`).
    fn publish_over(
        &self,
        current: &Arc<FarmView>,
        new: FarmView,
    ) -> Result<Arc<FarmView>, Arc<FarmView>> {
        let new = Arc::new(new);
        let previous = self.inner.compare_and_swap(current, Arc::clone(&new));
        if Arc::ptr_eq(&previous, current) {
            Ok(new)
        } else {
            Err(Guard::into_inner(previous))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{AppInfo, ServerState};
    use crate::Ipv4Address;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    const A: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);

    /// A view in which every table encodes generation `g`.
    fn generation(g: u32) -> FarmView {
        let mut v = FarmView::default();
        v.servers_mut().insert(
            A,
            ServerState {
                established: g,
                last_update_ms: u64::from(g),
                ..ServerState::default()
            },
        );
        v.listening_mut().insert(A, 80, g);
        v.apps_mut().insert(
            A,
            g,
            AppInfo {
                mem_required_mib: g,
                cpu_permille: (g % 1000) as u16,
            },
        );
        v.url_map_mut()
            .insert(&format!("/{g}"), Ipv4Address::from(g));
        v.cookie_map_mut().insert("gen", Ipv4Address::from(g));
        v
    }

    /// Checks that `v` is one whole generation; returns it.
    fn check_consistent(v: &FarmView) -> u32 {
        let g = v.servers().get(A).unwrap().established;
        assert_eq!(v.servers().len(), 1);
        assert_eq!(v.listening().get(A, 80), Some(g));
        assert_eq!(v.apps().len(), 1);
        let app = v.apps().get(A, g).unwrap();
        assert_eq!(app.mem_required_mib, g);
        assert_eq!(app.cpu_permille, (g % 1000) as u16);
        assert_eq!(v.url_map().len(), 1);
        assert_eq!(
            v.url_map().servers(&format!("/{g}")),
            &[Ipv4Address::from(g)]
        );
        assert_eq!(v.cookie_map().get("gen"), Some(Ipv4Address::from(g)));
        g
    }

    #[test]
    fn readers_see_whole_snapshots_in_order() {
        const GENERATIONS: u32 = 2_000;
        let shared = SharedFarmView::new(generation(0));
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut last = 0;
                        let mut loads = 0u64;
                        loop {
                            // Read the flag first: a load after it is set
                            // must see the final generation.
                            let finished = done.load(Ordering::Acquire);
                            let view = shared.load();
                            let g = check_consistent(&view);
                            assert!(g >= last, "went back from {last} to {g}");
                            last = g;
                            loads += 1;
                            if finished {
                                return (last, loads);
                            }
                        }
                    })
                })
                .collect();
            for g in 1..=GENERATIONS {
                if g % 2 == 0 {
                    shared.store(generation(g));
                } else {
                    shared.update(|old| {
                        assert_eq!(check_consistent(old), g - 1);
                        generation(g)
                    });
                }
            }
            done.store(true, Ordering::Release);
            for r in readers {
                let (last, loads) = r.join().unwrap();
                assert_eq!(last, GENERATIONS);
                assert!(loads >= 1);
            }
        });
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let shared = SharedFarmView::new(generation(0));
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        shared.update(|old| {
                            let mut v = old.clone();
                            let mut st = v.servers().get(A).unwrap().clone();
                            st.established += 1;
                            v.servers_mut().insert(A, st);
                            v
                        });
                    }
                });
            }
        });
        assert_eq!(shared.load().servers().get(A).unwrap().established, 2_000);
    }

    #[test]
    fn held_guard_does_not_block_writer_and_keeps_its_snapshot() {
        let shared = SharedFarmView::new(generation(1));
        let held = shared.load();
        let kept = shared.load_full();
        shared.store(generation(2));
        assert!(shared
            .try_update(|v| (check_consistent(v) == 2).then(|| generation(3)))
            .is_some());
        assert_eq!(check_consistent(&held), 1);
        assert_eq!(check_consistent(&kept), 1);
        assert_eq!(check_consistent(&shared.load()), 3);
        assert_eq!(check_consistent(&held.into_arc()), 1);
    }

    #[test]
    fn declined_update_publishes_nothing() {
        let shared = SharedFarmView::new(generation(7));
        let before = shared.load_full();
        assert!(shared.try_update(|_| None).is_none());
        assert!(Arc::ptr_eq(&before, &shared.load_full()));
    }
}
