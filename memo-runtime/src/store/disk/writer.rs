//! Group commit: writes are queued and committed by one thread per database, many to a
//! transaction.
//!
//! A transaction of its own per write caps a process near 100,000 writes a second (a commit is a
//! WAL append plus SQLite's bookkeeping); the writer waits up to [`WINDOW`] after the first queued
//! write for others, then commits them all at once, and a write costs a few microseconds. Until its
//! commit, a write is answered from the queue (`pending`), so the process that wrote it reads it
//! back at once (a claim's value, once a write of another process is seen since it was queued,
//! only while its lock row is there: that write may have removed its key); other processes see
//! it after the commit, which also bumps the shared change counter.
//!
//! A batch the disk refuses is counted on each function it wrote for, and its removals are tried
//! again alone (a value whose write failed is removed too: the row is no longer its key's value).
//! If the disk refuses those as well, this process reads the keys (or the namespace of a
//! `Clear`) as gone until a later batch commits the removals; other processes keep reading the
//! rows on disk meanwhile, as they do any write of this process not yet committed.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::checksum;
use super::db::{Shared, Space};
use super::files;

/// How long the writer waits for more writes after the first one.
const WINDOW: Duration = Duration::from_millis(1);

/// Writes per transaction, at most.
const MAX_BATCH: usize = 16_384;

/// Queued writes past which writers wait for the disk to catch up.
const MAX_QUEUED: usize = 65_536;

/// Refused removals kept one by one, at most; past them, their namespaces are cleared instead.
const MAX_RETRY: usize = MAX_BATCH;

/// Bumped in the child of each `fork`: the writer threads stay in the parent, so a queue
/// started under another count has no writer (see [`Queue::forked`]).
static FORKS: AtomicU64 = AtomicU64::new(0);

/// A queued write.
#[derive(Clone)]
pub(super) struct Op {
    seq: u64,
    ns: Arc<[u8]>,
    key: Arc<[u8]>,
    kind: Kind,
}

#[derive(Clone)]
pub(super) enum Kind {
    /// Store `value`, expiring at `expires` (Unix milliseconds; 0 for never); with a `token`
    /// (a claim's), only while the key's lock row still holds it: a removal since the claim
    /// (in any process) deleted the row (`DiskStore::unlock`), and the value may be older than
    /// that removal.
    Put {
        value: Arc<[u8]>,
        expires: i64,
        token: Option<i64>,
        /// When it was stored (Unix milliseconds, the store's clock): a row it replaces whose
        /// lifetime had passed by then counts as expired, as in memory.
        now: i64,
        /// A claim's value: the epoch (`Shared::epoch_now`) at which its lock row was known to
        /// be its own. A read that sees another epoch takes it from the queue only while its
        /// lock row is still there.
        seen: Option<u64>,
        /// A plain insert's: the key's lock row goes with the write, whoever holds it, so that a
        /// computation of the key begun before, in any process, stores nothing over it.
        outdates: bool,
        /// Whether `expires` is the value's own time to live (`insert_with_ttl`, `ttl_from`),
        /// which a `Touch` (time to idle) does not move.
        own: bool,
    },
    Delete,
    /// Remove the key's row as a read found it (its inline `value`, `file` and `sum`), a fault,
    /// but not a row another process stored since (a sound value of the key).
    Discard {
        value: Arc<[u8]>,
        file: Option<String>,
        sum: i64,
    },
    /// Move the expiry of a stored value to `expires` (time to idle: it was used).
    Touch {
        expires: i64,
    },
    /// End the lock of `key` taken with `token`.
    Release {
        token: i64,
    },
    /// Remove every entry of the namespace (`key` is empty).
    Clear,
}

/// A write not yet committed, as a read sees it.
#[derive(Clone)]
pub(super) enum Pending {
    /// `token`, `seen`, `own`: as [`Kind::Put`]'s.
    Put {
        value: Arc<[u8]>,
        expires: i64,
        token: Option<i64>,
        seen: Option<u64>,
        own: bool,
    },
    Gone,
}

/// The newest uncommitted `Put` or `Delete` of each key of a namespace, with its sequence number,
/// and the sequence number of the newest uncommitted write of the key that outdates the
/// computations of it begun before (an insert or a removal; 0 for none: see
/// [`Queue::push_claimed`]).
type Keys = HashMap<Arc<[u8]>, (u64, Pending, u64)>;

