//! The tables of FIG. 12 that live on a node's data path.
//!
//! Hot tables (local connections; later forward, forward-connect and
//! temporary) are owned by one poll loop each: plain `hashbrown` maps that no
//! other thread touches, so lookups take no lock. Each has a size limit and
//! counts the inserts it refused.

pub mod local;

pub use local::{ConnKey, LocalTable, TableFull};
