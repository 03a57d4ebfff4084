//! Single-flight across processes: a lock row per key being computed.
//!
//! The process that takes the row (holder pid, random token, lease expiry) computes; the others
//! poll, with backoff from 1 ms to 50 ms, until the value is committed, or the row is gone (the
//! holder's computation was not stored, e.g. an `Err`: one of them computes), or the lease has
//! passed or its holder has died (one of them takes the row over). The row is released in the
//! same transaction as the value it guarded, so no waiter sees neither; that value is stored only
//! while the row still holds the holder's token. A removal of the key (`invalidate`, `clear`)
//! deletes the row at once, so a value computed before it, in any process, is not stored. Nor is
//! it read back here meanwhile: a value whose claim saw another process write since it was taken
//! is queued only if its row is still there ([`DiskStore::row_of`]), and once a write of another
//! process is seen after it was queued, a queued value is read from the queue only while its row
//! is still there ([`DiskStore::holds`]; else the disk says, without waiting for the writer).
//! A plain insert deletes the row with its own write, when the writer commits it (and moves the
//! epoch then if the row was this process's); until then, a claim's value is not queued over an
//! insert or removal of its key that another store of this process queued since the claim
//! (`Queue::push_claimed`).
//!
//! A row of this process whose token no caller here holds any more is released or stale (its
//! release was lost with a failed write) and is taken over once this process's queued writes are
//! committed (its value among them): a process never waits for itself.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DiskStore;
use super::db::{Db, Shared};
use super::encoded;
use super::writer::Kind;
use crate::store::{Claim, Lease};

/// The first pause of a waiting process.
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The longest pause between two polls of a waiting process.
const MAX_PAUSE: Duration = Duration::from_millis(50);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wall time in milliseconds: leases are compared across processes, so never a mock clock.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What happened when this process asked for the lock of one key.
enum Attempt {
    Taken,
    /// Held by another process, with this pid and token.
    Held(i64, i64),
}

