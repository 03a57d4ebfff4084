//! `quick_cache`'s own policy (`quick_cache::sync::Cache` 0.6.24, the bench's peer), modelled from
//! its source (`src/shard.rs`, `src/sync.rs`, `src/options.rs`) for issue 23's thirteenth study
//! (`docs/performance.md`).
//!
//! What `quick_cache` does, as the bench drives it (`get`, then `insert` on a miss; every entry of
//! weight one):
//! - Shards: `available_parallelism() × 4`, rounded up to a power of two, halved while a shard
//!   would hold fewer than 32 items; each holds `ceil(capacity / shards)`. A key's shard is its
//!   hash rotated by 32 bits, masked. (The bench builds it with the largest capacity whose
//!   rounded-up total still fits the row's size; `capacity` below does the same.)
//! - Per shard, three rings, each a circular list with a head: hot (target `⌊0.97 × capacity⌋`),
//!   cold, and ghost (hashes of keys evicted from cold, at most `⌊0.5 × capacity⌋`). A new entry
//!   is linked just before the head, so the head is the oldest, or CLOCK's hand. Walking the
//!   hand over an entry is the same as moving it from the front of a queue to its back, so each
//!   ring is a `VecDeque` here.
//! - A hit raises the entry's `referenced` by one, up to 2. Nothing else moves.
//! - A new key joins hot while hot is under its target (the cache filling), cold otherwise,
//!   unreferenced; first, while the shard is full, the cold ring advances. A key whose hash is
//!   in the ghost ring leaves it and joins hot, unreferenced, whatever hot holds; then, while
//!   the shard is over its capacity, the cold ring advances.
//! - The cold ring's advance looks at its head: referenced, it loses one reference and moves to
//!   hot's tail, and while hot is over its target hot's hand advances; unreferenced, it leaves
//!   for the ghost ring (its oldest dropped past the ghost's bound). An empty cold ring advances
//!   hot instead.
//! - Hot's hand passes referenced entries, taking one reference off (from at most 2), and evicts
//!   the first unreferenced one outright (no ghost).
//!
//! The hash is ahash's `RandomState`, seeded per cache: here foldhash seeded by `LAB_SEED`.
//!
//! Lab names: `quick` (the model of the peer: within 0.13 of `quick_cache` on 60 of the 62 rows;
//! `loop/1000` 82.87–82.89 over four seeds against 81.04–82.68 over four runs of `quick_cache`,
//! `oltp/2000` 43.58 against 43.72), `quick_shards` (its policy over the store's shards: a hit
//! raises only the entry's count, which the store can do without a shared write) and
//! `quick_1shard` (unsharded).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use super::{Policy, lab_seed, store_shards};

/// `quick_cache`'s `MAX_F`: a hit raises `referenced` up to this.
const MAX_F: u8 = 2;

/// One shard of `quick_cache` (see the module doc).
pub(super) struct QuickShard {
    capacity: usize,
    target_hot: usize,
    ghost_capacity: usize,
    /// Resident keys: whether hot, and their `referenced`.
    resident: HashMap<u64, (bool, u8)>,
    hot: VecDeque<u64>,
    cold: VecDeque<u64>,
    /// Ghost hashes by the sequence number of their entry in `ghost_ring` (older entries of
    /// the ring are stale once their hash left or came back later).
    ghosts: HashMap<u64, u64>,
    ghost_ring: VecDeque<(u64, u64)>,
    ghost_seq: u64,
}

impl QuickShard {
    /// A shard of `capacity` items (weight one each), with `quick_cache`'s default allocations.
    pub(super) fn new(capacity: usize) -> Self {
        let target_hot = ((capacity as f64 * 0.97) as usize).clamp(capacity.min(1), capacity);
        Self {
            capacity,
            target_hot,
            ghost_capacity: (capacity as f64 * 0.5) as usize,
            resident: HashMap::new(),
            hot: VecDeque::new(),
            cold: VecDeque::new(),
            ghosts: HashMap::new(),
            ghost_ring: VecDeque::new(),
            ghost_seq: 0,
        }
    }

    /// A shard of `capacity` holding `hot` and then `cold` (keys with their references, each
    /// ring oldest first), past the capacity dropped from the oldest hot ones.
    pub(super) fn with(capacity: usize, hot: &[(u64, u8)], cold: &[(u64, u8)]) -> Self {
        let mut q = Self::new(capacity);
        let over = (hot.len() + cold.len()).saturating_sub(capacity);
        for &(k, r) in hot.iter().skip(over) {
            q.resident.insert(k, (true, r.min(MAX_F)));
            q.hot.push_back(k);
        }
        for &(k, r) in cold.iter().skip(over.saturating_sub(hot.len())) {
            q.resident.insert(k, (false, r.min(MAX_F)));
            q.cold.push_back(k);
        }
        q
    }

    /// The hot ring's keys and the cold ring's, each from its hand.
    pub(super) fn rings(self) -> (Vec<u64>, Vec<u64>) {
        (self.hot.into(), self.cold.into())
    }

