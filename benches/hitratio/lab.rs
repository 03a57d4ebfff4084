//! The policy lab: single-threaded reference versions of candidate policies, split over shards the
//! way `MemoryStore` splits its bound, so that a choice is made on numbers before the store changes.
//!
//! Each policy only sees what the real store can see without a shared write on a hit: a hit may
//! raise a small per-entry counter (up to a cap); everything else (sketches, queues, ghosts) is
//! updated on misses, under the shard's write lock.
//!
//! Except the references that tell what a shared write per hit would buy: `tinylfu_lru[_hc]`
//! (moka's policy), `wtlfu1_hc` and the door's `-hc` switch count every hit in the sketch as it
//! happens (moka and Caffeine do), and `tinylfu_lru` moves a hit entry to the LRU's young end.
//! Measured (issue 23): on `check/loopmix50/11652` moka's policy needs the hits counted (26.6 %
//! without, 41.7 % with; moka 42.5 %), because there every new key meets the sketch and a cached
//! loop key, never counted while cached, loses to an uncached one; the default policy's model
//! (`door-s3-g50-c3-drain-exact-tlfu-m1000-ad10_200_50_1_5_0_n1`) gains nothing from them
//! (33.40 % → 33.45 %; −0.1 to −0.5 on `shift20k` and P3), since there a new key joins the small
//! queue without meeting the sketch.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

/// Lab policies by name (`lab_<name>` rows).
pub(crate) const NAMES: [&str; 6] = [
    "s3fifo",
    "s3fifo_1shard",
    "wtlfu1",
    "wtlfu1_1shard",
    "wtlfu_adapt",
    "wtlfu_adapt_1shard",
];

pub(crate) fn hits(name: &str, requests: &[u64], size: usize) -> u64 {
    let (name, shards) = match name.strip_suffix("_1shard") {
        Some(base) => (base, 1),
        None => (name, store_shards(size)),
    };
    match name {
        "s3fifo" => run(requests, size, shards, S3Fifo::new),
        "wtlfu1" => run(requests, size, shards, |c| Wtlfu::new(c, 0.01, false)),
        "wtlfu1_hc" => run(requests, size, shards, |c| {
            Wtlfu::new(c, 0.01, false).counting_hits()
        }),
        "tinylfu_lru" => run(requests, size, shards, |c| TinyLfuLru::new(c, false)),
        "tinylfu_lru_hc" => run(requests, size, shards, |c| TinyLfuLru::new(c, true)),
        "wtlfu_adapt" => run(requests, size, shards, |c| Wtlfu::new(c, 0.01, true)),
        other if other.starts_with("door") => {
            let params = DoorParams::parse(other);
            let shards = if params.one_shard {
                1
            } else if let Some(least) = params.least {
                let mut count = 64;
                while count > 1 && size / count < least {
                    count /= 2;
                }
                count
            } else {
                shards
            };
            run(requests, size, shards, |c| Door::new(c, &params))
        }
        other => panic!("unknown lab policy {other}"),
    }
}

/// The store's shard count for a bound of `size` on this two-core machine (`shard_count`: at
/// most 64, each of at least 1,000 entries).
fn store_shards(size: usize) -> usize {
    let mut count = 64;
    while count > 1 && size / count < 1000 {
        count /= 2;
    }
    count
}

trait Policy {
    /// Looks `key` up, storing it on a miss; `true` on a hit.
    fn access(&mut self, key: u64, hash: u64) -> bool;
}

fn run<P: Policy>(requests: &[u64], size: usize, shards: usize, new: impl Fn(usize) -> P) -> u64 {
    let hasher = foldhash::fast::FixedState::with_seed(7);
    let mut parts: Vec<P> = (0..shards)
        .map(|i| new(size / shards + usize::from(i < size % shards)))
        .collect();
    let mask = shards - 1;
    let mut hits = 0;
    for &k in requests {
        let hash = hasher.hash_one(k);
        let shard = (hash >> 32) as usize & mask;
        hits += u64::from(parts[shard].access(k, hash));
    }
    hits
}

