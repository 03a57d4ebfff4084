//! `cache = self.field`: a cache per instance (cachetools' `cachedmethod`), held in a field and
//! dropped with its object; the key need not contain `self`.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo::{Cache, cached};

use crate::calls::poll_once;

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A value that counts its drops, to see a cache go with its object.
#[derive(Clone, Debug, PartialEq)]
struct Name(String);

impl Drop for Name {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

struct Catalog {
    prefix: &'static str,
    names: Cache<u64, Name>,
    parsed: Cache<String, u64>,
    pages: Cache<(String, u32), String>,
    runs: AtomicUsize,
}

impl Catalog {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            names: Cache::builder().maxsize(100).build(),
            parsed: Cache::builder().build(),
            pages: Cache::builder().build(),
            runs: AtomicUsize::new(0),
        }
    }

    #[cached(cache = self.names)]
    fn name(&self, id: u64) -> Name {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if id == 5 {
            // Long enough for concurrent callers to find the computation running.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Name(format!("{} {id}", self.prefix))
    }

    #[cached(cache = self.parsed)]
    fn parse(&self, text: &str) -> Result<u64, std::num::ParseIntError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        text.parse()
    }

    #[cached(cache = self.pages)]
    async fn page(&self, site: &str, n: u32) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{site} page {n} by {}", self.prefix)
    }
}

/// cachetools' `cachedmethod`: each object has its own entries; a new object starts empty.
#[test]
fn each_instance_has_a_cache_of_its_own() {
    let first = Catalog::new("first");
    assert_eq!(first.name(1), Name("first 1".into()));
    assert_eq!(first.name(2), Name("first 2".into()));
    assert_eq!(first.name(1), Name("first 1".into()));
    assert_eq!(first.runs.load(Ordering::SeqCst), 2);
    assert_eq!(first.names.len(), 2);
    let stats = first.names.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));

    let second = Catalog::new("second");
    assert_eq!(
        second.names.len(),
        0,
        "a new instance sees none of the other's entries"
    );
    assert_eq!(second.name(1), Name("second 1".into()));
    assert_eq!(second.runs.load(Ordering::SeqCst), 1);
}

#[test]
fn the_cache_goes_with_its_object() {
    let catalog = Catalog::new("gone");
    catalog.name(7);
    let before = DROPPED.load(Ordering::SeqCst);
    drop(catalog);
    assert!(
        DROPPED.load(Ordering::SeqCst) > before,
        "the cached value was dropped"
    );
}

#[test]
fn errors_are_returned_and_not_stored() {
    let catalog = Catalog::new("p");
    assert!(catalog.parse("x").is_err());
    assert!(catalog.parse("x").is_err());
    assert_eq!(catalog.parse("42"), Ok(42));
    assert_eq!(catalog.parse("42"), Ok(42));
    assert_eq!(catalog.runs.load(Ordering::SeqCst), 3);
    assert_eq!(catalog.parsed.keys(), vec!["42".to_string()]);
}

#[test]
fn async_methods_use_the_instance_cache_too() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let catalog = Catalog::new("a");
    runtime.block_on(async {
        assert_eq!(catalog.page("docs", 1).await, "docs page 1 by a");
        assert_eq!(catalog.page("docs", 1).await, "docs page 1 by a");
    });
    assert_eq!(catalog.runs.load(Ordering::SeqCst), 1);
    assert_eq!(catalog.pages.len(), 1);
    // The method's future can be spawned on a multi-threaded runtime.
    is_send(&catalog.page("docs", 2));
}

fn is_send<T: Send>(_: &T) {}

/// Concurrent callers of one key on one instance compute it once.
#[test]
fn callers_of_one_key_on_one_instance_compute_once() {
    let catalog = Catalog::new("c");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| catalog.name(5));
        }
    });
    assert_eq!(catalog.runs.load(Ordering::SeqCst), 1);
}

/// A lookup whose first computation fails once the test lets it; the later ones succeed.
struct Flaky {
    values: Cache<u32, String>,
    runs: AtomicUsize,
    entered: std::sync::Barrier,
    go: std::sync::Barrier,
}

