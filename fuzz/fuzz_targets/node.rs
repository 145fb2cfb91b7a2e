//! Two whole nodes (a fronts the VIP, b is a target) and a client host on
//! the in-memory switch, driven by the input: client connections and
//! requests that migrate, UDP flows, injected frames of every kind (valid
//! templates, mutated, checksums repaired), mutated replays of frames that
//! crossed the switch, frames lost, duplicated or held in flight, and time.
//! No panic; every frame counted; tables within their limits; what the
//! client gets is well-formed, and complete when the input injected nothing.
//! See `src/farm.rs` for the input format and the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ipos_fuzz::farm::run(data);
});
