//! A call that missed: it finds a value stored meanwhile, joins the computation another caller
//! leads, or leads it. One loop for every such call, sync or async, over every store.
//!
//! What differs between stores is behind [`Steps`]: the store's reads, claim and write, awaited
//! (a store in memory, or a disk's front, answers at once: its futures are ready when first
//! polled). A sync caller drives the same futures on its own thread
//! ([`wait`](crate::block::wait)), parking while it waits for another caller or another
//! process, and runs the body in its own frame between [`begin`] and [`finish`], so that no
//! function here is generic over a body.
//!
//! Nor over the key and value types: the loop holds them as `dyn Any` ([`Item`], [`Slot`],
//! [`Value`]) and reaches the typed code (compare, clone, the store's steps) through [`Steps`],
//! one object per cache. So the loop and its state machines are compiled once, not once per
//! memoized function's key and value types (issue 18).

use std::any::Any;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::cache::{Cache, Head};
use crate::flight::{Failure, Handed, RawJoin, RawLeader};
use crate::stats::Event;
use crate::store::{Lease, Store};

/// A boxed future that borrows for `'a`: how a [`Steps`] object returns its awaited steps.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A key lent to the loop: a `K` whose type only the cache's [`Steps`] know.
pub(crate) type Item = dyn Any + Sync;

/// A value lent to the loop: a `V` that the flight hands to waiters by itself.
pub(crate) type Value = dyn Handed;

/// Where the loop puts a value (or takes an owned key from): the caller's `Option<V>` (or
/// `Option<K>`).
pub(crate) type Slot = dyn Any + Send;

/// A leader's claim: its flight (none when a sync caller re-entered its key) and the store's
/// lease.
pub(crate) type LeaderClaim<'a> = (Option<RawLeader<'a>>, Lease);

/// What the leader's look at the store and claim of the key found.
pub(crate) enum Claimed {
    /// A value, put in the caller's slot: stored meanwhile, or by another process.
    Found,
    /// Compute, under this lease of the store's.
    Compute(Lease),
}

/// The steps of a call over one cache, as an object with no type parameters: the entry point,
/// where the key's and value's bounds are known, makes it (a key without `Hash` or serde is
/// reported there, once), and the loop reaches the cache through it. Every [`Item`], [`Value`]
/// and [`Slot`] given to a cache's steps holds that cache's key or value type.
pub(crate) trait Steps: Sync {
    /// What the loop reads of the cache apart from its types: its name (for traces and
    /// metrics) and its counters (the loop counts a miss of a leader that re-entered its key, a
    /// waiter coalesced, a value not kept, a computation that failed).
    fn head(&self) -> &Head;

    /// Whether the store's [`claim`](Self::claim) reads the value itself (Redis, tiered), so
    /// that the loop need not [`look`](Self::look) before it.
    fn claim_reads(&self) -> bool;

    /// Leads the computation of `key` (of hash `hash`), or joins the one running. `by_thread`:
    /// a sync caller, which may re-enter its own key.
    fn join(&self, hash: u64, key: &Item, by_thread: bool) -> RawJoin<'_>;

    /// A look at the store (counted as a hit when found): `true` with the value put in `out`.
    fn look<'k>(&'k self, hash: u64, key: &'k Item, out: &'k mut Slot) -> Boxed<'k, bool>;

    /// The new leader's claim of the key in the store; a value found is put in `out`.
    fn claim<'k>(&'k self, hash: u64, key: &'k Item, out: &'k mut Slot) -> Boxed<'k, Claimed>;

    /// The value [`claim`](Self::claim) put in `out`, lent.
    fn found<'a>(&self, out: &'a Slot) -> Option<&'a Value>;

    /// Stores `value` under the key taken from `key` (an awaited write, ready at once but for a
    /// store outside the process), then ends the store's claim `lease`.
    fn store<'a>(
        &'a self,
        hash: u64,
        key: &mut Slot,
        value: &Value,
        cost: Duration,
        lease: Lease,
    ) -> Boxed<'a, ()>;

    /// A refresh of the key in `key` failed: the store lets a later read refresh it again.
    fn release_refresh(&self, key: &Slot);
}

/// The `T` a cache's steps were lent.
fn item<T: 'static>(item: &dyn Any) -> &T {
    let Some(item) = item.downcast_ref() else {
        not_its_types()
    };
    item
}

/// The `Option<T>` a cache's steps were given to fill or take from.
fn slot<T: 'static>(slot: &mut Slot) -> &mut Option<T> {
    let slot: &mut dyn Any = slot;
    let Some(slot) = slot.downcast_mut() else {
        not_its_types()
    };
    slot
}

/// What the `Option<T>` a cache's steps were given to read holds.
fn slot_ref<T: 'static>(slot: &Slot) -> Option<&T> {
    let slot: &dyn Any = slot;
    match slot.downcast_ref::<Option<T>>() {
        Some(Some(held)) => Some(held),
        Some(None) => None,
        None => not_its_types(),
    }
}

