//! Model-based tests of the in-memory store: random sequences of operations, checked against a
//! plain map of what each key may hold.
//!
//! A bounded store may drop any entry at any time (that is its policy's business), so the model
//! does not predict *which* entries stay; it predicts what a lookup may return. The properties:
//! a lookup returns the last value stored under that key or nothing (never another key's value,
//! never an older value); a removed or cleared key returns nothing; the bound holds after every
//! operation; and the store's own counts add up (every stored key is held, evicted or removed).
//! Weighted stores also keep their total weight within `max_weight` after every operation, the
//! total is the sum of the weights held, and the eviction listener hears of every entry that left,
//! with the right cause.

use std::collections::HashMap;

use std::sync::{Arc, Mutex};

use memo_runtime::{Config, MemoryStore, Policy, RemovalCause, Store};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Insert(u16, u32),
    Get(u16),
    Peek(u16),
    Remove(u16),
    Clear,
}

fn op(keys: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..keys, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        8 => (0..keys).prop_map(Op::Get),
        2 => (0..keys).prop_map(Op::Peek),
        2 => (0..keys).prop_map(Op::Remove),
        1 => Just(Op::Clear),
    ]
}

const POLICIES: [Policy; 4] = [Policy::Auto, Policy::Lru, Policy::Lfu, Policy::Fifo];

/// Runs `ops` on a store of each policy bounded by `maxsize`, checking every step.
fn check(maxsize: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    for policy in POLICIES {
        check_policy(maxsize, policy, ops)?;
    }
    Ok(())
}

/// Runs `ops` on a store bounded by `maxsize` and checks every step against the model.
fn check_policy(maxsize: usize, policy: Policy, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = MemoryStore::<u16, u32>::new(&Config::new().maxsize(maxsize).policy(policy));
    check_store(&store, maxsize, policy, ops, &mut |_, _| Ok(()))
}

/// A value weighs its last two decimal digits.
#[allow(clippy::trivially_copy_pass_by_ref, reason = "a weigher's signature")]
fn weigh(_: &u16, value: &u32) -> u64 {
    u64::from(*value % 100)
}

type Log = Arc<Mutex<Vec<(u16, u32, RemovalCause)>>>;

/// Runs `ops` on a store of each policy bounded by `max_weight` (and `maxsize`, if any), with a
/// listener: the model's checks, plus the weight bound and the listener's account.
fn check_weighted(
    maxsize: Option<usize>,
    max_weight: u64,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    for policy in POLICIES {
        let mut config = Config::new().max_weight(max_weight).policy(policy);
        config.maxsize = maxsize;
        let log = Log::default();
        let sink = Arc::clone(&log);
        let store = MemoryStore::<u16, u32>::new(&config)
            .weigher(weigh)
            .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)));
        let (mut replaced, mut removed) = (0, 0);
        let mut each = |op: &Op, done: bool| {
            if !done {
                match *op {
                    Op::Insert(k, _) => replaced += usize::from(store.peek(&&k).is_some()),
                    Op::Remove(k) => removed += usize::from(store.peek(&&k).is_some()),
                    Op::Clear => removed += store.len(),
                    Op::Get(_) | Op::Peek(_) => {}
                }
                return Ok(());
            }
            let weight = store.weight().unwrap();
            prop_assert!(
                weight <= max_weight,
                "{:?}: weight {} > {}",
                policy,
                weight,
                max_weight
            );
            let held: u64 = store
                .keys()
                .iter()
                .map(|k| weigh(k, &store.peek(&k).unwrap()))
                .sum();
            prop_assert_eq!(
                weight,
                held,
                "{:?}: the total is the sum of the weights held",
                policy
            );
            Ok(())
        };
        check_store(
            &store,
            maxsize.unwrap_or(usize::MAX),
            policy,
            ops,
            &mut each,
        )?;
        let log = log.lock().unwrap();
        let told = |cause| log.iter().filter(|e| e.2 == cause).count();
        prop_assert_eq!(
            told(RemovalCause::Evicted) as u64,
            store.counts().evicted,
            "{:?}",
            policy
        );
        prop_assert_eq!(told(RemovalCause::Expired), 0);
        // A replacement too heavy to stay in place is told as replaced too, once.
        prop_assert_eq!(told(RemovalCause::Replaced), replaced, "{:?}", policy);
        prop_assert_eq!(told(RemovalCause::Invalidated), removed, "{:?}", policy);
    }
    Ok(())
}

