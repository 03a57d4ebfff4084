//! moka's own policy (`moka::sync::Cache` 0.12.16, the bench's peer), modelled from its source
//! (`src/sync/base_cache.rs`, `src/common/frequency_sketch.rs`), and the shapes a store without a
//! shared write per hit could run it in (issue 23, twelfth study in `docs/performance.md`).
//!
//! What moka does, as the bench drives it (each write applied at once, the reads before it):
//! - One access-order deque (`probation`; its window and protected deques stay empty under the
//!   default `TinyLfu` policy). A new key joins its back while the cache is under its bound.
//! - Every read is logged: a hit increments the key's counters and moves the entry to the back;
//!   a miss increments the key's counters. The log is applied before each write, so in the bench
//!   nothing is lost and the order is exact.
//! - Once full, a new key (its own miss counted) is kept only when the sketch counts it more
//!   often than the front (least recently used) entry, which then leaves; otherwise it is not
//!   stored and the front stays where it is.
//! - The sketch (`MokaSketch`) exists only once the cache is half full: until then nothing is
//!   counted. It has `max(capacity, 128).next_power_of_two()` words of sixteen 4-bit counters,
//!   a key's four counters in four words (one of four groups of a word picked by the hash's low
//!   bits), all four incremented (not only the least), and is halved once `10 × capacity`
//!   increments raised a counter. The key's hash is moka's `RandomState`, seeded per cache: here
//!   foldhash seeded by `LAB_SEED`.
//!
//! Lab names: `moka` (unsharded, exact: the model of the peer), `moka_shards` (split over the
//! store's shards), `moka_ring<n>` (split, with the hits the store would see: recorded in a
//! thread's ring of `n` slots, the last `n - 1` kept, drained into their shards' sketches and
//! deques at the thread's next miss, the older ones lost, as `store/gate.rs` records them),
//! `lru_ring<n>` (the same without admission: an LRU ordered by the drained hits), `lru_shards`
//! (an exact LRU split over the store's shards), and `sw…:<door>` (`run_switch`: a store whose
//! shards follow whichever shadow leads, of the door's shares, of moka's shape, of an LRU, of
//! `quick_cache`'s shape: `quick.rs`, thirteenth study).

use std::collections::VecDeque;
use std::hash::BuildHasher;

use super::quick::QuickShard;
use super::{Door, DoorParams, Policy, door_shadows, lab_seed, store_shards};

/// moka's `FrequencySketch`.
pub(super) struct MokaSketch {
    table: Vec<u64>,
    mask: u64,
    sample: u32,
    size: u32,
}

const SEED: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
const ONE_MASK: u64 = 0x1111_1111_1111_1111;

impl MokaSketch {
    pub(super) fn new(max_capacity: usize) -> Self {
        let cap = u32::try_from(max_capacity).unwrap_or(u32::MAX).max(128);
        let words = cap.next_power_of_two();
        Self {
            table: vec![0; words as usize],
            mask: u64::from(words - 1),
            sample: cap.saturating_mul(10),
            size: 0,
        }
    }

    fn index(&self, hash: u64, depth: usize) -> usize {
        let mut h = hash.wrapping_add(SEED[depth]).wrapping_mul(SEED[depth]);
        h = h.wrapping_add(h >> 32);
        (h & self.mask) as usize
    }

    pub(super) fn frequency(&self, hash: u64) -> u8 {
        let start = ((hash & 3) << 2) as u32;
        (0..4)
            .map(|i| {
                let shift = (start + i as u32) << 2;
                ((self.table[self.index(hash, i)] >> shift) & 0xF) as u8
            })
            .min()
            .unwrap_or(0)
    }

