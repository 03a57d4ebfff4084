//! Group commit: writes are queued and committed by one thread per database, many to a
//! transaction.
//!
//! A transaction of its own per write caps a process near 100,000 writes a second (a commit is a
//! WAL append plus SQLite's bookkeeping); the writer waits up to [`WINDOW`] after the first queued
//! write for others, then commits them all at once, and a write costs a few microseconds. Until its
//! commit, a write is answered from the queue (`pending`), so the process that wrote it reads it
//! back at once; other processes see it after the commit, which also bumps the shared change
//! counter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::db::{Shared, Space};
use super::files;

/// How long the writer waits for more writes after the first one.
const WINDOW: Duration = Duration::from_millis(1);

/// Writes per transaction, at most.
const MAX_BATCH: usize = 16_384;

/// Queued writes past which writers wait for the disk to catch up.
const MAX_QUEUED: usize = 65_536;

/// A queued write.
pub(super) struct Op {
    seq: u64,
    ns: Arc<[u8]>,
    key: Arc<[u8]>,
    kind: Kind,
}

pub(super) enum Kind {
    /// Store `value`, expiring at `expires` (Unix milliseconds; 0 for never).
    Put {
        value: Arc<[u8]>,
        expires: i64,
    },
    Delete,
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
    Put { value: Arc<[u8]>, expires: i64 },
    Gone,
}

/// The newest uncommitted `Put` or `Delete` of each key of a namespace, with its sequence number.
type Keys = HashMap<Arc<[u8]>, (u64, Pending)>;

