//! The connection table (FIG. 12's local, forward-connect and temporary
//! tables in one): client IP, client port, endpoint IP, endpoint port -> the
//! connection endpoint this node holds, whatever its phase (served here,
//! fed by a forwarder, being moved away, waiting for a commit).
//!
//! Endpoints live in a slab (a `Vec` of slots reused through a free list), so
//! an entry's reference is a small index and inserting or removing allocates
//! nothing once the slab has grown to its working size.

use super::TableFull;
use hashbrown::HashMap;
use ipos_wire::Flow;

/// Map from a connection's [`Flow`] (client -> endpoint) to a slab slot holding a `T`.
pub struct ConnectionTable<T> {
    index: HashMap<Flow, u32>,
    slots: Vec<Option<(Flow, T)>>,
    free: Vec<u32>,
    limit: usize,
    /// Inserts refused because the table was full.
    pub full_refusals: u64,
}

impl<T> ConnectionTable<T> {
    /// An empty table holding at most `limit` entries.
    pub fn new(limit: usize) -> Self {
        ConnectionTable {
            index: HashMap::with_capacity(limit.min(4096)),
            slots: Vec::new(),
            free: Vec::new(),
            limit,
            full_refusals: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// True when an insert would be refused.
    pub fn is_full(&self) -> bool {
        self.index.len() >= self.limit
    }

    /// The slot of `key`.
    pub fn find(&self, key: &Flow) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// Inserts a new entry; the caller checked that `key` is absent.
    pub fn insert(&mut self, key: Flow, value: T) -> Result<u32, TableFull> {
        if self.is_full() {
            self.full_refusals += 1;
            return Err(TableFull);
        }
        debug_assert!(
            !self.index.contains_key(&key),
            "a second entry for one flow would orphan the first"
        );
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some((key, value));
                s
            }
            None => {
                self.slots.push(Some((key, value)));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        Ok(slot)
    }

    /// Every entry, in slot order. Walks the slab: for tests and diagnostics,
    /// never the data path.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| s.as_ref().map(|(_, v)| v))
    }

    /// Slots in the slab (free ones included): a walk over slot numbers
    /// `0..slot_count()` visits every entry.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The entry in `slot`.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize)?.as_mut().map(|(_, v)| v)
    }

    /// The entry in `slot`.
    pub fn get(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize)?.as_ref().map(|(_, v)| v)
    }

    /// Removes the entry in `slot`.
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let (key, v) = self.slots.get_mut(slot as usize)?.take()?;
        self.index.remove(&key);
        self.free.push(slot);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    fn key(p: u16) -> Flow {
        Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: p,
            dst_addr: Ipv4Address::new(198, 18, 0, 11),
            dst_port: 80,
        }
    }

    #[test]
    fn insert_find_remove_reuse() {
        let mut t = ConnectionTable::new(2);
        let a = t.insert(key(1), "a").unwrap();
        let b = t.insert(key(2), "b").unwrap();
        assert_eq!(t.find(&key(1)), Some(a));
        assert_eq!(t.find(&key(2)), Some(b));
        assert_eq!(t.insert(key(3), "c"), Err(TableFull));
        assert_eq!(t.full_refusals, 1);
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.find(&key(1)), None);
        assert_eq!(t.remove(a), None);
        let c = t.insert(key(3), "c").unwrap();
        assert_eq!(c, a, "freed slot is reused");
        assert_eq!(t.get(c), Some(&"c"));
        assert_eq!(t.len(), 2);
    }
}
