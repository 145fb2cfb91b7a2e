//! ipos: a kernel-bypass, packet-level TCP endpoint migration engine.
//!
//! A node terminates client TCP connections in user space on a DPDK
//! poll-mode port, serves them, and (with the migration layer) moves TCP
//! endpoints between the nodes of a farm by shipping their control block in
//! ipOS frames. See `README.md` for the farm, the frames and the commands.
//!
//! Layers, from the wire up: [`port`] (DPDK and in-memory ports), the
//! `ipos-wire` crate (frame formats), the `ipos-tcp` crate (the TCP endpoint
//! and its 140-byte TCB), the `ipos-http` crate (the built-in service),
//! [`tables`] (FIG. 12 and the node's own), [`node`] (the poll loop, in rooms
//! along a packet's path), [`migration`] (the protocol and its roles),
//! [`config`] (the farm file), [`auth`] (the farm key and the frames'
//! authentication trailer), [`counters`].
#![deny(unsafe_code)]

pub mod auth;
pub mod config;
pub mod counters;
pub mod migration;
pub mod node;
pub mod observe;
pub mod port;
pub mod service;
pub mod tables;
pub mod timer_wheel;
pub mod upstream;