/// A cache's steps were lent a key or a value of other types than its own: a bug of the loop.
/// One function rather than an `expect` per type (which a debug build compiles for each).
#[cold]
fn not_its_types() -> ! {
    panic!("a cache's steps are lent its own key and value types")
}

/// The output of a [`Store::LOCAL`] store's future, which is ready when first polled. Its
/// steps then return a ready future of a type every cache shares, rather than one of their
/// own: fewer functions compiled for each key and value type.
#[inline]
fn at_once<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a local store's futures are ready when first polled"),
    }
}

/// A [`Store::LOCAL`] store's look, already taken: a unit struct, so that boxing it allocates
/// nothing, of one type for every cache.
struct Answered<const FOUND: bool>;

impl<const FOUND: bool> Future for Answered<FOUND> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<bool> {
        Poll::Ready(FOUND)
    }
}

/// A [`Store::LOCAL`] store's claim, which claims nothing: as [`Answered`].
struct Unclaimed;

impl Future for Unclaimed {
    type Output = Claimed;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Claimed> {
        Poll::Ready(Claimed::Compute(Lease::none()))
    }
}

/// A [`Store::LOCAL`] store's write, already made: as [`Answered`].
struct Stored;

impl Future for Stored {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

/// The owned key a cache's steps were given.
fn take<T: 'static>(key: &mut Slot) -> T {
    let Some(key) = slot(key).take() else {
        not_its_types()
    };
    key
}

impl<K, V, S> Steps for Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    fn head(&self) -> &Head {
        Cache::head(self)
    }

    fn claim_reads(&self) -> bool {
        self.store().claim_reads()
    }

    fn join(&self, hash: u64, key: &Item, by_thread: bool) -> RawJoin<'_> {
        self.flights()
            .join_raw(hash, item::<K>(key).clone(), by_thread)
    }

    fn look<'k>(&'k self, hash: u64, key: &'k Item, out: &'k mut Slot) -> Boxed<'k, bool> {
        let (key, out) = (item::<K>(key), slot::<V>(out));
        if S::LOCAL {
            *out = at_once(self.store().get_async(hash, &key));
            return if out.is_some() {
                Box::pin(Answered::<true>)
            } else {
                Box::pin(Answered::<false>)
            };
        }
        Box::pin(async move {
            *out = self.store().get_async(hash, &key).await;
            out.is_some()
        })
    }

    fn claim<'k>(&'k self, hash: u64, key: &'k Item, out: &'k mut Slot) -> Boxed<'k, Claimed> {
        if S::LOCAL {
            // Nothing to claim, nothing another process stored: compute.
            self.head().counters.record(Event::Miss);
            return Box::pin(Unclaimed);
        }
        let (key, out) = (item::<K>(key), slot::<V>(out));
        Box::pin(async move { self.claimed(self.store().claim_async(hash, key).await, out) })
    }

    fn found<'a>(&self, out: &'a Slot) -> Option<&'a Value> {
        // A match rather than `map`, which would compile a closure per value type.
        match slot_ref::<V>(out) {
            Some(value) => Some(value),
            None => None,
        }
    }

    fn store<'a>(
        &'a self,
        hash: u64,
        key: &mut Slot,
        value: &Value,
        cost: Duration,
        lease: Lease,
    ) -> Boxed<'a, ()> {
        let (key, value) = (take::<K>(key), item::<V>(value).clone());
        let stored = self
            .store()
            .insert_claimed_async(hash, key, value, cost, lease);
        if S::LOCAL {
            at_once(stored);
            return Box::pin(Stored);
        }
        Box::pin(stored)
    }

    fn release_refresh(&self, key: &Slot) {
        let Some(key) = slot_ref::<K>(key) else {
            not_its_types()
        };
        self.store().release_refresh(&key);
    }
}

/// How a miss whose types are not bounded (`private.rs`: its key and value are reported once,
/// at the entry point) lends them to the loop: made where the bounds are known.
pub(crate) struct Lend<K, V> {
    /// The key, lent.
    pub(crate) key: fn(&K) -> &Item,
    /// The caller's owned key, to take.
    pub(crate) key_slot: fn(&mut Option<K>) -> &mut Slot,
    /// The value, lent.
    pub(crate) value: fn(&V) -> &Value,
    /// The caller's slot for a value found.
    pub(crate) value_slot: fn(&mut Option<V>) -> &mut Slot,
}

impl<K: Send + Sync + 'static, V: Clone + Send + Sync + 'static> Lend<K, V> {
    /// The one for `K` and `V`.
    pub(crate) const NEW: &'static Self = &Self {
        key: lend,
        key_slot: lend_slot,
        value: lend_value,
        value_slot: lend_slot,
    };
}

fn lend<T: Sync + 'static>(item: &T) -> &Item {
    item
}

fn lend_value<T: Clone + Send + Sync + 'static>(value: &T) -> &Value {
    value
}

fn lend_slot<T: Send + 'static>(slot: &mut Option<T>) -> &mut Slot {
    slot
}