    pub(super) fn increment(&mut self, hash: u64) {
        let start = ((hash & 3) << 2) as u32;
        let mut added = false;
        for i in 0..4 {
            let index = self.index(hash, i);
            let offset = (start + i as u32) << 2;
            let mask = 0xF_u64 << offset;
            if self.table[index] & mask != mask {
                self.table[index] += 1_u64 << offset;
                added = true;
            }
        }
        if added {
            self.size += 1;
            if self.size >= self.sample {
                let mut count = 0;
                for word in &mut self.table {
                    count += (*word & ONE_MASK).count_ones();
                    *word = (*word >> 1) & RESET_MASK;
                }
                self.size = (self.size >> 1).saturating_sub(count >> 2);
            }
        }
    }
}

/// The hash moka's sketch sees (its own hasher, not the one that picks a shard).
pub(super) fn moka_hash(key: u64) -> u64 {
    foldhash::fast::FixedState::with_seed(lab_seed() ^ 0x6d6f_6b61).hash_one(key)
}

/// moka's policy over one deque (see the module doc).
pub(super) struct Moka {
    capacity: usize,
    lru: lru::LruCache<u64, ()>,
    sketch: Option<MokaSketch>,
    /// No admission: an LRU (with the sketch still counted, for a switch back).
    admit_all: bool,
}

impl Moka {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lru: lru::LruCache::unbounded(),
            sketch: None,
            admit_all: false,
        }
    }

    /// moka's policy (or, with `admit_all`, an LRU) holding `keys` (least recently used first),
    /// its sketch `sketch` from the start.
    pub(super) fn with(capacity: usize, keys: &[u64], sketch: MokaSketch, admit_all: bool) -> Self {
        let mut m = Self {
            capacity,
            lru: lru::LruCache::unbounded(),
            sketch: Some(sketch),
            admit_all,
        };
        for &k in keys.iter().rev().take(capacity).rev() {
            m.lru.put(k, ());
        }
        m
    }

    pub(super) fn take_sketch(&mut self) -> MokaSketch {
        self.sketch.take().expect("a sketch")
    }

    pub(super) fn holds(&self, key: u64) -> bool {
        self.lru.contains(&key)
    }

    /// A hit as moka applies it from its read log: counted (once the sketch exists), and the
    /// entry moved to the back if it is still held.
    pub(super) fn hit(&mut self, key: u64) {
        if let Some(s) = &mut self.sketch {
            s.increment(moka_hash(key));
        }
        self.lru.promote(&key);
    }

    /// A miss: counted, then the insert and its admission.
    pub(super) fn miss(&mut self, key: u64) {
        let hash = moka_hash(key);
        if let Some(s) = &mut self.sketch {
            s.increment(hash);
        }
        if self.capacity == 0 {
            return;
        }
        if self.lru.len() < self.capacity {
            self.lru.put(key, ());
        } else {
            let (&victim, ()) = self.lru.peek_lru().expect("full");
            let s = self.sketch.as_ref().expect("a full cache has its sketch");
            if self.admit_all || s.frequency(hash) > s.frequency(moka_hash(victim)) {
                self.lru.pop_lru();
                self.lru.put(key, ());
            }
        }
        if self.sketch.is_none() && self.lru.len() >= self.capacity / 2 {
            self.sketch = Some(MokaSketch::new(self.capacity));
        }
    }

    /// The keys held, least recently used first.
    pub(super) fn keys(&self) -> Vec<u64> {
        self.lru.iter().rev().map(|(&k, ())| k).collect()
    }
}

impl Policy for Moka {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        if self.holds(key) {
            self.hit(key);
            return true;
        }
        self.miss(key);
        false
    }
}

/// An exact LRU.
pub(super) struct Lru {
    capacity: usize,
    lru: lru::LruCache<u64, ()>,
}

impl Lru {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lru: lru::LruCache::unbounded(),
        }
    }
}

impl Policy for Lru {
    fn access(&mut self, key: u64, _hash: u64) -> bool {
        if self.lru.get(&key).is_some() {
            return true;
        }
        if self.capacity == 0 {
            return false;
        }
        if self.lru.len() >= self.capacity {
            self.lru.pop_lru();
        }
        self.lru.put(key, ());
        false
    }
}

