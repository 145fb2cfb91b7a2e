//! Upstreams: a service port whose connections a node hands to a local
//! process (nginx, a Python or Java application, a cache) instead of a
//! built-in service.
//!
//! Once a connection is served on a node (accepted there, or moved there by
//! the policy), the bytes the client sends are relayed to that node's
//! upstream over a kernel socket, and the upstream's bytes go back to the
//! client from that node's endpoint: the front never sees the response.
//! With `proxy_protocol`, the upstream first gets a PROXY protocol v2 header
//! ([`proxy`]) naming the client.
//!
//! The poll loop makes no syscall for this: the sockets live on a helper
//! thread per node ([`relay`]), which exchanges bytes with the poll loop over
//! two bounded single-producer single-consumer rings per connection
//! (`rtrb`) and commands and events over two bounded queues (`crossbeam`).
//! Backpressure holds both ways: a full ring towards the upstream leaves the
//! client's bytes in the endpoint's receive buffer (its window closes), and
//! the helper reads the upstream only while the ring towards the client has
//! room.
//!
//! What the client sees when the upstream fails ([`conn`]): an upstream that
//! refuses the connection, or closes it with an error before answering,
//! gives an HTTP service's client `502 Bad Gateway` (a raw TCP service's a
//! RST); one that fails after it started answering resets the client. An
//! upstream that half-closes is half-closed to the client once everything
//! it sent is delivered, and the client's FIN becomes the upstream's.
//!
//! A relayed connection stays where it is served: the upstream's state does
//! not travel, so such a connection is not moved again (a live move or a
//! drain leaves it in place until it ends).

pub mod conn;
pub mod monitor;
pub mod proxy;
pub mod relay;

pub use conn::{RelayConn, RelayStats};
pub use monitor::{Health, Monitor, PortHealth};
pub use relay::{Relay, RelayCounters, RING_BYTES};

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a node's upstream for one port listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// A TCP address (`198.18.1.11:8080`).
    Tcp(SocketAddr),
    /// A Unix stream socket (`unix:/run/app.sock`).
    Unix(PathBuf),
}

impl UpstreamAddr {
    /// Parses `HOST:PORT` (an IPv4 or IPv6 address and a port) or `unix:PATH`.
    pub fn parse(s: &str) -> Result<UpstreamAddr, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("unix: needs a path (unix:/run/app.sock)".into());
            }
            return Ok(UpstreamAddr::Unix(PathBuf::from(p)));
        }
        s.parse::<SocketAddr>()
            .map(UpstreamAddr::Tcp)
            .map_err(|_| format!("{s:?} is neither ADDRESS:PORT (198.18.1.11:8080) nor unix:PATH"))
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAddr::Tcp(a) => write!(f, "{a}"),
            UpstreamAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What a service port's bytes are, for the errors its clients get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// HTTP/1.x: an upstream that fails before answering gives a 502.
    Http,
    /// Any TCP protocol: an upstream that fails resets the client.
    Tcp,
}

/// One node's upstream for one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The service port.
    pub port: u16,
    /// Where this node's process listens.
    pub addr: UpstreamAddr,
    /// Send a PROXY protocol v2 header first.
    pub proxy_protocol: bool,
    pub kind: UpstreamKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for s in ["198.18.1.11:8080", "[::1]:80", "unix:/run/app.sock"] {
            assert_eq!(UpstreamAddr::parse(s).unwrap().to_string(), s);
        }
        for s in ["198.18.1.11", "localhost:80", "unix:", ""] {
            assert!(UpstreamAddr::parse(s).is_err(), "{s}");
        }
    }
}