/// Where a call stands once [`begin`] answered.
pub(crate) enum Begun<'a> {
    /// A value, put in the caller's slot, and how the call got it (for its trace): `hit`
    /// (stored meanwhile, or another process's) or `coalesced` (the leader's).
    Value(&'static str),
    /// The leader failed, and left this copy of its error for the caller, which asked for one.
    Failed(Box<dyn Failure>),
    /// Compute, then [`finish`] (or [`Steps::failed`]).
    Lead(LeaderClaim<'a>),
}

/// The loop of a call that missed `key` (of hash `hash`): begin; a value (put in `out`) ends
/// it, and a lead is returned for the caller to run the body. A waiter takes the leader's
/// value, or (the leader failed) a copy of its error when the caller `takes_errors`, or else
/// looks at the store and begins again, perhaps as the next leader.
pub(crate) async fn begin<'a>(
    steps: &'a dyn Steps,
    hash: u64,
    key: &Item,
    out: &mut Slot,
    by_thread: bool,
    takes_errors: bool,
) -> Begun<'a> {
    loop {
        match steps.join(hash, key, by_thread) {
            RawJoin::Lead(leader) => {
                // A value may have landed between the caller's miss and its taking the lead (a
                // store whose claim reads the value looks there, in the same round trip). The
                // claim makes callers in other processes sharing the store wait too.
                let looked = !steps.claim_reads() && steps.look(hash, key, out).await;
                let claimed = if looked {
                    Claimed::Found
                } else {
                    steps.claim(hash, key, out).await
                };
                return match claimed {
                    Claimed::Found => {
                        if let Some(value) = steps.found(out) {
                            leader.finish(value);
                        }
                        Begun::Value("hit")
                    }
                    Claimed::Compute(lease) => Begun::Lead((Some(leader), lease)),
                };
            }
            RawJoin::Reentrant => {
                steps.head().counters.record(Event::Miss);
                return Begun::Lead((None, Lease::none()));
            }
            RawJoin::Wait(flight) => {
                if std::future::poll_fn(|cx| flight.poll_value(cx, out)).await {
                    steps.head().counters.record(Event::Coalesced);
                    return Begun::Value("coalesced");
                }
                if takes_errors && let Some(failure) = flight.failure() {
                    steps.head().counters.record(Event::Coalesced);
                    return Begun::Failed(failure);
                }
                // The leader gave up: look at the store again, unless its claim reads it (the
                // waiter then begins again at once).
                if !steps.claim_reads() && steps.look(hash, key, out).await {
                    return Begun::Value("coalesced");
                }
            }
        }
    }
}

/// [`begin`] for a caller that takes no error: `None` once a value is in `out`, or the claim
/// under which to compute.
pub(crate) async fn lead<'a>(
    steps: &'a dyn Steps,
    hash: u64,
    key: &Item,
    out: &mut Slot,
    by_thread: bool,
) -> Option<LeaderClaim<'a>> {
    loop {
        match begin(steps, hash, key, out, by_thread, false).await {
            Begun::Value(_) => return None,
            Begun::Lead(claim) => return Some(claim),
            // Not asked for (`false`): this caller takes no error.
            Begun::Failed(_) => {}
        }
    }
}

/// The end of a forced refresh (`f_cache().refresh(..)`, a computation run whether or not the
/// key was cached): stores `value` under the key taken from `key` if it is `kept` (an awaited
/// write, as [`finish`]'s); `value` is `None` when the computation failed. Nobody waits for a
/// forced refresh, so there is no flight to settle and no claim to end.
pub(crate) async fn refreshed(
    steps: &dyn Steps,
    hash: u64,
    key: &mut Slot,
    value: Option<&Value>,
    kept: bool,
    started: Instant,
) {
    let stored = value.filter(|_| kept);
    refresh_ended(steps, key, stored.is_none());
    if let Some(value) = stored {
        let cost = started.elapsed();
        steps.store(hash, key, value, cost, Lease::none()).await;
    }
}

/// A forced refresh of the key in `key` ended: counted. When it `failed` (its computation
/// failed, or its value is not kept) the old value stays; the failure is counted and reported,
/// and a later read may refresh the key again.
pub(crate) fn refresh_ended(steps: &dyn Steps, key: &Slot, failed: bool) {
    steps.head().refresh_ended(failed);
    if failed {
        steps.release_refresh(key);
    }
}

/// The leader's last step: stores `value` (taking the owned key from `key`) if `kept` (an
/// awaited write, ready at once but for a store outside the process), then hands it to the
/// waiters and ends the store's claim.
///
/// Callers that were waiting get the leader's value either way: they asked at the same time.
pub(crate) async fn finish(
    steps: &dyn Steps,
    hash: u64,
    key: &mut Slot,
    (leader, lease): LeaderClaim<'_>,
    value: &Value,
    kept: bool,
    cost: Duration,
) {
    #[cfg(feature = "metrics")]
    crate::metrics::record_load(steps.head().name, cost);
    if kept {
        if let Some(leader) = leader {
            // Stored, then the claim ended: other processes find the value once it is gone.
            steps.store(hash, key, value, cost, lease).await;
            leader.finish(value);
            return;
        }
    } else {
        steps.head().counters.record(Event::LoadError);
        if let Some(leader) = leader {
            leader.finish(value);
        }
    }
    drop(lease);
}
