//! An in-process application ([`ipos::service`]) on the in-memory farm: a
//! line service on port 80 at every node, served where the connection was
//! accepted (it has no request head to be placed by), through the same
//! glue as the built-in services.

mod support;

use ipos::counters::Event;
use ipos::service::{Application, InProcess, ServiceFactory};
use ipos_wire::Flow;
use smoltcp::time::Duration;
use std::sync::Arc;
use support::*;

/// Answers each line with its length and the line reversed; closes on "bye".
#[derive(Default)]
struct Rev {
    out: Vec<u8>,
    close: bool,
}

impl Application for Rev {
    fn on_recv(&mut self, _: &mut (), data: &[u8]) -> usize {
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            return 0; // a partial line stays in the receive buffer
        };
        let line = &data[..nl];
        if line == b"bye" {
            self.close = true;
        }
        let mut r: Vec<u8> = line.iter().rev().copied().collect();
        self.out.extend(format!("{} ", line.len()).bytes());
        self.out.append(&mut r);
        self.out.push(b'\n');
        nl + 1
    }
    fn poll_send(&mut self, _: &mut (), out: &mut [u8]) -> usize {
        let n = out.len().min(self.out.len());
        out[..n].copy_from_slice(&self.out[..n]);
        self.out.drain(..n);
        n
    }
    fn has_pending_output(&self) -> bool {
        !self.out.is_empty()
    }
    fn on_peer_fin(&mut self, _: &mut ()) {
        self.close = true;
    }
    fn wants_close(&self) -> bool {
        self.close
    }
}

struct RevService;

impl ServiceFactory for RevService {
    fn name(&self) -> &str {
        "rev"
    }
    fn open(&self, _: &Flow) -> Box<dyn Application + Send> {
        Box::<Rev>::default()
    }
}

#[test]
fn an_in_process_application_serves_a_line_protocol_where_it_was_accepted() {
    let mut f = Farm::with_options(1, |_| {
        let mut o = options();
        o.services.push(InProcess {
            port: 80,
            factory: Arc::new(RevService),
        });
        o
    });
    f.warm_up();
    // Not HTTP, and a line split over two sends: the front must neither wait
    // for a request head nor move it.
    let id = f.client.connect(f.now, 41000);
    f.client.send(id, b"hello\nwor");
    f.run_for(Duration::from_millis(50));
    f.client.send(id, b"ld\nbye\n");
    let ok = f.run_until(Duration::from_secs(5), |f| {
        f.client.conns[id].ep.peer_fin_received()
    });
    assert!(ok, "no FIN: {}", f.summary());
    assert_eq!(
        String::from_utf8_lossy(&f.client.conns[id].received),
        "5 olleh\n5 dlrow\n3 eyb\n"
    );
    assert!(!f.client.conns[id].rst_seen());
    assert_eq!(f.client.conns[id].mac_runs(), vec![MACS[A]], "served by a");
    assert_eq!(f.ev(A, Event::MigrationsStarted), 0);
    assert_eq!(f.ev(A, Event::HttpResponses), 0);
    assert_eq!(f.ev(A, Event::HttpHeadTimeouts), 0);
}
