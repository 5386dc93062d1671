//! A bounded map from a 32-byte digest to a value with an expiry, read on every request.
//!
//! * Bound: `capacity` entries. When full, expired entries are purged; if it is still full,
//!   the new value is simply not stored (no eviction storm under a flood of distinct keys:
//!   a client sending distinct keys cannot push out hot entries). Concurrent inserts may
//!   overshoot the bound by at most one entry per inserting thread.
//! * Expiry: a value says until when it is usable ([`Expiry::valid_until`]); the owner
//!   decides what a stale hit means (the map only purges expired entries when full).
//! * Concurrency: a lock-free hash map (papaya). A read pins the calling thread's epoch
//!   (thread-local), hashes and probes: no lock and no write to a cache line shared with
//!   other cores. [`ExpiringMap::get`] then clones the value (an `Arc`'s count is such a
//!   write); [`ExpiringMap::read`] does not. Writes are lock-free too, and a removed value
//!   is freed once no reader can still see it.
//!
//! Why papaya rather than the alternatives measured in `benches/caches.rs`
//! (figures in benches/RESULTS.md):
//! * `DashMap` (sharded RwLock): every read takes and releases a shard read lock, two
//!   atomic writes on a cache line shared by every core reading that shard. On a 2-core box
//!   it measures the same as papaya at 1 to 8 threads; the shared line costs more as cores
//!   are added, and papaya has no such line.
//! * An immutable `HashMap` behind `arc-swap`: reads are the cheapest (about 20% faster
//!   than either), but every insert copies the whole map (about 150 µs at 10,000 entries),
//!   so one insert per 64 lookups cuts throughput 25-fold. Batching the copies would leave
//!   a just-verified token invisible until the next batch, so a token repeated at once
//!   would be verified again: a behaviour change the cache must not make.

use papaya::HashMap;

/// A cached value that stops being usable at a Unix second.
pub trait Expiry {
    /// Unix seconds at and after which the value is unusable.
    fn valid_until(&self) -> u64;
}

pub struct ExpiringMap<V> {
    map: HashMap<[u8; 32], V>,
    capacity: usize,
}

impl<V> std::fmt::Debug for ExpiringMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiringMap")
            .field("entries", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<V: Expiry + Clone> ExpiringMap<V> {
    /// An empty map that grows as it fills.
    pub fn new(capacity: usize) -> ExpiringMap<V> {
        ExpiringMap {
            map: HashMap::new(),
            capacity,
        }
    }

    /// A map with room for `capacity` entries (up to 65,536) allocated up front.
    pub fn preallocated(capacity: usize) -> ExpiringMap<V> {
        ExpiringMap {
            map: HashMap::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// The value stored under `key`, expired or not.
    pub fn get(&self, key: &[u8; 32]) -> Option<V> {
        self.read(key, V::clone)
    }

    /// `f` of the value stored under `key`, expired or not, without cloning it: a hot entry
    /// read by every core is then only read (cloning an `Arc` writes its count).
    pub fn read<R>(&self, key: &[u8; 32], f: impl FnOnce(&V) -> R) -> Option<R> {
        self.map.pin().get(key).map(f)
    }

    pub fn remove(&self, key: &[u8; 32]) {
        self.map.pin().remove(key);
    }

    /// Store `value` unless the map is full of entries still valid at `now`.
    pub fn insert(&self, key: [u8; 32], value: V, now: u64) {
        let map = self.map.pin();
        if map.len() >= self.capacity {
            map.retain(|_, v| now < v.valid_until());
            if map.len() >= self.capacity {
                return;
            }
        }
        map.insert(key, value);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Until(u64);

    impl Expiry for Until {
        fn valid_until(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn full_map_purges_expired_then_refuses() {
        let m = ExpiringMap::new(2);
        m.insert([1; 32], Until(20), 10);
        m.insert([2; 32], Until(100), 10);
        m.insert([3; 32], Until(100), 15);
        assert!(
            m.get(&[3; 32]).is_none(),
            "full of valid entries: not admitted"
        );
        assert!(m.get(&[1; 32]).is_some(), "a hot entry is not pushed out");
        m.insert([3; 32], Until(100), 20);
        assert!(
            m.get(&[3; 32]).is_some(),
            "the entry expired at 20 made room"
        );
        assert!(m.get(&[1; 32]).is_none(), "the expired entry was purged");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn get_returns_expired_values_and_remove_drops_them() {
        let m = ExpiringMap::new(4);
        m.insert([1; 32], Until(20), 10);
        assert_eq!(m.get(&[1; 32]).map(|v| v.0), Some(20));
        m.remove(&[1; 32]);
        assert!(m.get(&[1; 32]).is_none());
        assert!(m.is_empty());
    }
}
