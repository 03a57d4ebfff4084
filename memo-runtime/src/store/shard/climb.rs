//! How much of each shard the default policy's small queue may hold: adapted to the workload by
//! hill climbing on the store's hit ratio (Einziger, Eytan, Friedman and Manes, "Adaptive
//! Software Cache Management", Middleware '18; Caffeine's `climb`).
//!
//! A small queue of a few percent suits a workload whose popular keys stay popular (Zipf, loops,
//! scans): main keeps the frequent keys and the door turns the rest away. Where the popular keys
//! change quickly (a hot set that moves), the keys hot now are asked for again soon but not yet
//! often, and only a wider small queue keeps them long enough to be asked for again and move on
//! to main, as LRU would.
//!
//! The climb, per sample of the store's requests (4 times its capacity, at least 100,000): the
//! share holds while the hit ratio stays level; every few samples it probes, doubling the share
//! (halving it when above the least). A move that raised the hit ratio by more than half a point
//! goes on; one that lowered it by as much is undone; a wider share that did not pay is undone
//! too, a narrower one that cost nothing is kept. Each probe that does not pay doubles the wait
//! before the next (up to 48 samples), so a workload that never wants a wider small queue
//! (Zipf, loops) is probed ever more seldom. A change of more than a fifth of the hit ratio is
//! the workload's own (a scan, a new phase of a disk trace) and judges no move. Unlike
//! Caffeine's climber, which always moves (its window is a plain LRU that still passes the
//! frequency filter on its way to main), this one keeps the share the policy was tuned with
//! unless a wider one clearly pays: here the small queue's keys reach main without the door, so
//! on the workloads the policy was tuned on every probe costs.
//!
//! It is driven from the miss path alone: each shard counts its misses under its write lock and
//! reports them in batches; the report that completes a sample (enough requests since the last
//! one) reads the hits, which readers count on their own stripes of the gate, compares the
//! sample's hit ratio with the previous one's and moves the share. Shards read the share on their
//! next insert. A hit writes nothing for it.
//!
//! Stores of at least 4,000 entries follow shadow caches instead (`shadow.rs`), which find a
//! wider share sooner and never probe.

use std::sync::atomic::Ordering;

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU32, AtomicU64};

/// The share's unit: 1/65,536 of a shard.
pub(crate) const ONE: u32 = 1 << 16;

/// The share a shard starts with (and a store's climber reports until it moves): a thirty-third,
/// as `auto::small_target` takes it.
pub(crate) const START: u32 = ONE / 33;

/// The least store whose share climbs (see `Tune::least_capacity`).
pub(crate) const LEAST_CAPACITY: usize = 1_000;

/// The settings of the climber, chosen on the `today` and `tune/*` rows of
/// `benches/hitratio.rs` (see `docs/performance.md`).
#[derive(Clone, Copy, Debug)]
struct Tune {
    /// Requests per sample, as a multiple of the store's capacity, and at least `least_sample`:
    /// fewer, and a sample's hit ratio swings with the workload's own phases more than with the
    /// share.
    sample: u64,
    least_sample: u64,
    /// A change of the hit ratio within this band is taken for noise; one of more than `swing`
    /// times the larger ratio, for the workload's own (a scan, a new phase), and no move is
    /// judged by it.
    band: f64,
    swing: f64,
    /// Samples held at a share before a probe; twice as many after each probe that did not
    /// pay, up to `most_patience`.
    patience: u32,
    most_patience: u32,
    /// Each move multiplies or divides the share by this factor.
    factor: f64,
    /// The share to start from, which is the least (what the policy was tuned with before it
    /// adapted), and the most.
    least: f64,
    most: f64,
    /// A bounded store of fewer entries keeps the least share: its one shard's hit ratio moves with the
    /// workload more than with the share (climbing there gained on no row and cost
    /// `check/shift200k/985` 0.3 points).
    least_capacity: usize,
}

const TUNE: Tune = Tune {
    sample: 4,
    least_sample: 100_000,
    band: 0.005,
    swing: 0.2,
    patience: 3,
    most_patience: 48,
    factor: 2.0,
    least: 1.0 / 33.0,
    most: 0.8,
    least_capacity: LEAST_CAPACITY,
};

/// Misses a shard counted since its last report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) misses: u32,
}

