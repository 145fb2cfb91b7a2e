//! The per-frame cost of farm authentication: sealing a frame (trailer and
//! AES-256-GCM tag) and opening it (replay check, tag check, and in
//! the encrypt mode decryption), for an acknowledgement-sized frame and a
//! full data frame.
//!
//! `cargo bench --bench auth`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ipos::auth::{AuthConfig, FarmAuth, FarmKey, Mode};
use ipos_wire::trailer::TRAILER_LEN;
use smoltcp::wire::EthernetAddress;
use std::hint::black_box;

const A: EthernetAddress = EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0b]);
const B: EthernetAddress = EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0c]);

fn frame(len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len + TRAILER_LEN).map(|i| i as u8).collect();
    f[0..6].copy_from_slice(B.as_bytes());
    f[6..12].copy_from_slice(A.as_bytes());
    f[12..14].copy_from_slice(&[0, 7]);
    f
}

fn bench_auth(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    g.throughput(Throughput::Elements(1));
    for (mode, name) in [(Mode::Authenticated, "auth"), (Mode::Encrypted, "encrypt")] {
        let cfg = AuthConfig {
            key: FarmKey::from_bytes([0x5a; 32]),
            mode,
        };
        // 30 bytes: an acknowledgement; 1500: a data frame filling a 1500-byte MTU.
        for len in [30usize, 1500 - TRAILER_LEN + 14] {
            let mut sender = FarmAuth::new(&cfg, A, [A, B], 1);
            let mut receiver = FarmAuth::new(&cfg, B, [A, B], 2);
            let total = len + TRAILER_LEN;
            let mut f = frame(len);
            g.bench_function(format!("seal_{name}_{total}B"), |b| {
                b.iter(|| black_box(sender.seal(black_box(&mut f))))
            });
            // Open fresh frames in order (each is sealed outside the timed part).
            g.bench_function(format!("open_{name}_{total}B"), |b| {
                b.iter_batched(
                    || {
                        let mut f = frame(len);
                        assert!(sender.seal(&mut f));
                        f
                    },
                    |mut f| assert!(receiver.open(0, black_box(&mut f)).is_ok()),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_auth
}
criterion_main!(benches);
