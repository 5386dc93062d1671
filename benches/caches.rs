//! The verified-token cache under concurrent hits, at 1, 2, 4 and 8 threads whatever the
//! core count: the map in production (papaya, lock-free reads) beside the two it was
//! measured against, kept here only: the former `DashMap` (a shard read lock per read) and
//! an immutable map swapped with `arc-swap` (copy-on-write inserts). jwt_generate's
//! minted-token cache is the same map. `cargo bench --bench caches`.
//!
//! Each iteration runs T scoped threads of `LOOKUPS` hits each over `ENTRIES` cached tokens;
//! the time is the wall time of the whole batch, so ideal scaling keeps it flat as T grows
//! (until T exceeds the cores). `mixed` adds one insert (a re-verified token replacing its
//! entry) every `INSERT_EVERY` lookups.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use serde_json::Map;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokengate::cache::verified::{token_key, Entry, VerifiedCache};

const ENTRIES: usize = 10_000;
const CAPACITY: usize = 100_000;
const LOOKUPS: usize = 50_000;
const INSERT_EVERY: usize = 64;
const THREADS: [usize; 4] = [1, 2, 4, 8];
const NOW: u64 = 1_000;
const GENERATION: u64 = 1;

fn entry() -> Entry {
    Entry {
        claims: Arc::new(Map::new()),
        identity: None,
        valid_until: NOW + 3_600,
        key_generation: GENERATION,
    }
}

trait Cache: Sync {
    fn hit(&self, key: &[u8; 32]) -> bool;
    fn put(&self, key: [u8; 32]);
}

impl Cache for VerifiedCache {
    fn hit(&self, key: &[u8; 32]) -> bool {
        self.get(key, NOW, GENERATION).is_some()
    }
    fn put(&self, key: [u8; 32]) {
        self.insert(key, entry(), NOW);
    }
}

/// The verified-token cache as it was on `DashMap`.
struct Dash {
    map: DashMap<[u8; 32], Arc<Entry>>,
    capacity: usize,
}

impl Cache for Dash {
    fn hit(&self, key: &[u8; 32]) -> bool {
        let Some(e) = self.map.get(key) else {
            return false;
        };
        if NOW < e.valid_until && e.key_generation == GENERATION {
            return black_box(e.clone()).valid_until > 0;
        }
        drop(e);
        self.map.remove(key);
        false
    }
    fn put(&self, key: [u8; 32]) {
        if self.map.len() >= self.capacity {
            self.map.retain(|_, e| NOW < e.valid_until);
            if self.map.len() >= self.capacity {
                return;
            }
        }
        self.map.insert(key, Arc::new(entry()));
    }
}

/// An immutable map behind `arc-swap`: each insert copies the map and swaps it in.
struct Snapshot {
    map: ArcSwap<HashMap<[u8; 32], Arc<Entry>>>,
    capacity: usize,
}

impl Cache for Snapshot {
    fn hit(&self, key: &[u8; 32]) -> bool {
        let map = self.map.load();
        let Some(e) = map.get(key) else {
            return false;
        };
        if NOW < e.valid_until && e.key_generation == GENERATION {
            return black_box(e.clone()).valid_until > 0;
        }
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(key);
            m
        });
        false
    }
    fn put(&self, key: [u8; 32]) {
        let e = Arc::new(entry());
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            if m.len() >= self.capacity {
                m.retain(|_, e| NOW < e.valid_until);
            }
            if m.len() < self.capacity {
                m.insert(key, e.clone());
            }
            m
        });
    }
}

fn keys() -> Vec<[u8; 32]> {
    (0..ENTRIES)
        .map(|i| token_key(&format!("token-{i}")))
        .collect()
}

fn filled<C: Cache>(cache: C, keys: &[[u8; 32]]) -> C {
    for k in keys {
        cache.put(*k);
    }
    cache
}

/// Wall time of `iters` batches of `threads` threads doing `LOOKUPS` lookups each.
fn run<C: Cache>(
    cache: &C,
    keys: &[[u8; 32]],
    threads: usize,
    mixed: bool,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    let mut hits = 0usize;
                    // A stride coprime with ENTRIES walks every key, each thread from its own
                    // offset, so threads mostly read different entries.
                    let mut i = t * (ENTRIES / 8);
                    for n in 0..LOOKUPS {
                        i = (i + 7_919) % ENTRIES;
                        if mixed && n % INSERT_EVERY == 0 {
                            cache.put(keys[i]);
                        } else if cache.hit(&keys[i]) {
                            hits += 1;
                        }
                    }
                    black_box(hits);
                });
            }
        });
        total += start.elapsed();
    }
    total
}

fn bench(c: &mut Criterion, name: &str, mixed: bool) {
    let keys = keys();
    let dash = filled(
        Dash {
            map: DashMap::with_capacity(CAPACITY.min(1 << 16)),
            capacity: CAPACITY,
        },
        &keys,
    );
    let papaya = filled(VerifiedCache::new(CAPACITY), &keys);
    let snapshot = filled(
        Snapshot {
            map: ArcSwap::from_pointee(HashMap::new()),
            capacity: CAPACITY,
        },
        &keys,
    );
    let mut g = c.benchmark_group(name);
    for threads in THREADS {
        g.throughput(Throughput::Elements((threads * LOOKUPS) as u64));
        g.bench_with_input(BenchmarkId::new("dashmap", threads), &threads, |b, &t| {
            b.iter_custom(|iters| run(&dash, &keys, t, mixed, iters));
        });
        g.bench_with_input(BenchmarkId::new("papaya", threads), &threads, |b, &t| {
            b.iter_custom(|iters| run(&papaya, &keys, t, mixed, iters));
        });
        g.bench_with_input(BenchmarkId::new("arcswap", threads), &threads, |b, &t| {
            b.iter_custom(|iters| run(&snapshot, &keys, t, mixed, iters));
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    bench(&mut c, "verified_hit", false);
    bench(&mut c, "verified_mixed", true);
    c.final_summary();
}
