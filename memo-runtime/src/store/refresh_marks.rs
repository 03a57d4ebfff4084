//! Which keys a Redis store's process refreshes in the background now: one refresh per key.
//!
//! A mark older than a time to live (a refresh another process took, whose value this one never
//! stored) lets a later read refresh the key again, and such marks go once older than that, each
//! time the map doubles from what the last sweep left: it holds the keys refreshed within one
//! time to live, not every key ever refreshed, and a map that keeps its size (marks added and
//! removed) is not swept at each addition.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The fewest marks at which the map is swept.
const MIN_SWEEP: usize = 64;

/// The keys refreshed now, with when each refresh started.
pub(super) struct RefreshMarks<K> {
    started: HashMap<K, Instant>,
    /// The size at which marks older than a time to live are swept next: twice what the last
    /// sweep left, so sweeps cost O(1) per mark.
    sweep_at: usize,
    #[cfg(test)]
    pub(super) sweeps: usize,
}

impl<K> RefreshMarks<K> {
    pub(super) fn new() -> Self {
        Self {
            started: HashMap::new(),
            sweep_at: MIN_SWEEP,
            #[cfg(test)]
            sweeps: 0,
        }
    }

    /// How many keys are marked.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.started.len()
    }
}

impl<K: Hash + Eq> RefreshMarks<K> {
    /// Marks `key` as refreshed from now on; `false` if a refresh of it started less than `ttl`
    /// ago.
    pub(super) fn start(&mut self, key: &K, ttl: Duration) -> bool
    where
        K: Clone,
    {
        let now = Instant::now();
        match self.started.entry(key.clone()) {
            Entry::Occupied(mut started) => {
                if started.get().elapsed() < ttl {
                    return false;
                }
                started.insert(now);
            }
            Entry::Vacant(vacant) => {
                vacant.insert(now);
                if self.started.len() >= self.sweep_at {
                    self.started.retain(|_, started| started.elapsed() < ttl);
                    self.sweep_at = self.started.len().saturating_mul(2).max(MIN_SWEEP);
                    #[cfg(test)]
                    {
                        self.sweeps += 1;
                    }
                }
            }
        }
        true
    }

    /// The refresh of `key` ended (its value stored, or given up).
    pub(super) fn end(&mut self, key: &K) {
        self.started.remove(key);
    }
}
