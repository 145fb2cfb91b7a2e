//! The five read-mostly tables of FIG. 12 as plain value types.
//!
//! Each table is an ordinary owned map with `get`/`insert`/`remove`; none of
//! them synchronises anything. They become shared, lock-free state only when
//! bundled into an immutable [`FarmView`](crate::FarmView) snapshot and
//! published through a [`SharedFarmView`](crate::SharedFarmView).
//!
//! Iteration order is deterministic (sorted by key) wherever the policy
//! iterates, so the same snapshot and request always give the same choice.
//!
//! One deliberate change from FIG. 12: the application information table is
//! keyed by *(server IP, process ID)*, not by process ID alone, because a
//! process ID is only unique on its own host; two servers advertising pid 42
//! would otherwise overwrite each other's entries.

mod app_info;
mod cookie_map;
mod listening;
mod server_state;
mod url_map;

pub use app_info::{AppInfo, AppInfoTable};
pub use cookie_map::CookieMap;
pub use listening::ListeningTable;
pub use server_state::{ServerState, ServerStateTable};
pub use url_map::UrlMap;