/// A count-min sketch of 4-bit counters (4 rows), halved every `10 × capacity` increments.
struct Sketch {
    rows: [Vec<u8>; 4],
    mask: usize,
    added: usize,
    period: usize,
}

impl Sketch {
    fn new(capacity: usize) -> Self {
        Self::sized(capacity, 1, 10)
    }

    /// `width` counters per row for each entry of `capacity`, halved every `period × capacity`
    /// increments.
    fn sized(capacity: usize, width: usize, period: usize) -> Self {
        let width = (capacity * width).max(16).next_power_of_two();
        Self {
            rows: std::array::from_fn(|_| vec![0; width]),
            mask: width - 1,
            added: 0,
            period: period * capacity.max(1),
        }
    }

    fn index(&self, hash: u64, row: usize) -> usize {
        const SEEDS: [u64; 4] = [
            0x9E37_79B9_7F4A_7C15,
            0xC2B2_AE3D_27D4_EB4F,
            0x1656_67B1_9E37_79F9,
            0x27D4_EB2F_1656_67C5,
        ];
        (hash.wrapping_mul(SEEDS[row]) >> 40) as usize & self.mask
    }

    fn estimate(&self, hash: u64) -> u8 {
        (0..4)
            .map(|r| self.rows[r][self.index(hash, r)])
            .min()
            .unwrap_or(0)
    }

    fn add(&mut self, hash: u64, times: u8) {
        for _ in 0..times {
            self.increment(hash);
        }
    }

    fn increment(&mut self, hash: u64) {
        let min = self.estimate(hash);
        if min < 15 {
            for r in 0..4 {
                let i = self.index(hash, r);
                if self.rows[r][i] == min {
                    self.rows[r][i] += 1;
                }
            }
        }
        self.added += 1;
        if self.added >= self.period {
            self.added = 0;
            for row in &mut self.rows {
                for c in row.iter_mut() {
                    *c /= 2;
                }
            }
        }
    }
}

/// S3-FIFO (Yang et al., SOSP '23): a small FIFO (10 %) for new keys, a main FIFO with
/// reinsertion, a ghost FIFO of keys recently evicted from the small one.
struct S3Fifo {
    capacity: usize,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    ghost: VecDeque<u64>,
    ghosts: HashMap<u64, u32>,
    /// key → (frequency 0..=3, in main)
    entries: HashMap<u64, (u8, bool)>,
}

impl S3Fifo {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            ghosts: HashMap::new(),
            entries: HashMap::new(),
        }
    }

    fn evict(&mut self) {
        let small_target = (self.capacity / 10).max(1);
        loop {
            if self.small.len() >= small_target || self.main.is_empty() {
                let Some(k) = self.small.pop_front() else {
                    return;
                };
                let e = self.entries.get_mut(&k).expect("held");
                if e.0 > 0 {
                    *e = (0, true);
                    self.main.push_back(k);
                    continue;
                }
                self.entries.remove(&k);
                self.ghost.push_back(k);
                *self.ghosts.entry(k).or_default() += 1;
                if self.ghost.len() > self.capacity {
                    let old = self.ghost.pop_front().expect("ghost");
                    if let Some(n) = self.ghosts.get_mut(&old) {
                        *n -= 1;
                        if *n == 0 {
                            self.ghosts.remove(&old);
                        }
                    }
                }
                return;
            }
            let k = self.main.pop_front().expect("main");
            let e = self.entries.get_mut(&k).expect("held");
            if e.0 > 0 {
                e.0 -= 1;
                self.main.push_back(k);
                continue;
            }
            self.entries.remove(&k);
            return;
        }
    }
}

