//! Bulk transfers under seeded loss, reordering and duplication.

use ipos_tcp::sim::{LinkConfig, Sim};
use ipos_tcp::{Config, Duration, State};

/// Server sends `total` pattern bytes, then closes; the client checks every byte.
/// Returns the simulation for further assertions.
pub fn transfer(seed: u64, total: u64, link: LinkConfig, cfg: &Config) -> Sim {
    let mut sim = Sim::new(cfg, cfg, link, seed);
    let t0 = sim.now;
    let got = sim.stream_pattern(total, |_| {});
    assert_eq!(got, total, "seed {seed}: transfer stalled");
    eprintln!(
        "seed {seed}: {total} bytes in {} virtual; server {:?}; client {:?}",
        sim.now - t0,
        sim.server.counters(),
        sim.client.counters()
    );
    assert_eq!(sim.client.state(), State::CloseWait);
    sim
}

#[test]
fn clean_link_5mb() {
    let cfg = Config::default();
    let t0;
    let sim = {
        let s = Sim::new(&cfg, &cfg, LinkConfig::default(), 99);
        t0 = s.now;
        drop(s);
        transfer(99, 5 << 20, LinkConfig::default(), &cfg)
    };
    let c = sim.server.counters();
    assert_eq!(c.retransmits, 0);
    assert_eq!(c.rto_timeouts, 0);
    assert_eq!(c.bytes_out, 5 << 20);
    // 256 KiB window, 10 ms RTT: bounded by ~25 MB/s, so well under 2 s of virtual time.
    assert!(sim.now - t0 < Duration::from_secs(2), "{}", sim.now - t0);
}

#[test]
fn lossy_link_5mb_several_seeds() {
    let cfg = Config::default();
    for seed in [1u64, 2, 3, 4] {
        let link = LinkConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(3),
            loss_permille: 50,
            dup_permille: 20,
            seg_buf: 1480,
        };
        let sim = transfer(seed, 5 << 20, link, &cfg);
        let c = sim.server.counters();
        assert!(
            c.retransmits > 0,
            "seed {seed}: loss must cause retransmits"
        );
        assert!(c.fast_retransmits > 0, "seed {seed}: {c:?}");
        let cc = sim.client.counters();
        assert!(cc.ooo_segments > 0 && cc.dup_segments > 0, "{cc:?}");
    }
}

#[test]
fn no_timestamps_no_wscale_lossy() {
    let cfg = Config {
        timestamps: false,
        window_scale: 0,
        rcv_buf: 64 * 1024,
        ..Config::default()
    };
    let link = LinkConfig {
        jitter: Duration::from_millis(2),
        loss_permille: 30,
        dup_permille: 10,
        ..LinkConfig::default()
    };
    let sim = transfer(11, 1 << 20, link, &cfg);
    assert!(sim.server.counters().retransmits > 0);
}

#[test]
fn small_buffers_and_segments() {
    // Tiny buffers exercise ring wrap-around and window edges; small seg_buf limits MSS.
    let cfg = Config {
        rcv_buf: 3000,
        snd_buf: 5000,
        ..Config::default()
    };
    let link = LinkConfig {
        jitter: Duration::from_millis(4),
        loss_permille: 50,
        dup_permille: 50,
        seg_buf: 600,
        ..LinkConfig::default()
    };
    transfer(5, 300_000, link, &cfg);
}