/// A thread's record of its hits (`store/gate.rs`): the last `slots - 1` kept until the next
/// drain, older ones overwritten.
pub(super) struct Ring {
    slots: usize,
    keys: VecDeque<u64>,
    pub(super) recorded: u64,
    pub(super) lost: u64,
}

impl Ring {
    pub(super) fn new(slots: usize) -> Self {
        Self {
            slots,
            keys: VecDeque::new(),
            recorded: 0,
            lost: 0,
        }
    }

    pub(super) fn record(&mut self, key: u64) {
        self.recorded += 1;
        self.keys.push_back(key);
        if self.keys.len() >= self.slots {
            self.keys.pop_front();
            self.lost += 1;
        }
    }

    pub(super) fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, u64> {
        self.keys.drain(..)
    }
}

/// moka's policy split over the store's shards (`shards`), its hits applied at once
/// (`slots == None`) or recorded in a ring and drained at the next miss.
pub(super) fn run_moka(
    requests: &[u64],
    size: usize,
    shards: usize,
    slots: Option<usize>,
    admit_all: bool,
) -> u64 {
    let hasher = foldhash::fast::FixedState::with_seed(lab_seed());
    let mut parts: Vec<Moka> = (0..shards)
        .map(|i| {
            let mut m = Moka::new(size / shards + usize::from(i < size % shards));
            m.admit_all = admit_all;
            m
        })
        .collect();
    let mask = shards - 1;
    let shard_of = |k: u64| (hasher.hash_one(k) >> 32) as usize & mask;
    let mut ring = slots.map(Ring::new);
    let mut hits = 0;
    for &k in requests {
        let shard = shard_of(k);
        if parts[shard].holds(k) {
            hits += 1;
            match &mut ring {
                Some(r) => r.record(k),
                None => parts[shard].hit(k),
            }
            continue;
        }
        if let Some(r) = &mut ring {
            for h in r.drain() {
                parts[shard_of(h)].hit(h);
            }
        }
        parts[shard].miss(k);
    }
    if let Some(r) = ring
        && std::env::var("LAB_DEBUG").is_ok()
    {
        eprintln!("ring {size}: {} hits recorded, {} lost", r.recorded, r.lost);
    }
    hits
}

pub(super) fn hits(name: &str, requests: &[u64], size: usize) -> Option<u64> {
    let shards = store_shards(size);
    if name.starts_with("sw") {
        return Some(run_switch(requests, size, name));
    }
    Some(match name {
        "moka" => run_moka(requests, size, 1, None, false),
        "moka_shards" => run_moka(requests, size, shards, None, false),
        "lru_shards" => super::run(requests, size, shards, Lru::new),
        _ => {
            if let Some(slots) = name.strip_prefix("lru_ring") {
                return Some(run_moka(
                    requests,
                    size,
                    shards,
                    Some(slots.parse().ok()?),
                    true,
                ));
            }
            let slots = name.strip_prefix("moka_ring")?.parse().ok()?;
            run_moka(requests, size, shards, Some(slots), false)
        }
    })
}

/// A shard of the switching store (`run_switch`): the default's door, or moka's shape (an LRU
/// with `admit_all`), whose sketch counts every miss and every drained hit in all modes.
struct Part {
    capacity: usize,
    door: Option<Door>,
    moka: Option<Moka>,
    /// `quick_cache`'s shape (thirteenth study): a hit only raises the entry's count.
    quick: Option<QuickShard>,
    /// moka's sketch while the shard runs the door; the door's while it runs moka's shape.
    sketch: Option<MokaSketch>,
    door_sketch: Option<super::Sketch>,
}

impl Part {
    fn holds(&self, key: u64) -> bool {
        match (&self.door, &self.moka, &self.quick) {
            (Some(d), _, _) => d.entries.contains_key(&key),
            (_, Some(m), _) => m.holds(key),
            (_, _, Some(q)) => q.holds(key),
            _ => unreachable!(),
        }
    }

