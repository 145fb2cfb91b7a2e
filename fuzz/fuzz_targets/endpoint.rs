//! Segment sequences (any sequence and acknowledgement numbers near the
//! connection's, any flags, windows, SACK blocks and payloads) fed to an
//! established endpoint, and to one imported from its TCB, with the
//! application writing, reading, closing and time passing. No panic; the
//! endpoint sends only bytes the application wrote, acknowledged data never
//! exceeds sent data, delivered data matches `rcv_nxt`, the advertised
//! window never shrinks, and a moved endpoint behaves exactly like its
//! original. See `src/stream.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ipos_fuzz::stream::run_endpoint(data);
});