#[derive(Default)]
struct State {
    ops: Vec<Op>,
    /// By namespace, the writes that are not committed yet.
    pending: HashMap<Arc<[u8]>, Keys>,
    /// By namespace, the sequence number of a `Clear` not committed yet: its rows read as gone.
    cleared: HashMap<Arc<[u8]>, u64>,
    /// Removals the disk refused, tried again first in the next batch (their keys read as gone).
    retry: Vec<Op>,
    next: u64,
    committed: u64,
    flush: bool,
    stop: bool,
    running: bool,
}

/// The queue between the stores of a process and the writer thread of their database.
#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<State>,
    /// Wakes the writer.
    work: Condvar,
    /// Wakes callers waiting for a commit.
    done: Condvar,
    /// [`FORKS`] when the writer started.
    born: AtomicU64,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Whether `op` is the newest write of its key (or, a `Clear`, of its namespace) queued.
    fn is_newest(&self, op: &Op) -> bool {
        match op.kind {
            Kind::Clear => self.cleared.get(&op.ns) == Some(&op.seq),
            Kind::Put { .. } | Kind::Delete | Kind::Discard { .. } => self
                .pending
                .get(&op.ns)
                .and_then(|keys| keys.get(&op.key))
                .is_some_and(|(seq, ..)| *seq == op.seq),
            Kind::Touch { .. } | Kind::Release { .. } => false,
        }
    }

    /// Replaces the refused removals of each namespace by a `Clear` of it (the disk has refused
    /// writes for long): memory stays bounded, and the namespace reads as empty here until the
    /// clear lands. It takes the sequence number of the namespace's newest refused removal, so
    /// that writes queued since stay newer, and `flush` does not wait for it.
    #[cold]
    fn clear_retried(&mut self) {
        let mut newest: HashMap<Arc<[u8]>, u64> = HashMap::new();
        for op in std::mem::take(&mut self.retry) {
            let seq = newest.entry(op.ns).or_default();
            *seq = (*seq).max(op.seq);
        }
        for (ns, seq) in newest {
            if let Some(keys) = self.pending.get_mut(&ns) {
                keys.retain(|_, (_, pending, _)| !matches!(pending, Pending::Gone));
                if keys.is_empty() {
                    self.pending.remove(&ns);
                }
            }
            let seq = seq.max(self.cleared.get(&ns).copied().unwrap_or(0));
            self.cleared.insert(Arc::clone(&ns), seq);
            self.retry.push(Op {
                seq,
                ns,
                key: Arc::from(&[][..]),
                kind: Kind::Clear,
            });
        }
    }
}

impl Queue {
    /// Whether this process is a child forked after the writer started: it has no writer
    /// thread, and the parent's connections are not its to use. Checked before the queue's
    /// lock, which the fork may have copied held.
    pub(super) fn forked(&self) -> bool {
        FORKS.load(Ordering::Relaxed) != self.born.load(Ordering::Relaxed)
    }

    /// Queues a write of `key` in namespace `ns`.
    pub(super) fn push(&self, ns: &Arc<[u8]>, key: Vec<u8>, kind: Kind) {
        self.push_since(ns, key, kind, None);
    }

    /// Queues a claim's value (a `Put` with its token) of `key` in namespace `ns`, unless an
    /// insert or a removal of the key (or a clear of the namespace), by any store of this
    /// process, was queued after `since` (the [`seq`](Self::seq) when the claim was taken) and is
    /// not committed yet: the value may be older than it, and queued after it, it would be read
    /// back in its place until the writer refused it. Whether it was queued. (Once committed,
    /// such a write has taken the claim's lock row away: `DiskStore::row_of` sees that.)
    pub(super) fn push_claimed(
        &self,
        ns: &Arc<[u8]>,
        key: Vec<u8>,
        kind: Kind,
        since: u64,
    ) -> bool {
        self.push_since(ns, key, kind, Some(since))
    }

    /// How many writes were queued so far: where a claim's [`push_claimed`](Self::push_claimed)
    /// counts from.
    pub(super) fn seq(&self) -> u64 {
        lock(&self.state).next
    }