impl Policy for S3Fifo {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        if let Some(e) = self.entries.get_mut(&key) {
            e.0 = (e.0 + 1).min(3);
            return true;
        }
        if self.capacity == 0 {
            return false;
        }
        while self.entries.len() >= self.capacity {
            self.evict();
        }
        if self.ghosts.contains_key(&key) {
            self.entries.insert(key, (0, true));
            self.main.push_back(key);
        } else {
            self.entries.insert(key, (0, false));
            self.small.push_back(key);
        }
        false
    }
}

/// W-TinyLFU as the store can run it: a FIFO window for new keys; a main CLOCK whose entries count
/// their hits (up to `CAP`, credited to the sketch as the hand passes); a key leaving the window
/// enters main only when the sketch says it is asked for more often than main's victim.
/// With `adapt`, the window's share climbs towards whichever size missed less over the last period
/// (hill climbing on the miss count, which the store's writers see).
struct Wtlfu {
    capacity: usize,
    window_target: usize,
    window: VecDeque<u64>,
    main: VecDeque<u64>,
    /// key → (hits not yet credited, in main)
    entries: HashMap<u64, (u8, bool)>,
    sketch: Sketch,
    adapt: Option<Climber>,
    /// The sketch counts every hit when it happens (moka, Caffeine), not banked uses.
    count_hits: bool,
}

/// Hill climbing over the window's size: every `period` requests, keep moving the way that made
/// hits rise, turn back when they fell; steps shrink as it settles.
struct Climber {
    period: usize,
    seen: usize,
    hits: usize,
    last_rate: f64,
    step: f64,
    window: f64,
}

const CAP: u8 = 3;

impl Wtlfu {
    fn new(capacity: usize, window: f64, adapt: bool) -> Self {
        Self {
            capacity,
            window_target: window_size(capacity, window),
            window: VecDeque::new(),
            main: VecDeque::new(),
            entries: HashMap::new(),
            sketch: Sketch::new(capacity),
            adapt: adapt.then(|| Climber {
                period: 10 * capacity.max(10),
                seen: 0,
                hits: 0,
                last_rate: 0.0,
                step: 0.0625,
                window,
            }),
            count_hits: false,
        }
    }

    /// Main's next victim by CLOCK: entries with uncredited hits are credited and passed over.
    fn main_victim(&mut self) -> Option<u64> {
        loop {
            let &k = self.main.front()?;
            let e = self.entries.get_mut(&k).expect("held");
            if e.0 == 0 {
                return Some(k);
            }
            e.0 -= 1;
            if !self.count_hits {
                self.sketch.increment(key_hash(k));
            }
            self.main.rotate_left(1);
        }
    }

    fn evict(&mut self) {
        if self.window.len() > self.window_target || self.main.is_empty() {
            let cand = self.window.pop_front().expect("window");
            let (freq, _) = self.entries[&cand];
            let cand_est = self.sketch.estimate(key_hash(cand)).saturating_add(freq);
            if self.main.len() < self.capacity.saturating_sub(self.window_target) {
                self.entries.insert(cand, (freq, true));
                self.main.push_back(cand);
                return;
            }
            let Some(victim) = self.main_victim() else {
                self.entries.remove(&cand);
                return;
            };
            let victim_est = self.sketch.estimate(key_hash(victim));
            if cand_est > victim_est {
                self.main.pop_front();
                self.entries.remove(&victim);
                self.entries.insert(cand, (freq, true));
                self.main.push_back(cand);
            } else {
                self.entries.remove(&cand);
                if !self.count_hits {
                    self.sketch.add(key_hash(cand), freq);
                }
            }
        } else {
            let victim = self.main_victim().expect("main");
            self.main.pop_front();
            self.entries.remove(&victim);
        }
    }

    /// The variant whose sketch counts every hit as it happens.
    fn counting_hits(mut self) -> Self {
        self.count_hits = true;
        self
    }

