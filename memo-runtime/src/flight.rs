//! Per-key single-flight: concurrent misses of one key run the computation once.
//!
//! The first caller to miss a key becomes its *leader* and registers a [`Flight`] for it; callers
//! that miss the same key meanwhile wait on that flight alone, so unrelated keys never share a lock
//! or a wake-up. The table lock is held only to add or remove a flight, never across a computation,
//! and a hit never looks at this table.
//!
//! Waiting works for threads ([`Flight::wait`], a condition variable) and for tasks
//! ([`Flight::poll_wait`], wakers), so sync and async callers share one table.
//!
//! If the leader panics, or its future is dropped (an async caller cancelled), its [`Leader`] guard
//! marks the flight abandoned; the waiters wake up and one of them becomes the next leader. A leader
//! whose computation failed hands its waiters a copy of the error ([`Leader::fail`]) where the error
//! can be cloned, and abandons the flight otherwise. A sync
//! leader that calls back into its own key is told so ([`Join::Reentrant`]) instead of waiting for
//! itself.

use std::hash::{BuildHasher, Hash};
use std::sync::PoisonError;
use std::task::{Context, Poll, Waker};

use crate::spread::shard_of;
use crate::sync::thread::{self, ThreadId};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard};

use hashbrown::HashTable;

/// How many table shards (a power of two): misses of different keys rarely meet on one lock.
const SHARDS: usize = 32;

/// One shard of the in-flight table: key → its flight.
type Table<K, V> = Mutex<HashTable<(K, Arc<Flight<V>>)>>;

/// The in-flight computations of one cache.
pub(crate) struct Flights<K, V> {
    shards: Box<[Table<K, V>]>,
    hasher: foldhash::fast::RandomState,
}

/// One computation in progress, shared by its leader and its waiters.
pub(crate) struct Flight<V> {
    state: Mutex<Waiting<V>>,
    done: Condvar,
    leader: ThreadId,
}

struct Waiting<V> {
    state: State<V>,
    /// Tasks to wake when the flight settles.
    wakers: Vec<Waker>,
}

enum State<V> {
    Running,
    /// The leader's result, for the waiters that were there to see it.
    Done(V),
    /// The leader's computation failed: a copy of its error for each waiter.
    Failed(Box<dyn Failure>),
    /// The leader panicked or was cancelled: someone else must compute.
    Abandoned,
}

/// How a failed leader's waiters get its error: a way to box a copy of it (called only if one
/// waits), or none (they try again, one of them as the next leader).
pub(crate) type Handing<'a> = Option<&'a dyn Fn() -> Box<dyn Failure>>;

