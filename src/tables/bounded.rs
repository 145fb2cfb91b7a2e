//! A hash map with a size limit that counts the inserts it refused.

use core::hash::Hash;
use hashbrown::HashMap;

/// An insert refused because the table is at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

impl core::fmt::Display for TableFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("table full")
    }
}

impl std::error::Error for TableFull {}

/// A map of at most `limit` entries. Replacing an existing key is never
/// refused; a new key beyond the limit is, and counted.
pub struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    limit: usize,
    full_refusals: u64,
}

impl<K: Eq + Hash, V> BoundedMap<K, V> {
    /// An empty map of at most `limit` entries (room for up to 4096 reserved).
    pub fn new(limit: usize) -> Self {
        BoundedMap {
            map: HashMap::with_capacity(limit.min(4096)),
            limit,
            full_refusals: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True when a new key would be refused.
    pub fn is_full(&self) -> bool {
        self.map.len() >= self.limit
    }

    /// Inserts refused because the map was full.
    pub fn full_refusals(&self) -> u64 {
        self.full_refusals
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, TableFull> {
        if !self.map.contains_key(&key) && self.is_full() {
            self.full_refusals += 1;
            return Err(TableFull);
        }
        Ok(self.map.insert(key, value))
    }

    /// The entry of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The entry of `key`, writable.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// True when `key` has an entry.
    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Removes `key`'s entry.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_replace_retain() {
        let mut m = BoundedMap::new(2);
        assert_eq!(m.insert(1, "a"), Ok(None));
        assert_eq!(m.insert(2, "b"), Ok(None));
        assert!(m.is_full());
        assert_eq!(m.insert(3, "c"), Err(TableFull));
        assert_eq!(m.full_refusals(), 1);
        assert_eq!(m.insert(2, "B"), Ok(Some("b")), "replacing is not refused");
        assert_eq!(m.remove(&1), Some("a"));
        assert_eq!(m.get(&2), Some(&"B"));
        assert_eq!(m.remove(&2), Some("B"));
        assert!(m.is_empty());
    }
}