fn try_lock(
    conn: &Connection,
    ns: &[u8],
    key: &[u8],
    token: i64,
    lease: Duration,
) -> rusqlite::Result<Attempt> {
    let now = wall_ms();
    let expires = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let pid = i64::from(std::process::id());
    // A row released between the two statements (this process's writer deletes released rows
    // while its callers try again) is free: take it at once, rather than report no holder and
    // have a background refresh give up.
    for _ in 0..3 {
        let changed = conn
            .prepare_cached(
                "INSERT INTO locks (ns, key, pid, token, expires) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (ns, key) DO UPDATE SET pid = excluded.pid, token = excluded.token,
                 expires = excluded.expires WHERE locks.expires <= ?6",
            )?
            .execute(params![ns, key, pid, token, expires, now])?;
        if changed == 1 {
            return Ok(Attempt::Taken);
        }
        let holder = conn
            .prepare_cached("SELECT pid, token FROM locks WHERE ns = ?1 AND key = ?2")?
            .query_row(params![ns, key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        if let Some((pid, token)) = holder {
            return Ok(Attempt::Held(pid, token));
        }
    }
    // Taken and released three times over meanwhile: a busy key; the caller tries again later.
    Ok(Attempt::Held(0, 0))
}

/// A lock token of this process registered in `Shared::held` while its claim may hold a row;
/// unregistered on drop unless `keep` (the claim's release does it then).
struct Held<'a> {
    shared: &'a Shared,
    token: i64,
    keep: bool,
}

impl<'a> Held<'a> {
    fn new(shared: &'a Shared, token: i64) -> Self {
        lock(&shared.held).insert(token);
        Self {
            shared,
            token,
            keep: false,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.keep {
            lock(&self.shared.held).remove(&self.token);
        }
    }
}

/// Takes the lock of one key whoever holds it: a forced refresh's mark.
fn take_lock(
    conn: &Connection,
    ns: &[u8],
    key: &[u8],
    token: i64,
    lease: Duration,
) -> rusqlite::Result<()> {
    let expires = wall_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let pid = i64::from(std::process::id());
    conn.prepare_cached(
        "INSERT INTO locks (ns, key, pid, token, expires) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (ns, key) DO UPDATE SET pid = excluded.pid, token = excluded.token,
         expires = excluded.expires",
    )?
    .execute(params![ns, key, pid, token, expires])?;
    Ok(())
}

/// Whether process `pid` of this machine has ended (a lock it holds will never be released).
pub(super) fn is_dead(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 || pid == libc::pid_t::try_from(std::process::id()).unwrap_or(0) {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    !alive && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

impl<K, V> DiskStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// [`Store::claim_async`](crate::Store::claim_async) for the disk: take `key`'s lock row,
    /// or wait for the process holding it; between polls the task sleeps on a timer, so an
    /// async caller's executor thread is free while another process computes.
    pub(super) async fn claim_key_async(&self, hash: u64, key: &K) -> Claim<V> {
        let mut claiming = match self.claim_start(hash, key) {
            Ok(claiming) => claiming,
            Err(done) => return done,
        };
        loop {
            match self.claim_step(key, &mut claiming) {
                Next::Done(claim) => return claim,
                Next::Pause(pause) => super::timer::sleep(pause).await,
            }
        }
    }

    /// A claim of `key` about to make its first attempt, or its answer when there is nothing
    /// to coordinate (the database is unusable, the key cannot be encoded).
    fn claim_start(&self, hash: u64, key: &K) -> Result<Claiming<'_>, Claim<V>> {
        if !self.db.is_usable() {
            return Err(Claim::Compute(Lease::none()));
        }
        // Parked by the read that missed: the key is not encoded again.
        let Some(encoded) = encoded::encoding_of(key) else {
            return Err(Claim::Compute(Lease::none()));
        };
        let token = new_token();
        Ok(Claiming {
            hash,
            encoded,
            token,
            // Registered before the row can exist, so no other caller here takes it for stale.
            held: Held::new(&self.db.shared, token),
            started: Instant::now(),
            pause: FIRST_PAUSE,
            holder: None,
        })
    }

    /// One attempt of a claim: its answer, or how long to pause before the next.
    fn claim_step(&self, key: &K, claiming: &mut Claiming<'_>) -> Next<V> {
        let shared = &self.db.shared;
        let (encoded, token) = (&claiming.encoded, claiming.token);
        loop {
            let seen = shared.epoch_now();
            let failed = self.failed_claim(seen);
            let attempt = shared.read(&self.space, |conn| {
                try_lock(conn, &self.ns, encoded, token, self.lease)
            });
            match attempt {
                // The database failed (counted): compute without coordination (see `Failed`).
                None => return Next::Done(Claim::Compute(Lease::holding(failed))),
                Some(Attempt::Taken) => {
                    // From here the claim (which unregisters it) owns the token.
                    claiming.held.keep = true;
                    let claim = self.lock_claim(encoded.clone(), token, seen);
                    // The value may have been committed between this caller's miss and its lock.
                    if let Some(value) = self.load_encoded(claiming.hash, key, encoded, false) {
                        drop(claim);
                        return Next::Done(Claim::Found(value));
                    }
                    return Next::Done(Claim::Compute(Lease::holding(claim)));
                }
                Some(Attempt::Held(pid, holder)) => {
                    if let Some(value) = self.load_encoded(claiming.hash, key, encoded, false) {
                        return Next::Done(Claim::Found(value));
                    }
                    // `(0, 0)`: a busy key, no holder seen.
                    claiming.holder = (pid != 0 || holder != 0).then_some(holder);
                    if !self.drop_if_abandoned(encoded, pid, holder) {
                        break;
                    }
                }
            }
        }
        if claiming.started.elapsed() > self.lease + Duration::from_secs(1) {
            // Held past this store's lease (another process's lease is longer, or the row was
            // taken again and again): stop waiting. The value is stored only while the row
            // still holds the holder's token seen last (see `Waited`).
            let waited = Waited {
                holder: claiming.holder,
            };
            return Next::Done(Claim::Compute(Lease::holding(waited)));
        }
        if claiming.pause == FIRST_PAUSE {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        let pause = claiming.pause;
        claiming.pause = (pause * 2).min(MAX_PAUSE);
        Next::Pause(pause)
    }
}

impl<K, V> DiskStore<K, V> {
    /// The lease of a claim the database fails now, `seen` the epoch read before it (see
    /// [`Failed`]).
    fn failed_claim(&self, seen: Option<u64>) -> Failed {
        Failed {
            epoch: seen.unwrap_or_else(|| self.db.shared.epoch.load(Ordering::Acquire)),
            foreign: self.foreign.load(Ordering::Acquire),
        }
    }

    /// [`Store::claim_refresh_async`](crate::Store::claim_refresh_async) for the disk: `key`'s lock row if
    /// no caller holds it (a miss computing it, or another process's refresh), without waiting.
    pub(super) fn claim_refresh_key(&self, encoded: Vec<u8>) -> Option<Lease> {
        if !self.db.is_usable() {
            return Some(Lease::none());
        }
        let token = new_token();
        let mut held = Held::new(&self.db.shared, token);
        // Twice at most: once more after removing a lock its holder abandoned.
        for _ in 0..2 {
            let seen = self.db.shared.epoch_now();
            let attempt = self.db.shared.read(&self.space, |conn| {
                try_lock(conn, &self.ns, &encoded, token, self.lease)
            });
            match attempt {
                // Refreshed, and its value not written (see `Failed`).
                None => return Some(Lease::holding(self.failed_claim(seen))),
                Some(Attempt::Taken) => {
                    held.keep = true;
                    return Some(Lease::holding(self.lock_claim(encoded, token, seen)));
                }
                Some(Attempt::Held(pid, holder)) => {
                    if !self.drop_if_abandoned(&encoded, pid, holder) {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// [`Store::mark_refresh_async`](crate::Store::mark_refresh_async) for the disk: `key`'s
    /// lock row, taken whoever holds it. A holder it replaces (a miss, a background refresh, an
    /// earlier forced refresh, in any process) began before, and its value is refused (its
    /// token is gone); this refresh's value is refused in turn if a later one takes the row,
    /// or a removal deletes it. A database that failed (counted) marks nothing, and the
    /// refresh's value is then not written (see [`Failed`]).
    pub(super) fn mark_refresh_key(&self, encoded: Vec<u8>) -> Lease {
        if !self.db.is_usable() {
            return Lease::none();
        }
        let token = new_token();
        let mut held = Held::new(&self.db.shared, token);
        let shared = &self.db.shared;
        let failed = self.failed_claim(shared.epoch_now());
        let replaced = shared.read(&self.space, |conn| {
            let replaced = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM locks WHERE ns = ?1 AND key = ?2)")?
                .query_row(params![&self.ns[..], &encoded], |row| row.get::<_, bool>(0))?;
            take_lock(conn, &self.ns, &encoded, token, self.lease)?;
            Ok(replaced)
        });
        let Some(replaced) = replaced else {
            return Lease::holding(failed);
        };
        if replaced {
            // A claim of this process may hold the row (another store of the key's namespace):
            // as after `unlock`, its value must find the row no longer its own.
            let _exclusive = shared.gate.write().unwrap_or_else(PoisonError::into_inner);
            shared.epoch.fetch_add(1, Ordering::AcqRel);
        }
        held.keep = true;
        // No epoch seen: the write reads the row back (`row_of`) before it is queued.
        Lease::holding(self.lock_claim(encoded, token, None))
    }

    /// Deletes the lock row of the key encoded as `encoded` (of every key, for `None`) at once,
    /// ahead of the removal of its value: whoever holds it, in any process, then stores nothing
    /// (`Kind::Put`'s token), so a value computed before the removal does not come back after
    /// it. A claim taken after this call is not touched.
    pub(super) fn unlock(&self, encoded: Option<&[u8]>) {
        if !self.db.is_usable() {
            // Not this process's database to change (a forked child), or none.
            return;
        }
        let shared = &self.db.shared;
        let removed = shared.read(&self.space, |conn| match encoded {
            Some(key) => conn
                .prepare_cached("DELETE FROM locks WHERE ns = ?1 AND key = ?2")?
                .execute(params![&self.ns[..], key]),
            None => conn
                .prepare_cached("DELETE FROM locks WHERE ns = ?1")?
                .execute(params![&self.ns[..]]),
        });
        if removed.is_some_and(|rows| rows > 0) {
            // A claim was under way, perhaps of another store of this process (whose flights
            // this removal does not reach): its value must find its row gone (`row_of`) and,
            // queued already, not be read back; as after a removal by another process.
            let _exclusive = shared.gate.write().unwrap_or_else(PoisonError::into_inner);
            shared.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The claim of the lock row of the key encoded as `encoded`, taken with `token` after the
    /// epoch `seen`.
    fn lock_claim(&self, encoded: Vec<u8>, token: i64, seen: Option<u64>) -> LockClaim {
        LockClaim {
            db: Arc::clone(&self.db),
            ns: Arc::clone(&self.ns),
            encoded,
            token,
            seen,
            queued: self.db.shared.queue.seq(),
            foreign: self.foreign.load(Ordering::Acquire),
        }
    }

    /// Whether `claim`'s lock row is still its own, as its value is about to be stored. A
    /// removal of the key (or a clear) deletes the row at once, in any process: one in this
    /// process refuses the value before it gets here (`crate::writes`); one in another is
    /// seen as a move of the epoch (its commit bumps the change counter before it returns),
    /// and then the row is read. The writer checks the row again as it commits.
    pub(super) fn row_of(&self, claim: &LockClaim) -> Row {
        let shared = &self.db.shared;
        let seen = shared.epoch_now();
        // Read before the row is: a removal's move of it after the check shows.
        let epoch = seen.unwrap_or_else(|| shared.epoch.load(Ordering::Acquire));
        if seen.is_some() && seen == claim.seen {
            return Row::Held { seen, epoch };
        }
        // A read that failed (counted) leaves it to the writer.
        if self.lock_row(&claim.encoded, claim.token) == Some(false) {
            Row::Gone
        } else {
            Row::Held { seen, epoch }
        }
    }

    /// Whether the lock row of the key encoded as `encoded` still holds `token`, another
    /// caller's, seen before a value was computed without the lock ([`Waited`]): as
    /// [`row_of`](Self::row_of), read at once.
    pub(super) fn row_holding(&self, encoded: &[u8], token: i64) -> Row {
        let shared = &self.db.shared;
        let seen = shared.epoch_now();
        // Read before the row is, as in `row_of`.
        let epoch = seen.unwrap_or_else(|| shared.epoch.load(Ordering::Acquire));
        if self.lock_row(encoded, token) == Some(false) {
            Row::Gone
        } else {
            Row::Held { seen, epoch }
        }
    }

    /// Whether the lock row of the key encoded as `encoded` holds `token`; `None` if the read
    /// failed (counted).
    fn lock_row(&self, encoded: &[u8], token: i64) -> Option<bool> {
        self.db.shared.read(&self.space, |conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM locks WHERE ns = ?1 AND key = ?2 AND token = ?3)",
            )?
            .query_row(params![&self.ns[..], encoded, token], |row| {
                row.get::<_, bool>(0)
            })
        })
    }

    /// Whether a value queued under the lock row of `encoded` taken with `token` may still be
    /// read from the queue: the row is still there (a read that failed says no: the disk
    /// decides).
    pub(super) fn holds(&self, encoded: &[u8], token: i64) -> bool {
        self.lock_row(encoded, token) == Some(true)
    }

    /// Removes the lock row `holder` of process `pid` holds on the key encoded as `encoded` if
    /// that holder ended without releasing it; whether it did (the lock is free to take).
    fn drop_if_abandoned(&self, encoded: &[u8], pid: i64, holder: i64) -> bool {
        let shared = &self.db.shared;
        let abandoned = if pid == i64::from(std::process::id()) {
            let released = !lock(&shared.held).contains(&holder);
            if released {
                // Its value and release may still be queued: committed first, the value is
                // stored under the row it was computed under, then the row goes (a row taken
                // over before would refuse the value).
                self.db.flush();
            }
            released
        } else {
            is_dead(pid)
        };
        if abandoned {
            shared.read(&self.space, |conn| {
                conn.prepare_cached("DELETE FROM locks WHERE ns = ?1 AND key = ?2 AND token = ?3")?
                    .execute(params![&self.ns[..], encoded, holder])
            });
        }
        abandoned
    }
}

/// A random lock token.
fn new_token() -> i64 {
    i64::from_ne_bytes(
        foldhash::fast::RandomState::default()
            .hash_one((std::process::id(), Instant::now()))
            .to_ne_bytes(),
    )
}

/// A lock row this process holds (in a [`Lease`]), until dropped: then the row goes, with the
/// value's write when one was queued first. It carries the key's encoding, which that write
/// takes ([`encoded`](Self::encoded)) rather than encoding the key again.
pub(super) struct LockClaim {
    db: Arc<Db>,
    ns: Arc<[u8]>,
    encoded: Vec<u8>,
    token: i64,
    /// The epoch (`Shared::epoch_now`) before the row was taken.
    seen: Option<u64>,
    /// The write queue's count ([`Queue::seq`](super::writer::Queue::seq)) once the row was
    /// taken: an insert or removal of the key queued after it outdates the value.
    pub(super) queued: u64,
    /// The changes of the namespace by the process's other stores that this store had seen
    /// (`DiskStore::foreign`) once the row was taken: one seen after keeps the value out of
    /// its front.
    pub(super) foreign: u64,
}

/// A claim's lock row as its value is about to be stored ([`DiskStore::row_of`]).
pub(super) enum Row {
    /// Deleted since the claim (by a removal of the key): the value is older than the removal.
    Gone,
    /// Its own as of the epoch `seen`, as far as this process can tell; `epoch`: the process's
    /// epoch then, with or without a change counter (a move of it since may be a removal).
    Held { seen: Option<u64>, epoch: u64 },
}

impl LockClaim {
    /// The encoding of the key whose row this is.
    pub(super) fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The token the row holds while it is this claim's.
    pub(super) fn token(&self) -> i64 {
        self.token
    }
}

impl Drop for LockClaim {
    fn drop(&mut self) {
        let (shared, token) = (&self.db.shared, self.token);
        lock(&shared.held).remove(&token);
        let encoded = std::mem::take(&mut self.encoded);
        shared
            .queue
            .push(&self.ns, encoded, Kind::Release { token });
    }
}

/// A claim under way: the key's encoding, the lock token it tries with (registered while it
/// may hold a row), when it started and its next pause.
struct Claiming<'a> {
    /// The key's hash (the front's), which the call carries.
    hash: u64,
    encoded: Vec<u8>,
    token: i64,
    held: Held<'a>,
    started: Instant,
    pause: Duration,
    /// The token of the lock row's holder at the last attempt, if one was seen.
    holder: Option<i64>,
}

/// The lease of a claim whose wait for another caller's lock row timed out: the token that
/// row held at its last look (`None`: none seen). Its value is stored only while the row still
/// holds that token: a removal of the key (which deletes the row), a forced refresh (which
/// takes it) or the holder's own value (whose commit releases it) since the computation began
/// must not be undone by that value, computed before them. With no token seen, it is not
/// stored.
pub(super) struct Waited {
    pub(super) holder: Option<i64>,
}

/// The lease of a claim the database failed (counted: a disk error, a database busy past its
/// timeout): no lock row fences its value, which is not written. Stored as is, it would land
/// over a change of the key made elsewhere during the computation (another process's insert or
/// removal), and every later call would read the value computed before it; Redis's failed claim
/// writes nothing either (`Fence::Failed`). `epoch` and `foreign` as they stood before the
/// attempt: the value is kept in memory only while neither has moved.
pub(super) struct Failed {
    pub(super) epoch: u64,
    pub(super) foreign: u64,
}

/// What a claim does after one attempt.
enum Next<V> {
    Done(Claim<V>),
    Pause(Duration),
}
