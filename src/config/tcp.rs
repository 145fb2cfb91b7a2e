//! The farm file's `[tcp]` table: TCP settings every node shares.

use serde::Deserialize;
use smoltcp::time::Duration;

use super::ConfigError;
use crate::node::NodeOptions;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcp {
    mss: Option<u16>,
    rcv_buf: Option<usize>,
    snd_buf: Option<usize>,
    max_connections: Option<usize>,
    idle_timeout: Option<u64>,
    syn_backlog: Option<usize>,
    congestion: Option<String>,
    initial_window: Option<u8>,
    keepalive_idle: Option<u64>,
    keepalive_interval: Option<u64>,
    keepalive_probes: Option<u8>,
}

/// TCP settings shared by all nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// MSS advertised.
    pub mss: u16,
    /// Receive buffer per connection, bytes.
    pub rcv_buf: usize,
    /// Send buffer per connection, bytes.
    pub snd_buf: usize,
    /// Connection table limit per node.
    pub max_connections: usize,
    /// Seconds without a client segment after which a connection is aborted.
    pub idle_timeout_s: u64,
    /// Connections in SYN-RECEIVED per node at most; SYNs beyond it get SYN
    /// cookies (0: every SYN does).
    pub syn_backlog: usize,
    /// Congestion control of every connection.
    pub congestion: ipos_tcp::Congestion,
    /// Initial window, segments.
    pub initial_window: u8,
    /// Keep-alive probes of idle connections (None: off).
    pub keepalive: Option<ipos_tcp::Keepalive>,
}

impl Default for TcpSpec {
    /// The endpoint's and the node's own defaults.
    fn default() -> Self {
        let tcp = ipos_tcp::Config::default();
        let node = NodeOptions::default();
        TcpSpec {
            mss: tcp.mss,
            rcv_buf: tcp.rcv_buf,
            snd_buf: tcp.snd_buf,
            max_connections: node.max_connections,
            idle_timeout_s: node.conn_idle.secs(),
            syn_backlog: node.syn_backlog,
            congestion: tcp.congestion,
            initial_window: tcp.initial_window,
            keepalive: tcp.keepalive,
        }
    }
}

impl TcpSpec {
    /// The `[tcp]` table, every key checked (errors through `err`, by field);
    /// the defaults where it or a key is absent.
    pub(super) fn from_raw(
        raw: Option<RawTcp>,
        err: &dyn Fn(String, String) -> ConfigError,
    ) -> Result<TcpSpec, ConfigError> {
        let mut tcp = TcpSpec::default();
        let Some(t) = raw else {
            return Ok(tcp);
        };
        if let Some(m) = t.mss {
            if !(536..=9000).contains(&m) {
                return Err(err("tcp.mss".into(), format!("{m} is outside 536..=9000")));
            }
            tcp.mss = m;
        }
        for (name, val, slot) in [
            ("tcp.rcv_buf", t.rcv_buf, &mut tcp.rcv_buf),
            ("tcp.snd_buf", t.snd_buf, &mut tcp.snd_buf),
        ] {
            if let Some(v) = val {
                if !(4096..=(1 << 30)).contains(&v) {
                    return Err(err(
                        name.into(),
                        format!("{v} is outside 4096..=1073741824"),
                    ));
                }
                *slot = v;
            }
        }
        if let Some(m) = t.max_connections {
            if m == 0 {
                return Err(err(
                    "tcp.max_connections".into(),
                    "must be at least 1".into(),
                ));
            }
            tcp.max_connections = m;
        }
        if let Some(s) = t.idle_timeout {
            if !(10..=86_400).contains(&s) {
                return Err(err(
                    "tcp.idle_timeout".into(),
                    format!("{s} s is outside 10..=86400"),
                ));
            }
            tcp.idle_timeout_s = s;
        }
        if let Some(b) = t.syn_backlog {
            if b > 1_000_000 {
                return Err(err(
                    "tcp.syn_backlog".into(),
                    format!("{b} is outside 0..=1000000"),
                ));
            }
            tcp.syn_backlog = b;
        }
        if let Some(c) = t.congestion {
            tcp.congestion = match c.as_str() {
                "cubic" => ipos_tcp::Congestion::Cubic,
                "newreno" => ipos_tcp::Congestion::NewReno,
                _ => {
                    return Err(err(
                        "tcp.congestion".into(),
                        format!("{c:?} is not \"cubic\" or \"newreno\""),
                    ))
                }
            };
        }
        if let Some(w) = t.initial_window {
            if !(1..=64).contains(&w) {
                return Err(err(
                    "tcp.initial_window".into(),
                    format!("{w} is outside 1..=64"),
                ));
            }
            tcp.initial_window = w;
        }
        let mut ka = ipos_tcp::Keepalive::default();
        for (name, val, range, slot) in [
            (
                "tcp.keepalive_idle",
                t.keepalive_idle,
                10..=86_400,
                &mut ka.idle,
            ),
            (
                "tcp.keepalive_interval",
                t.keepalive_interval,
                1..=3600,
                &mut ka.interval,
            ),
        ] {
            if let Some(v) = val {
                let off = name == "tcp.keepalive_idle" && v == 0;
                if !(off || range.contains(&v)) {
                    return Err(err(
                        name.into(),
                        format!("{v} s is outside {}..={}", range.start(), range.end()),
                    ));
                }
                *slot = Duration::from_secs(v);
            }
        }
        if let Some(p) = t.keepalive_probes {
            if !(1..=100).contains(&p) {
                return Err(err(
                    "tcp.keepalive_probes".into(),
                    format!("{p} is outside 1..=100"),
                ));
            }
            ka.probes = p;
        }
        // On only with an idle time; the other two keys tune it.
        tcp.keepalive = match t.keepalive_idle {
            Some(s) if s > 0 => Some(ka),
            _ => None,
        };
        Ok(tcp)
    }
}