impl Flaky {
    #[cached(cache = self.values)]
    fn lookup(&self, n: u32) -> Result<String, String> {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            self.entered.wait();
            self.go.wait();
            return Err(format!("{n} failed"));
        }
        Ok(format!("{n} found"))
    }
}

/// The README's `cache = …` row: unlike a function's own cache (whose waiters take a clone of
/// a `Clone` error), callers waiting on a call whose result is not stored compute in turn.
#[test]
fn callers_waiting_on_a_failed_call_compute_in_turn() {
    let flaky = Flaky {
        values: Cache::builder().build(),
        runs: AtomicUsize::new(0),
        entered: std::sync::Barrier::new(2),
        go: std::sync::Barrier::new(2),
    };
    std::thread::scope(|s| {
        let leader = s.spawn(|| flaky.lookup(1));
        flaky.entered.wait();
        let waiter = s.spawn(|| flaky.lookup(1));
        // Time for the waiter to miss and wait on the leader (a computation of its own would be
        // a second run now).
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(flaky.runs.load(Ordering::SeqCst), 1, "the waiter waits");
        flaky.go.wait();
        assert_eq!(leader.join().unwrap(), Err("1 failed".to_string()));
        assert_eq!(waiter.join().unwrap(), Ok("1 found".to_string()));
    });
    assert_eq!(flaky.runs.load(Ordering::SeqCst), 2);
}

/// A feed whose first computation of each key waits for [`Feed::release`]; the later ones do not.
struct Feed {
    items: Cache<u32, String>,
    runs: AtomicUsize,
    release: tokio::sync::Notify,
}

impl Feed {
    fn new() -> Self {
        Self {
            items: Cache::builder().build(),
            runs: AtomicUsize::new(0),
            release: tokio::sync::Notify::new(),
        }
    }

    #[cached(cache = self.items)]
    async fn item(&self, id: u32) -> String {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            self.release.notified().await;
        }
        format!("item {id}")
    }
}

/// Runs `future` to its end; one left waiting for a cancelled leader would hang, so it fails.
fn finish<F: std::future::Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), future)
            .await
            .expect("not left waiting")
    })
}

/// Cancellation at each await of an instance cache's miss: a leader dropped in its body hands
/// the key over to its waiter, which computes it; a waiter dropped while it waits holds the
/// leader back in nothing; a future dropped before its first poll leaves no trace.
#[test]
fn a_cancelled_async_caller_of_an_instance_cache_leaves_nothing_behind() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let feed = Feed::new();
    drop(feed.item(1));
    assert_eq!((feed.runs.load(Ordering::SeqCst), feed.items.len()), (0, 0));

    // The leader is in its body (run 1, waiting for a release that never comes) and a waiter
    // has joined it; the leader is dropped there.
    let mut leader = Box::pin(feed.item(1));
    assert!(!poll_once(leader.as_mut()), "the leader waits in its body");
    let mut waiter = Box::pin(feed.item(1));
    assert!(!poll_once(waiter.as_mut()), "the waiter joins the leader");
    assert_eq!(
        feed.runs.load(Ordering::SeqCst),
        1,
        "one computation at a time"
    );
    drop(leader);
    assert_eq!(finish(&runtime, waiter), "item 1", "the waiter takes over");
    assert_eq!(feed.runs.load(Ordering::SeqCst), 2);
    assert_eq!(finish(&runtime, feed.item(1)), "item 1");
    assert_eq!(feed.runs.load(Ordering::SeqCst), 2, "then a hit");

    // A waiter dropped while it waits: the leader finishes once released, and stores its value.
    let feed = Feed::new();
    let mut leader = Box::pin(feed.item(2));
    assert!(!poll_once(leader.as_mut()));
    let mut waiter = Box::pin(feed.item(2));
    assert!(!poll_once(waiter.as_mut()));
    drop(waiter);
    feed.release.notify_one();
    assert_eq!(finish(&runtime, leader), "item 2");
    assert_eq!(finish(&runtime, feed.item(2)), "item 2");
    assert_eq!(feed.runs.load(Ordering::SeqCst), 1, "computed once");
    assert_eq!(feed.items.stats().hits, 1);
}

