//! An in-process service written against `ipos::service`: a line service
//! that answers every line with the line in capitals, served by a node on
//! port 7000 next to the built-in HTTP service on port 80.
//!
//! Runs without DPDK or root: the node sits on the in-memory switch
//! (`ipos::port::mem`) with a client host made of an `ipos_tcp::Endpoint`,
//! on a virtual clock.
//!
//! ```text
//! cargo run --release --example rust_service
//! ```

use ipos::config::{test_farm_toml, FarmConfig};
use ipos::node::Node;
use ipos::port::mem::MemSwitch;
use ipos::port::{PacketBuf, Port};
use ipos::service::{Application, InProcess, ServiceFactory};
use ipos_tcp::Endpoint;
use ipos_wire::Flow;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address, Ipv4Packet};
use std::path::Path;
use std::sync::Arc;

/// One connection of the line service.
struct Upper {
    /// Answers not yet sent.
    out: Vec<u8>,
    /// The client sent its FIN.
    done: bool,
}

impl Application for Upper {
    fn on_recv(&mut self, _: &mut (), data: &[u8]) -> usize {
        // Take whole lines only, and no more than 4 KiB of answers at a time:
        // the rest waits in the TCP receive buffer (its window closes).
        let mut used = 0;
        while self.out.len() < 4096 {
            let Some(nl) = data[used..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = &data[used..used + nl + 1];
            self.out.extend(line.iter().map(u8::to_ascii_uppercase));
            used += nl + 1;
        }
        used
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
        self.done = true;
    }

    fn wants_close(&self) -> bool {
        self.done
    }
}

struct UpperService;

impl ServiceFactory for UpperService {
    fn name(&self) -> &str {
        "upper"
    }
    fn open(&self, _flow: &Flow) -> Box<dyn Application + Send> {
        Box::new(Upper {
            out: Vec::new(),
            done: false,
        })
    }
}

const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);
const CLIENT_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);

fn main() {
    // A one-node farm whose service ports are the built-in HTTP (80) and ours.
    let toml = test_farm_toml(1).replace("service_ports = [80]", "service_ports = [80, 7000]");
    let farm = FarmConfig::parse(&toml, Path::new("example.toml")).expect("farm file");
    let id = farm.identity("a").expect("node a");
    let (node_mac, node_ip) = (id.mac, id.ip);
    let mut opts = farm.node_options();
    opts.services.push(InProcess {
        port: 7000,
        factory: Arc::new(UpperService),
    });
    let switch = MemSwitch::new(1);
    let mut node = Node::new(switch.port(node_mac), id, opts);
    let mut port = switch.port(CLIENT_MAC);

    // The client: one TCP endpoint to the node's port 7000 (its flow names the
    // peer, the node, as its source).
    let mut now = Instant::from_millis(1_000);
    let flow = Flow {
        src_addr: node_ip,
        src_port: 7000,
        dst_addr: CLIENT_IP,
        dst_port: 40000,
    };
    let mut ep = Endpoint::connect(&ipos_tcp::Config::default(), flow, 12345, now);
    let mut to_send: &[u8] = b"hello, farm\nlines come back in capitals\n";
    let mut received = Vec::new();
    let mut seg = vec![0u8; 1600];
    for _ in 0..2_000 {
        // Client -> node.
        let n = ep.send_slice(to_send);
        to_send = &to_send[n..];
        if to_send.is_empty() && received.len() >= 40 {
            ep.close();
        }
        while let Some(n) = ep.poll_transmit(now, &mut seg) {
            let mut b = port.alloc().expect("buffer");
            b.set_len(14 + 20 + n).expect("room");
            let d = b.data_mut();
            ipos_wire::emit_ethernet_header(d, node_mac, CLIENT_MAC, 0x0800).expect("room");
            let ip = ipos_wire::Ipv4Header {
                src: CLIENT_IP,
                dst: node_ip,
                protocol: IpProtocol::Tcp,
                payload_len: n,
                ident: 1,
            };
            ipos_wire::emit_ipv4_header(&mut d[14..], &ip).expect("room");
            d[34..34 + n].copy_from_slice(&seg[..n]);
            port.send(b);
        }
        port.flush();
        node.poll(now);
        // Node -> client.
        for f in port.take_all() {
            let d = f.data();
            if d.len() > 34 && d[12..14] == [0x08, 0x00] {
                if let Ok(ip) = Ipv4Packet::new_checked(&d[14..]) {
                    if ip.next_header() == IpProtocol::Tcp {
                        let _ = ep.on_segment(now, ip.payload());
                    }
                }
            }
        }
        let n = ep.recv_slice().len();
        received.extend_from_slice(ep.recv_slice());
        ep.recv_consume(n);
        if ep.state() == ipos_tcp::State::Closed || ep.state() == ipos_tcp::State::TimeWait {
            break;
        }
        now += Duration::from_millis(1);
    }
    print!("{}", String::from_utf8_lossy(&received));
    assert_eq!(received, b"HELLO, FARM\nLINES COME BACK IN CAPITALS\n");
    println!(
        "(served in process by node a on port 7000, then closed: {:?})",
        ep.state()
    );
}