/// An error a failed leader hands to its waiters, its type erased so that flights (and the
/// caches holding them) need no error type: each waiter takes a clone and downcasts it.
pub(crate) trait Failure: Send {
    fn clone_box(&self) -> Box<dyn Failure>;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

impl<E: Clone + Send + 'static> Failure for E {
    fn clone_box(&self) -> Box<dyn Failure> {
        Box::new(self.clone())
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// What a caller that missed should do.
pub(crate) enum Join<'a, K, V> {
    /// Compute, then call [`Leader::finish`].
    Lead(Leader<'a, K, V>),
    /// Wait for the leader with [`Flight::wait`] or [`Flight::poll_wait`].
    Wait(Arc<Flight<V>>),
    /// This thread is already computing this key further up its stack: compute without caching.
    Reentrant,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held except user `Eq`/`Hash`, which leaves no half-state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq, V> Flights<K, V> {
    /// Leads the computation of `key`, or joins the one already running.
    ///
    /// With `by_thread`, a flight led by this very thread is [`Join::Reentrant`]. Async callers
    /// pass `false`: tasks move between threads and share them, so a thread says nothing there.
    pub(crate) fn join(&self, key: K, by_thread: bool) -> Join<'_, K, V> {
        let hash = self.hasher.hash_one(&key);
        let mut table = lock(self.shard(hash));
        if let Some((_, flight)) = table.find(hash, |(k, _)| *k == key) {
            return if by_thread && flight.leader == thread::current().id() {
                Join::Reentrant
            } else {
                Join::Wait(Arc::clone(flight))
            };
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(Waiting {
                state: State::Running,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
            leader: thread::current().id(),
        });
        table.insert_unique(hash, (key, Arc::clone(&flight)), |(k, _)| {
            self.hasher.hash_one(k)
        });
        drop(table);
        Join::Lead(Leader {
            flights: self,
            hash,
            flight,
            retire: Self::retire,
            finished: false,
        })
    }

    /// Number of computations in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// The table of `hash`, by [`shard_of`]: bits of the hash itself would crowd consecutive
    /// integer keys onto a few tables in some processes.
    fn shard(&self, hash: u64) -> &Table<K, V> {
        &self.shards[shard_of(hash, SHARDS - 1)]
    }

    /// Unregisters `flight`, handing its key back.
    fn remove(&self, hash: u64, flight: &Arc<Flight<V>>) -> Option<K> {
        let mut table = lock(self.shard(hash));
        let entry = table
            .find_entry(hash, |(_, f)| Arc::ptr_eq(f, flight))
            .ok()?;
        Some(entry.remove().0.0)
    }

    /// Unregisters `flight` and settles it: as failed with `failed()`'s error, which the waiters
    /// take a copy of (built only if one waits), or as abandoned (they try again).
    fn retire(&self, hash: u64, flight: &Arc<Flight<V>>, failed: Handing<'_>) {
        self.remove(hash, flight);
        // After removal nobody new can join: if no one is waiting, skip the copy.
        let failed = failed.filter(|_| Arc::strong_count(flight) > 1);
        flight.settle(failed.map_or(State::Abandoned, |failed| State::Failed(failed())));
    }
}

impl<V: Clone> Flight<V> {
    /// Waits for the leader; `None` if it gave up (panicked) or failed, and the caller must try
    /// again, or take the leader's error from [`failure`](Flight::failure).
    pub(crate) fn wait(&self) -> Option<V> {
        let mut waiting = lock(&self.state);
        loop {
            match &waiting.state {
                State::Running => {
                    waiting = self
                        .done
                        .wait(waiting)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                State::Done(value) => return Some(value.clone()),
                State::Failed(_) | State::Abandoned => return None,
            }
        }
    }

    /// [`wait`](Self::wait) for a task: ready with the leader's value, or `None` if it gave up
    /// (panicked, or its future was dropped) and the caller must try again.
    pub(crate) fn poll_wait(&self, cx: &Context<'_>) -> Poll<Option<V>> {
        let mut waiting = lock(&self.state);
        match &waiting.state {
            State::Running => {
                if !waiting.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    waiting.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Done(value) => Poll::Ready(Some(value.clone())),
            State::Failed(_) | State::Abandoned => Poll::Ready(None),
        }
    }
}

impl<V> Flight<V> {
    /// A copy of the failed leader's error, once the flight settled so; `None` otherwise.
    pub(crate) fn failure(&self) -> Option<Box<dyn Failure>> {
        match &lock(&self.state).state {
            State::Failed(failure) => Some(failure.clone_box()),
            _ => None,
        }
    }
}

impl<V> Flight<V> {
    fn settle(&self, state: State<V>) {
        let wakers = {
            let mut waiting = lock(&self.state);
            waiting.state = state;
            std::mem::take(&mut waiting.wakers)
        };
        self.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// How a [`Leader`] unregisters and settles its flight ([`Flights::retire`]).
type Retire<K, V> = fn(&Flights<K, V>, u64, &Arc<Flight<V>>, Handing<'_>);

/// The duty to settle a flight. Dropped unfinished (the computation panicked, or the future
/// computing it was dropped), it abandons the flight so that a waiter takes over.
///
/// No bounds on the type: it travels through code that must not restate the key's bounds (see
/// `private.rs`); `retire` carries the bounded code in.
pub(crate) struct Leader<'a, K, V> {
    flights: &'a Flights<K, V>,
    hash: u64,
    flight: Arc<Flight<V>>,
    retire: Retire<K, V>,
    finished: bool,
}

impl<K, V> Leader<'_, K, V> {
    /// The computation failed: the waiters take a copy of `failure()`'s error, or, without one
    /// (an error that cannot be cloned), try again, one of them as the next leader.
    pub(crate) fn fail(mut self, failure: Handing<'_>) {
        (self.retire)(self.flights, self.hash, &self.flight, failure);
        self.finished = true;
    }
}

impl<K: Hash + Eq, V: Clone> Leader<'_, K, V> {
    /// Hands `value` to the waiters and retires the flight.
    ///
    /// Call it after the value is stored, so a caller arriving after the flight is gone finds it.
    pub(crate) fn finish(mut self, value: &V) {
        self.flights.remove(self.hash, &self.flight);
        // After removal nobody new can join: if no one is waiting, skip the clone.
        if Arc::strong_count(&self.flight) > 1 {
            self.flight.settle(State::Done(value.clone()));
        }
        // Only now: if removing the key or cloning the value panicked, `drop` abandons the
        // flight and the waiters move on instead of waiting for ever.
        self.finished = true;
    }
}

impl<K, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            (self.retire)(self.flights, self.hash, &self.flight, None);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_leader_many_waiters() {
        let flights = Flights::<u32, String>::default();
        let runs = AtomicUsize::new(0);
        let joined = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| match flights.join(7, true) {
                    Join::Lead(leader) => {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Finish only once every other caller is waiting on this flight.
                        while joined.load(Ordering::SeqCst) < 15 {
                            thread::yield_now();
                        }
                        leader.finish(&"seven".to_string());
                    }
                    Join::Wait(flight) => {
                        joined.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(flight.wait().as_deref(), Some("seven"));
                    }
                    Join::Reentrant => unreachable!(),
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn abandoned_flight_wakes_waiters() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join(1, true) else {
            panic!("first caller leads")
        };
        let (joined, has_joined) = std::sync::mpsc::channel();
        let waited = thread::scope(|s| {
            let waiter = s.spawn(|| {
                let Join::Wait(flight) = flights.join(1, true) else {
                    panic!("second caller waits")
                };
                joined.send(()).unwrap();
                flight.wait()
            });
            has_joined.recv().unwrap();
            drop(leader);
            waiter.join().unwrap()
        });
        assert_eq!(waited, None);
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join(1, true), Join::Lead(_)));
    }

    #[test]
    fn a_failed_flight_hands_its_waiters_a_copy_of_the_error() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join(1, false) else {
            panic!("first caller leads")
        };
        let Join::Wait(flight) = flights.join(1, false) else {
            panic!("second caller waits")
        };
        let error = String::from("failed");
        leader.fail(Some(&|| Box::new(error.clone())));
        assert_eq!(flight.wait(), None, "no value");
        let copy = flight.failure().expect("the error").into_any();
        assert_eq!(
            copy.downcast_ref::<String>().map(String::as_str),
            Some("failed")
        );
        assert_eq!(flights.len(), 0);
        assert!(
            matches!(flights.join(1, false), Join::Lead(_)),
            "nothing stays"
        );
    }

    #[test]
    fn a_failure_without_waiters_copies_nothing() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join(1, true) else {
            panic!("first caller leads")
        };
        leader.fail(Some(&|| unreachable!("nobody waits")));
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn async_callers_are_never_reentrant() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join(1, false) else {
            panic!("first caller leads")
        };
        assert!(matches!(flights.join(1, false), Join::Wait(_)));
        leader.finish(&1);
    }

    #[test]
    fn a_task_waiting_is_woken_when_the_flight_settles() {
        use std::sync::atomic::AtomicBool;
        use std::task::Wake;

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join(1, false) else {
            panic!("first caller leads")
        };
        let Join::Wait(flight) = flights.join(1, false) else {
            panic!("second caller waits")
        };
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let cx = Context::from_waker(&waker);
        assert_eq!(flight.poll_wait(&cx), Poll::Pending);
        assert_eq!(
            flight.poll_wait(&cx),
            Poll::Pending,
            "polled twice, registered once"
        );
        leader.finish(&42);
        assert!(flag.0.load(Ordering::SeqCst));
        assert_eq!(flight.poll_wait(&cx), Poll::Ready(Some(42)));
    }

    #[test]
    fn reentrant_join_is_detected() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join(1, true) else {
            panic!("first caller leads")
        };
        assert!(matches!(flights.join(1, true), Join::Reentrant));
        assert!(matches!(flights.join(2, true), Join::Lead(_)));
        leader.finish(&1);
    }