    /// A hit drained from a thread's ring.
    fn drained_hit(&mut self, key: u64) {
        match &mut self.moka {
            Some(m) => m.hit(key),
            None => self
                .sketch
                .as_mut()
                .expect("sketch")
                .increment(moka_hash(key)),
        }
    }

    fn access(&mut self, key: u64, hash: u64) -> bool {
        if let Some(d) = &mut self.door {
            let hit = d.access(key, hash);
            if !hit {
                self.sketch
                    .as_mut()
                    .expect("sketch")
                    .increment(moka_hash(key));
            }
            return hit;
        }
        if let Some(q) = &mut self.quick {
            if q.holds(key) {
                q.hit(key);
                return true;
            }
            q.miss(key);
            self.sketch
                .as_mut()
                .expect("sketch")
                .increment(moka_hash(key));
            if let Some(s) = &mut self.door_sketch {
                s.increment(super::key_hash(key));
            }
            return false;
        }
        let m = self.moka.as_mut().expect("a mode");
        if m.holds(key) {
            return true;
        }
        m.miss(key);
        if let Some(s) = &mut self.door_sketch {
            s.increment(super::key_hash(key));
        }
        false
    }

    /// Runs the door (at `params`) from now on, or moka's shape (`admit_all`: an LRU).
    fn become_door(&mut self, params: &DoorParams) {
        if let Some(q) = self.quick.take() {
            let mut d = Door::new(self.capacity, params);
            d.sketch = self.door_sketch.take().or(d.sketch);
            let (hot, cold) = q.rings();
            for k in hot {
                d.entries.insert(k, 0);
                d.main.push_back(k);
            }
            for k in cold {
                d.entries.insert(k, 0);
                d.small.push_back(k);
            }
            self.door = Some(d);
            return;
        }
        let Some(mut m) = self.moka.take() else {
            return;
        };
        let keys = m.keys();
        self.sketch = Some(m.take_sketch());
        let mut d = Door::new(self.capacity, params);
        if let Some(s) = self.door_sketch.take() {
            d.sketch = Some(s);
        }
        for k in keys {
            d.entries.insert(k, 0);
            d.main.push_back(k);
        }
        self.door = Some(d);
    }

    fn become_moka(&mut self, admit_all: bool) {
        if let Some(m) = &mut self.moka {
            m.admit_all = admit_all;
            return;
        }
        if let Some(q) = self.quick.take() {
            let (hot, cold) = q.rings();
            let keys: Vec<u64> = hot.into_iter().chain(cold).collect();
            let sketch = self.sketch.take().expect("sketch");
            self.moka = Some(Moka::with(self.capacity, &keys, sketch, admit_all));
            return;
        }
        let mut d = self.door.take().expect("a mode");
        let keys: Vec<u64> = d.main.iter().chain(&d.small).copied().collect();
        self.door_sketch = d.sketch.take();
        let sketch = self.sketch.take().expect("sketch");
        self.moka = Some(Moka::with(self.capacity, &keys, sketch, admit_all));
    }

    /// Runs `quick_cache`'s shape: the door's main (or moka's deque) becomes the hot ring, its
    /// small queue the cold one, each entry's uses its references (at most 2).
    fn become_quick(&mut self) {
        if self.quick.is_some() {
            return;
        }
        if let Some(mut d) = self.door.take() {
            self.door_sketch = d.sketch.take();
            let uses = |k: &u64| (*k, d.entries.get(k).copied().unwrap_or(0));
            let hot: Vec<(u64, u8)> = d.main.iter().map(uses).collect();
            let cold: Vec<(u64, u8)> = d.small.iter().map(uses).collect();
            self.quick = Some(QuickShard::with(self.capacity, &hot, &cold));
            return;
        }
        let mut m = self.moka.take().expect("a mode");
        let hot: Vec<(u64, u8)> = m.keys().into_iter().map(|k| (k, 0)).collect();
        self.sketch = Some(m.take_sketch());
        self.quick = Some(QuickShard::with(self.capacity, &hot, &[]));
    }
}