    /// [`push`](Self::push), or with `since`, [`push_claimed`](Self::push_claimed).
    fn push_since(&self, ns: &Arc<[u8]>, key: Vec<u8>, kind: Kind, since: Option<u64>) -> bool {
        if self.forked() {
            return true;
        }
        let state = lock(&self.state);
        if !state.running {
            return true;
        }
        let mut state = self.wait_while(state, |state| state.ops.len() >= MAX_QUEUED);
        if let Some(since) = since {
            let outdated = state
                .pending
                .get(&ns[..])
                .and_then(|keys| keys.get(&key[..]))
                .is_some_and(|&(_, _, outdating)| outdating > since);
            if outdated || state.cleared.get(&ns[..]).is_some_and(|&seq| seq > since) {
                return false;
            }
        }
        state.next += 1;
        let seq = state.next;
        let key: Arc<[u8]> = key.into();
        let outdates = matches!(kind, Kind::Put { outdates: true, .. } | Kind::Delete);
        let outdating = |keys: &Keys| {
            if outdates {
                seq
            } else {
                keys.get(&key).map_or(0, |&(_, _, outdating)| outdating)
            }
        };
        let pending = match &kind {
            Kind::Put {
                value,
                expires,
                token,
                seen,
                own,
                ..
            } => Some(Pending::Put {
                value: Arc::clone(value),
                expires: *expires,
                token: *token,
                seen: *seen,
                own: *own,
            }),
            Kind::Delete | Kind::Discard { .. } => Some(Pending::Gone),
            Kind::Clear => {
                state.pending.remove(ns);
                state.cleared.insert(Arc::clone(ns), seq);
                state.retry.retain(|op| op.ns != *ns);
                None
            }
            Kind::Release { .. } | Kind::Touch { .. } => None,
        };
        if let Some(pending) = pending {
            let keys = state.pending.entry(Arc::clone(ns)).or_default();
            let outdating = outdating(keys);
            keys.insert(Arc::clone(&key), (seq, pending, outdating));
        }
        if state.ops.is_empty() {
            self.work.notify_one();
        }
        state.ops.push(Op {
            seq,
            ns: Arc::clone(ns),
            key,
            kind,
        });
        true
    }

    /// The uncommitted write of `key`, if any (`Gone` for a key of a namespace being cleared).
    pub(super) fn pending(&self, ns: &[u8], key: &[u8]) -> Option<Pending> {
        if self.forked() {
            return None;
        }
        let state = lock(&self.state);
        if let Some((_, pending, _)) = state.pending.get(ns).and_then(|keys| keys.get(key)) {
            return Some(pending.clone());
        }
        state.cleared.contains_key(ns).then_some(Pending::Gone)
    }

    /// Waits until every write queued so far is committed (or failed).
    pub(super) fn flush(&self) {
        if self.forked() {
            return;
        }
        let state = lock(&self.state);
        let target = state.next;
        drop(self.wait_while(state, |state| state.committed < target));
    }

    /// [`flush`](Self::flush) for a removal, unless the disk refuses removals now (some wait to
    /// be retried): their keys read as gone in this process until they commit, and waiting for
    /// each commit the disk refuses would only slow the caller.
    pub(super) fn flush_removal(&self) {
        if self.forked() {
            return;
        }
        let state = lock(&self.state);
        if !state.retry.is_empty() {
            return;
        }
        let target = state.next;
        drop(self.wait_while(state, |state| state.committed < target));
    }

    /// Asks the writer to commit at once, and waits while `waiting` holds (and the writer runs).
    fn wait_while<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        waiting: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        while waiting(&state) && state.running {
            state.flush = true;
            self.work.notify_one();
            state = self
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state
    }