/// Runs `ops` on `store` and checks every step against the model.
fn check_store(
    store: &MemoryStore<u16, u32>,
    maxsize: usize,
    policy: Policy,
    ops: &[Op],
    each: &mut dyn FnMut(&Op, bool) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    // The last value stored under each key since it was last removed: what a lookup may return.
    let mut last: HashMap<u16, u32> = HashMap::new();
    let (mut stored, mut removed) = (0_u64, 0_u64);
    for op in ops {
        each(op, false)?;
        match *op {
            Op::Insert(k, v) => {
                let held = store.peek(&&k).is_some();
                store.insert(k, v);
                last.insert(k, v);
                if !held {
                    stored += 1;
                }
            }
            Op::Get(k) | Op::Peek(k) => {
                let found = if matches!(op, Op::Get(_)) {
                    store.get(&&k)
                } else {
                    store.peek(&&k)
                };
                if let Some(value) = found {
                    prop_assert_eq!(
                        Some(&value),
                        last.get(&k),
                        "{:?}: key {} returned {}",
                        policy,
                        k,
                        value
                    );
                }
            }
            Op::Remove(k) => {
                if store.remove(&&k) {
                    removed += 1;
                }
                last.remove(&k);
                prop_assert_eq!(store.peek(&&k), None);
            }
            Op::Clear => {
                removed += store.len() as u64;
                store.clear();
                last.clear();
                prop_assert_eq!(store.len(), 0);
            }
        }
        prop_assert!(
            store.len() <= maxsize,
            "{:?}: len {} > {}",
            policy,
            store.len(),
            maxsize
        );
        each(op, true)?;
        let counts = store.counts();
        prop_assert_eq!(
            stored,
            store.len() as u64 + counts.evicted + removed,
            "{:?}: stored keys are held, evicted or removed ({:?})",
            policy,
            counts
        );
    }
    // Every key the store still holds has its last value.
    for k in store.keys() {
        prop_assert_eq!(store.peek(&&k), last.get(&k).copied());
    }
    Ok(())
}

/// Fewer cases than the default 256 for the larger runs; no regression files in the source tree.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(n)
    }
}

