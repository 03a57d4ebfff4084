//! A scope of caches private to one test: [`isolate`].

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cell::{Boxed, Erased, Owner, claim};

/// The caches of one scope, by function id, instance and type, each with the type of the
/// closure of the body that claimed it (as the process-wide registry keeps them).
type Caches = HashMap<(&'static str, String, TypeId), Vec<(Option<TypeId>, Erased)>>;

thread_local! {
    /// How many scopes are open on this thread: the hit path's one check.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The open scopes, innermost last: their caches, their directory, and the Redis server
    /// their functions use, if they name one ([`Isolated::redis_url`]).
    static SCOPES: RefCell<Vec<(Caches, PathBuf, Option<String>)>> = const { RefCell::new(Vec::new()) };
}

/// Until it is dropped, every memoized function called **on this thread** uses a cache of its
/// own, made empty at its first call in the scope, `store = disk` functions keep their entries in
/// a fresh directory, and `store = redis` and `tiered` functions start their keys with the
/// scope's own prefix (`memo-isolated-<pid>-<n>`, in place of `memo` or `MEMO_REDIS_PREFIX`; the
/// entries stay on the server): tests running in parallel (each `#[test]` runs on a thread of
/// its own) never see each other's entries or counts, and need no environment variable.
///
/// `f_cache()` inside the scope returns the scope's cache, so its `stats()` count only the
/// test's calls. Threads the test starts use the process-wide caches; a `#[tokio::test]` (a
/// current-thread runtime) runs on the test's thread. Scopes nest; the caches of a scope are
/// leaked when it ends (a test's worth of memory), its directory removed.
///
/// Needs the `test-util` feature, which adds a thread-local check to every call. The example is
/// in the `memo` crate's docs, under "Testing".
#[must_use = "the scope ends when this guard is dropped"]
pub fn isolate() -> Isolated {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "memo-isolated-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    SCOPES.with(|scopes| {
        scopes.borrow_mut().push((Caches::new(), dir.clone(), None));
    });
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    Isolated {
        dir,
        _this_thread: PhantomData,
    }
}

/// The guard of an [`isolate`] scope: the scope ends when it is dropped.
#[derive(Debug)]
pub struct Isolated {
    dir: PathBuf,
    /// The scope belongs to the thread that opened it.
    _this_thread: PhantomData<*const ()>,
}

impl Isolated {
    /// The directory that `store = disk` functions use in this scope (instead of
    /// `MEMO_CACHE_DIR` or the user's cache directory); made at the first such call.
    #[must_use]
    pub fn disk_root(&self) -> &Path {
        &self.dir
    }

    /// Points this scope's `store = redis` and `tiered` functions at the server of `url` (a
    /// [`RedisServer`](super::RedisServer)'s, say) in place of `MEMO_REDIS_URL`, which a test
    /// would have to set for the whole process.
    ///
    /// ```no_run
    /// let server = memo::testing::RedisServer::start();
    /// let _scope = memo::testing::isolate().redis_url(&server.url());
    /// // `store = redis` functions called on this thread now use `server`.
    /// ```
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis_url(self, url: &str) -> Self {
        SCOPES.with(|scopes| {
            let mut scopes = scopes.borrow_mut();
            if let Some(scope) = scopes.iter_mut().rev().find(|(_, dir, _)| *dir == self.dir) {
                scope.2 = Some(url.to_string());
            }
        });
        self
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
        SCOPES.with(|scopes| {
            let mut scopes = scopes.borrow_mut();
            if let Some(index) = scopes.iter().rposition(|(_, dir, _)| *dir == self.dir) {
                scopes.remove(index);
            }
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a scope is open on this thread.
#[inline]
pub(crate) fn active() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// The innermost scope's cache for `key` and `owner` (claimed as `cell::claim` does), made by
/// `make` if it has none yet.
pub(crate) fn cache(
    key: (&'static str, String, TypeId),
    owner: Owner,
    make: &mut dyn FnMut() -> Boxed,
) -> Erased {
    let claimed = |scopes: &mut Vec<(Caches, PathBuf, Option<String>)>, key: &_| {
        let (caches, _, _) = scopes.last_mut()?;
        claim(caches.get_mut(key)?, owner)
    };
    if let Some(found) = SCOPES.with(|scopes| claimed(&mut scopes.borrow_mut(), &key)) {
        return found;
    }
    // Made outside the borrow: making a cache may call another memoized function.
    let fresh: Erased = Box::leak(make());
    SCOPES.with(|scopes| {
        let mut scopes = scopes.borrow_mut();
        if let Some(found) = claimed(&mut scopes, &key) {
            return found;
        }
        if let Some((caches, _, _)) = scopes.last_mut() {
            caches.entry(key).or_default().push((owner.body, fresh));
        }
        fresh
    })
}

/// The innermost scope's directory for disk stores, if a scope is open.
#[cfg(feature = "disk")]
pub(crate) fn disk_root() -> Option<PathBuf> {
    if !active() {
        return None;
    }
    SCOPES.with(|scopes| scopes.borrow().last().map(|(_, dir, _)| dir.clone()))
}

/// The innermost scope's start of Redis keys, if a scope is open: the name of its directory.
#[cfg(feature = "redis")]
pub(crate) fn redis_prefix() -> Option<String> {
    if !active() {
        return None;
    }
    SCOPES.with(|scopes| {
        let scopes = scopes.borrow();
        let (_, dir, _) = scopes.last()?;
        Some(dir.file_name()?.to_string_lossy().into_owned())
    })
}

/// The Redis server the innermost scope named, if a scope is open and named one.
#[cfg(feature = "redis")]
pub(crate) fn redis_url() -> Option<String> {
    if !active() {
        return None;
    }
    SCOPES.with(|scopes| scopes.borrow().last()?.2.clone())
}