    /// A value whose clone panics: handing it to a waiter fails half-way through `finish`.
    struct Unclonable;

    impl Clone for Unclonable {
        fn clone(&self) -> Self {
            panic!("no clones")
        }
    }

    #[test]
    fn a_panic_while_finishing_still_releases_the_waiters() {
        let flights = Flights::<u32, Unclonable>::default();
        let Join::Lead(leader) = flights.join(1, true) else {
            panic!("first caller leads")
        };
        let (joined, has_joined) = std::sync::mpsc::channel();
        let waited = thread::scope(|s| {
            let waiter = s.spawn(|| {
                let Join::Wait(flight) = flights.join(1, true) else {
                    panic!("second caller waits")
                };
                joined.send(()).unwrap();
                flight.wait().is_some()
            });
            has_joined.recv().unwrap();
            let finish = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                leader.finish(&Unclonable);
            }));
            assert!(finish.is_err());
            waiter.join().unwrap()
        });
        assert!(!waited, "the waiter is told to try again, not left waiting");
    }
}

/// Every interleaving of two or three callers, explored by `loom`:
/// `RUSTFLAGS="--cfg loom" cargo test -p memo-runtime --lib --release loom`.
#[cfg(all(test, loom))]
mod loom {
    use super::*;
    use ::loom::sync::atomic::{AtomicUsize, Ordering};