/// The hill climber of one store (see the module doc).
pub(crate) struct Climber {
    /// The small queue's share of each shard, in [`ONE`]s; read by writers.
    share: AtomicU32,
    /// Misses reported so far.
    misses: AtomicU64,
    /// Taken by the report that completes a sample (others pass by).
    state: Mutex<State>,
}

struct State {
    tune: Tune,
    /// Requests per sample.
    sample: u64,
    /// Hits and misses when the sample began (`None` until the store first fills).
    began: Option<(u64, u64)>,
    /// Misses before the first sample: the store fills, and its hit ratio settles (rising, it
    /// would pass for the gain of a wider small queue). All of them below `least_capacity`.
    warm_up: u64,
    /// The last sample's hit ratio (`None` before the first).
    previous: Option<f64>,
    /// The last move: up (1), down (-1) or none (0).
    moved: i8,
    /// Samples since the last move, how many to hold before the next probe, and whether the
    /// last move was a probe.
    held: u32,
    patience: u32,
    probed: bool,
    share: f64,
}

impl Climber {
    /// A climber for a store of `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        let tune = TUNE;
        let sample = (capacity as u64)
            .saturating_mul(tune.sample)
            .max(tune.least_sample);
        let state = State {
            tune,
            sample,
            began: None,
            warm_up: if (1..tune.least_capacity).contains(&capacity) {
                u64::MAX
            } else {
                (capacity as u64).saturating_mul(3)
            },
            previous: None,
            moved: 0,
            // The first sample after the one that sets the level probes.
            held: tune.patience - 1,
            patience: tune.patience,
            probed: false,
            share: tune.least,
        };
        Self {
            share: AtomicU32::new(START),
            misses: AtomicU64::new(0),
            state: Mutex::new(state),
        }
    }

    /// The small queue's share of each shard now, in [`ONE`]s.
    #[inline]
    pub(crate) fn share(&self) -> u32 {
        self.share.load(Ordering::Relaxed)
    }

    /// A shard reports a batch of misses; `hits` reads how many hits the store counted so far.
    pub(crate) fn report(&self, batch: Batch, hits: impl FnOnce() -> u64) {
        let misses = u64::from(batch.misses);
        let total = self.misses.fetch_add(misses, Ordering::Relaxed) + misses;
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        let Some((hits_then, misses_then)) = state.began else {
            if total >= state.warm_up {
                state.began = Some((hits(), total));
            }
            return;
        };
        // Hits are read only once misses alone make a part of the sample.
        if total - misses_then < state.sample / 64 {
            return;
        }
        let hits = hits();
        let sampled_hits = hits.wrapping_sub(hits_then);
        let requests = sampled_hits + (total - misses_then);
        if requests < state.sample {
            return;
        }
        state.began = Some((hits, total));
        #[allow(clippy::cast_precision_loss, reason = "a ratio")]
        let ratio = sampled_hits as f64 / requests as f64;
        let share = state.climb(ratio);
        self.share.store(to_units(share), Ordering::Relaxed);
    }
}

impl State {
    /// One step of the climb after a sample of hit ratio `ratio`; the new share.
    fn climb(&mut self, ratio: f64) -> f64 {
        let Some(previous) = self.previous.replace(ratio) else {
            return self.share;
        };
        let change = ratio - previous;
        let tune = self.tune;
        if change.abs() > tune.swing * ratio.max(previous) {
            return self.share;
        }
        let band = tune.band;
        let mut probe = false;
        let go = match self.moved {
            // The last move paid: go on.
            moved if moved != 0 && change > band => moved,
            // It cost: back.
            moved if moved != 0 && change < -band => -moved,
            // A wider small queue that did not pay: back; a narrower one that cost nothing: stay.
            1 => -1,
            _ => {
                self.held += 1;
                probe = self.held >= self.patience;
                if !probe {
                    0
                } else if self.share <= tune.least * 1.0001 {
                    1
                } else {
                    -1
                }
            }
        };
        // A move back ends the climb: the next sample holds.
        let back = !probe && go != 0 && go == -self.moved;
        if std::mem::take(&mut self.probed) {
            // Probes that do not pay come ever more seldom; one that pays resets the wait.
            self.patience = if back {
                (self.patience * 2).min(tune.most_patience)
            } else {
                tune.patience
            };
        }
        self.probed = probe;
        self.share = match go {
            1 => (self.share * tune.factor).min(tune.most),
            -1 => (self.share / tune.factor).max(tune.least),
            _ => self.share,
        };
        self.moved = if back { 0 } else { go };
        if go != 0 {
            self.held = 0;
        }
        self.share
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a share in 0..=1"
)]
fn to_units(share: f64) -> u32 {
    (share.clamp(0.0, 1.0) * f64::from(ONE)) as u32
}

