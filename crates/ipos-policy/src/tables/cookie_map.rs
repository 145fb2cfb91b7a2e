//! Cookie map (FIG. 12): cookie ID -> server IP.
//!
//! The cookie ID is the *value* of the farm's configured cookie (with the
//! default name `IPOSID`, a request carrying `Cookie: IPOSID=c` has cookie ID
//! `"c"`); extracting it from the request is the caller's job. Lookups take a
//! `&str` and allocate nothing.

use std::collections::HashMap;

use crate::Ipv4Address;

/// Cookie ID -> server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieMap {
    rows: HashMap<Box<str>, Ipv4Address>,
}

impl CookieMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Build a map from `(cookie ID, server)` rules; a later rule for the
    /// same ID replaces an earlier one.
    pub fn from_rules<'a, I>(rules: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, Ipv4Address)>,
    {
        let mut map = Self::new();
        for (id, server) in rules {
            map.insert(id, server);
        }
        map
    }

    /// The server of cookie ID `id`.
    pub fn get(&self, id: &str) -> Option<Ipv4Address> {
        self.rows.get(id).copied()
    }

    /// Map `id` to `server`; returns the previous server.
    pub fn insert(&mut self, id: &str, server: Ipv4Address) -> Option<Ipv4Address> {
        self.rows.insert(id.into(), server)
    }

    /// Forget `id`; returns its server.
    pub fn remove(&mut self, id: &str) -> Option<Ipv4Address> {
        self.rows.remove(id)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the map has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_rule_replaces() {
        let a = Ipv4Address::new(198, 18, 0, 1);
        let b = Ipv4Address::new(198, 18, 0, 2);
        let m = CookieMap::from_rules([("c", a), ("c", b), ("d", a)]);
        assert_eq!(m.get("c"), Some(b));
        assert_eq!(m.get("d"), Some(a));
        assert_eq!(m.get("e"), None);
        assert_eq!(m.len(), 2);
    }
}