    /// What a miss does with the table alone: lead and finish with `value`, or wait, and on an
    /// abandoned flight start over. Returns the value the caller ends with.
    fn call(
        flights: &Flights<u8, u32>,
        runs: &AtomicUsize,
        value: u32,
        abandon_first: bool,
    ) -> u32 {
        loop {
            match flights.join(1, true) {
                Join::Lead(leader) => {
                    let run = runs.fetch_add(1, Ordering::SeqCst);
                    if abandon_first && run == 0 {
                        // The computation panicked: the guard abandons the flight.
                        drop(leader);
                        return 0;
                    }
                    leader.finish(&value);
                    return value;
                }
                Join::Wait(flight) => {
                    if let Some(value) = flight.wait() {
                        return value;
                    }
                }
                Join::Reentrant => unreachable!("separate threads"),
            }
        }
    }

    #[test]
    fn loom_a_waiter_gets_the_leaders_value_or_leads_itself() {
        ::loom::model(|| {
            let flights = Arc::new(Flights::<u8, u32>::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let other = {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                thread::spawn(move || call(&flights, &runs, 2, false))
            };
            let mine = call(&flights, &runs, 1, false);
            let theirs = other.join().unwrap();
            let runs = runs.load(Ordering::SeqCst);
            // One run: both share it. Two runs: the second joined after the first had finished.
            assert!(
                (runs == 1 && mine == theirs) || (runs == 2 && mine != theirs),
                "runs {runs}, values {mine} and {theirs}"
            );
            assert_eq!(flights.len(), 0, "no flight left behind");
        });
    }

    #[test]
    fn loom_an_abandoned_flight_hands_over_to_a_waiter() {
        ::loom::model(|| {
            let flights = Arc::new(Flights::<u8, u32>::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let other = {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                thread::spawn(move || call(&flights, &runs, 2, true))
            };
            let mine = call(&flights, &runs, 1, true);
            let theirs = other.join().unwrap();
            // Whoever ran first gave up (0); the other computed its own value, never stuck waiting.
            assert!(
                (mine, theirs) == (0, 2) || (mine, theirs) == (1, 0),
                "values {mine} and {theirs}"
            );
            assert_eq!(runs.load(Ordering::SeqCst), 2);
            assert_eq!(flights.len(), 0);
        });
    }

    /// [`call`] for a task: waits through `poll_wait` and its waker.
    fn call_async(flights: &Flights<u8, u32>, runs: &AtomicUsize) -> u32 {
        loop {
            match flights.join(1, false) {
                Join::Lead(leader) => {
                    runs.fetch_add(1, Ordering::SeqCst);
                    leader.finish(&7);
                    return 7;
                }
                Join::Wait(flight) => {
                    let waited =
                        ::loom::future::block_on(std::future::poll_fn(|cx| flight.poll_wait(cx)));
                    if let Some(value) = waited {
                        return value;
                    }
                }
                Join::Reentrant => unreachable!("async callers are never reentrant"),
            }
        }
    }

    #[test]
    fn loom_a_task_waiting_is_woken_by_the_leader() {
        ::loom::model(|| {
            let flights = Arc::new(Flights::<u8, u32>::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let other = {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                thread::spawn(move || call_async(&flights, &runs))
            };
            assert_eq!(call_async(&flights, &runs), 7);
            assert_eq!(other.join().unwrap(), 7, "never left pending");
            assert_eq!(flights.len(), 0);
        });
    }
}
