//! The farm configuration file (TOML).
//!
//! One file describes the whole farm: every node (name, MAC, IP), the virtual
//! IP and the node that fronts it, the service ports, and the ipOS EtherType.
//! Every node reads the same file and picks its own entry by name. Errors name
//! the file and the field at fault.
//!
//! ```toml
//! ethertype = 0x0007          # optional; the ipOS Ethernet type
//! service_ports = [80]        # TCP ports the farm serves on the VIP and node IPs
//! udp_echo_port = 7           # UDP echo service (0: none; default 7)
//!
//! [tcp]                       # optional; every key has a default
//! mss = 1460                  # 536..=9000
//! rcv_buf = 262144            # receive buffer per connection, bytes
//! snd_buf = 262144            # send buffer per connection, bytes
//! max_connections = 16384     # connection table limit per node
//! idle_timeout = 900          # seconds without a client segment before an abort
//! syn_backlog = 1024          # connections in SYN-RECEIVED at most; further SYNs
//!                             # get SYN cookies (RFC 4987; 0: every SYN does)
//! congestion = "cubic"        # congestion control: "cubic" (RFC 9438) or "newreno"
//! initial_window = 10         # first window, segments (RFC 6928; 1..=64)
//! keepalive_idle = 0          # seconds idle before keep-alive probes (0: none, the
//!                             # default; else 10..=86400)
//! keepalive_interval = 75     # seconds between unanswered probes (1..=3600)
//! keepalive_probes = 9        # unanswered probes before an abort (1..=100)
//!
//! [policy]                    # optional
//! migration = true            # the front moves connections at all
//! rehome = true               # a keep-alive connection moves again at a later
//!                             # request a URL or cookie rule gives to another node
//! max_moves = 16              # moves one connection may make in its life (1..=1000)
//! rebalance = false           # a node far above the average load moves long-lived
//!                             # connections to the least loaded (off by default;
//!                             # any rebalance_* key turns it on)
//! rebalance_factor = 1.5      # above this many times the farm's average connections
//! rebalance_rate = 20         # moves per second at most
//! rebalance_min_age = 5       # seconds a connection has been on the node
//! cookie = "IPOSID"           # the cookie whose value names a node
//! url = [ { prefix = "/b/", node = "b" } ]
//!
//! [vip]
//! ip = "198.18.0.100"
//! front = "a"                 # the node that answers ARP for the VIP
//!
//! [auth]                      # optional: authenticate every ipOS frame
//! key_file = "farm.key"       # 64 hex digits, chmod 600; relative to this file
//! mode = "authenticate"       # or "encrypt" (TCBs and request bytes encrypted too)
//!
//! [[upstreams]]              # optional, one per relayed port: its connections go
//! port = 80                   # to a local process on the node that serves them
//! address = "198.18.1.1:8080" # every node's upstream (ADDRESS:PORT or unix:PATH),
//!                             # unless its [[nodes]] entry names its own
//! proxy_protocol = true       # a PROXY protocol v2 header first (default false)
//! kind = "http"               # "http" (default): a failed upstream gives a 502;
//!                             # "tcp": it resets the client
//!
//! [[nodes]]
//! name = "a"
//! mac = "02:00:c6:12:00:0b"
//! ip = "198.18.0.11"
//! upstreams = { 80 = "198.18.1.11:8080" }   # optional: this node's own upstreams
//! ```

use crate::node::{NodeIdentity, NodeOptions, Peer};
use serde::Deserialize;
use smoltcp::time::Duration;
use smoltcp::wire::{EthernetAddress, Ipv4Address};
use std::fmt;

mod tcp;
mod upstream;
use std::path::{Path, PathBuf};
use tcp::RawTcp;
pub use tcp::TcpSpec;