    pub(super) fn holds(&self, key: u64) -> bool {
        self.resident.contains_key(&key)
    }

    /// A hit, as `get` counts it.
    pub(super) fn hit(&mut self, key: u64) {
        if let Some((_, referenced)) = self.resident.get_mut(&key)
            && *referenced < MAX_F
        {
            *referenced += 1;
        }
    }

    /// A miss, then the `insert` that follows it.
    pub(super) fn miss(&mut self, key: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.ghosts.remove(&quick_hash(key)).is_some() {
            self.resident.insert(key, (true, 0));
            self.hot.push_back(key);
            while self.resident.len() > self.capacity && self.advance_cold() {}
            return;
        }
        let enter_hot = self.hot.len() < self.target_hot;
        while self.resident.len() >= self.capacity && self.advance_cold() {}
        self.resident.insert(key, (enter_hot, 0));
        if enter_hot {
            self.hot.push_back(key);
        } else {
            self.cold.push_back(key);
        }
    }

    fn advance_cold(&mut self) -> bool {
        let Some(key) = self.cold.pop_front() else {
            return self.advance_hot();
        };
        let entry = self.resident.get_mut(&key).expect("a cold key is resident");
        if entry.1 != 0 {
            *entry = (true, entry.1 - 1);
            self.hot.push_back(key);
            while self.hot.len() > self.target_hot && self.advance_hot() {}
            return true;
        }
        self.resident.remove(&key);
        let hash = quick_hash(key);
        self.ghost_seq += 1;
        self.ghosts.insert(hash, self.ghost_seq);
        self.ghost_ring.push_back((hash, self.ghost_seq));
        if self.ghosts.len() > self.ghost_capacity {
            self.advance_ghost();
        }
        true
    }

    fn advance_hot(&mut self) -> bool {
        while let Some(key) = self.hot.pop_front() {
            let entry = self.resident.get_mut(&key).expect("a hot key is resident");
            if entry.1 != 0 {
                entry.1 = entry.1.min(MAX_F) - 1;
                self.hot.push_back(key);
                continue;
            }
            self.resident.remove(&key);
            return true;
        }
        false
    }

    /// Drops the oldest live ghost.
    fn advance_ghost(&mut self) {
        while let Some((hash, seq)) = self.ghost_ring.pop_front() {
            if self.ghosts.get(&hash) == Some(&seq) {
                self.ghosts.remove(&hash);
                return;
            }
        }
    }
}

/// The hash `quick_cache`'s map and shard choice see.
pub(super) fn quick_hash(key: u64) -> u64 {
    foldhash::fast::FixedState::with_seed(lab_seed() ^ 0x71_7569_636b).hash_one(key)
}

/// `quick_cache`'s shard count and per-shard capacity for `capacity` items (`sync::Cache::new`).
fn layout(capacity: usize, parallelism: usize) -> (usize, usize) {
    let mut shards = (parallelism * 4).next_power_of_two();
    let mut per = capacity.div_ceil(shards);
    while per < 32 && shards > 1 {
        shards /= 2;
        per = capacity.div_ceil(shards);
    }
    (shards, per)
}

/// The layout the bench gets for a row of `size`: the largest capacity whose shards hold at
/// most `size` in all.
pub(super) fn bench_layout(size: usize) -> (usize, usize) {
    let parallelism = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (1..=size)
        .rev()
        .map(|c| layout(c, parallelism))
        .find(|&(shards, per)| shards * per <= size)
        .unwrap_or((1, 0))
}

/// `quick_cache` as the bench drives it, over `shards` shards of `per` items.
pub(super) fn run_quick(requests: &[u64], shards: usize, per: usize) -> u64 {
    let mut parts: Vec<QuickShard> = (0..shards).map(|_| QuickShard::new(per)).collect();
    let mask = shards as u64 - 1;
    let mut hits = 0;
    for &k in requests {
        let hash = quick_hash(k);
        let part = &mut parts[(hash.rotate_right(32) & mask) as usize];
        if part.holds(k) {
            part.hit(k);
            hits += 1;
        } else {
            part.miss(k);
        }
    }
    hits
}

impl Policy for QuickShard {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        if self.holds(key) {
            self.hit(key);
            return true;
        }
        self.miss(key);
        false
    }
}

/// `quick` (the model of the peer), `quick_shards` (its policy split over the store's shards,
/// as the store would run it: a hit only raises the entry's count), `quick_1shard` (unsharded).
pub(super) fn hits(name: &str, requests: &[u64], size: usize) -> Option<u64> {
    Some(match name {
        "quick" => {
            let (shards, per) = bench_layout(size);
            run_quick(requests, shards, per)
        }
        "quick_shards" => super::run(requests, size, store_shards(size), QuickShard::new),
        "quick_1shard" => super::run(requests, size, 1, QuickShard::new),
        _ => return None,
    })
}