#[derive(Default)]
struct State {
    ops: Vec<Op>,
    /// By namespace, the writes that are not committed yet.
    pending: HashMap<Arc<[u8]>, Keys>,
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
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    /// Queues a write of `key` in namespace `ns`.
    pub(super) fn push(&self, ns: &Arc<[u8]>, key: Vec<u8>, kind: Kind) {
        let state = lock(&self.state);
        if !state.running {
            return;
        }
        let mut state = self.wait_while(state, |state| state.ops.len() >= MAX_QUEUED);
        state.next += 1;
        let seq = state.next;
        let key: Arc<[u8]> = key.into();
        let pending = match &kind {
            Kind::Put { value, expires } => Some(Pending::Put {
                value: Arc::clone(value),
                expires: *expires,
            }),
            Kind::Delete => Some(Pending::Gone),
            Kind::Clear => {
                state.pending.remove(ns);
                None
            }
            Kind::Release { .. } | Kind::Touch { .. } => None,
        };
        if let Some(pending) = pending {
            state
                .pending
                .entry(Arc::clone(ns))
                .or_default()
                .insert(Arc::clone(&key), (seq, pending));
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
    }

    /// The uncommitted write of `key`, if any.
    pub(super) fn pending(&self, ns: &[u8], key: &[u8]) -> Option<Pending> {
        let state = lock(&self.state);
        let (_, pending) = state.pending.get(ns)?.get(key)?;
        Some(pending.clone())
    }

    /// How many writes were queued so far (tests wait for a write of another thread).
    #[cfg(test)]
    pub(super) fn queued(&self) -> u64 {
        lock(&self.state).next
    }

    /// Waits until every write queued so far is committed (or failed).
    pub(super) fn flush(&self) {
        let state = lock(&self.state);
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
        Some(std::mem::replace(&mut state.ops, rest))
    }

    /// `batch` is committed (or failed): its writes leave `pending`.
    fn done(&self, batch: &[Op]) {
        let mut state = lock(&self.state);
        for op in batch {
            if let Some(keys) = state.pending.get_mut(&op.ns)
                && keys.get(&op.key).is_some_and(|(seq, _)| *seq == op.seq)
            {
                keys.remove(&op.key);
                if keys.is_empty() {
                    state.pending.remove(&op.ns);
                }
            }
        }
        if let Some(last) = batch.last() {
            state.committed = last.seq;
        }
        self.done.notify_all();
    }
}

/// The writer thread of one database.
pub(super) struct Writer {
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer; `None` if no thread could be spawned (then writes are dropped).
    pub(super) fn start(shared: &Arc<Shared>) -> Option<Self> {
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
    sweep(shared);
    while let Some(batch) = shared.queue.next_batch() {
        let result = {
            let mut conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
            match conn.as_mut() {
                Some(conn) => commit(conn, shared, &batch),
                None => Ok(()),
            }
        };
        match result {
            Ok(()) => {
                if let Some(version) = &shared.version {
                    let before = version.bump();
                    // Nobody else wrote since this process last looked: its fronts stay valid.
                    let _ = shared.known.compare_exchange(
                        before,
                        before + 1,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
            }
            Err(err) => {
                // The whole batch is lost: count it once for each function it wrote for.
                let spaces = shared.spaces.lock().unwrap_or_else(PoisonError::into_inner);
                let mut counted: Vec<&Arc<[u8]>> = Vec::new();
                for op in &batch {
                    if !counted.contains(&&op.ns) {
                        counted.push(&op.ns);
                        if let Some(space) = spaces.get(&op.ns) {
                            space.count_error(&err);
                        }
                    }
                }
                drop(spaces);
                shared.trouble(&err);
                release_alone(shared, &batch);
            }
        }
        shared.queue.done(&batch);
    }
}

/// Removes the orphaned value files of the directory (see [`files::sweep`]), once, when the
/// writer starts.
fn sweep(shared: &Shared) {
    let conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(conn) = conn.as_ref()
        && let Err(err) = files::sweep(&shared.dir, conn, files::ORPHAN_AGE)
    {
        shared.report(&err);
    }
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
}

/// The delta of `ns` in `deltas`, added if missing (a batch touches few namespaces).
fn delta<'a, 'b>(deltas: &'b mut Vec<Delta<'a>>, ns: &'a Arc<[u8]>) -> &'b mut Delta<'a> {
    let at = deltas.iter().position(|d| d.ns == ns).unwrap_or_else(|| {
        deltas.push(Delta {
            ns,
            count: 0,
            bytes: 0,
            grew: false,
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
            "INSERT INTO entries (ns, key, value, size, expires, file)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (ns, key) DO NOTHING",
        )?;
        let mut release =
            tx.prepare_cached("DELETE FROM locks WHERE ns = ?1 AND key = ?2 AND token = ?3")?;
        let mut touch = tx.prepare_cached(
            "UPDATE entries SET expires = ?3 WHERE ns = ?1 AND key = ?2 AND expires > 0",
        )?;
        for op in batch {
            let (ns, key) = (&op.ns[..], &op.key[..]);
            match &op.kind {
                Kind::Put { value, expires } => {
                    let size = i64::try_from(value.len()).unwrap_or(i64::MAX);
                    let (inline, file) = if value.len() >= files::LARGE {
                        let name = files::write(&shared.dir, ns, key, value).map_err(io_error)?;
                        written.push(name.clone());
                        (&[][..], Some(name))
                    } else {
                        (&value[..], None)
                    };
                    let row = params![ns, key, inline, size, expires, file];
                    let delta = delta(&mut deltas, &op.ns);
                    delta.grew = true;
                    if add.execute(row)? == 0 {
                        // Stored before: the old row goes, and the new one is the newest.
                        let (old_count, old_bytes) =
                            remove_rows(&tx, DELETE_KEY, params![ns, key], dropped)?;
                        delta.count -= old_count;
                        delta.bytes -= old_bytes;
                        add.execute(row)?;
                    }
                    delta.count += 1;
                    delta.bytes += size;
                }
                Kind::Delete => {
                    let (count, bytes) = remove_rows(&tx, DELETE_KEY, params![ns, key], dropped)?;
                    let delta = delta(&mut deltas, &op.ns);
                    delta.count -= count;
                    delta.bytes -= bytes;
                }
                Kind::Touch { expires } => {
                    touch.execute(params![ns, key, expires])?;
                }
                Kind::Release { token } => {
                    release.execute(params![ns, key, token])?;
                }
                Kind::Clear => {
                    remove_rows(
                        &tx,
                        "DELETE FROM entries WHERE ns = ?1 RETURNING size, file",
                        params![ns],
                        dropped,
                    )?;
                    tx.prepare_cached("UPDATE spaces SET count = 0, bytes = 0 WHERE ns = ?1")?
                        .execute(params![ns])?;
                    let delta = delta(&mut deltas, &op.ns);
                    (delta.count, delta.bytes) = (0, 0);
                }
            }
        }
    }
    for delta in deltas {
        add_to_space(&tx, delta.ns, delta.count, delta.bytes)?;
        let space = shared
            .spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(delta.ns)
            .cloned();
        if let (true, Some(space)) = (delta.grew, space) {
            evict(&tx, delta.ns, &space, dropped)?;
        }
    }
    tx.commit()
}

/// Deletes one key's row.
const DELETE_KEY: &str = "DELETE FROM entries WHERE ns = ?1 AND key = ?2 RETURNING size, file";

/// A failure to write a value's file, as the batch's error.
fn io_error(err: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

/// Deletes the rows `sql` selects (`params`), `RETURNING size, file`; notes their files in
/// `dropped`; returns how many rows and bytes went.
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
        bytes += row.get::<_, i64>(0)?;
        dropped.extend(row.get::<_, Option<String>>(1)?);
    }
    Ok((count, bytes))
}

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
                Ok((
                    row.get::<_, i64>(0)?.unsigned_abs(),
                    row.get::<_, i64>(1)?.unsigned_abs(),
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
