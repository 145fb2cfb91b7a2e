//! The farm file's `[[upstreams]]` (service ports relayed to a local process)
//! and each node's `upstreams = { PORT = "ADDRESS" }`.

use super::{ConfigError, RawNode, RawUpstream, UpstreamSpec};
use crate::upstream::{UpstreamAddr, UpstreamKind};

/// Checks the relayed ports and gives each node its address for each.
pub(super) fn parse(
    raw: &[RawUpstream],
    nodes: &[RawNode],
    service_ports: &[u16],
    err: &dyn Fn(String, String) -> ConfigError,
) -> Result<Vec<UpstreamSpec>, ConfigError> {
    let mut out: Vec<UpstreamSpec> = Vec::with_capacity(raw.len());
    for (i, u) in raw.iter().enumerate() {
        let field = |f: &str| format!("upstreams[{i}].{f}");
        if !service_ports.contains(&u.port) {
            return Err(err(
                field("port"),
                format!("{} is not one of service_ports {service_ports:?}", u.port),
            ));
        }
        if out.iter().any(|o| o.port == u.port) {
            return Err(err(
                field("port"),
                format!("port {} is listed twice", u.port),
            ));
        }
        let kind = match u.kind.as_deref() {
            None | Some("http") => UpstreamKind::Http,
            Some("tcp") => UpstreamKind::Tcp,
            Some(k) => {
                return Err(err(
                    field("kind"),
                    format!("{k:?}: use \"http\" or \"tcp\""),
                ))
            }
        };
        let default = match &u.address {
            None => None,
            Some(a) => Some(UpstreamAddr::parse(a).map_err(|m| err(field("address"), m))?),
        };
        let mut addresses = Vec::with_capacity(nodes.len());
        for (j, n) in nodes.iter().enumerate() {
            let key = u.port.to_string();
            let addr = match n.upstreams.get(&key) {
                Some(a) => UpstreamAddr::parse(a)
                    .map_err(|m| err(format!("nodes[{j}].upstreams.{key}"), m))?,
                None => default.clone().ok_or_else(|| {
                    err(
                        format!("nodes[{j}].upstreams"),
                        format!(
                            "node {} has no upstream for port {} (and upstreams[{i}] has no address)",
                            n.name, u.port
                        ),
                    )
                })?,
            };
            addresses.push((n.name.clone(), addr));
        }
        out.push(UpstreamSpec {
            port: u.port,
            proxy_protocol: u.proxy_protocol.unwrap_or(false),
            kind,
            addresses,
        });
    }
    for (j, n) in nodes.iter().enumerate() {
        for key in n.upstreams.keys() {
            let relayed = key
                .parse::<u16>()
                .is_ok_and(|p| out.iter().any(|u| u.port == p));
            if !relayed {
                return Err(err(
                    format!("nodes[{j}].upstreams.{key}"),
                    format!("port {key} has no [[upstreams]] entry"),
                ));
            }
        }
    }
    Ok(out)
}
