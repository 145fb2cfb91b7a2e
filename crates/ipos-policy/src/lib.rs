//! Read-mostly tables of FIG. 12, the server-state advertisement, and the
//! policy that picks which server of the farm should own a new connection.
//!
//! * [`tables`]: the five read-mostly tables (server state, listening
//!   sockets, application information, URL map, cookie map), each a plain
//!   value type.
//! * [`view`]: [`FarmView`], one immutable, internally consistent snapshot of
//!   all five tables plus the policy settings, and the pure functions that
//!   derive a new snapshot from an old one ([`apply_advert`],
//!   [`FarmView::prune`]).
//! * [`shared`]: [`SharedFarmView`], the RCU-style handle through which a
//!   writer publishes snapshots and the data path loads them without locks.
//! * [`advert`]: [`AdvertRepr`], the body of the server-state advertisement
//!   frame (an ipOS extension), parsed and emitted without allocation.
//! * [`config`]: [`PolicyConfig`] and the score [`Weights`].
//! * [`placed`]: [`Placed`], the connections a node placed on each server
//!   since that server's last advertisement, which the choice adds to the
//!   advertised counts.
//! * [`policy`]: [`choose`], cookie map, then URL map, then least-loaded
//!   server, else keep the connection local.
//!
//! Nothing in this crate reads a clock: every time is a millisecond count the
//! caller passes in (`now_ms`), so every behaviour is testable in memory.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod advert;
pub mod config;
pub mod placed;
pub mod policy;
pub mod shared;
pub mod tables;
pub mod view;

/// An IPv4 address: `core::net::Ipv4Addr`, which is exactly the type
/// `smoltcp::wire::Ipv4Address` (smoltcp 0.14 re-exports it), so values pass
/// between this crate and smoltcp-based crates without conversion.
pub type Ipv4Address = core::net::Ipv4Addr;

pub use advert::{AdvertError, AdvertRepr, AppEntry, ListenEntry, MAX_ENTRIES};
pub use config::{PolicyConfig, Weights};
pub use placed::Placed;
pub use policy::{choose, choose_placed, Decision, Reason, RequestInfo};
pub use shared::{SharedFarmView, ViewGuard};
pub use tables::{
    AppInfo, AppInfoTable, CookieMap, ListeningTable, ServerState, ServerStateTable, UrlMap,
};
pub use view::{apply_advert, shows_restart, FarmView};