/// Two methods given one field: each would read the other's values under the same keys.
struct Repo {
    names: Cache<u64, String>,
    runs: AtomicUsize,
}

impl Repo {
    #[cached(cache = self.names)]
    fn user_name(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("user-{id}")
    }

    #[cached(cache = self.names)]
    fn team_name(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("team-{id}")
    }

    #[cached(cache = self.names)]
    async fn group_name(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("group-{id}")
    }

    #[cached(cache = self.names)]
    fn label(&self, id: u64) -> Result<String, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(format!("label-{id}"))
    }

    #[cached(cache = self.names)]
    async fn tag(&self, id: u64) -> Result<String, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(format!("tag-{id}"))
    }
}

/// The first method to call with a cache keeps it; another given the same cache computes every
/// call without it (a new user read `user-1` from `team_name(1)`).
#[test]
fn a_second_method_given_the_same_cache_computes_its_own_values() {
    let repo = Repo {
        names: Cache::builder().build(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(repo.user_name(1), "user-1");
    assert_eq!(repo.user_name(1), "user-1");
    assert_eq!(repo.runs.load(Ordering::SeqCst), 1, "the first one's cache");
    assert_eq!(repo.team_name(1), "team-1");
    assert_eq!(repo.team_name(1), "team-1");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(repo.group_name(1)), "group-1");
    is_send(&repo.group_name(1));
    assert_eq!(repo.label(1).as_deref(), Ok("label-1"));
    assert_eq!(runtime.block_on(repo.tag(1)).as_deref(), Ok("tag-1"));
    is_send(&repo.tag(1));
    assert_eq!(
        repo.runs.load(Ordering::SeqCst),
        6,
        "the others compute each call"
    );
    assert_eq!(repo.user_name(1), "user-1");
    assert_eq!(repo.names.len(), 1, "only the first one's value");
    assert_eq!(repo.runs.load(Ordering::SeqCst), 6);
}

/// A kind of name, for the generic method below.
trait Kind {
    const NAME: &'static str;
}

struct User;
struct Team;

impl Kind for User {
    const NAME: &'static str = "user";
}

impl Kind for Team {
    const NAME: &'static str = "team";
}

/// One generic method given one field: its instances are two functions, as two methods are.
struct Directory {
    names: Cache<u64, String>,
    runs: AtomicUsize,
}

impl Directory {
    #[cached(cache = self.names)]
    fn name_of<T: Kind>(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{}-{id}", T::NAME)
    }
}

/// The instances of a generic method given one cache are two functions: the second computes
/// its own values (`name_of::<Team>(1)` returned `user-1`, the `static` owner mark of the
/// expansion being one for all instances).
#[test]
fn a_second_instance_of_a_generic_method_given_the_same_cache_computes_its_own_values() {
    let directory = Directory {
        names: Cache::builder().build(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(directory.name_of::<User>(1), "user-1");
    assert_eq!(directory.name_of::<User>(1), "user-1");
    assert_eq!(directory.runs.load(Ordering::SeqCst), 1);
    assert_eq!(directory.name_of::<Team>(1), "team-1");
    assert_eq!(directory.name_of::<Team>(1), "team-1");
    assert_eq!(directory.name_of::<User>(1), "user-1");
}

/// Two objects of one type given one cache (an `Arc`): one method, so one function, cached.
struct Shared {
    names: std::sync::Arc<Cache<u64, String>>,
    runs: std::sync::Arc<AtomicUsize>,
}

impl Shared {
    #[cached(cache = self.names)]
    fn name_of(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("name-{id}")
    }
}

/// One cache shared by two objects of one method stays cached for both: the owner is the
/// method, not the object.
#[test]
fn one_cache_given_to_two_objects_of_one_method_is_cached_for_both() {
    let names = std::sync::Arc::new(Cache::builder().build());
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let first = Shared {
        names: names.clone(),
        runs: runs.clone(),
    };
    let second = Shared { names, runs };
    assert_eq!(first.name_of(1), "name-1");
    drop(first);
    assert_eq!(second.name_of(1), "name-1");
    assert_eq!(
        second.runs.load(Ordering::SeqCst),
        1,
        "the second object hit"
    );
}
