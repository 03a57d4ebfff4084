//! Caffeine's policy, the anchor issue 23 names: adaptive W-TinyLFU as released in Caffeine 3.2.3
//! and 3.2.4 (`BoundedLocalCache`, `FrequencySketch`; the same policy in both), modelled one
//! request at a time, unsharded. `caffeine_fixed` is the same without the climber.
//!
//! - An LRU window (1 % to start) takes every new key; what leaves it is a candidate for main,
//!   an SLRU of probation and protected (80 % of main). A candidate evicts probation's LRU entry
//!   only if the sketch counts it more often (ties keep the victim; a candidate counted 6 times or
//!   more gets in one time in 128, against hash flooding).
//! - The sketch counts every request, hits included: 4-bit counters, four per key in one 64-byte
//!   block, halved every 10 × maximum increments that raised a counter. It starts once the cache
//!   is half full.
//! - A hill climber moves the window: every 10 × maximum requests it compares the hit ratio with
//!   the previous sample's, keeps the direction if it did not fall, and decays the step (6.25 %
//!   of the maximum, × 0.98 each sample; back to 6.25 % when the ratio moved by 5 points).
//!
//! Every hit reorders a queue and counts in the sketch: a shared write per hit, which memo's
//! store does not make. Caffeine batches them through a lossy read buffer; here none is lost.

use std::collections::{HashMap, VecDeque};

use lru::LruCache;

use super::Policy;

const STEP_PERCENT: f64 = 0.0625;
const STEP_DECAY: f64 = 0.98;
const RESTART_THRESHOLD: f64 = 0.05;
const ADMIT_HASHDOS_THRESHOLD: u8 = 6;
/// Caffeine moves at most this many entries between regions per maintenance cycle.
const QUEUE_TRANSFER_THRESHOLD: usize = 1_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    Window,
    Probation,
    Protected,
}

pub(super) struct Caffeine {
    maximum: usize,
    window_maximum: usize,
    protected_maximum: usize,
    window: LruCache<u64, ()>,
    probation: LruCache<u64, ()>,
    protected: LruCache<u64, ()>,
    region: HashMap<u64, Region>,
    sketch: Option<FrequencySketch>,
    climber: Climber,
    random: u64,
    adapts: bool,
}

/// The hill climber's state (`BoundedLocalCache.determineAdjustment`).
struct Climber {
    hits: usize,
    misses: usize,
    previous_hit_rate: f64,
    step: f64,
    adjustment: i64,
}

impl Caffeine {
    pub(super) fn new(maximum: usize) -> Self {
        Self::with_climber(maximum, true)
    }

    /// Without the climber (`adapts: false`) the window stays at 1 %.
    pub(super) fn with_climber(maximum: usize, adapts: bool) -> Self {
        let window_maximum = maximum - (0.99 * maximum as f64) as usize;
        let protected_maximum = (0.8 * (maximum - window_maximum) as f64) as usize;
        Self {
            maximum,
            window_maximum,
            protected_maximum,
            window: LruCache::unbounded(),
            probation: LruCache::unbounded(),
            protected: LruCache::unbounded(),
            region: HashMap::new(),
            sketch: None,
            climber: Climber {
                hits: 0,
                misses: 0,
                previous_hit_rate: 0.0,
                step: -STEP_PERCENT * maximum as f64,
                adjustment: 0,
            },
            random: 0x2545_F491_4F6C_DD1D,
            adapts,
        }
    }

    fn frequency(&self, key: u64) -> u8 {
        self.sketch.as_ref().map_or(0, |s| s.frequency(key))
    }

    fn queue(&mut self, region: Region) -> &mut LruCache<u64, ()> {
        match region {
            Region::Window => &mut self.window,
            Region::Probation => &mut self.probation,
            Region::Protected => &mut self.protected,
        }
    }

    /// Moves `key` to the most recent end of `to`.
    fn transfer(&mut self, key: u64, from: Region, to: Region) {
        self.queue(from).pop(&key);
        self.queue(to).put(key, ());
        self.region.insert(key, to);
    }

    fn evict(&mut self, key: u64) {
        let region = self.region.remove(&key).expect("a held key");
        self.queue(region).pop(&key);
    }

    fn on_hit(&mut self, key: u64, region: Region) {
        if let Some(sketch) = &mut self.sketch {
            sketch.increment(key);
        }
        match region {
            Region::Probation if self.protected_maximum >= 1 => {
                self.transfer(key, Region::Probation, Region::Protected);
            }
            region => {
                self.queue(region).promote(&key);
            }
        }
        self.climber.hits += 1;
    }

    fn on_add(&mut self, key: u64) {
        self.window.put(key, ());
        self.region.insert(key, Region::Window);
        if self.region.len() >= self.maximum / 2 && self.sketch.is_none() {
            self.sketch = Some(FrequencySketch::new(self.maximum));
        }
        if let Some(sketch) = &mut self.sketch {
            sketch.increment(key);
        }
        self.climber.misses += 1;
        self.evict_entries();
    }