    fn climb(&mut self, hit: bool) {
        let Some(c) = &mut self.adapt else { return };
        c.seen += 1;
        c.hits += usize::from(hit);
        if c.seen < c.period {
            return;
        }
        let rate = c.hits as f64 / c.seen as f64;
        c.seen = 0;
        c.hits = 0;
        if rate < c.last_rate {
            c.step = -c.step * 0.98;
        } else if (rate - c.last_rate).abs() < 0.0005 {
            c.step *= 0.98;
        }
        c.last_rate = rate;
        c.window = (c.window + c.step).clamp(0.0, 0.8);
        self.window_target = window_size(self.capacity, c.window);
    }
}

fn window_size(capacity: usize, fraction: f64) -> usize {
    ((capacity as f64 * fraction) as usize).max(1)
}

fn key_hash(key: u64) -> u64 {
    foldhash::fast::FixedState::with_seed(11).hash_one(key)
}

impl Policy for Wtlfu {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        if let Some(e) = self.entries.get_mut(&key) {
            e.0 = (e.0 + 1).min(CAP);
            if self.count_hits {
                self.sketch.increment(key_hash(key));
            }
            self.climb(true);
            return true;
        }
        self.climb(false);
        if self.capacity == 0 {
            return false;
        }
        self.sketch.increment(key_hash(key));
        self.entries.insert(key, (0, false));
        self.window.push_back(key);
        while self.entries.len() > self.capacity {
            self.evict();
        }
        false
    }
}