/// A configuration error, with the file and the field it concerns.
#[derive(Debug)]
pub struct ConfigError {
    /// The file read.
    pub file: PathBuf,
    /// The field at fault (`nodes[1].mac`), or empty for file-level errors.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFarm {
    ethertype: Option<u16>,
    service_ports: Option<Vec<u16>>,
    udp_echo_port: Option<u16>,
    vip: Option<RawVip>,
    #[serde(default)]
    nodes: Vec<RawNode>,
    tcp: Option<RawTcp>,
    policy: Option<RawPolicy>,
    mtu: Option<RawMtu>,
    http: Option<RawHttp>,
    auth: Option<RawAuth>,
    #[serde(default)]
    upstreams: Vec<RawUpstream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    port: u16,
    address: Option<String>,
    proxy_protocol: Option<bool>,
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    key_file: String,
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMtu {
    farm: Option<u16>,
    client: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    head_timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    migration: Option<bool>,
    rehome: Option<bool>,
    max_moves: Option<u16>,
    rebalance: Option<bool>,
    rebalance_factor: Option<f64>,
    rebalance_rate: Option<u32>,
    rebalance_min_age: Option<u64>,
    cookie: Option<String>,
    #[serde(default)]
    url: Vec<RawUrlRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUrlRule {
    prefix: String,
    node: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVip {
    ip: String,
    front: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    mac: String,
    ip: String,
    port: Option<u16>,
    #[serde(default)]
    upstreams: std::collections::BTreeMap<String, String>,
}

/// One node of the farm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Unique name (`a`).
    pub name: String,
    /// The MAC address the node's port uses.
    pub mac: EthernetAddress,
    /// The node's own IPv4 address.
    pub ip: Ipv4Address,
    /// The DPDK port id the node polls (default 0).
    pub port: u16,
}

/// The virtual IP of the farm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipSpec {
    /// The address clients connect to.
    pub ip: Ipv4Address,
    /// Name of the node that fronts it.
    pub front: String,
}

/// The IP MTUs of the two kinds of link a node has (bytes after the Ethernet header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuSpec {
    /// The farm segment, between nodes (ipOS frames).
    pub farm: u16,
    /// The path towards clients.
    pub client: u16,
}

impl Default for MtuSpec {
    fn default() -> Self {
        let node = NodeOptions::default();
        MtuSpec {
            farm: node.farm_mtu,
            client: node.client_mtu,
        }
    }
}

/// How the front chooses a connection's owner.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Whether the front migrates connections at all.
    pub migration: bool,
    /// Whether a keep-alive connection is moved again at a later request
    /// that a URL or cookie rule gives to another node.
    pub rehome: bool,
    /// Moves one connection may make in its life, at most.
    pub max_moves: u16,
    /// Rebalancing of long-lived connections (None: off).
    pub rebalance: Option<crate::node::Rebalance>,
    /// The cookie whose value names the node to use (`IPOSID=c`).
    pub cookie: String,
    /// URL prefix rules: prefix -> node name.
    pub url: Vec<(String, String)>,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            migration: true,
            rehome: true,
            max_moves: crate::node::DEFAULT_MAX_MOVES,
            rebalance: None,
            cookie: "IPOSID".into(),
            url: Vec::new(),
        }
    }
}

/// How the farm's ipOS frames are protected (`[auth]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSpec {
    /// The key file (resolved against the farm file's directory).
    pub key_file: PathBuf,
    /// What the tag protects.
    pub mode: crate::auth::Mode,
}

/// A parsed, validated farm configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FarmConfig {
    /// EtherType of ipOS frames.
    pub ethertype: u16,
    /// TCP service ports.
    pub service_ports: Vec<u16>,
    /// UDP echo service port (None: no UDP service).
    pub udp_echo_port: Option<u16>,
    /// The VIP, if the farm has one.
    pub vip: Option<VipSpec>,
    /// All nodes.
    pub nodes: Vec<NodeSpec>,
    /// TCP settings.
    pub tcp: TcpSpec,
    /// Policy settings.
    pub policy: PolicySpec,
    /// Link MTUs.
    pub mtu: MtuSpec,
    /// Seconds a client may take to send a whole request head.
    pub head_timeout_s: u64,
    /// Frame authentication; `None`: ipOS frames carry no trailer.
    pub auth: Option<AuthSpec>,
    /// Service ports relayed to a local process on every node, each with
    /// every node's address for it (`[[upstreams]]`, and `upstreams` in a
    /// `[[nodes]]` entry).
    pub upstreams: Vec<UpstreamSpec>,
}