    /// The next batch, after the group-commit window; `None` when stopped with nothing left.
    fn next_batch(&self) -> Option<Vec<Op>> {
        let mut state = lock(&self.state);
        while state.ops.is_empty() {
            if state.stop {
                return None;
            }
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.flush && !state.stop && state.ops.len() < MAX_BATCH {
            // Producers only notify on an empty queue, so this sleeps the window unless a flush
            // is asked for.
            state = self
                .work
                .wait_timeout(state, WINDOW)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.flush = false;
        let take = state.ops.len().min(MAX_BATCH);
        let rest = state.ops.split_off(take);
        // Refused removals first (they are older), unless a newer write of the key replaced them.
        let mut batch = std::mem::take(&mut state.retry);
        batch.retain(|op| state.is_newest(op));
        batch.extend(std::mem::replace(&mut state.ops, rest));
        Some(batch)
    }

    /// `batch` is committed, or failed as `outcome` says: its writes leave `pending`, except
    /// those the disk refused to remove, which stay gone here and are tried again.
    fn done(&self, batch: Vec<Op>, outcome: Outcome) {
        let mut state = lock(&self.state);
        let last = batch.iter().map(|op| op.seq).max();
        for op in batch {
            if !state.is_newest(&op) {
                // Not a key's write, or a later one decides what the key reads as.
                continue;
            }
            let clear = matches!(op.kind, Kind::Clear);
            if outcome == Outcome::Refused {
                // Kept gone here (a `Clear` by its mark), and removed with the next batch.
                if !clear
                    && let Some(entry) = state
                        .pending
                        .get_mut(&op.ns)
                        .and_then(|keys| keys.get_mut(&op.key))
                {
                    entry.1 = Pending::Gone;
                }
                let kind = if clear { Kind::Clear } else { Kind::Delete };
                state.retry.push(Op { kind, ..op });
            } else if clear {
                state.cleared.remove(&op.ns);
            } else if let Some(keys) = state.pending.get_mut(&op.ns) {
                keys.remove(&op.key);
                if keys.is_empty() {
                    state.pending.remove(&op.ns);
                }
            }
        }
        if state.retry.len() > MAX_RETRY {
            state.clear_retried();
        }
        if let Some(last) = last {
            state.committed = state.committed.max(last);
        }
        self.done.notify_all();
    }

    /// The writer thread ended (it does not, short of a bug): nobody waits for it any more.
    fn writer_ended(&self) {
        lock(&self.state).running = false;
        self.done.notify_all();
    }
}

/// What became of a batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Committed; or it failed, and its removals (its failed values' too) committed alone.
    Written,
    /// It failed, and so did its removals: they are kept as gone, and tried again.
    Refused,
    /// No database to write to (it could not be reopened): nothing reads it here any more.
    Dropped,
}

/// The writer thread of one database.
pub(super) struct Writer {
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer; `None` if no thread could be spawned (then writes are dropped).
    pub(super) fn start(shared: &Arc<Shared>) -> Option<Self> {
        static AT_FORK: std::sync::Once = std::sync::Once::new();
        extern "C" fn in_child() {
            FORKS.fetch_add(1, Ordering::Relaxed);
        }
        AT_FORK.call_once(|| {
            // SAFETY: `in_child` only bumps an atomic, which is async-signal-safe, as code run
            // in a forked child must be. If registering fails, a child hangs as it did before.
            let _ = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        });
        shared
            .queue
            .born
            .store(FORKS.load(Ordering::Relaxed), Ordering::Relaxed);
        lock(&shared.queue.state).running = true;
        let for_thread = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("memo-disk-writer".into())
            .spawn(move || run(&for_thread));
        if let Ok(thread) = spawned {
            Some(Self { thread })
        } else {
            lock(&shared.queue.state).running = false;
            None
        }
    }

    /// Commits what is queued, then ends the thread.
    pub(super) fn stop(self, queue: &Queue) {
        lock(&queue.state).stop = true;
        queue.work.notify_one();
        let _ = self.thread.join();
    }
}

fn run(shared: &Shared) {
    /// Releases the waiters however the thread ends.
    struct Ended<'a>(&'a Queue);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.writer_ended();
        }
    }
    let _ended = Ended(&shared.queue);
    // A panic here (a bug, or data no check foresaw) must not take the thread with it: callers
    // of `flush`, `clear`, `len` and `keys` wait for it.
    let _ = catch_unwind(AssertUnwindSafe(|| sweep(shared)));
    while let Some(batch) = shared.queue.next_batch() {
        let outcome =
            catch_unwind(AssertUnwindSafe(|| write(shared, &batch))).unwrap_or_else(|_| {
                count_batch(shared, &batch, &"the disk writer panicked");
                let _ = catch_unwind(AssertUnwindSafe(|| release_alone(shared, &batch)));
                Outcome::Refused
            });
        shared.queue.done(batch, outcome);
    }
}

/// A key whose value tests store to make the writer panic (its encoding ends so).
#[cfg(test)]
pub(super) const PANIC_KEY: &str = "panic-in-the-writer";

/// Writes `batch`; if it fails, its removals alone.
fn write(shared: &Shared, batch: &[Op]) -> Outcome {
    #[cfg(test)]
    assert!(
        !batch.iter().any(|op| matches!(op.kind, Kind::Put { .. })
            && op.key.ends_with(PANIC_KEY.as_bytes())),
        "a test asked the writer to panic"
    );
    let Some(result) = with_writer(shared, |conn| commit(conn, shared, batch)) else {
        count_batch(
            shared,
            batch,
            &"the database could not be reopened; the write is lost",
        );
        return Outcome::Dropped;
    };
    let Err(err) = result else {
        committed(shared);
        return Outcome::Written;
    };
    count_batch(shared, batch, &err);
    shared.trouble(&err);
    // Without them, this process and others would read removed (or overwritten) values again.
    let removals: Vec<Op> = batch.iter().filter_map(removal).collect();
    if removals.is_empty() {
        return Outcome::Written;
    }
    match with_writer(shared, |conn| commit(conn, shared, &removals)) {
        Some(Ok(())) => {
            committed(shared);
            Outcome::Written
        }
        Some(Err(err)) => {
            shared.report(&err);
            release_alone(shared, batch);
            Outcome::Refused
        }
        None => Outcome::Dropped,
    }
}