    fn evict_entries(&mut self) {
        let candidates = self.evict_from_window();
        self.evict_from_main(candidates);
    }

    /// The window's excess goes to probation's recent end; returns it, oldest first.
    fn evict_from_window(&mut self) -> VecDeque<u64> {
        let mut moved = VecDeque::new();
        while self.window.len() > self.window_maximum && moved.len() < QUEUE_TRANSFER_THRESHOLD {
            let Some((&key, ())) = self.window.peek_lru() else {
                break;
            };
            self.transfer(key, Region::Window, Region::Probation);
            moved.push_back(key);
        }
        moved
    }

    /// `BoundedLocalCache.evictFromMain` for entries of weight 1: the candidates, then the
    /// window's oldest, duel the victims, probation's oldest, then protected's, then the window's.
    fn evict_from_main(&mut self, mut candidates: VecDeque<u64>) {
        let mut candidate_from_window = false;
        let mut window_skipped = 0;
        let mut victim_region = Region::Probation;
        while self.region.len() > self.maximum {
            let candidate = if candidate_from_window {
                self.window
                    .iter()
                    .rev()
                    .nth(window_skipped)
                    .map(|(&k, ())| k)
            } else if let Some(&key) = candidates.front() {
                Some(key)
            } else {
                candidate_from_window = true;
                self.window.peek_lru().map(|(&k, ())| k)
            };
            let victim = self.queue(victim_region).peek_lru().map(|(&k, ())| k);
            let (candidate, victim) = match (candidate, victim) {
                (None, None) => {
                    victim_region = match victim_region {
                        Region::Probation => Region::Protected,
                        Region::Protected => Region::Window,
                        Region::Window => break,
                    };
                    continue;
                }
                (Some(candidate), None) => {
                    self.evict_candidate(candidate, candidate_from_window, &mut candidates);
                    continue;
                }
                (None, Some(victim)) => {
                    self.evict(victim);
                    continue;
                }
                (Some(candidate), Some(victim)) => (candidate, victim),
            };
            if candidate == victim {
                self.evict(victim);
                if !candidate_from_window {
                    candidates.clear();
                }
                continue;
            }
            if self.admit(candidate, victim) {
                self.evict(victim);
                if candidate_from_window {
                    window_skipped += 1;
                } else {
                    candidates.pop_front();
                }
            } else {
                self.evict_candidate(candidate, candidate_from_window, &mut candidates);
            }
        }
    }

    fn evict_candidate(
        &mut self,
        candidate: u64,
        from_window: bool,
        candidates: &mut VecDeque<u64>,
    ) {
        self.evict(candidate);
        if !from_window {
            candidates.pop_front();
        }
    }

    fn admit(&mut self, candidate: u64, victim: u64) -> bool {
        let candidate_frequency = self.frequency(candidate);
        if candidate_frequency > self.frequency(victim) {
            return true;
        }
        if candidate_frequency >= ADMIT_HASHDOS_THRESHOLD {
            self.random ^= self.random << 13;
            self.random ^= self.random >> 7;
            self.random ^= self.random << 17;
            return self.random.trailing_zeros() >= 7;
        }
        false
    }

    /// `BoundedLocalCache.climb`, run after every request as maintenance would be.
    fn climb(&mut self) {
        if self.adapts {
            self.determine_adjustment();
        }
        self.demote_from_protected();
        match self.climber.adjustment {
            0 => {}
            a if a > 0 => self.increase_window(),
            _ => self.decrease_window(),
        }
    }

    fn determine_adjustment(&mut self) {
        let c = &mut self.climber;
        let Some(sketch) = &self.sketch else {
            c.previous_hit_rate = 0.0;
            c.hits = 0;
            c.misses = 0;
            return;
        };
        let requests = c.hits + c.misses;
        if requests < sketch.sample_size {
            return;
        }
        let hit_rate = c.hits as f64 / requests as f64;
        let change = hit_rate - c.previous_hit_rate;
        let amount = if change >= 0.0 { c.step } else { -c.step };
        c.step = if change.abs() >= RESTART_THRESHOLD {
            STEP_PERCENT * self.maximum as f64 * amount.signum()
        } else {
            STEP_DECAY * amount
        };
        c.previous_hit_rate = hit_rate;
        c.adjustment = amount as i64;
        c.hits = 0;
        c.misses = 0;
    }

    fn demote_from_protected(&mut self) {
        for _ in 0..QUEUE_TRANSFER_THRESHOLD {
            if self.protected.len() <= self.protected_maximum {
                break;
            }
            let Some((&key, ())) = self.protected.peek_lru() else {
                break;
            };
            self.transfer(key, Region::Protected, Region::Probation);
        }
    }

