//! The binary of a package whose library has a memoized function of the same path, `app::label`
//! (a binary's functions are named by its crate, `app`, as the library's are). Calls its own
//! `label(1)`, then the library's, on the program's disk store (`MEMO_CACHE_DIR`), and prints
//! what each returned and how many times each body ran.

use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[memo::cached(store = disk)]
fn label(n: u64) -> String {
    RUNS.fetch_add(1, Ordering::Relaxed);
    format!("bin {n}")
}

fn main() {
    let bin = label(1);
    // On disk before the library's call reads the store.
    label_cache().store().flush();
    let lib = app::label(1);
    app::label_cache().store().flush();
    let errors = label_cache().stats().backend_errors + app::label_cache().stats().backend_errors;
    println!(
        "bin={bin:?} lib={lib:?} runs={},{} errors={errors}",
        RUNS.load(Ordering::Relaxed),
        app::runs()
    );
}