/// `share` (in [`ONE`]s) of `capacity`, at least one entry.
pub(crate) fn part(capacity: usize, share: u32) -> usize {
    #[allow(clippy::cast_possible_truncation, reason = "at most capacity")]
    let part = ((capacity as u128 * u128::from(share)) >> 16) as usize;
    part.max(1)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A deterministic workload model: the hit ratio a share earns, plus a swing of the
    /// workload's own within the noise band.
    fn run(climber: &Climber, samples: usize, ratio_at: impl Fn(f64) -> f64) -> Vec<f64> {
        let mut shares = Vec::new();
        for i in 0..samples {
            let mut state = climber.state.lock().unwrap();
            let swing = if i % 2 == 0 { 0.002 } else { -0.002 };
            let share = state.share;
            let share = state.climb(ratio_at(share) + swing);
            climber.share.store(to_units(share), Ordering::Relaxed);
            shares.push(share);
        }
        shares
    }

    #[test]
    fn a_recency_heavy_workload_widens_the_small_queue() {
        let climber = Climber::new(10_000);
        // Each doubling of the share earns 1.5 points, up to the most.
        let shares = run(&climber, 40, |share| 0.6 + 0.015 * (share * 33.0).log2());
        let last = *shares.last().unwrap();
        assert!(last >= 0.4, "{shares:?}");
        assert!(climber.share() >= to_units(0.4));
    }

    #[test]
    fn a_frequency_heavy_workload_keeps_the_small_queue_small() {
        let climber = Climber::new(10_000);
        // Each doubling of the share costs a point: probes come back at once.
        let shares = run(&climber, 40, |share| 0.6 - 0.01 * (share * 33.0).log2());
        let least = 1.0 / 33.0;
        let at_least = shares.iter().filter(|&&s| s <= least * 1.0001).count();
        assert!(at_least >= 30, "{shares:?}");
        assert!(
            shares.iter().all(|&s| s <= 2.0 * least * 1.0001),
            "{shares:?}"
        );
    }

    #[test]
    fn a_flat_workload_stays_where_it_is_cheapest() {
        let climber = Climber::new(10_000);
        let shares = run(&climber, 40, |_| 0.5);
        let least = 1.0 / 33.0;
        assert!(
            shares.iter().all(|&s| s <= 2.0 * least * 1.0001),
            "{shares:?}"
        );
    }

    #[test]
    fn reports_take_a_sample_once_the_store_filled() {
        let climber = Climber::new(1_000);
        // 3,000 misses fill the store and let it settle; then samples of 100,000 requests, 90 %
        // hits.
        let mut hits = 0_u64;
        let batch = Batch { misses: 100 };
        for _ in 0..29 {
            climber.report(batch, || hits);
        }
        assert!(climber.state.lock().unwrap().began.is_none());
        climber.report(batch, || hits);
        assert!(climber.state.lock().unwrap().began.is_some());
        for _ in 0..100 {
            hits += 900;
            climber.report(batch, || hits);
        }
        let state = climber.state.lock().unwrap();
        let previous = state.previous.expect("a sample taken");
        assert!((previous - 0.9).abs() < 0.01, "{previous}");
    }

    #[test]
    fn a_store_below_a_thousand_entries_keeps_the_least_share() {
        let climber = Climber::new(999);
        for _ in 0..10_000 {
            climber.report(Batch { misses: 100 }, || 0);
        }
        assert!(climber.state.lock().unwrap().began.is_none());
        assert_eq!(climber.share(), START);
    }

    #[test]
    fn a_part_is_at_least_one_entry() {
        assert_eq!(part(10, 1), 1);
        assert_eq!(part(1000, ONE / 2), 500);
        assert_eq!(part(usize::MAX, ONE), usize::MAX);
    }
}