    fn increase_window(&mut self) {
        if self.protected_maximum == 0 {
            return;
        }
        let mut quota = (self.climber.adjustment as usize).min(self.protected_maximum);
        self.protected_maximum -= quota;
        self.window_maximum += quota;
        self.demote_from_protected();
        for _ in 0..QUEUE_TRANSFER_THRESHOLD {
            if quota == 0 {
                break;
            }
            let (key, from) = match self.probation.peek_lru() {
                Some((&k, ())) => (k, Region::Probation),
                None => match self.protected.peek_lru() {
                    Some((&k, ())) => (k, Region::Protected),
                    None => break,
                },
            };
            quota -= 1;
            self.transfer(key, from, Region::Window);
        }
        self.protected_maximum += quota;
        self.window_maximum -= quota;
        self.climber.adjustment = i64::try_from(quota).expect("a quota within the maximum");
    }

    fn decrease_window(&mut self) {
        if self.window_maximum <= 1 {
            return;
        }
        let mut quota = (self.climber.adjustment.unsigned_abs() as usize)
            .min(self.window_maximum.saturating_sub(1));
        self.protected_maximum += quota;
        self.window_maximum -= quota;
        for _ in 0..QUEUE_TRANSFER_THRESHOLD {
            if quota == 0 {
                break;
            }
            let Some((&key, ())) = self.window.peek_lru() else {
                break;
            };
            quota -= 1;
            self.transfer(key, Region::Window, Region::Probation);
        }
        self.protected_maximum -= quota;
        self.window_maximum += quota;
        self.climber.adjustment = -i64::try_from(quota).expect("a quota within the maximum");
    }
}

impl Policy for Caffeine {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        let hit = if let Some(&region) = self.region.get(&key) {
            self.on_hit(key, region);
            true
        } else {
            if self.maximum > 0 {
                self.on_add(key);
            }
            false
        };
        self.climb();
        hit
    }
}

/// Caffeine's `FrequencySketch`: a count-min sketch of 4-bit counters, the four of a key in one
/// block of eight 64-bit words, halved (with the count of odd counters subtracted) every
/// `10 × maximum` increments that raised a counter.
struct FrequencySketch {
    table: Vec<u64>,
    block_mask: usize,
    size: usize,
    sample_size: usize,
}

const RESET_MASK: u64 = 0x7777_7777_7777_7777;
const ONE_MASK: u64 = 0x1111_1111_1111_1111;

impl FrequencySketch {
    fn new(maximum: usize) -> Self {
        let len = maximum.next_power_of_two().max(8);
        Self {
            table: vec![0; len],
            block_mask: (len >> 3) - 1,
            size: 0,
            sample_size: 10 * maximum.max(1),
        }
    }

    /// The slot and counter of each of the key's four counters.
    fn counters(&self, key: u64) -> [(usize, u32); 4] {
        // Java's `Long.hashCode`, then `spread` and `rehash`.
        let hash_code = (key ^ (key >> 32)) as u32;
        let block_hash = spread(hash_code);
        let counter_hash = rehash(block_hash);
        let block = ((block_hash as usize) & self.block_mask) << 3;
        std::array::from_fn(|i| {
            let h = counter_hash >> (i << 3);
            let index = (h >> 1) & 15;
            let slot = block + (h & 1) as usize + (i << 1);
            (slot, index)
        })
    }

    fn frequency(&self, key: u64) -> u8 {
        self.counters(key)
            .iter()
            .map(|&(slot, index)| ((self.table[slot] >> (index << 2)) & 0xf) as u8)
            .min()
            .unwrap_or(0)
    }

    fn increment(&mut self, key: u64) {
        let mut added = false;
        for (slot, index) in self.counters(key) {
            let mask = 0xf_u64 << (index << 2);
            if self.table[slot] & mask != mask {
                self.table[slot] += 1 << (index << 2);
                added = true;
            }
        }
        if added {
            self.size += 1;
            if self.size == self.sample_size {
                self.reset();
            }
        }
    }

    fn reset(&mut self) {
        let mut odd = 0;
        for word in &mut self.table {
            odd += (*word & ONE_MASK).count_ones() as usize;
            *word = (*word >> 1) & RESET_MASK;
        }
        self.size = self.size.saturating_sub(odd >> 2) >> 1;
    }
}

fn spread(mut x: u32) -> u32 {
    x ^= x >> 17;
    x = x.wrapping_mul(0xed5a_d4bb);
    x ^= x >> 11;
    x = x.wrapping_mul(0xac4c_1b51);
    x ^= x >> 15;
    x
}

fn rehash(mut x: u32) -> u32 {
    x = x.wrapping_mul(0x3184_8bab);
    x ^= x >> 14;
    x
}