/// Switch knobs: `sw<lead in tenths of a point of an epoch's requests>_<epochs in a row>_<m|l|q…>`
/// then `:` and the door's name with its shadows (`M…`, `G…`): `run_mini`'s shares, and a shadow
/// of moka's shape (`m`), of an LRU (`l`), of `quick_cache`'s shape (`q`; `Q` starts the shards in
/// it) beside them; every shard follows the family whose shadow leads the followed one by the
/// lead that many epochs in a row. After the candidates, optionally `_<slots>_<warm-up
/// epochs>_<lead back to the door>`.
#[allow(clippy::too_many_lines, reason = "a lab model, read top to bottom")]
pub(super) fn run_switch(requests: &[u64], size: usize, name: &str) -> u64 {
    let (knobs, door) = name.split_once(':').expect("sw…:door…");
    let k: Vec<&str> = knobs.trim_start_matches("sw").split('_').collect();
    let family_lead: f64 = k[0].parse::<f64>().expect("a lead") / 1000.0;
    let family_persist: usize = k[1].parse().expect("epochs");
    let cands = k[2];
    let slots: usize = k.get(3).map_or(8, |s| s.parse().expect("slots"));
    // Epochs before the families are compared (the shadows fill first).
    let warm: usize = k.get(4).map_or(0, |s| s.parse().expect("epochs"));
    // The lead the door's shadow needs to take the shards back (‰), if not `family_lead`'s.
    let back_lead: f64 = k
        .get(5)
        .map_or(family_lead, |s| s.parse::<f64>().expect("a lead") / 1000.0);
    let params = DoorParams::parse(door);
    let shards = store_shards(size);
    if params.mini.is_none() || size < params.mini_from {
        return super::run(requests, size, shards, |c| Door::new(c, &params));
    }
    // Shadows: the door at each share, then moka's shape, then an LRU.
    let (rate, mini_size, mut doors) = door_shadows(size, &params);
    let mut others: Vec<(usize, Box<dyn Policy>)> = Vec::new();
    if cands.contains('m') {
        others.push((
            1,
            Box::new(Moka::with(
                mini_size,
                &[],
                MokaSketch::new(mini_size),
                false,
            )),
        ));
    }
    if cands.contains('l') {
        others.push((
            2,
            Box::new(Moka::with(mini_size, &[], MokaSketch::new(mini_size), true)),
        ));
    }
    if cands.contains(['q', 'Q']) {
        others.push((3, Box::new(QuickShard::new(mini_size))));
    }
    let n = doors.len() + others.len();
    let mut epoch_hits = vec![0_u64; n];
    let mut score = vec![0.0_f64; n];
    let epoch = (params.epoch * mini_size).max(params.least_epoch);
    let mut seen = 0;
    let mut door_share = 0;
    let (mut leader, mut leading) = (0, 0);
    // The family followed (0 the door, else the shadow's index in `others` + 1), and its rival.
    // `Q`: the shards start in `quick_cache`'s shape.
    let start_quick = cands.contains('Q');
    let mut family = if start_quick { others.len() } else { 0 };
    let (mut rival, mut rival_leading) = (0, 0);
    let mut switches = 0;
    let mut epochs_in = [0_usize; 4];
    let hasher = foldhash::fast::FixedState::with_seed(lab_seed());
    let mut parts: Vec<Part> = (0..shards)
        .map(|i| {
            let c = size / shards + usize::from(i < size % shards);
            Part {
                capacity: c,
                door: (!start_quick).then(|| Door::new(c, &params.with_small(params.shares[0]))),
                moka: None,
                quick: start_quick.then(|| QuickShard::new(c)),
                sketch: Some(MokaSketch::new(c)),
                door_sketch: start_quick.then(|| Door::new(c, &params).sketch).flatten(),
            }
        })
        .collect();
    let mask = shards - 1;
    let shard_of = |k: u64| (hasher.hash_one(k) >> 32) as usize & mask;
    let sample_mask = rate as u64 - 1;
    let mut ring = Ring::new(slots);
    let mut hits = 0;
    for &key in requests {
        let hash = hasher.hash_one(key);
        let shard = (hash >> 32) as usize & mask;
        if parts[shard].holds(key) {
            hits += 1;
            parts[shard].access(key, hash);
            ring.record(key);
        } else {
            for h in ring.drain() {
                parts[shard_of(h)].drained_hit(h);
            }
            parts[shard].access(key, hash);
        }
        if (hash >> 8) & sample_mask != 0 {
            continue;
        }
        for (i, d) in doors.iter_mut().enumerate() {
            epoch_hits[i] += u64::from(d.access(key, hash));
        }
        for (j, (_, m)) in others.iter_mut().enumerate() {
            epoch_hits[doors.len() + j] += u64::from(m.access(key, hash));
        }
        seen += 1;
        if seen < epoch {
            continue;
        }
        seen = 0;
        for (sc, h) in score.iter_mut().zip(&mut epoch_hits) {
            *sc = *sc * params.keep + std::mem::take(h) as f64;
        }
        let scale = epoch as f64 / (1.0 - params.keep);
        // The door's share, as `run_mini` chooses it.
        let nd = doors.len();
        let best = (0..nd)
            .max_by(|&a, &b| score[a].total_cmp(&score[b]))
            .expect("shares");
        let h = match params.widen {
            Some(widen) if params.shares[best] > params.shares[door_share] => widen,
            _ => params.hysteresis,
        };
        if best != door_share && score[best] > score[door_share] + h * scale {
            leading = if leader == best { leading + 1 } else { 1 };
            leader = best;
        } else {
            leading = 0;
        }
        if leading >= params.persist {
            leading = 0;
            door_share = best;
            for part in &mut parts {
                if let Some(d) = &mut part.door {
                    d.small_target =
                        ((d.capacity as f64 * params.shares[door_share]) as usize).max(1);
                }
            }
        }
        // The family.
        let family_score = |f: usize| {
            if f == 0 {
                score[door_share]
            } else {
                score[nd + f - 1]
            }
        };
        let top = (0..=others.len())
            .max_by(|&a, &b| family_score(a).total_cmp(&family_score(b)))
            .expect("families");
        let judged = epochs_in.iter().sum::<usize>() >= warm;
        let lead = if top == 0 { back_lead } else { family_lead };
        if judged && top != family && family_score(top) > family_score(family) + lead * scale {
            rival_leading = if rival == top { rival_leading + 1 } else { 1 };
            rival = top;
        } else {
            rival_leading = 0;
        }
        epochs_in[if family == 0 { 0 } else { others[family - 1].0 }] += 1;
        if rival_leading >= family_persist {
            rival_leading = 0;
            if std::env::var("LAB_DEBUG").as_deref() == Ok("2") {
                eprintln!(
                    "epoch {}: family {family} -> {top}, scores {score:?}",
                    epochs_in.iter().sum::<usize>()
                );
            }
            family = top;
            switches += 1;
            for part in &mut parts {
                match if family == 0 { 0 } else { others[family - 1].0 } {
                    0 => part.become_door(&params.with_small(params.shares[door_share])),
                    3 => part.become_quick(),
                    kind => part.become_moka(kind == 2),
                }
            }
        }
    }
    if std::env::var("LAB_DEBUG").is_ok() {
        eprintln!(
            "switch {size}: {switches} switches, epochs in door/moka/lru/quick {epochs_in:?}, ring lost {} of {}",
            ring.lost, ring.recorded
        );
    }
    hits
}
