//! Out-of-order reassembly against a model of the byte stream: an
//! established endpoint fed pieces of a stream in any order (and a FIN),
//! with the application reading and time passing; or a move's carried-bytes
//! reassembly fed chunks. Nothing is delivered that was not sent in order,
//! every byte read is the one sent, nothing in order is held back (while the
//! endpoint can describe every out-of-order range), and a final in-order
//! resend delivers the whole stream. See `src/stream.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ipos_fuzz::stream::run_reassembly(data);
});
