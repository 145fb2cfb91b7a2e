//! TCP keep-alive (RFC 9293 section 3.8.4): probes of an idle connection, the
//! abort after unanswered ones, and nothing at all when it is off (the default).

use ipos_tcp::sim::{LinkConfig, Sim};
use ipos_tcp::{Config, Duration, Keepalive, State};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn established(server: &Config) -> Sim {
    let mut sim = Sim::new(&Config::default(), server, LinkConfig::default(), 21);
    assert!(
        sim.run_until(secs(1), |s| s.server.state() == State::Established
            && s.client.state() == State::Established)
    );
    sim
}

fn probing() -> Config {
    Config {
        keepalive: Some(Keepalive {
            idle: secs(10),
            interval: secs(1),
            probes: 3,
        }),
        ..Config::default()
    }
}

#[test]
fn an_idle_connection_is_probed_and_the_answers_keep_it() {
    let mut sim = established(&probing());
    sim.run_for(secs(35));
    let c = sim.server.counters();
    // One probe per idle period (10, 20 and 30 s), each answered at once.
    assert_eq!(c.keepalive_probes, 3, "{c:?}");
    assert_eq!(c.keepalive_timeouts, 0);
    assert_eq!(sim.server.state(), State::Established);
    assert_eq!(sim.client.state(), State::Established);
    assert_eq!(sim.client.counters().rst_in, 0);
}

#[test]
fn a_peer_that_never_answers_is_given_up_after_its_probes() {
    let mut sim = established(&probing());
    // The client's answers are lost from now on.
    sim.filter = Some(Box::new(|_, to_server, _| !to_server));
    sim.run_for(secs(9));
    assert_eq!(sim.server.state(), State::Established);
    sim.run_for(secs(5));
    let c = sim.server.counters();
    // Probes at 10, 11 and 12 s; given up at 13 s with a RST.
    assert_eq!(c.keepalive_probes, 3, "{c:?}");
    assert_eq!(c.keepalive_timeouts, 1, "{c:?}");
    assert_eq!(c.rst_out, 1, "{c:?}");
    assert_eq!(sim.server.state(), State::Closed);
}

#[test]
fn data_in_flight_is_left_to_the_retransmission_timer() {
    let mut sim = established(&probing());
    sim.filter = Some(Box::new(|_, to_server, _| !to_server));
    assert_eq!(sim.server.send_slice(&[7u8; 1000]), 1000);
    sim.run_for(secs(20));
    let c = sim.server.counters();
    assert_eq!(c.keepalive_probes, 0, "{c:?}");
    assert!(c.rto_timeouts > 0, "{c:?}");
}

#[test]
fn off_by_default_an_idle_connection_sends_nothing() {
    let mut sim = established(&Config::default());
    let before = sim.server.counters().segs_out;
    sim.run_for(Duration::from_secs(3 * 3600));
    let c = sim.server.counters();
    assert_eq!(c.segs_out, before, "{c:?}");
    assert_eq!(c.keepalive_probes, 0);
    assert_eq!(sim.server.state(), State::Established);
}