/// Runs `op` on the writer connection; `None` if there is none.
fn with_writer<T>(shared: &Shared, op: impl FnOnce(&mut Connection) -> T) -> Option<T> {
    let mut conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
    conn.as_mut().map(op)
}

/// What `op` removes, written alone when its batch failed: a failed value's key goes too, since
/// its row (if any) holds a value the function replaced. Locks are released again. Expiry moves
/// are dropped (a row then expires sooner).
fn removal(op: &Op) -> Option<Op> {
    match op.kind {
        Kind::Put { .. } => Some(Op {
            kind: Kind::Delete,
            ..op.clone()
        }),
        Kind::Delete | Kind::Discard { .. } | Kind::Clear | Kind::Release { .. } => {
            Some(op.clone())
        }
        Kind::Touch { .. } => None,
    }
}

/// A claim's value was not stored (its lock is gone), or an insert took the lock of a claim of
/// this process away: every front of this process is read again, as when another process
/// wrote, and a claim's value checks its lock row (`DiskStore::row_of`).
fn refused(shared: &Shared) {
    let _exclusive = shared.gate.write().unwrap_or_else(PoisonError::into_inner);
    shared.epoch.fetch_add(1, Ordering::AcqRel);
}

/// A batch committed: other processes are told, through the change counter.
fn committed(shared: &Shared) {
    if let Some(version) = &shared.version {
        // Held (shared) from the bump until `known` follows it: a reader of this process that
        // sees the bump first waits here to observe it (`Shared::observe`, exclusive), rather
        // than take this process's own commit for another's and move the epoch. Nobody holding
        // the gate waits for the writer.
        let _shared = shared.gate.read().unwrap_or_else(PoisonError::into_inner);
        let before = version.bump();
        #[cfg(test)]
        super::tests::between_bump_and_known(shared);
        // Nobody else wrote since this process last looked: its fronts stay valid.
        let _ =
            shared
                .known
                .compare_exchange(before, before + 1, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// Counts the failure of `batch` once for each function it wrote for.
fn count_batch(shared: &Shared, batch: &[Op], err: &dyn std::fmt::Display) {
    let spaces = shared.spaces.lock().unwrap_or_else(PoisonError::into_inner);
    let mut counted: Vec<&Arc<[u8]>> = Vec::new();
    for op in batch {
        if !counted.contains(&&op.ns) {
            counted.push(&op.ns);
            if let Some(space) = spaces.get(&op.ns) {
                space.count_error(err);
            }
        }
    }
}

/// Removes the orphaned value files of the directory (see [`files::sweep`]) and the lock rows
/// of processes that are gone ([`abandoned_locks`]), once, when the writer starts.
fn sweep(shared: &Shared) {
    let conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(conn) = conn.as_ref() {
        if let Err(err) = files::sweep(&shared.dir, conn, files::ORPHAN_AGE) {
            shared.report(&err);
        }
        if let Err(err) = abandoned_locks(conn) {
            shared.report(&err);
        }
    }
}

/// Deletes the lock rows whose holder process has ended (killed while it computed): a claim of
/// the key removes such a row, but a key no process asks for again (an earlier build's, an
/// argument seen once) kept it in the database for good. A row of a live process stays.
fn abandoned_locks(conn: &Connection) -> rusqlite::Result<()> {
    let rows: Vec<(Vec<u8>, Vec<u8>, i64, i64)> = conn
        .prepare("SELECT ns, key, pid, token FROM locks")?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut delete = conn.prepare("DELETE FROM locks WHERE ns = ?1 AND key = ?2 AND token = ?3")?;
    for (ns, key, pid, token) in rows {
        if super::lock::is_dead(pid) {
            delete.execute(params![ns, key, token])?;
        }
    }
    Ok(())
}

/// The locks a failed batch was to release, released in a transaction of their own: a lock
/// left behind would keep every process's callers of its key waiting for its lease.
fn release_alone(shared: &Shared, batch: &[Op]) {
    if !batch
        .iter()
        .any(|op| matches!(op.kind, Kind::Release { .. }))
    {
        return;
    }
    let mut conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(conn) = conn.as_mut() else {
        return;
    };
    let released = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut release =
                tx.prepare_cached("DELETE FROM locks WHERE ns = ?1 AND key = ?2 AND token = ?3")?;
            for op in batch {
                if let Kind::Release { token } = op.kind {
                    release.execute(params![&op.ns[..], &op.key[..], token])?;
                }
            }
        }
        tx.commit()
    })();
    if let Err(err) = released {
        shared.report(&err);
    }
}