/// FIFO in one shard is exact: the reference is a queue of keys in insertion order, and the store
/// must hold exactly the keys the queue holds.
fn check_fifo_exactly(maxsize: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = MemoryStore::<u16, u32>::new(&Config::new().maxsize(maxsize).policy(Policy::Fifo));
    let mut queue: std::collections::VecDeque<(u16, u32)> = std::collections::VecDeque::new();
    for op in ops {
        match *op {
            Op::Insert(k, v) => {
                store.insert(k, v);
                if let Some(entry) = queue.iter_mut().find(|(key, _)| *key == k) {
                    entry.1 = v; // a replacement keeps its place
                } else {
                    if queue.len() == maxsize {
                        queue.pop_front();
                    }
                    queue.push_back((k, v));
                }
            }
            Op::Get(k) | Op::Peek(k) => {
                let expected = queue.iter().find(|(key, _)| *key == k).map(|e| e.1);
                prop_assert_eq!(store.get(&&k), expected, "key {}", k);
            }
            Op::Remove(k) => {
                let held = queue.iter().any(|(key, _)| *key == k);
                prop_assert_eq!(store.remove(&&k), held);
                queue.retain(|(key, _)| *key != k);
            }
            Op::Clear => {
                store.clear();
                queue.clear();
            }
        }
        prop_assert_eq!(store.len(), queue.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    /// FIFO against an exact queue model.
    #[test]
    fn fifo_evicts_exactly_in_insertion_order(ops in prop::collection::vec(op(40), 1..400)) {
        check_fifo_exactly(8, &ops)?;
    }

    /// One shard (small bound): the policy works on every entry.
    #[test]
    fn small_store_agrees_with_the_model(ops in prop::collection::vec(op(40), 1..400)) {
        check(8, &ops)?;
    }

    /// Many shards (bound split over them).
    #[test]
    fn sharded_store_agrees_with_the_model(ops in prop::collection::vec(op(3000), 1..2000)) {
        check(2048, &ops)?;
    }

    /// Bounded by weight alone, in 16 shards of 40.
    #[test]
    fn weighted_store_agrees_with_the_model(ops in prop::collection::vec(op(200), 1..600)) {
        check_weighted(None, 16 * 40, &ops)?;
    }

    /// Bounded by count and by weight, in one shard.
    #[test]
    fn small_weighted_store_agrees_with_the_model(ops in prop::collection::vec(op(40), 1..400)) {
        check_weighted(Some(8), 150, &ops)?;
    }

    /// A bound of one entry.
    #[test]
    fn single_entry_store_agrees_with_the_model(ops in prop::collection::vec(op(4), 1..200)) {
        check(1, &ops)?;
    }
}

/// With a time to live, on a mock clock: a lookup never returns a value past its time to live,
/// and expired entries are counted as such.
#[cfg(feature = "test-util")]
mod expiry {
    use super::*;
    use memo_runtime::Clock;
    use std::time::Duration;

    #[derive(Clone, Debug)]
    enum TimedOp {
        Insert(u16, u32),
        Get(u16),
        Advance(u64),
        Purge,
    }

    fn timed_op() -> impl Strategy<Value = TimedOp> {
        prop_oneof![
            6 => (0..30_u16, any::<u32>()).prop_map(|(k, v)| TimedOp::Insert(k, v)),
            6 => (0..30_u16).prop_map(TimedOp::Get),
            3 => (0..40_u64).prop_map(TimedOp::Advance),
            1 => Just(TimedOp::Purge),
        ]
    }

    const TTL_MS: u64 = 100;

    proptest! {
        #![proptest_config(cases(256))]

        #[test]
        fn expired_values_are_never_returned(ops in prop::collection::vec(timed_op(), 1..400)) {
            for policy in POLICIES {
                expiry_agrees(policy, &ops)?;
            }
        }
    }

    fn expiry_agrees(policy: Policy, ops: &[TimedOp]) -> Result<(), TestCaseError> {
        {
            let store = MemoryStore::<u16, u32>::new(
                &Config::new()
                    .maxsize(16)
                    .ttl(Duration::from_millis(TTL_MS))
                    .policy(policy),
            );
            let (clock, hand) = Clock::mock();
            store.set_clock(clock);
            let mut now = 0_u64;
            // Each key's last value and when it was stored (ms on the mock clock).
            let mut last: HashMap<u16, (u32, u64)> = HashMap::new();
            for op in ops {
                match *op {
                    TimedOp::Insert(k, v) => {
                        store.insert(k, v);
                        last.insert(k, (v, now));
                    }
                    TimedOp::Get(k) => {
                        if let Some(value) = store.get(&&k) {
                            let (expected, at) = last[&k];
                            prop_assert_eq!(value, expected);
                            prop_assert!(now < at + TTL_MS, "served {}ms after storing", now - at);
                        }
                    }
                    TimedOp::Advance(ms) => {
                        hand.increment(Duration::from_millis(ms));
                        now += ms;
                    }
                    TimedOp::Purge => {
                        store.purge_expired();
                        for k in store.keys() {
                            prop_assert!(now < last[&k].1 + TTL_MS, "key {} outlived its ttl", k);
                        }
                    }
                }
                prop_assert!(store.len() <= 16);
            }
        }
        Ok(())
    }
}
