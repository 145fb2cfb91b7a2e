//! Harnesses shared by the fuzz targets and by the seed writer
//! (`examples/write_seeds.rs`).
//!
//! Every structured target decodes its input with [`input::Reader`] into a
//! sequence of operations; the seed writer encodes the same operations with
//! [`input::Writer`], so a seed is a meaningful scenario, not random bytes.
//!
//! | module | used by | what it is |
//! |---|---|---|
//! | [`input`] | all | byte reader (never fails: past the end it reads zeros) and writer |
//! | [`frames`] | `node` | frame templates of every kind, mutations, checksum repair |
//! | [`farm`] | `node` | two whole nodes and a client host on a `MemSwitch`, driven by operations, with invariants |
//! | [`stream`] | `reassembly`, `endpoint` | an established server endpoint and a scripted peer, with byte-stream models |
//! | [`seeds`] | the seed writer | one small, meaningful input per scenario for every target |

pub mod farm;
pub mod frames;
pub mod input;
pub mod seeds;
pub mod stream;
