//! Every table a node keeps on its data path, each with its limit and a
//! counter of the inserts it refused when full.
//!
//! | table | key | value | file |
//! |---|---|---|---|
//! | connections (FIG. 12 local / forward-connect / temporary) | client IP, port, endpoint IP, port ([`Flow`](ipos_wire::Flow)) | the endpoint and its phase | [`connections`] |
//! | forward (FIG. 12) | client IP, port | owner's IP, port, MAC | [`forward`] |
//! | pending incoming moves | [`Flow`](ipos_wire::Flow) | the TCB and the carried bytes so far | [`bounded`] (in the node) |
//! | UDP flows | client IP, port | the flow's role | [`bounded`] (in the node) |
//! | ARP cache, resolutions and replies waiting for a MAC | IPv4 address | MAC, when heard | [`arp`] |
//!
//! They are owned by one poll loop each: plain `hashbrown` maps that no other
//! thread touches, so lookups take no lock. The read-mostly tables (server
//! state, listening sockets, application information, URL map, cookie map)
//! are snapshots in the `ipos-policy` crate.

pub mod arp;
pub mod bounded;
pub mod connections;
pub mod forward;

pub use arp::{ArpCache, RetryCheck};
pub use bounded::{BoundedMap, TableFull};
pub use connections::ConnectionTable;
pub use forward::{ForwardEntry, ForwardKey, ForwardTable, IdleCheck};