/// What a batch changed in one namespace: entries and bytes added (or removed, if negative).
struct Delta<'a> {
    ns: &'a Arc<[u8]>,
    count: i64,
    bytes: i64,
    /// Whether the namespace's bounds need checking (something was stored).
    grew: bool,
    /// Rows replaced after their lifetime had passed.
    expired: u64,
}

/// The delta of `ns` in `deltas`, added if missing (a batch touches few namespaces).
fn delta<'a, 'b>(deltas: &'b mut Vec<Delta<'a>>, ns: &'a Arc<[u8]>) -> &'b mut Delta<'a> {
    let at = deltas.iter().position(|d| d.ns == ns).unwrap_or_else(|| {
        deltas.push(Delta {
            ns,
            count: 0,
            bytes: 0,
            grew: false,
            expired: 0,
        });
        deltas.len() - 1
    });
    &mut deltas[at]
}

/// Applies `batch` in one transaction, keeps the `spaces` totals, and evicts what the bounds
/// require; large values go to files, and the files of dropped rows are removed once committed.
fn commit(conn: &mut Connection, shared: &Shared, batch: &[Op]) -> rusqlite::Result<()> {
    let mut written = Vec::new();
    let mut dropped = Vec::new();
    let result = commit_rows(conn, shared, batch, &mut written, &mut dropped);
    // Committed: the dropped rows' files go. Not committed: the new files go.
    files::remove(
        &shared.dir,
        if result.is_ok() { &dropped } else { &written },
    );
    result
}

fn commit_rows(
    conn: &mut Connection,
    shared: &Shared,
    batch: &[Op],
    written: &mut Vec<String>,
    dropped: &mut Vec<String>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deltas: Vec<Delta<'_>> = Vec::new();
    {
        let mut add = tx.prepare_cached(
            "INSERT INTO entries (ns, key, value, size, expires, file, sum, own)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (ns, key) DO NOTHING",
        )?;
        let mut release =
            tx.prepare_cached("DELETE FROM locks WHERE ns = ?1 AND key = ?2 AND token = ?3")?;
        let mut unlocks = Unlocks::new(&tx)?;
        let mut touch = tx.prepare_cached(
            "UPDATE entries SET expires = ?3 WHERE ns = ?1 AND key = ?2 AND expires > 0
             AND own IS NULL",
        )?;
        let mut holds = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM locks WHERE ns = ?1 AND key = ?2 AND token = ?3)",
        )?;
        let mut lapsed = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM entries
             WHERE ns = ?1 AND key = ?2 AND expires > 0 AND expires <= ?3)",
        )?;
        for op in batch {
            let (ns, key) = (&op.ns[..], &op.key[..]);
            match &op.kind {
                Kind::Put {
                    token: Some(token), ..
                } if !holds.query_row(params![ns, key, token], |row| row.get::<_, bool>(0))? => {
                    // The lock is gone: removed since the claim. This process's fronts may hold
                    // the value (`DiskStore::put`): they are read again.
                    refused(shared);
                }
                Kind::Put {
                    value,
                    expires,
                    now,
                    outdates,
                    own,
                    ..
                } => {
                    if *outdates && unlocks.unlock(ns, key)? {
                        // A claim of this process, perhaps of another store of the namespace,
                        // whose value is now older than this one: as for a removal
                        // (`DiskStore::unlock`), its value must find its row gone, and not be
                        // read back meanwhile (before this batch leaves the queue).
                        refused(shared);
                    }
                    let size = i64::try_from(value.len()).unwrap_or(i64::MAX);
                    let (inline, file) = if value.len() >= files::LARGE {
                        let name = files::write(&shared.dir, ns, key, value).map_err(io_error)?;
                        written.push(name.clone());
                        (&[][..], Some(name))
                    } else {
                        (&value[..], None)
                    };
                    let sum = checksum::of(ns, key, value);
                    let own = own.then_some(1_i64);
                    let row = params![ns, key, inline, size, expires, file, sum, own];
                    let delta = delta(&mut deltas, &op.ns);
                    delta.grew = true;
                    if add.execute(row)? == 0 {
                        // Stored before: the old row goes, and the new one is the newest.
                        if lapsed.query_row(params![ns, key, now], |row| row.get::<_, bool>(0))? {
                            delta.expired += 1;
                        }
                        let (old_count, old_bytes) =
                            remove_rows(&tx, DELETE_KEY, params![ns, key], dropped)?;
                        delta.count -= old_count;
                        delta.bytes = delta.bytes.saturating_sub(old_bytes);
                        add.execute(row)?;
                    }
                    delta.count += 1;
                    delta.bytes = delta.bytes.saturating_add(size);
                }
                Kind::Delete | Kind::Discard { .. } => {
                    let (count, bytes) = match &op.kind {
                        Kind::Discard { value, file, sum } => {
                            let row = params![ns, key, &value[..], file, sum];
                            remove_rows(&tx, DISCARD_ROW, row, dropped)?
                        }
                        _ => remove_rows(&tx, DELETE_KEY, params![ns, key], dropped)?,
                    };
                    let delta = delta(&mut deltas, &op.ns);
                    delta.count -= count;
                    delta.bytes = delta.bytes.saturating_sub(bytes);
                }
                Kind::Touch { expires } => {
                    touch.execute(params![ns, key, expires])?;
                }
                Kind::Release { token } => {
                    release.execute(params![ns, key, token])?;
                }
                Kind::Clear => {
                    clear_rows(&tx, ns, dropped)?;
                    let delta = delta(&mut deltas, &op.ns);
                    (delta.count, delta.bytes) = (0, 0);
                }
            }
        }
    }
    let expired = settle(&tx, shared, deltas, dropped)?;
    tx.commit()?;
    for (space, count) in expired {
        space.expired.fetch_add(count, Ordering::Relaxed);
    }
    Ok(())
}

