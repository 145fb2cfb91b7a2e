//! Congestion control: CUBIC (RFC 9438, the default) against NewReno on the same
//! seeded lossy links, a connection moved in the middle of loss recovery, and the
//! initial window (RFC 6928).

use std::cell::RefCell;
use std::rc::Rc;

use ipos_tcp::sim::{LinkConfig, Sim};
use ipos_tcp::{Config, Congestion, Duration, Endpoint, Segment, State};

/// The server sends `total` pattern bytes and closes; the client checks every byte.
/// Returns the virtual time the transfer took; `on_step` may touch the simulation.
fn transfer(
    seed: u64,
    total: u64,
    link: LinkConfig,
    cfg: &Config,
    on_step: impl FnMut(&mut Sim),
) -> Duration {
    let mut sim = Sim::new(cfg, cfg, link, seed);
    let t0 = sim.now;
    let got = sim.stream_pattern(total, on_step);
    assert_eq!(got, total, "seed {seed}: stalled");
    assert_eq!(sim.client.state(), State::CloseWait);
    sim.now - t0
}

fn lossy(delay_us: u64, loss_permille: u32) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_micros(delay_us),
        loss_permille,
        ..LinkConfig::default()
    }
}

/// 5% random loss each way on a 40 us round trip (the test farm's client link):
/// the same seeds with CUBIC and with NewReno. CUBIC keeps 0.7 of the window at
/// each loss instead of half, so it is done sooner in total.
#[test]
fn cubic_finishes_sooner_than_new_reno_on_the_same_seeds() {
    let (mut cubic, mut reno) = (Duration::ZERO, Duration::ZERO);
    for seed in 1..=4 {
        for (cc, sum) in [
            (Congestion::Cubic, &mut cubic),
            (Congestion::NewReno, &mut reno),
        ] {
            let cfg = Config {
                congestion: cc,
                ..Config::default()
            };
            let d = transfer(seed, 4 << 20, lossy(20, 50), &cfg, |_| {});
            eprintln!("seed {seed} {cc:?}: 4 MiB in {d}");
            *sum += d;
        }
    }
    eprintln!("total: CUBIC {cubic}, NewReno {reno}");
    assert!(cubic < reno, "CUBIC {cubic} vs NewReno {reno}");
}

/// With reordering and loss together (jitter of a few round trips), every byte
/// still arrives exactly once with either algorithm.
#[test]
fn both_algorithms_survive_reordering_and_loss() {
    for cc in [Congestion::Cubic, Congestion::NewReno] {
        let cfg = Config {
            congestion: cc,
            ..Config::default()
        };
        let link = LinkConfig {
            jitter: Duration::from_millis(3),
            ..lossy(1_000, 30)
        };
        for seed in 10..13 {
            transfer(seed, 1 << 20, link.clone(), &cfg, |_| {});
        }
    }
}

/// Moved while SACK recovery is under way: the importer continues with the
/// exporter's window and threshold (they travel in the TCB), restarts CUBIC's own
/// state from that window, and the transfer finishes byte-exact.
#[test]
fn a_connection_moved_in_recovery_keeps_its_window() {
    let cfg = Config::default();
    let moved = Rc::new(RefCell::new(None));
    let m = moved.clone();
    let import_cfg = cfg.clone();
    transfer(7, 4 << 20, lossy(1_000, 30), &cfg, move |s| {
        if m.borrow().is_some() || s.server.sack_ranges() == 0 {
            return;
        }
        let now = s.server_now();
        let tcb = s.server.export(now);
        let (a, b) = s.server.unacked_and_unsent();
        let snd = [a, b].concat();
        let (a, b) = s.server.unconsumed();
        let rcv = [a, b].concat();
        let new =
            Endpoint::import(&import_cfg, &tcb, s.server.flow(), &snd, &rcv, now).expect("import");
        let again = new.export(now);
        assert_eq!((again.cwnd, again.ssthresh), (tcb.cwnd, tcb.ssthresh));
        assert_eq!(new.congestion(), Congestion::Cubic);
        s.server = new;
        *m.borrow_mut() = Some((tcb.cwnd, tcb.ssthresh));
    });
    let (cwnd, ssthresh) = moved.borrow().expect("moved during recovery");
    assert!(
        ssthresh < u32::MAX,
        "a loss had set ssthresh ({cwnd}, {ssthresh})"
    );
}

/// RFC 6928: the first flight is ten segments (the configured N), sent before
/// the first ACK can come back.
#[test]
fn the_first_flight_is_the_initial_window() {
    for (iw, expect) in [(10u8, 10usize), (3, 3)] {
        let cfg = Config {
            initial_window: iw,
            ..Config::default()
        };
        let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 5);
        assert!(
            sim.run_until(Duration::from_millis(100), |s| s.server.state()
                == State::Established
                && s.client.state() == State::Established)
        );
        sim.run_for(Duration::from_millis(20));
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        sim.filter = Some(Box::new(move |_, to_server, data| {
            let s = Segment::parse(data).unwrap();
            l.borrow_mut().push((to_server, s.payload.len()));
            true
        }));
        let data = vec![1u8; 100_000];
        sim.server.send_slice(&data);
        sim.run_until(Duration::from_secs(5), |s| {
            s.client.recv_available() == data.len()
        });
        let log = log.borrow();
        let first_ack = log.iter().position(|&(to_server, _)| to_server).unwrap();
        let flight = log[..first_ack].iter().filter(|&&(_, n)| n > 0).count();
        assert_eq!(flight, expect, "initial_window {iw}");
    }
}