/// One relayed service port of the farm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub port: u16,
    pub proxy_protocol: bool,
    pub kind: crate::upstream::UpstreamKind,
    /// Each node's upstream address, by node name (every node has one).
    pub addresses: Vec<(String, crate::upstream::UpstreamAddr)>,
}

impl FarmConfig {
    /// Reads and validates a farm file.
    pub fn load(path: &Path) -> Result<FarmConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        FarmConfig::parse(&text, path)
    }

    /// Parses and validates farm TOML; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<FarmConfig, ConfigError> {
        let err = |field: String, message: String| ConfigError {
            file: path.to_path_buf(),
            field,
            message,
        };
        let raw: RawFarm = toml::from_str(text)
            .map_err(|e| err(String::new(), e.to_string().trim_end().replace('\n', " | ")))?;
        let ethertype = raw.ethertype.unwrap_or(ipos_wire::DEFAULT_ETHERTYPE);
        let service_ports = raw.service_ports.unwrap_or_else(|| vec![80]);
        if let Some(i) = service_ports.iter().position(|&p| p == 0) {
            return Err(err(
                format!("service_ports[{i}]"),
                "port 0 is not a service port".into(),
            ));
        }
        if raw.nodes.is_empty() {
            return Err(err(
                "nodes".into(),
                "at least one [[nodes]] entry is needed".into(),
            ));
        }
        let mut nodes: Vec<NodeSpec> = Vec::with_capacity(raw.nodes.len());
        for (i, n) in raw.nodes.iter().enumerate() {
            if n.name.is_empty()
                || n.name.len() > 32
                || !n
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(err(
                    format!("nodes[{i}].name"),
                    format!("{:?}: use 1 to 32 letters, digits, '-' or '_'", n.name),
                ));
            }
            let mac = parse_mac(&n.mac).ok_or_else(|| {
                err(
                    format!("nodes[{i}].mac"),
                    format!("{:?} is not a MAC address like 02:00:c6:12:00:0b", n.mac),
                )
            })?;
            if !mac.is_unicast() {
                return Err(err(
                    format!("nodes[{i}].mac"),
                    format!("{} is not a unicast MAC", n.mac),
                ));
            }
            let ip: Ipv4Address = n.ip.parse().map_err(|_| {
                err(
                    format!("nodes[{i}].ip"),
                    format!("{:?} is not an IPv4 address", n.ip),
                )
            })?;
            if let Some(o) = nodes.iter().find(|o| o.name == n.name) {
                return Err(err(
                    format!("nodes[{i}].name"),
                    format!("{} is used twice", o.name),
                ));
            }
            if let Some(o) = nodes.iter().find(|o| o.ip == ip) {
                return Err(err(
                    format!("nodes[{i}].ip"),
                    format!("{ip} is node {}'s address too", o.name),
                ));
            }
            if let Some(o) = nodes.iter().find(|o| o.mac == mac) {
                return Err(err(
                    format!("nodes[{i}].mac"),
                    format!("{mac} is node {}'s MAC too", o.name),
                ));
            }
            nodes.push(NodeSpec {
                name: n.name.clone(),
                mac,
                ip,
                port: n.port.unwrap_or(0),
            });
        }
        let vip = match raw.vip {
            None => None,
            Some(v) => {
                let ip: Ipv4Address = v.ip.parse().map_err(|_| {
                    err(
                        "vip.ip".into(),
                        format!("{:?} is not an IPv4 address", v.ip),
                    )
                })?;
                if let Some(o) = nodes.iter().find(|o| o.ip == ip) {
                    return Err(err(
                        "vip.ip".into(),
                        format!("{ip} is node {}'s own address", o.name),
                    ));
                }
                if !nodes.iter().any(|n| n.name == v.front) {
                    return Err(err(
                        "vip.front".into(),
                        format!("no node is named {:?}", v.front),
                    ));
                }
                Some(VipSpec { ip, front: v.front })
            }
        };
        let tcp = TcpSpec::from_raw(raw.tcp, &err)?;
        let mut mtu = MtuSpec::default();
        if let Some(m) = raw.mtu {
            // The client path must carry a 536-byte segment; the farm segment a
            // carried request chunk in a data frame, with the authentication trailer.
            let client_least = (40 + 536) as u16;
            let farm_least = (ipos_wire::HEADER_LEN
                + 40
                + crate::migration::CHUNK
                + ipos_wire::trailer::TRAILER_LEN) as u16;
            for (name, val, slot, least) in [
                ("mtu.farm", m.farm, &mut mtu.farm, farm_least),
                ("mtu.client", m.client, &mut mtu.client, client_least),
            ] {
                if let Some(v) = val {
                    if !(least..=9216).contains(&v) {
                        return Err(err(name.into(), format!("{v} is outside {least}..=9216")));
                    }
                    *slot = v;
                }
            }
        }
        let mut head_timeout_s = NodeOptions::default().head_timeout.secs();
        if let Some(h) = raw.http {
            if let Some(t) = h.head_timeout {
                if !(1..=3600).contains(&t) {
                    return Err(err(
                        "http.head_timeout".into(),
                        format!("{t} s is outside 1..=3600"),
                    ));
                }
                head_timeout_s = t;
            }
        }
        let mut policy = PolicySpec::default();
        if let Some(p) = raw.policy {
            if let Some(m) = p.migration {
                policy.migration = m;
            }
            if let Some(r) = p.rehome {
                policy.rehome = r;
            }
            if let Some(m) = p.max_moves {
                if !(1..=1000).contains(&m) {
                    return Err(err(
                        "policy.max_moves".into(),
                        format!("{m} is outside 1..=1000"),
                    ));
                }
                policy.max_moves = m;
            }
            let tuned = p.rebalance_factor.is_some()
                || p.rebalance_rate.is_some()
                || p.rebalance_min_age.is_some();
            if p.rebalance == Some(true) || (tuned && p.rebalance.is_none()) {
                let mut r = crate::node::Rebalance::default();
                if let Some(f) = p.rebalance_factor {
                    if !(f > 1.0 && f <= 100.0) {
                        return Err(err(
                            "policy.rebalance_factor".into(),
                            format!("{f} is outside (1, 100]: a node rebalances above this many times the average"),
                        ));
                    }
                    r.factor = f;
                }
                if let Some(n) = p.rebalance_rate {
                    if !(1..=100_000).contains(&n) {
                        return Err(err(
                            "policy.rebalance_rate".into(),
                            format!("{n} moves per second is outside 1..=100000"),
                        ));
                    }
                    r.rate = n;
                }
                if let Some(a) = p.rebalance_min_age {
                    if a > 86_400 {
                        return Err(err(
                            "policy.rebalance_min_age".into(),
                            format!("{a} s is over a day"),
                        ));
                    }
                    r.min_age = Duration::from_secs(a);
                }
                policy.rebalance = Some(r);
            }
            if let Some(c) = p.cookie {
                if c.is_empty()
                    || !c
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b))
                {
                    return Err(err(
                        "policy.cookie".into(),
                        format!("{c:?} is not a cookie name"),
                    ));
                }
                policy.cookie = c;
            }
            for (i, r) in p.url.iter().enumerate() {
                if !r.prefix.starts_with('/') {
                    return Err(err(
                        format!("policy.url[{i}].prefix"),
                        format!("{:?} must start with '/'", r.prefix),
                    ));
                }
                if !nodes.iter().any(|n| n.name == r.node) {
                    return Err(err(
                        format!("policy.url[{i}].node"),
                        format!("no node is named {:?}", r.node),
                    ));
                }
                policy.url.push((r.prefix.clone(), r.node.clone()));
            }
        }
        let auth = match raw.auth {
            None => None,
            Some(a) => {
                if a.key_file.is_empty() {
                    return Err(err("auth.key_file".into(), "names no file".into()));
                }
                let mode = match a.mode.as_deref() {
                    None | Some("authenticate") => crate::auth::Mode::Authenticated,
                    Some("encrypt") => crate::auth::Mode::Encrypted,
                    Some(m) => {
                        return Err(err(
                            "auth.mode".into(),
                            format!("{m:?}: use \"authenticate\" or \"encrypt\""),
                        ))
                    }
                };
                let f = PathBuf::from(&a.key_file);
                let key_file = if f.is_relative() {
                    path.parent().unwrap_or(Path::new(".")).join(f)
                } else {
                    f
                };
                Some(AuthSpec { key_file, mode })
            }
        };
        let udp_echo_port = match raw.udp_echo_port {
            None => Some(7),
            Some(0) => None,
            Some(p) => Some(p),
        };
        let upstreams = upstream::parse(&raw.upstreams, &raw.nodes, &service_ports, &err)?;
        Ok(FarmConfig {
            upstreams,
            ethertype,
            service_ports,
            udp_echo_port,
            vip,
            nodes,
            tcp,
            policy,
            mtu,
            head_timeout_s,
            auth,
        })
    }

    /// The policy's static part: URL rules and one cookie rule per node
    /// (cookie value = node name).
    pub fn policy_config(&self) -> ipos_policy::PolicyConfig {
        let ip_of = |name: &str| self.node(name).map(|n| n.ip);
        ipos_policy::PolicyConfig {
            url_rules: self
                .policy
                .url
                .iter()
                .filter_map(|(p, n)| Some((p.clone(), ip_of(n)?)))
                .collect(),
            cookie_name: self.policy.cookie.clone(),
            cookie_rules: self.nodes.iter().map(|n| (n.name.clone(), n.ip)).collect(),
            ..ipos_policy::PolicyConfig::default()
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Who node `name` is: its addresses, the VIP when it fronts it, the
    /// farm's services and EtherType, and every member of the farm. Its
    /// `auth` is `None`: [`FarmConfig::auth_config`] reads the key.
    pub fn identity(&self, name: &str) -> Option<NodeIdentity> {
        let spec = self.node(name)?;
        Some(NodeIdentity {
            name: spec.name.clone(),
            mac: spec.mac,
            ip: spec.ip,
            vip: self
                .vip
                .as_ref()
                .filter(|v| v.front == spec.name)
                .map(|v| v.ip),
            farm_vip: self.vip.as_ref().map(|v| v.ip),
            service_ports: self.service_ports.clone(),
            ethertype: self.ethertype,
            udp_echo_port: self.udp_echo_port,
            peers: self
                .nodes
                .iter()
                .map(|n| Peer {
                    name: n.name.clone(),
                    mac: n.mac,
                    ip: n.ip,
                })
                .collect(),
            auth: None,
        })
    }

    /// Node `name`'s upstreams (empty when the farm relays no port).
    pub fn upstreams_of(&self, name: &str) -> Vec<crate::upstream::Upstream> {
        self.upstreams
            .iter()
            .filter_map(|u| {
                let (_, addr) = u.addresses.iter().find(|(n, _)| n == name)?;
                Some(crate::upstream::Upstream {
                    port: u.port,
                    addr: addr.clone(),
                    proxy_protocol: u.proxy_protocol,
                    kind: u.kind,
                })
            })
            .collect()
    }

    /// The farm's authentication settings, the key read from its file
    /// (refused when group or others may read it); `None` when the farm
    /// file has no `[auth]`. Set it as the identity's `auth`.
    pub fn auth_config(&self) -> Result<Option<crate::auth::AuthConfig>, ConfigError> {
        let Some(a) = &self.auth else {
            return Ok(None);
        };
        let key = crate::auth::FarmKey::load(&a.key_file).map_err(|e| ConfigError {
            file: a.key_file.clone(),
            field: String::new(),
            message: e.to_string(),
        })?;
        Ok(Some(crate::auth::AuthConfig { key, mode: a.mode }))
    }

    /// The node options this file sets (TCP buffers and MSS, the connection
    /// table limit, the policy); everything else keeps its default.
    pub fn node_options(&self) -> NodeOptions {
        let mut o = NodeOptions::default();
        o.tcp.mss = self.tcp.mss;
        o.tcp.rcv_buf = self.tcp.rcv_buf;
        o.tcp.snd_buf = self.tcp.snd_buf;
        o.max_connections = self.tcp.max_connections;
        o.syn_backlog = self.tcp.syn_backlog;
        o.tcp.congestion = self.tcp.congestion;
        o.tcp.initial_window = self.tcp.initial_window;
        o.tcp.keepalive = self.tcp.keepalive;
        o.set_idle_timeout(Duration::from_secs(self.tcp.idle_timeout_s));
        o.farm_mtu = self.mtu.farm;
        o.client_mtu = self.mtu.client;
        o.head_timeout = Duration::from_secs(self.head_timeout_s);
        o.policy = self.policy_config();
        o.migration = self.policy.migration;
        o.rehome = self.policy.rehome;
        o.max_moves = self.policy.max_moves;
        o.rebalance = self.policy.rebalance;
        o
    }
}

/// The farm file of the test farm of `nodes` nodes (1 to 8), as
/// `scripts/farm up --nodes N` writes it: nodes a, b, c... with MACs
/// 02:00:c6:12:00:0b... and addresses 198.18.0.11..., the VIP 198.18.0.100
/// fronted by a, `/b/` -> b (and so on) and the `IPOSID` cookie. The
/// in-memory tests and the benches run this same farm.
pub fn test_farm_toml(nodes: usize) -> String {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let n = nodes.clamp(1, names.len());
    let mut s = String::from(
        "ethertype = 0x0007\nservice_ports = [80]\n\n[vip]\nip = \"198.18.0.100\"\nfront = \"a\"\n\n[policy]\ncookie = \"IPOSID\"\nurl = [\n",
    );
    for name in &names[1..n] {
        s.push_str(&format!(
            "    {{ prefix = \"/{name}/\", node = \"{name}\" }},\n"
        ));
    }
    s.push_str("]\n");
    for (i, name) in names[..n].iter().enumerate() {
        s.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nmac = \"02:00:c6:12:00:{:02x}\"\nip = \"198.18.0.{}\"\n",
            11 + i,
            11 + i
        ));
    }
    s
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(EthernetAddress(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
ethertype = 0x0007
service_ports = [80]
[vip]
ip = "198.18.0.100"
front = "a"
[[nodes]]
name = "a"
mac = "02:00:c6:12:00:0b"
ip = "198.18.0.11"
[[nodes]]
name = "b"
mac = "02:00:c6:12:00:0c"
ip = "198.18.0.12"
[policy]
cookie = "IPOSID"
url = [{ prefix = "/b/", node = "b" }]
"#;

    fn parse(s: &str) -> Result<FarmConfig, ConfigError> {
        FarmConfig::parse(s, Path::new("farm.toml"))
    }

    #[test]
    fn good_file() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.ethertype, 7);
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.node("b").unwrap().ip, Ipv4Address::new(198, 18, 0, 12));
        assert_eq!(
            c.node("a").unwrap().mac,
            EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0b])
        );
        assert_eq!(c.vip.as_ref().unwrap().front, "a");
        assert_eq!(c.tcp, TcpSpec::default());
        let p = c.policy_config();
        assert_eq!(
            p.url_rules,
            vec![("/b/".to_string(), Ipv4Address::new(198, 18, 0, 12))]
        );
        assert_eq!(p.cookie_rules.len(), 2);
        assert_eq!(p.cookie_name, "IPOSID");
    }

    #[test]
    fn upstreams_give_each_node_its_address() {
        use crate::upstream::{UpstreamAddr, UpstreamKind};
        let text = GOOD.replace(
            "ip = \"198.18.0.12\"\n",
            "ip = \"198.18.0.12\"\nupstreams = { 80 = \"unix:/run/b.sock\" }\n",
        )
            + "[[upstreams]]\nport = 80\naddress = \"198.18.1.1:8080\"\nproxy_protocol = true\n";
        let c = parse(&text).unwrap();
        let a = c.upstreams_of("a");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].addr, UpstreamAddr::parse("198.18.1.1:8080").unwrap());
        assert!(a[0].proxy_protocol);
        assert_eq!(a[0].kind, UpstreamKind::Http);
        let b = c.upstreams_of("b");
        assert_eq!(b[0].addr, UpstreamAddr::Unix("/run/b.sock".into()));
        assert!(parse(GOOD).unwrap().upstreams_of("a").is_empty());
        // Without a default, every node needs its own.
        let no_default = text.replace("address = \"198.18.1.1:8080\"\n", "");
        let e = parse(&no_default).unwrap_err();
        assert_eq!(e.field, "nodes[0].upstreams", "{e}");
        let tcp = text.replace("proxy_protocol = true", "kind = \"tcp\"");
        assert_eq!(
            parse(&tcp).unwrap().upstreams_of("a")[0].kind,
            UpstreamKind::Tcp
        );
        for (from, to, field) in [
            (
                "port = 80\naddress",
                "port = 81\naddress",
                "upstreams[0].port",
            ),
            (
                "proxy_protocol = true",
                "kind = \"udp\"",
                "upstreams[0].kind",
            ),
            (
                "\"198.18.1.1:8080\"",
                "\"198.18.1.1\"",
                "upstreams[0].address",
            ),
            ("{ 80 = ", "{ 8080 = ", "nodes[1].upstreams.8080"),
            ("\"unix:/run/b.sock\"", "\"unix:\"", "nodes[1].upstreams.80"),
        ] {
            let e = parse(&text.replace(from, to)).unwrap_err();
            assert_eq!(e.field, field, "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse(&GOOD.replace("02:00:c6:12:00:0c", "02:00:c6:12:00")).unwrap_err();
        assert_eq!(e.field, "nodes[1].mac");
        assert!(
            e.to_string().starts_with("farm.toml: nodes[1].mac: "),
            "{e}"
        );
        let e = parse(&GOOD.replace("198.18.0.12", "198.18.0.11")).unwrap_err();
        assert_eq!(e.field, "nodes[1].ip");
        let e = parse(&GOOD.replace("front = \"a\"", "front = \"z\"")).unwrap_err();
        assert_eq!(e.field, "vip.front");
        let e = parse(&GOOD.replace("ethertype", "ethertipe")).unwrap_err();
        assert!(e.message.contains("ethertipe"), "{e}");
        let e = parse(&GOOD.replace("198.18.0.100", "198.18.0.11")).unwrap_err();
        assert_eq!(e.field, "vip.ip");
        let e = parse(&GOOD.replace("node = \"b\"", "node = \"z\"")).unwrap_err();
        assert_eq!(e.field, "policy.url[0].node");
        let e = parse("service_ports = [80]").unwrap_err();
        assert_eq!(e.field, "nodes");
        let e = parse(&format!("{GOOD}\n[tcp]\nsyn_backlog = 2000000\n")).unwrap_err();
        assert_eq!(e.field, "tcp.syn_backlog");
    }

    #[test]
    fn live_move_options() {
        let c = parse(GOOD).unwrap().node_options();
        assert!(c.rehome);
        assert_eq!(c.max_moves, crate::node::DEFAULT_MAX_MOVES);
        assert_eq!(c.rebalance, None, "rebalancing is off by default");
        let c = parse(&format!(
            "{GOOD}rehome = false\nmax_moves = 3\nrebalance_rate = 7\n"
        ))
        .unwrap()
        .node_options();
        assert!(!c.rehome);
        assert_eq!(c.max_moves, 3);
        let r = c.rebalance.expect("a rebalance_* key turns it on");
        assert_eq!((r.factor, r.rate), (1.5, 7));
        let off = parse(&format!("{GOOD}rebalance = false\nrebalance_rate = 7\n")).unwrap();
        assert_eq!(off.node_options().rebalance, None);
        for (text, field) in [
            ("max_moves = 0", "policy.max_moves"),
            ("rebalance_factor = 1.0", "policy.rebalance_factor"),
            ("rebalance_rate = 0", "policy.rebalance_rate"),
            ("rebalance_min_age = 100000", "policy.rebalance_min_age"),
        ] {
            let e = parse(&format!("{GOOD}{text}\n")).unwrap_err();
            assert_eq!(e.field, field, "{text}");
        }
    }

    #[test]
    fn congestion_options() {
        let o = parse(GOOD).unwrap().node_options();
        assert_eq!(o.tcp.congestion, ipos_tcp::Congestion::Cubic);
        assert_eq!(o.tcp.initial_window, 10);
        let c = parse(&format!(
            "{GOOD}\n[tcp]\ncongestion = \"newreno\"\ninitial_window = 4\n"
        ))
        .unwrap();
        let o = c.node_options();
        assert_eq!(o.tcp.congestion, ipos_tcp::Congestion::NewReno);
        assert_eq!(o.tcp.initial_window, 4);
        assert_eq!(o.tcp.keepalive, None, "off by default");
        let c = parse(&format!(
            "{GOOD}\n[tcp]\nkeepalive_idle = 60\nkeepalive_probes = 4\n"
        ))
        .unwrap();
        let k = c.node_options().tcp.keepalive.expect("on");
        assert_eq!((k.idle.secs(), k.interval.secs(), k.probes), (60, 75, 4));
        for (text, field) in [
            ("keepalive_idle = 5", "tcp.keepalive_idle"),
            ("keepalive_interval = 0", "tcp.keepalive_interval"),
            ("keepalive_probes = 0", "tcp.keepalive_probes"),
            ("congestion = \"bbr\"", "tcp.congestion"),
            ("initial_window = 0", "tcp.initial_window"),
            ("initial_window = 65", "tcp.initial_window"),
        ] {
            let e = parse(&format!("{GOOD}\n[tcp]\n{text}\n")).unwrap_err();
            assert_eq!(e.field, field, "{text}");
        }
    }

    #[test]
    fn syn_backlog_option() {
        assert_eq!(parse(GOOD).unwrap().node_options().syn_backlog, 1024);
        let c = parse(&format!("{GOOD}\n[tcp]\nsyn_backlog = 0\n")).unwrap();
        assert_eq!(c.tcp.syn_backlog, 0);
        assert_eq!(c.node_options().syn_backlog, 0);
    }

    #[test]
    fn test_farm_identity_and_options() {
        let c = parse(&test_farm_toml(3)).unwrap();
        let a = c.identity("a").unwrap();
        assert_eq!(a.vip, Some(Ipv4Address::new(198, 18, 0, 100)));
        assert_eq!(a.peers.len(), 3);
        let b = c.identity("b").unwrap();
        assert_eq!(b.vip, None);
        assert_eq!(b.mac, EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0c]));
        assert_eq!(b.ip, Ipv4Address::new(198, 18, 0, 12));
        assert!(c.identity("z").is_none());
        let o = c.node_options();
        assert_eq!(o.policy.url_rules.len(), 2);
        assert_eq!(o.tcp.mss, ipos_tcp::Config::default().mss);
        assert_eq!(o.max_connections, NodeOptions::default().max_connections);
    }

    #[test]
    fn mac_parser() {
        assert_eq!(
            parse_mac("02:00:00:00:00:01"),
            Some(EthernetAddress([2, 0, 0, 0, 0, 1]))
        );
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:01:02"), None);
        assert_eq!(parse_mac("0g:00:00:00:00:01"), None);
        assert_eq!(parse_mac("2:00:00:00:00:01"), None);
    }
}