/// What a plain insert's write does to its key's lock row (`Kind::Put`'s `outdates`): deletes
/// it, in a namespace that holds any. Whether one does is asked once a batch: none can be taken
/// while the batch's transaction holds the database, so a batch of inserts with no computation
/// under way pays one probe.
struct Unlocks<'c> {
    any: rusqlite::CachedStatement<'c>,
    unlock: rusqlite::CachedStatement<'c>,
    /// The namespaces asked about in this batch, and whether they hold a lock row.
    known: Vec<(Vec<u8>, bool)>,
}

impl<'c> Unlocks<'c> {
    fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            any: conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM locks WHERE ns = ?1)")?,
            unlock: conn
                .prepare_cached("DELETE FROM locks WHERE ns = ?1 AND key = ?2 RETURNING pid")?,
            known: Vec::new(),
        })
    }

    /// Deletes the lock row of `key` in `ns`; whether it was this process's.
    fn unlock(&mut self, ns: &[u8], key: &[u8]) -> rusqlite::Result<bool> {
        let locked = if let Some(&(_, locked)) = self.known.iter().find(|(known, _)| known == ns) {
            locked
        } else {
            let locked = self
                .any
                .query_row(params![ns], |row| row.get::<_, bool>(0))?;
            self.known.push((ns.to_vec(), locked));
            locked
        };
        if !locked {
            return Ok(false);
        }
        let own = i64::from(std::process::id());
        let mut rows = self.unlock.query(params![ns, key])?;
        let mut mine = false;
        while let Some(row) = rows.next()? {
            mine |= row.get::<_, i64>(0)? == own;
        }
        Ok(mine)
    }
}

/// Removes every entry of namespace `ns` (their files' names added to `dropped`) and zeroes its
/// totals.
fn clear_rows(conn: &Connection, ns: &[u8], dropped: &mut Vec<String>) -> rusqlite::Result<()> {
    remove_rows(
        conn,
        "DELETE FROM entries WHERE ns = ?1 RETURNING size, file",
        params![ns],
        dropped,
    )?;
    conn.prepare_cached("UPDATE spaces SET count = 0, bytes = 0 WHERE ns = ?1")?
        .execute(params![ns])?;
    Ok(())
}

/// Adds what a batch changed to each namespace's totals and evicts what its bounds require;
/// returns the replaced rows to count as expired once the batch commits.
fn settle(
    tx: &Connection,
    shared: &Shared,
    deltas: Vec<Delta<'_>>,
    dropped: &mut Vec<String>,
) -> rusqlite::Result<Vec<(Arc<Space>, u64)>> {
    let mut expired = Vec::new();
    for delta in deltas {
        add_to_space(tx, delta.ns, delta.count, delta.bytes)?;
        let space = shared
            .spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(delta.ns)
            .cloned();
        if let (Some(space), 1..) = (&space, delta.expired) {
            expired.push((Arc::clone(space), delta.expired));
        }
        if let (true, Some(space)) = (delta.grew, space) {
            evict(tx, delta.ns, &space, dropped)?;
        }
    }
    Ok(expired)
}

/// Deletes one key's row.
const DELETE_KEY: &str = "DELETE FROM entries WHERE ns = ?1 AND key = ?2 RETURNING size, file";

/// Deletes one key's row if it is still the one a read found faulty (`Kind::Discard`).
const DISCARD_ROW: &str = "DELETE FROM entries WHERE ns = ?1 AND key = ?2 AND value = ?3 \
     AND file IS ?4 AND CAST(sum AS INTEGER) = ?5 RETURNING size, file";

