//! URL map (FIG. 12): (URL prefix, server IP) rules, looked up by the longest
//! prefix of a request path.
//!
//! Matching is a plain byte-prefix comparison on the path the caller passes
//! (`"/img"` matches `"/img/a.png"` and also `"/imgs"`; write `"/img/"` to
//! match the directory only). One prefix may map to several servers; they are
//! kept sorted and without duplicates. A lookup hashes one slice of the path
//! per distinct rule length, longest first, and allocates nothing.

use std::collections::HashMap;

use crate::Ipv4Address;

/// URL prefix -> servers that serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlMap {
    rules: HashMap<Box<str>, Vec<Ipv4Address>>,
    /// Distinct prefix lengths in bytes, longest first.
    lengths: Vec<usize>,
}

impl UrlMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Build a map from `(prefix, server)` rules.
    pub fn from_rules<'a, I>(rules: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, Ipv4Address)>,
    {
        let mut map = Self::new();
        for (prefix, server) in rules {
            map.insert(prefix, server);
        }
        map
    }

    /// Add the rule (`prefix`, `server`); returns false if it was present.
    pub fn insert(&mut self, prefix: &str, server: Ipv4Address) -> bool {
        let servers = self.rules.entry(prefix.into()).or_default();
        match servers.binary_search(&server) {
            Ok(_) => false,
            Err(at) => {
                servers.insert(at, server);
                self.rebuild_lengths();
                true
            }
        }
    }

    /// Remove the rule (`prefix`, `server`); returns whether it was present.
    pub fn remove(&mut self, prefix: &str, server: Ipv4Address) -> bool {
        let Some(servers) = self.rules.get_mut(prefix) else {
            return false;
        };
        let Ok(at) = servers.binary_search(&server) else {
            return false;
        };
        servers.remove(at);
        if servers.is_empty() {
            self.rules.remove(prefix);
        }
        self.rebuild_lengths();
        true
    }

    /// The servers of exactly `prefix` (empty if there is no such rule).
    pub fn servers(&self, prefix: &str) -> &[Ipv4Address] {
        self.rules.get(prefix).map_or(&[], Vec::as_slice)
    }

    /// Every rule prefix that `path` starts with, longest first, each with
    /// its servers.
    pub fn matches<'s, 'p>(
        &'s self,
        path: &'p str,
    ) -> impl Iterator<Item = (&'p str, &'s [Ipv4Address])> + Clone + 's
    where
        'p: 's,
    {
        self.lengths.iter().filter_map(move |&len| {
            // `get` is None when `len` is past the end or not on a character
            // boundary; no rule can match there.
            let prefix = path.get(..len)?;
            self.rules.get(prefix).map(|s| (prefix, s.as_slice()))
        })
    }

    /// The longest rule prefix of `path` and its servers.
    pub fn longest_match<'s, 'p: 's>(
        &'s self,
        path: &'p str,
    ) -> Option<(&'p str, &'s [Ipv4Address])> {
        self.matches(path).next()
    }

    /// Number of (prefix, server) rules.
    pub fn len(&self) -> usize {
        self.rules.values().map(Vec::len).sum()
    }

    /// Whether the map has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn rebuild_lengths(&mut self) {
        let mut lengths: Vec<usize> = self.rules.keys().map(|k| k.len()).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        self.lengths = lengths;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const B: Ipv4Address = Ipv4Address::new(198, 18, 0, 2);
    const C: Ipv4Address = Ipv4Address::new(198, 18, 0, 3);

    #[test]
    fn longest_prefix_wins() {
        let m = UrlMap::from_rules([("/", A), ("/img", B), ("/img/big/", C)]);
        assert_eq!(
            m.longest_match("/img/big/x.png"),
            Some(("/img/big/", &[C][..]))
        );
        assert_eq!(m.longest_match("/img/small.png"), Some(("/img", &[B][..])));
        assert_eq!(m.longest_match("/index.html"), Some(("/", &[A][..])));
        assert_eq!(m.longest_match("nope"), None);
        let all: Vec<_> = m.matches("/img/big/").map(|(p, _)| p).collect();
        assert_eq!(all, vec!["/img/big/", "/img", "/"]);
    }

    #[test]
    fn several_servers_per_prefix_and_remove() {
        let mut m = UrlMap::new();
        assert!(m.insert("/api", B));
        assert!(m.insert("/api", A));
        assert!(!m.insert("/api", A));
        assert_eq!(m.servers("/api"), &[A, B]);
        assert_eq!(m.len(), 2);
        assert!(m.remove("/api", A));
        assert!(!m.remove("/api", A));
        assert!(m.remove("/api", B));
        assert!(m.is_empty());
        assert_eq!(m.longest_match("/api/x"), None);
    }

    #[test]
    fn non_char_boundary_is_no_match_not_a_panic() {
        let m = UrlMap::from_rules([("/é", A), ("/x", B)]);
        // "/é" is 3 bytes; a 2-byte rule length falls inside the 'é' of the
        // path below, which must simply not match.
        assert_eq!(m.longest_match("/é/"), Some(("/é", &[A][..])));
        assert_eq!(m.longest_match("/ü"), None);
    }
}
