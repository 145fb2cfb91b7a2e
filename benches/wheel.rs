//! Cost of the timer wheel (`ipos::timer_wheel`), no I/O (criterion).
//!
//! ```sh
//! cargo bench --bench wheel -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Items are `(u32, u32)` (a table slot and a generation, as the node's
//! tables would store), ticks are 1 ms, deadlines are pseudo-random with a
//! fixed seed.
//!
//! | benchmark | what one iteration does |
//! |---|---|
//! | `wheel/insert_expire_1M_5min_step_1ms` | inserts 1,000,000 timers spread uniformly over the next 5 minutes, then advances the clock 1 ms at a time (300,000 `expire` calls) until all have fired; the throughput line is timers per second, divide the time by 1,000,000 for ns per timer |
//! | `wheel/insert_1M_5min` | only the 1,000,000 inserts of the above (the drain that follows is not timed) |
//! | `wheel/insert_expire_1M_5min_one_jump` | the same 1,000,000 timers, then one `expire` 5 minutes later that hands them all out (cascades included) |
//! | `wheel/steady_1M_300s_step_1ms` | a wheel holding 1,000,000 timers (1 M connections with 300 s idle timers, in steady state after one full 300 s turn): the clock advances 1 ms, `expire` hands out what is due (3.3 on average) and each is re-armed 300 s later; the time is per `expire` call, re-arming included |
//!
//! The same wheel is reused from one iteration to the next (its clock keeps
//! going), so after the first iteration nothing is allocated.

use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ipos::timer_wheel::TimerWheel;
use smoltcp::time::{Duration, Instant};

const TIMERS: usize = 1_000_000;
/// 5 minutes in ms.
const SPREAD_MS: u64 = 300_000;
const TICK: Duration = Duration::from_millis(1);

type Key = (u32, u32);

/// splitmix64: a fixed, cheap stream of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Deadline offsets in µs, uniform over (0, 5 min].
fn offsets(n: usize) -> Vec<u64> {
    let mut rng = Rng(0x1905_2024);
    (0..n)
        .map(|_| 1 + rng.next() % (SPREAD_MS * 1_000))
        .collect()
}

fn bench_insert_expire(c: &mut Criterion) {
    let offs = offsets(TIMERS);
    let mut g = c.benchmark_group("wheel");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Elements(TIMERS as u64));

    let mut now = Instant::from_secs(1_000);
    let mut wheel = TimerWheel::<Key>::new(now, TICK);
    let mut out = Vec::with_capacity(4_096);
    g.bench_function("insert_expire_1M_5min_step_1ms", |b| {
        b.iter(|| {
            for (i, &off) in offs.iter().enumerate() {
                wheel.insert(now + Duration::from_micros(off), (i as u32, 1));
            }
            let mut fired = 0;
            for _ in 0..=SPREAD_MS {
                now += TICK;
                out.clear();
                fired += wheel.expire(now, usize::MAX, &mut out);
                black_box(&out);
            }
            assert_eq!(fired, TIMERS);
            fired
        })
    });

    g.bench_function("insert_1M_5min", |b| {
        b.iter_custom(|iters| {
            // Only the inserts are timed; the drain that empties the wheel
            // for the next iteration is not.
            let mut t = std::time::Duration::ZERO;
            for _ in 0..iters {
                let start = std::time::Instant::now();
                for (i, &off) in offs.iter().enumerate() {
                    wheel.insert(now + Duration::from_micros(off), (i as u32, 1));
                }
                t += start.elapsed();
                now += Duration::from_millis(SPREAD_MS + 1);
                out.clear();
                assert_eq!(wheel.expire(now, usize::MAX, &mut out), TIMERS);
            }
            t
        })
    });
    g.bench_function("insert_expire_1M_5min_one_jump", |b| {
        b.iter(|| {
            for (i, &off) in offs.iter().enumerate() {
                wheel.insert(now + Duration::from_micros(off), (i as u32, 1));
            }
            now += Duration::from_millis(SPREAD_MS + 1);
            out.clear();
            let fired = wheel.expire(now, usize::MAX, &mut out);
            assert_eq!(fired, TIMERS);
            black_box(&out);
            fired
        })
    });
    g.finish();
}

fn bench_steady(c: &mut Criterion) {
    let idle = Duration::from_millis(SPREAD_MS);
    let start = Instant::from_secs(1_000);
    let mut wheel = TimerWheel::<Key>::new(start, TICK);
    for (i, off) in offsets(TIMERS).into_iter().enumerate() {
        wheel.insert(start + Duration::from_micros(off), (i as u32, 0));
    }
    let mut now = start;
    let mut out: Vec<Key> = Vec::with_capacity(1_024);
    let step = |wheel: &mut TimerWheel<Key>, now: &mut Instant, out: &mut Vec<Key>| {
        *now += TICK;
        out.clear();
        let n = wheel.expire(*now, 1_024, out);
        for &(slot, generation) in out.iter() {
            wheel.insert(*now + idle, (slot, generation.wrapping_add(1)));
        }
        n
    };
    // One full turn, so that every timer has been re-armed once.
    for _ in 0..SPREAD_MS {
        step(&mut wheel, &mut now, &mut out);
    }
    assert_eq!(wheel.len(), TIMERS);

    let mut g = c.benchmark_group("wheel");
    g.throughput(Throughput::Elements(1));
    let (mut calls, mut fired) = (0u64, 0u64);
    g.bench_function("steady_1M_300s_step_1ms", |b| {
        b.iter(|| {
            let n = step(&mut wheel, &mut now, &mut out);
            calls += 1;
            fired += n as u64;
            n
        })
    });
    g.finish();
    assert_eq!(wheel.len(), TIMERS);
    println!(
        "steady_1M_300s_step_1ms: {calls} expire calls, {:.2} timers due per call on average",
        fired as f64 / calls.max(1) as f64
    );
}

fn config() -> Criterion {
    // Short by default (2-core machine); the command line overrides these.
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_insert_expire, bench_steady
}
criterion_main!(benches);
