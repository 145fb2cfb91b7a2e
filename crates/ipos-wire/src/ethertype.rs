//! The Ethernet type of ipOS frames.
//!
//! The seeds (FIG. 11A) use 0x0007. That value lies in the IEEE 802.3 *length*
//! range (below 0x0600), so generic stacks read such frames as 802.3; a DPDK
//! port and a tap device pass them through untouched. This crate does not
//! care: every parser and builder takes the ethertype as a parameter and
//! matches the type field exactly.

/// The ethertype of FIG. 11A, used unless the operator configures another.
pub const DEFAULT_ETHERTYPE: u16 = 0x0007;
