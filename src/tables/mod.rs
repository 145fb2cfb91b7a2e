//! The tables of FIG. 12 that live on a node's data path.
//!
//! Hot tables (local / forward-connect / temporary connections, forward) are
//! owned by one poll loop each: plain `hashbrown` maps that no other thread
//! touches, so lookups take no lock. Each has a size limit and counts the
//! inserts it refused. The read-mostly tables (server state, listening
//! sockets, application information, URL map, cookie map) are snapshots in
//! the `ipos-policy` crate.

pub mod forward;
pub mod local;

pub use forward::{ForwardEntry, ForwardKey, ForwardTable};
pub use local::{ConnKey, LocalTable, TableFull};
