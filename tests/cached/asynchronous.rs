//! `async fn`: the sync contract on tokio, plus cancellation of the computing caller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memo::cached;

use crate::calls::poll_once;

static FETCHES: AtomicUsize = AtomicUsize::new(0);

/// Pretends to fetch a page: 50 ms of waiting, then its "body".
#[cached(ttl = "1h")]
async fn fetch(url: &str) -> Result<String, String> {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    if url.is_empty() {
        return Err("no url".into());
    }
    let host = url.strip_prefix("http://").ok_or("not http")?;
    Ok(format!("page of {host}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_of_one_cold_key_run_it_once() {
    let tasks: Vec<_> = (0..64)
        .map(|_| tokio::spawn(fetch("http://one.test")))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().as_deref(), Ok("page of one.test"));
    }
    assert_eq!(FETCHES.load(Ordering::SeqCst), 1);
    let stats = fetch_cache().stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits + stats.coalesced, 63);
    // `return` and `?` inside the body act on the body; errors are not cached.
    assert!(fetch("").await.is_err());
    assert!(fetch("ftp://x").await.is_err());
    assert!(fetch("ftp://x").await.is_err());
    assert_eq!(fetch_cache().len(), 1);
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn the_future_is_send_when_the_body_is() {
    assert_eq!(assert_send(double(21)).await, 42);
}

#[cached]
async fn double(n: u64) -> u64 {
    tokio::task::yield_now().await;
    n * 2
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn slow(n: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    n + 1
}

/// The leader gives up (its future is dropped mid-computation) with waiters joined to it. The
/// order is set by polls, not by sleeps: a leader task not yet run when the waiters came (a
/// loaded machine) made a waiter the leader, and the cancelled caller a waiter, run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let mut leader = Box::pin(slow(7));
    assert!(!poll_once(leader.as_mut()), "the leader is in its body");
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    let mut waiters: Vec<_> = (0..16).map(|_| Box::pin(slow(7))).collect();
    for waiter in &mut waiters {
        assert!(!poll_once(waiter.as_mut()), "a waiter joins the leader");
    }
    drop(leader);
    let waiters: Vec<_> = waiters.into_iter().map(tokio::spawn).collect();
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), 8, "every surviving caller is served");
    }
    assert_eq!(
        SLOW_RUNS.load(Ordering::SeqCst),
        2,
        "the cancelled run and one more"
    );
}

static PATIENT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn patient(n: u64) -> u64 {
    PATIENT_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    n
}

/// A waiter dropped while its leader computes. The leader is in its body before the waiter
/// comes, and the waiter is dropped after it joined, by polls, not sleeps: a leader task not
/// yet run when the waiter came (a loaded machine) left the waiter to lead, and run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_holds_nobody_back() {
    let mut leader = Box::pin(patient(3));
    assert!(!poll_once(leader.as_mut()), "the leader is in its body");
    let mut impatient = Box::pin(patient(3));
    assert!(
        !poll_once(impatient.as_mut()),
        "the waiter joins the leader"
    );
    drop(impatient);
    assert_eq!(leader.await, 3);
    assert_eq!(patient(3).await, 3);
    assert_eq!(PATIENT_RUNS.load(Ordering::SeqCst), 1);
}

#[cached]
async fn gate(n: u64, hold: bool) -> u64 {
    if hold {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_keys_and_hits_do_not_wait_for_a_miss() {
    assert_eq!(gate(1, false).await, 1);
    let blocked = tokio::spawn(gate(2, true));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let quick = tokio::time::timeout(Duration::from_secs(5), async {
        (gate(1, false).await, gate(3, false).await)
    });
    assert_eq!(quick.await.expect("no waiting behind key 2"), (1, 3));
    blocked.abort();
}

#[cached]
async fn fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        Box::pin(fib(n - 1)).await + Box::pin(fib(n - 2)).await
    }
}

#[tokio::test]
async fn boxed_recursion_works() {
    assert_eq!(fib(60).await, 1_548_008_755_920);
    assert_eq!(fib_cache().stats().misses, 61);
}

struct Api {
    base: String,
}

static USER_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Api {
    #[cached(key = id)]
    async fn user(&self, id: u32) -> String {
        USER_CALLS.fetch_add(1, Ordering::SeqCst);
        format!("{}/users/{id}", self.base)
    }
}

#[tokio::test]
async fn async_methods_work() {
    let api = Api {
        base: "http://api".into(),
    };
    assert_eq!(api.user(1).await, "http://api/users/1");
    assert_eq!(api.user(1).await, "http://api/users/1");
    assert_eq!(USER_CALLS.load(Ordering::SeqCst), 1);
    assert!(Api::user_cache().contains_key(&1));
}

static STEPPED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Pending `steps` times (waking itself at once), then ready: a body with await points.
pub(crate) async fn steps(steps: u32) {
    let mut left = steps;
    std::future::poll_fn(|cx| {
        if left == 0 {
            return std::task::Poll::Ready(());
        }
        left -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

#[cached]
async fn stepped(n: u64) -> u64 {
    STEPPED_RUNS.fetch_add(1, Ordering::SeqCst);
    steps(3).await;
    n * 2
}

/// A caller dropped at any of its await points leaves no flight behind: the caller that joined
/// it computes the key (once), and the next one hits.
#[tokio::test]
async fn a_caller_cancelled_at_any_await_point_leaves_nothing_behind() {
    let cancelled = crate::calls::cancel_at_every_await(
        stepped,
        |n| n * 2,
        || STEPPED_RUNS.load(Ordering::SeqCst),
        Duration::ZERO,
    )
    .await;
    assert_eq!(
        cancelled, 3,
        "dropped at each of the body's three await points"
    );
}
