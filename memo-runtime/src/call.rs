//! A call that missed: it finds a value stored meanwhile, joins the computation another caller
//! leads, or leads it. One loop for every such call, sync or async, over every store.
//!
//! What differs between stores is behind [`Steps`]: the store's reads, claim and write, awaited
//! (a store in memory, or a disk's front, answers at once: its futures are ready when first
//! polled). A sync caller drives the same futures on its own thread ([`wait`](crate::block::wait)), parking
//! while it waits for another caller or another process, and runs the body in its own frame
//! between [`begin`] and [`Steps::finish`], so that no function here is generic over a body.

use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cache::{Cache, Step};
use crate::flight::{Failure, Flight, Handing, Leader};
use crate::store::{Lease, Store};

/// A boxed future that borrows for `'a`: how a [`Steps`] object returns its awaited steps.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A leader's claim: its flight (none when a sync caller re-entered its key) and the store's
/// lease.
pub(crate) type LeaderClaim<'a, K, V> = (Option<Leader<'a, K, V>>, Lease);

/// The steps of a call over one cache, as an object: the entry point, where the key's and
/// value's bounds are known, makes it (a key without `Hash` or serde is reported there, once),
/// and the unbounded rest of the call reaches the cache through it.
pub(crate) trait Steps<K, V>: Sync {
    /// The cache's name, for traces.
    fn name(&self) -> &'static str;

    /// Leads the computation of `key` (of hash `hash`), joins the one running, or finds a value
    /// landed meanwhile. `by_thread`: a sync caller, which may re-enter its own key.
    fn begin<'a, 'k>(&'a self, hash: u64, key: &'k K, by_thread: bool) -> Boxed<'k, Step<'a, K, V>>
    where
        'a: 'k;

    /// The leader's last step: stores `value` if `keep` says so, hands it to the waiters, ends
    /// the store's claim; returns it.
    fn finish<'a>(
        &'a self,
        hash: u64,
        key: K,
        claim: LeaderClaim<'a, K, V>,
        value: V,
        keep: fn(&V) -> bool,
        cost: Duration,
    ) -> Boxed<'a, V>;

    /// The leader's computation failed: the waiters take `failure`'s copy of the error, or
    /// without one try again; nothing is stored.
    fn failed(&self, claim: LeaderClaim<'_, K, V>, failure: Handing<'_>, cost: Duration);

    /// A waiter's look at the store after its leader gave up, counted as a hit when found;
    /// `None` without looking where the store's claim reads the value itself (Redis, tiered):
    /// the waiter begins again at once.
    fn look_again(&self, hash: u64, key: &K) -> Option<V>;

    /// Waits for the leader of `flight`: its value, or `None` if it gave up or failed.
    fn poll_wait(&self, flight: &Flight<V>, cx: &Context<'_>) -> Poll<Option<V>>;

    /// A waiter took its leader's value, or its error: counted as coalesced.
    fn coalesced(&self);

    /// The end of a forced refresh: stores `value` if kept, and returns it.
    fn refreshed(&self, hash: u64, key: K, value: V, keep: fn(&V) -> bool, started: Instant) -> V;

    /// The end of a forced refresh whose computation failed: the old value stays.
    fn refresh_failed(&self, key: K, started: Instant);
}

impl<K, V, S> Steps<K, V> for Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    fn name(&self) -> &'static str {
        Cache::name(self)
    }

    fn begin<'a, 'k>(&'a self, hash: u64, key: &'k K, by_thread: bool) -> Boxed<'k, Step<'a, K, V>>
    where
        'a: 'k,
    {
        Box::pin(self.begin_call(hash, key, by_thread))
    }

    fn finish<'a>(
        &'a self,
        hash: u64,
        key: K,
        claim: LeaderClaim<'a, K, V>,
        value: V,
        keep: fn(&V) -> bool,
        cost: Duration,
    ) -> Boxed<'a, V> {
        Box::pin(self.finish_call(hash, key, claim, value, keep, cost))
    }

    fn failed(&self, claim: LeaderClaim<'_, K, V>, failure: Handing<'_>, cost: Duration) {
        Cache::failed(self, claim, failure, cost);
    }

    fn look_again(&self, hash: u64, key: &K) -> Option<V> {
        if self.store().claim_reads() {
            return None;
        }
        self.hit(hash, &key)
    }

    fn poll_wait(&self, flight: &Flight<V>, cx: &Context<'_>) -> Poll<Option<V>> {
        flight.poll_wait(cx)
    }

    fn coalesced(&self) {
        Cache::coalesced(self);
    }

    fn refreshed(&self, hash: u64, key: K, value: V, keep: fn(&V) -> bool, started: Instant) -> V {
        self.forced_refresh(hash, key, value, keep, started)
    }

    fn refresh_failed(&self, key: K, started: Instant) {
        self.forced_refresh_failed(key, started);
    }
}

/// Where a call stands once [`begin`] answered.
pub(crate) enum Begun<'a, K, V> {
    /// A value, and how the call got it (for its trace): `hit` (stored meanwhile, or another
    /// process's) or `coalesced` (the leader's).
    Value(V, &'static str),
    /// The leader failed, and left this copy of its error for the caller, which asked for one.
    Failed(Box<dyn Failure>),
    /// Compute, then [`Steps::finish`] (or [`Steps::failed`]).
    Lead(LeaderClaim<'a, K, V>),
}

/// The loop of a call that missed `key` (of hash `hash`): begin; a value ends it, and a lead
/// is returned for the caller to run the body. A waiter takes the leader's value, or (the
/// leader failed) a copy of its error when the caller `takes_errors`, or else looks at the
/// store and begins again, perhaps as the next leader.
pub(crate) async fn begin<'a, K, V>(
    steps: &'a dyn Steps<K, V>,
    hash: u64,
    key: &K,
    by_thread: bool,
    takes_errors: bool,
) -> Begun<'a, K, V> {
    loop {
        match steps.begin(hash, key, by_thread).await {
            Step::Done(value) => return Begun::Value(value, "hit"),
            Step::Compute(leader, lease) => return Begun::Lead((leader, lease)),
            Step::Wait(flight) => {
                if let Some(value) = std::future::poll_fn(|cx| steps.poll_wait(&flight, cx)).await {
                    steps.coalesced();
                    return Begun::Value(value, "coalesced");
                }
                if takes_errors && let Some(failure) = flight.failure() {
                    steps.coalesced();
                    return Begun::Failed(failure);
                }
                if let Some(value) = steps.look_again(hash, key) {
                    return Begun::Value(value, "coalesced");
                }
            }
        }
    }
}