/// `door-s<small %>-g<ghost % of capacity>-c<cap>-<bypass|small|plain>-<exact|sketch>[-one]`, and
/// the switches below (`tlfu`, `hc`, `a`, `t<n>`, `x<n>`, `ad…`).
#[derive(Clone, Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches of a lab variant"
)]
struct DoorParams {
    small: f64,
    ghost: f64,
    cap: u8,
    fallback: Fallback,
    exact: bool,
    bloom: bool,
    one_shard: bool,
    /// Fewer shards, so that each holds at least this many entries.
    least: Option<usize>,
    /// With `tlfu`: a key the sketch has counted this many times (this miss included) returns
    /// like a key the ghost remembers.
    threshold: Option<u8>,
    /// No ghost: only the sketch says which keys return.
    no_ghost: bool,
    /// Break ties at the door by a frequency sketch of misses (and hits credited as the hand
    /// passes): an unused main entry is replaced only by a key asked for more often.
    tlfu: bool,
    /// The sketch's counters per row per entry, and its halving period in entries.
    width: usize,
    period: usize,
    /// Bloom ghost: bits per key in each of its two filters.
    bloom_bits: usize,
    /// An unused entry leaving the small queue goes to main instead when the sketch counts it
    /// more often than main's next victim (`TinyLFU` admission), this many times at least.
    exit: Option<u8>,
    /// The door stands even when the small queue holds its share.
    always: bool,
    /// `hc`: the sketch counts every hit when it happens (as moka and Caffeine do), not the uses a
    /// main entry banked as the hand passes it.
    count_hits: bool,
    /// `ad<lo>_<hi>_<main ghost>_<up>_<down>` (shares of capacity in %, steps in entries): an
    /// adaptive exact ghost (`Adapt`), starting from `g`.
    adapt: Option<(f64, f64, f64, f64, f64, f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fallback {
    /// A ghost-hit key that main turns away is not stored.
    Bypass,
    /// ... is stored in the small queue.
    Small,
    /// No door: ghost hits always enter main (S3-FIFO).
    Plain,
    /// Turned away by main, the key takes the place of the small queue's oldest entry if that
    /// one has no uses (so a loop drains the small queue into main); else it is not stored and
    /// the ghost remembers it again.
    Drain,
    /// Like `Bypass`, and the ghost remembers the key again.
    Refresh,
}

impl DoorParams {
    fn parse(name: &str) -> Self {
        let mut p = Self {
            small: 0.1,
            ghost: 1.0,
            cap: 3,
            fallback: Fallback::Bypass,
            exact: true,
            bloom: false,
            one_shard: false,
            least: None,
            threshold: None,
            no_ghost: false,
            tlfu: false,
            width: 1,
            period: 10,
            bloom_bits: 8,
            exit: None,
            always: false,
            count_hits: false,
            adapt: None,
        };
        for part in name.split('-').skip(1) {
            match part {
                "bypass" => p.fallback = Fallback::Bypass,
                "small" => p.fallback = Fallback::Small,
                "plain" => p.fallback = Fallback::Plain,
                "drain" => p.fallback = Fallback::Drain,
                "refresh" => p.fallback = Fallback::Refresh,
                "exact" => p.exact = true,
                "sketch" => p.exact = false,
                "bloom" => {
                    p.exact = false;
                    p.bloom = true;
                }
                "one" => p.one_shard = true,
                "tlfu" => p.tlfu = true,
                "nog" => p.no_ghost = true,
                "a" => p.always = true,
                "hc" => p.count_hits = true,
                _ if part.starts_with("ad") => {
                    let v: Vec<f64> = part[2..]
                        .split('_')
                        .map(|x| x.replace('n', "-").parse().expect("a number"))
                        .collect();
                    p.adapt = Some((
                        v[0] / 100.0,
                        v[1] / 100.0,
                        v[2] / 100.0,
                        v[3],
                        v[4],
                        v.get(5)
                            .filter(|z| **z > 0.0)
                            .map_or(f64::INFINITY, |z| z / 100.0),
                        v.get(6).copied().unwrap_or(0.0),
                    ));
                }
                _ => {
                    let (tag, num) = part.split_at(1);
                    let v: f64 = num.parse().expect("a number");
                    match tag {
                        "s" => p.small = v / 100.0,
                        "g" => p.ghost = v / 100.0,
                        "c" => p.cap = v as u8,
                        "m" => p.least = Some(v as usize),
                        "t" => p.threshold = Some(v as u8),
                        "w" => p.width = v as usize,
                        "p" => p.period = v as usize,
                        "b" => {
                            p.exact = false;
                            p.bloom = true;
                            p.bloom_bits = v as usize;
                        }
                        "x" => p.exit = Some(v as u8),
                        _ => panic!("bad part {part}"),
                    }
                }
            }
        }
        p
    }
}

/// Keys recently evicted from the small queue.
enum Ghost {
    Exact {
        ring: VecDeque<u64>,
        count: HashMap<u64, u32>,
        max: usize,
    },
    Sketch(Sketch),
    /// Two Bloom filters (4 bits a key): a key is remembered while it is in either; the newer
    /// becomes the older after `max / 2` keys.
    Bloom {
        new: Vec<u64>,
        old: Vec<u64>,
        added: usize,
        max: usize,
    },
}

fn bloom_bits(bits: &[u64], hash: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
    let mask = bits.len() * 64 - 1;
    (0..4).map(move |i| {
        let h = hash.rotate_left(16 * i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        let bit = h as usize & mask;
        (bit / 64, 1_u64 << (bit % 64))
    })
}

impl Ghost {
    fn contains(&self, key: u64) -> bool {
        match self {
            Ghost::Exact { count, .. } => count.contains_key(&key),
            Ghost::Sketch(s) => s.estimate(key_hash(key)) > 0,
            Ghost::Bloom { new, old, .. } => {
                let h = key_hash(key);
                bloom_bits(new, h).all(|(w, b)| new[w] & b != 0)
                    || bloom_bits(old, h).all(|(w, b)| old[w] & b != 0)
            }
        }
    }

    fn add(&mut self, key: u64) {
        match self {
            Ghost::Exact { ring, count, max } => {
                ring.push_back(key);
                *count.entry(key).or_default() += 1;
                if ring.len() > *max {
                    let old = ring.pop_front().expect("ghost");
                    if let Some(n) = count.get_mut(&old) {
                        *n -= 1;
                        if *n == 0 {
                            count.remove(&old);
                        }
                    }
                }
            }
            Ghost::Sketch(s) => s.increment(key_hash(key)),
            Ghost::Bloom {
                new,
                old,
                added,
                max,
            } => {
                let h = key_hash(key);
                for (w, b) in bloom_bits(new, h).collect::<Vec<_>>() {
                    new[w] |= b;
                }
                *added += 1;
                if *added >= (*max / 2).max(1) {
                    *added = 0;
                    std::mem::swap(new, old);
                    new.fill(0);
                }
            }
        }
    }
}

/// S3-FIFO with a door on main: a key back from the ghost enters main only when main's CLOCK hand
/// stands on an entry not used since the hand last passed; otherwise the hand moves on (the entry
/// loses one use) and the key is turned away. Loops then keep a fixed set instead of churning.
struct Door {
    capacity: usize,
    small_target: usize,
    cap: u8,
    fallback: Fallback,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    ghost: Ghost,
    entries: HashMap<u64, u8>,
    sketch: Option<Sketch>,
    threshold: Option<u8>,
    no_ghost: bool,
    exit: Option<u8>,
    always: bool,
    count_hits: bool,
    adapt: Option<Adapt>,
}

impl Door {
    fn new(capacity: usize, p: &DoorParams) -> Self {
        let ghost_max = ((capacity as f64 * p.ghost) as usize).max(1);
        Self {
            capacity,
            small_target: ((capacity as f64 * p.small) as usize).max(1),
            cap: p.cap,
            fallback: p.fallback,
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: if p.bloom {
                // 8 bits a key for each half by default: false positives about 2 %.
                let words = (ghost_max * p.bloom_bits / 2)
                    .div_ceil(64)
                    .next_power_of_two();
                Ghost::Bloom {
                    new: vec![0; words],
                    old: vec![0; words],
                    added: 0,
                    max: ghost_max,
                }
            } else if p.exact {
                Ghost::Exact {
                    ring: VecDeque::new(),
                    count: HashMap::new(),
                    max: ghost_max,
                }
            } else {
                let mut s = Sketch::new(ghost_max);
                s.period = ghost_max;
                Ghost::Sketch(s)
            },
            entries: HashMap::new(),
            sketch: p.tlfu.then(|| Sketch::sized(capacity, p.width, p.period)),
            threshold: p.threshold,
            no_ghost: p.no_ghost,
            exit: p.exit,
            always: p.always,
            count_hits: p.count_hits,
            adapt: p.adapt.map(|(lo, hi, mw, up, down, zone, weigh)| Adapt {
                now: 0,
                at: HashMap::new(),
                ring: VecDeque::new(),
                main_now: 0,
                main_at: HashMap::new(),
                main_ring: VecDeque::new(),
                main_window: (capacity as f64 * mw) as u64,
                window: ghost_max as f64,
                lo: capacity as f64 * lo,
                hi: capacity as f64 * hi,
                up,
                down,
                zone: capacity as f64 * zone,
                weigh,
                hist: [0; 32],
                hi_share: hi,
                stats: [0; 4],
                sum_window: 0.0,
            }),
        }
    }

    fn credit(&mut self, key: u64) {
        if let Some(s) = &mut self.sketch {
            s.increment(key_hash(key));
        }
    }

    /// A use banked by `key` credited as the hand passes it (unless hits are counted as they
    /// happen).
    fn credit_pass(&mut self, key: u64) {
        if !self.count_hits {
            self.credit(key);
        }
    }

    /// Frees one place (S3-FIFO).
    fn evict(&mut self) {
        loop {
            if self.small.len() >= self.small_target || self.main.is_empty() {
                let Some(k) = self.small.pop_front() else {
                    return;
                };
                let f = self.entries.get_mut(&k).expect("held");
                if *f > 0 {
                    *f = 0;
                    self.main.push_back(k);
                    continue;
                }
                if let (Some(least), Some(s), Some(&front)) =
                    (self.exit, &self.sketch, self.main.front())
                {
                    let est = s.estimate(key_hash(k));
                    if est >= least
                        && self.entries[&front] == 0
                        && est > s.estimate(key_hash(front))
                    {
                        self.main.pop_front();
                        self.entries.remove(&front);
                        self.main_evicted(front);
                        self.main.push_back(k);
                        return;
                    }
                }
                self.entries.remove(&k);
                self.ghost_add(k);
                return;
            }
            let k = self.main.pop_front().expect("main");
            let f = self.entries.get_mut(&k).expect("held");
            if *f > 0 {
                *f -= 1;
                self.main.push_back(k);
                self.credit_pass(k);
                continue;
            }
            self.entries.remove(&k);
            self.main_evicted(k);
            return;
        }
    }

    fn ghost_add(&mut self, key: u64) {
        match &mut self.adapt {
            Some(a) => a.add(key),
            None => self.ghost.add(key),
        }
    }

    fn ghost_contains(&mut self, key: u64) -> bool {
        match &mut self.adapt {
            Some(a) => a.contains(key),
            None => self.ghost.contains(key),
        }
    }

    fn main_evicted(&mut self, key: u64) {
        if let Some(a) = &mut self.adapt {
            a.main_evicted(key);
        }
    }
}

/// An exact ghost whose window adapts, ARC-like, on misses alone: a key back from beyond the
/// window (but within `hi`) widens it; a key back soon after main evicted it narrows it.
struct Adapt {
    now: u64,
    at: HashMap<u64, u64>,
    ring: VecDeque<(u64, u64)>,
    main_now: u64,
    main_at: HashMap<u64, u64>,
    main_ring: VecDeque<(u64, u64)>,
    main_window: u64,
    window: f64,
    lo: f64,
    hi: f64,
    up: f64,
    down: f64,
    zone: f64,
    weigh: f64,
    hist: [u64; 32],
    hi_share: f64,
    stats: [u64; 4],
    sum_window: f64,
}

impl Drop for Adapt {
    fn drop(&mut self) {
        if std::env::var("LAB_DEBUG").is_ok() {
            eprintln!(
                "adapt ups {} downs {} returns {} misses {} mean window {:.2} × capacity (lo {} hi {})",
                self.stats[0],
                self.stats[1],
                self.stats[2],
                self.stats[3],
                self.sum_window / self.stats[3].max(1) as f64 / (self.hi / self.hi_share),
                self.lo,
                self.hi
            );
            eprintln!("ages by quarter capacity: {:?}", self.hist);
        }
    }
}

impl Adapt {
    fn add(&mut self, key: u64) {
        self.now += 1;
        self.at.insert(key, self.now);
        self.ring.push_back((key, self.now));
        while let Some(&(k, t)) = self.ring.front() {
            if (self.now - t) as f64 <= self.hi {
                break;
            }
            self.ring.pop_front();
            if self.at.get(&k) == Some(&t) {
                self.at.remove(&k);
            }
        }
    }

    fn contains(&mut self, key: u64) -> bool {
        self.stats[3] += 1;
        self.sum_window += self.window;
        if let Some(t) = self.main_at.remove(&key)
            && self.main_now - t <= self.main_window
        {
            self.stats[1] += 1;
            self.window = (self.window - self.down).max(self.lo);
        }
        let Some(&t) = self.at.get(&key) else {
            return false;
        };
        let age = (self.now - t) as f64;
        let bucket = ((age / (self.hi / (self.hi_share * 4.0))) as usize).min(31);
        self.hist[bucket] += 1;
        if age <= self.window {
            self.stats[2] += 1;
            if self.weigh < 0.0 {
                self.window = (self.window + self.up).min(self.hi);
            }
            return true;
        }
        if age <= self.window + self.zone {
            self.stats[0] += 1;
            let weight = if self.weigh == 0.0 {
                1.0
            } else {
                (age / self.window).min(self.weigh.abs())
            };
            self.window = (self.window + self.up * weight).min(self.hi);
        }
        false
    }

    fn main_evicted(&mut self, key: u64) {
        self.main_now += 1;
        self.main_at.insert(key, self.main_now);
        self.main_ring.push_back((key, self.main_now));
        while let Some(&(k, t)) = self.main_ring.front() {
            if self.main_now - t <= self.main_window {
                break;
            }
            self.main_ring.pop_front();
            if self.main_at.get(&k) == Some(&t) {
                self.main_at.remove(&k);
            }
        }
    }
}

impl Policy for Door {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        if let Some(f) = self.entries.get_mut(&key) {
            *f = (*f + 1).min(self.cap);
            if self.count_hits {
                self.credit(key);
            }
            return true;
        }
        if self.capacity == 0 {
            return false;
        }
        self.credit(key);
        let by_sketch = match (self.threshold, &self.sketch) {
            (Some(t), Some(s)) => s.estimate(key_hash(key)) >= t,
            _ => false,
        };
        if by_sketch || (!self.no_ghost && self.ghost_contains(key)) {
            if self.entries.len() < self.capacity {
                self.entries.insert(key, 0);
                self.main.push_back(key);
                return false;
            }
            if self.fallback == Fallback::Plain
                || self.main.is_empty()
                || (!self.always && self.small.len() >= self.small_target)
            {
                self.evict();
                self.entries.insert(key, 0);
                self.main.push_back(key);
                return false;
            }
            let front = *self.main.front().expect("main");
            let f = self.entries.get_mut(&front).expect("held");
            if *f == 0
                && let Some(s) = &self.sketch
                && s.estimate(key_hash(key)) <= s.estimate(key_hash(front))
            {
                if self.fallback != Fallback::Bypass {
                    self.ghost_add(key);
                }
                return false;
            }
            let f = self.entries.get_mut(&front).expect("held");
            if *f == 0 {
                self.main.pop_front();
                self.entries.remove(&front);
                self.entries.insert(key, 0);
                self.main.push_back(key);
                return false;
            }
            *f -= 1;
            self.main.rotate_left(1);
            self.credit_pass(front);
            match self.fallback {
                Fallback::Bypass => return false,
                Fallback::Refresh => {
                    self.ghost_add(key);
                    return false;
                }
                Fallback::Drain => {
                    if let Some(&oldest) = self.small.front()
                        && self.entries[&oldest] == 0
                    {
                        self.small.pop_front();
                        self.entries.remove(&oldest);
                        self.ghost_add(oldest);
                        self.entries.insert(key, 0);
                        self.main.push_back(key);
                    } else {
                        self.ghost_add(key);
                    }
                    return false;
                }
                Fallback::Small | Fallback::Plain => {}
            }
        }
        while self.entries.len() >= self.capacity {
            self.evict();
        }
        self.entries.insert(key, 0);
        self.small.push_back(key);
        false
    }
}

/// moka's policy (`moka::sync`, 0.12): no window; once full, a new key is stored only when the
/// sketch counts it more often than the LRU entry, which then leaves (ties keep the entry, and a
/// turned-away key is not stored). With `count_hits` the sketch counts every request, as moka's
/// does; without, misses only.
struct TinyLfuLru {
    capacity: usize,
    lru: lru::LruCache<u64, ()>,
    sketch: Sketch,
    count_hits: bool,
}

impl TinyLfuLru {
    fn new(capacity: usize, count_hits: bool) -> Self {
        Self {
            capacity,
            lru: lru::LruCache::unbounded(),
            sketch: Sketch::new(capacity),
            count_hits,
        }
    }
}

impl Policy for TinyLfuLru {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        let hash = key_hash(key);
        if self.lru.get(&key).is_some() {
            if self.count_hits {
                self.sketch.increment(hash);
            }
            return true;
        }
        self.sketch.increment(hash);
        if self.capacity == 0 {
            return false;
        }
        if self.lru.len() >= self.capacity {
            let (&victim, ()) = self.lru.peek_lru().expect("full");
            if self.sketch.estimate(hash) <= self.sketch.estimate(key_hash(victim)) {
                return false;
            }
            self.lru.pop_lru();
        }
        self.lru.put(key, ());
        false
    }
}
