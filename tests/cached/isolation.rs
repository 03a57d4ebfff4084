//! `memo::testing::isolate()` keeps the caches apart that the process-wide registry keeps apart:
//! a test's scope never hands one instance of a function another's value, and two tests
//! isolating the same function at once never see each other's values.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use memo::cached;

/// A generic impl whose type argument is a closure: `type_name` writes every closure of one
/// function alike (`…::f::{{closure}}`), so only the closure's type tells the instances apart.
struct Op<F>(F);

impl<F: Fn(u64) -> u64> Op<F> {
    #[cached(key = n)]
    fn run(&self, n: u64) -> u64 {
        (self.0)(n)
    }
}

#[test]
fn closures_as_type_arguments_keep_apart_in_a_scope() {
    let _scope = memo::testing::isolate();
    let add = Op(|n| n + 1);
    let double = Op(|n| n * 2);
    assert_eq!(add.run(10), 11);
    assert_eq!(double.run(10), 20, "not the other closure's value");
    assert_eq!(add.run(10), 11);
    assert_eq!(double.run(10), 20);
}

fn run_cache_of<F: Fn(u64) -> u64>(_: &Op<F>) -> &'static memo::Cache<u64, u64> {
    Op::<F>::run_cache()
}

/// In a scope as outside one, the companion of an instance that `type_name` writes alike is
/// that instance's cache, whether it comes before its calls or after (it was the first's).
#[test]
fn the_companion_of_a_closure_instance_is_its_own_in_a_scope() {
    let _scope = memo::testing::isolate();
    let add = Op(|n| n + 1);
    let double = Op(|n| n * 2);
    run_cache_of(&double).insert(5, 500);
    assert_eq!(add.run(5), 6);
    assert_eq!(double.run(5), 500, "the entry its companion stored");
    assert_eq!(double.run(10), 20);
    assert_eq!(run_cache_of(&add).get(&10), None);
    assert_eq!(run_cache_of(&double).get(&10), Some(20));
    assert!(run_cache_of(&double).invalidate(&10));
    assert_eq!(run_cache_of(&add).get(&5), Some(6));
}

trait Unit {
    const SUFFIX: &'static str;
}

struct Length<U>(std::marker::PhantomData<U>);

impl<U: Unit> Length<U> {
    #[cached]
    fn label(n: u32) -> String {
        format!("{n}{}", U::SUFFIX)
    }
}

/// Two types of one name in two blocks of one function, which `type_name` writes alike.
#[test]
fn same_named_types_of_two_blocks_keep_apart_in_a_scope() {
    let _scope = memo::testing::isolate();
    let first = {
        struct Inch;
        impl Unit for Inch {
            const SUFFIX: &'static str = "in";
        }
        Length::<Inch>::label(5)
    };
    let second = {
        struct Inch;
        impl Unit for Inch {
            const SUFFIX: &'static str = "inch";
        }
        Length::<Inch>::label(5)
    };
    assert_eq!(first, "5in");
    assert_eq!(second, "5inch", "not the other block's value");
}

thread_local! {
    /// What a test set up for the function under test, as tests do per thread.
    static FIXTURE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

static FIXTURE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Meets the other thread's call inside the body (both must run at once), then reads this
/// thread's fixture.
#[cached]
fn fixture(n: u64, meet: bool) -> u64 {
    FIXTURE_RUNS.fetch_add(1, Ordering::SeqCst);
    if meet {
        MEET.with(|meet| (meet.borrow())());
    }
    n * 1000 + FIXTURE.with(std::cell::Cell::get)
}

thread_local! {
    static MEET: std::cell::RefCell<Box<dyn Fn()>> = std::cell::RefCell::new(Box::new(|| {}));
}

/// Two tests isolating the same function at once, on two threads, each with its own fixture:
/// both bodies run (neither joins the other's computation), each thread gets its own value, and
/// afterwards each scope holds its own entry only.
#[test]
fn two_scopes_computing_one_key_at_once_never_share_a_value() {
    for round in 0..20_u64 {
        let before = FIXTURE_RUNS.load(Ordering::SeqCst);
        let (to_b, from_a) = mpsc::channel::<()>();
        let (to_a, from_b) = mpsc::channel::<()>();
        let thread = |fixture_value: u64, tx: mpsc::Sender<()>, rx: mpsc::Receiver<()>| {
            move || {
                let _scope = memo::testing::isolate();
                FIXTURE.with(|f| f.set(fixture_value));
                // Each body waits for the other's to start: a call that joined the other's
                // computation instead would time out here.
                MEET.with(|meet| {
                    *meet.borrow_mut() = Box::new(move || {
                        tx.send(()).unwrap();
                        rx.recv_timeout(Duration::from_secs(10))
                            .expect("the other scope's body ran too");
                    });
                });
                let first = fixture(round, true);
                let again = fixture(round, true);
                let stats = fixture_cache().stats();
                (
                    first,
                    again,
                    stats.misses,
                    stats.hits,
                    fixture_cache().len(),
                )
            }
        };
        let a = std::thread::spawn(thread(1, to_b, from_b));
        let b = std::thread::spawn(thread(2, to_a, from_a));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(
            a,
            (round * 1000 + 1, round * 1000 + 1, 1, 1, 1),
            "round {round}"
        );
        assert_eq!(
            b,
            (round * 1000 + 2, round * 1000 + 2, 1, 1, 1),
            "round {round}"
        );
        assert_eq!(FIXTURE_RUNS.load(Ordering::SeqCst) - before, 2);
    }
    assert!(
        !fixture_cache().contains_key(&(0, true)),
        "nothing reached the process-wide cache"
    );
}
