//! State transitions driven through the simulated link.

use ipos_tcp::sim::{LinkConfig, Sim};
use ipos_tcp::{Config, Duration, State};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn established() -> Sim {
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 1);
    assert!(
        sim.run_until(ms(100), |s| s.client.state() == State::Established
            && s.server.state() == State::Established)
    );
    sim
}

#[test]
fn handshake() {
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 7);
    assert_eq!(sim.client.state(), State::SynSent);
    assert_eq!(sim.server.state(), State::SynReceived);
    let t0 = sim.now;
    assert!(sim.run_until(ms(100), |s| s.client.state() == State::Established));
    // SYN-ACK takes one link delay.
    assert_eq!(sim.now - t0, ms(5));
    assert!(sim.run_until(ms(100), |s| s.server.state() == State::Established));
    assert_eq!(sim.now - t0, ms(10));
    // Nothing else pending but no timers needed after the handshake.
    sim.run_for(ms(50));
    assert_eq!(sim.client.poll_timeout(), None);
    assert_eq!(sim.server.poll_timeout(), None);
}

#[test]
fn data_both_ways_and_delayed_ack() {
    let mut sim = established();
    assert_eq!(sim.client.send_slice(b"GET / HTTP/1.1\r\n\r\n"), 18);
    assert!(sim.run_until(ms(100), |s| s.server.recv_available() == 18));
    assert_eq!(sim.server.recv_slice(), b"GET / HTTP/1.1\r\n\r\n");
    sim.server.recv_consume(18);
    // The server delays its ACK: a timer is pending about 40 ms out.
    let t = sim.server.poll_timeout().expect("delayed ack timer");
    assert_eq!(t - sim.now, ms(40));
    assert_eq!(sim.server.send_slice(b"HTTP/1.1 200 OK\r\n\r\nhello"), 24);
    assert!(sim.run_until(ms(100), |s| s.client.recv_available() == 24));
    assert_eq!(sim.client.recv_slice(), b"HTTP/1.1 200 OK\r\n\r\nhello");
    // The response piggy-backed the ACK: the server's delayed-ACK timer is gone.
    assert_eq!(sim.server.counters().segs_out, 2); // SYN-ACK + response
}

#[test]
fn server_closes_first() {
    let mut sim = established();
    sim.server.send_slice(b"bye");
    sim.server.close();
    assert_eq!(sim.server.state(), State::FinWait1);
    assert!(sim.run_until(ms(100), |s| s.client.peer_fin_received()));
    assert_eq!(sim.client.state(), State::CloseWait);
    assert_eq!(sim.client.recv_slice(), b"bye");
    assert!(sim.run_until(ms(100), |s| s.server.state() == State::FinWait2));
    sim.client.close();
    assert_eq!(sim.client.state(), State::LastAck);
    assert!(sim.run_until(ms(100), |s| s.server.state() == State::TimeWait));
    assert!(sim.run_until(ms(100), |s| s.client.is_closed()));
    // TIME-WAIT lasts 2 s.
    let tw_start = sim.now;
    assert!(!sim.server.is_closed());
    assert!(sim.run_until(ms(5000), |s| s.server.is_closed()));
    let waited = sim.now - tw_start;
    assert!(waited >= ms(1990) && waited <= ms(2010), "{waited}");
}

#[test]
fn client_closes_first() {
    let mut sim = established();
    sim.client.close();
    assert!(sim.run_until(ms(100), |s| s.server.state() == State::CloseWait));
    assert!(sim.server.peer_fin_received());
    // Server can still send in CLOSE-WAIT.
    sim.server.send_slice(b"late data");
    assert!(sim.run_until(ms(100), |s| s.client.recv_available() == 9));
    sim.server.close();
    assert!(sim.run_until(ms(100), |s| s.client.state() == State::TimeWait));
    assert!(sim.run_until(ms(100), |s| s.server.is_closed()));
    assert!(sim.run_until(ms(3000), |s| s.client.is_closed()));
}

#[test]
fn simultaneous_close() {
    let mut sim = established();
    sim.client.close();
    sim.server.close();
    let mut seen = Vec::new();
    assert!(sim.run_until(ms(100), |s| {
        seen.push((s.client.state(), s.server.state()));
        s.client.state() == State::TimeWait && s.server.state() == State::TimeWait
    }));
    // Both passed through CLOSING (the FINs crossed).
    assert!(seen.contains(&(State::Closing, State::Closing)), "{seen:?}");
    assert!(sim.run_until(ms(3000), |s| s.client.is_closed() && s.server.is_closed()));
}

#[test]
fn abort_sends_rst() {
    let mut sim = established();
    sim.client.abort();
    assert_eq!(sim.client.state(), State::Closed);
    assert!(!sim.client.is_closed()); // RST still to send
    assert!(sim.run_until(ms(100), |s| s.server.state() == State::Closed));
    assert!(sim.client.is_closed() && sim.server.is_closed());
    assert_eq!(sim.server.counters().rst_in, 1);
    assert_eq!(sim.client.counters().rst_out, 1);
}

#[test]
fn time_wait_reacks_retransmitted_fin() {
    let mut sim = established();
    sim.client.close();
    assert!(sim.run_until(ms(100), |s| s.server.state() == State::CloseWait));
    sim.server.close();
    // Drop the client's final ACK once: the server retransmits its FIN after RTO.
    let mut dropped = false;
    sim.filter = Some(Box::new(move |_, to_server, _| {
        if to_server && !dropped {
            dropped = true;
            return false;
        }
        true
    }));
    assert!(sim.run_until(ms(100), |s| s.client.state() == State::TimeWait));
    assert!(sim.run_until(ms(3000), |s| s.server.is_closed()));
    assert!(sim.server.counters().rto_timeouts >= 1);
    assert!(sim.client.counters().dup_segments >= 1);
}