/// A failure to write a value's file, as the batch's error.
fn io_error(err: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

/// Deletes the rows `sql` selects (`params`), `RETURNING size, file`; notes their files in
/// `dropped`; returns how many rows and bytes went. A `size` no value can have (a damaged or
/// planted row) counts as nothing, so that sums of them never overflow.
fn remove_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    dropped: &mut Vec<String>,
) -> rusqlite::Result<(i64, i64)> {
    let (mut count, mut bytes) = (0_i64, 0_i64);
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    while let Some(row) = rows.next()? {
        count += 1;
        let size = row.get::<_, i64>(0)?;
        if (0..=MAX_SIZE).contains(&size) {
            bytes = bytes.saturating_add(size);
        }
        dropped.extend(row.get::<_, Option<String>>(1)?);
    }
    Ok((count, bytes))
}

/// The largest value a row can hold: the largest that decodes.
#[allow(clippy::cast_possible_wrap, reason = "256 MiB")]
const MAX_SIZE: i64 = crate::codec::MAX_DECODE as i64;

/// Adds `count` entries and `bytes` to the totals of `ns`.
fn add_to_space(conn: &Connection, ns: &[u8], count: i64, bytes: i64) -> rusqlite::Result<()> {
    if count != 0 || bytes != 0 {
        conn.prepare_cached(
            "INSERT INTO spaces (ns, count, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT (ns) DO UPDATE SET count = count + ?2, bytes = bytes + ?3",
        )?
        .execute(params![ns, count, bytes])?;
    }
    Ok(())
}

/// [`remove_rows`], taken off the totals of `ns` at once; returns how many rows went.
fn remove_counted(
    conn: &Connection,
    ns: &[u8],
    sql: &str,
    params: impl rusqlite::Params,
    dropped: &mut Vec<String>,
) -> rusqlite::Result<u64> {
    let (count, bytes) = remove_rows(conn, sql, params, dropped)?;
    add_to_space(conn, ns, -count, -bytes)?;
    Ok(count.unsigned_abs())
}

/// Removes the oldest entries of `ns` until it is within its bounds (least recently stored
/// first, as diskcache does by default).
fn evict(
    conn: &Connection,
    ns: &[u8],
    space: &Space,
    dropped: &mut Vec<String>,
) -> rusqlite::Result<()> {
    const OLDEST: &str = "DELETE FROM entries WHERE id IN
         (SELECT id FROM entries WHERE ns = ?1 ORDER BY id LIMIT ?2) RETURNING size, file";
    let mut totals = conn.prepare_cached("SELECT count, bytes FROM spaces WHERE ns = ?1")?;
    // No row: nothing stored (a batch that stored a key and removed it again adds none).
    let mut total = || {
        totals
            .query_row([ns], |row| {
                // Negative (damaged) totals are nothing, not a huge amount to evict.
                Ok((
                    u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                ))
            })
            .optional()
            .map(Option::unwrap_or_default)
    };
    let (count, bytes) = total()?;
    let over_count = space.maxsize.map_or(0, |max| count.saturating_sub(max));
    if over_count == 0 && bytes <= space.max_bytes {
        return Ok(());
    }
    let mut evicted = remove_counted(
        conn,
        ns,
        OLDEST,
        params![ns, i64::try_from(over_count).unwrap_or(i64::MAX)],
        dropped,
    )?;
    while total()?.1 > space.max_bytes {
        let removed = remove_counted(conn, ns, OLDEST, params![ns, 16], dropped)?;
        if removed == 0 {
            break;
        }
        evicted += removed;
    }
    space.evicted.fetch_add(evicted, Ordering::Relaxed);
    Ok(())
}

/// Removes the entries of `ns` whose lifetime has passed (and their files), counted on `expired`;
/// returns how many.
pub(super) fn purge(
    conn: &Connection,
    dir: &std::path::Path,
    ns: &[u8],
    now_ms: i64,
    expired: &AtomicU64,
) -> rusqlite::Result<usize> {
    let mut dropped = Vec::new();
    let tx = conn.unchecked_transaction()?;
    let purged = remove_counted(
        &tx,
        ns,
        "DELETE FROM entries WHERE ns = ?1 AND expires > 0 AND expires <= ?2 RETURNING size, file",
        params![ns, now_ms],
        &mut dropped,
    )?;
    tx.commit()?;
    files::remove(dir, &dropped);
    expired.fetch_add(purged, Ordering::Relaxed);
    Ok(usize::try_from(purged).unwrap_or(usize::MAX))
}
