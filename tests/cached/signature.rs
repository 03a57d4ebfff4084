//! The function keeps its signature, attributes, docs and visibility; the companion follows them.

use memo::cached;

mod inner {
    use memo::cached;

    /// Documented, `#[must_use]`, `#[inline]` and crate-visible.
    #[must_use]
    #[inline]
    #[cached]
    pub(crate) fn double(n: u32) -> u32 {
        n * 2
    }

    #[cfg(any())]
    #[cached]
    pub(crate) fn compiled_out(n: u32) -> u32 {
        n
    }

    // Would clash with `compiled_out_cache` if the companion ignored `#[cfg]`.
    pub(crate) fn compiled_out_cache() -> u32 {
        7
    }
}

#[test]
fn visibility_and_attributes_are_kept() {
    assert_eq!(inner::double(4), 8);
    assert_eq!(inner::double_cache().stats().misses, 1);
    assert_eq!(inner::compiled_out_cache(), 7);
}

#[cached]
fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

#[test]
fn recursion_works_and_computes_each_key_once() {
    assert_eq!(fib(80), 23_416_728_348_467_685);
    let stats = fib_cache().stats();
    assert_eq!(stats.misses, 81);
    assert_eq!(stats.len, 81);
}

#[cached(key = n)]
fn reenter(n: u32, again: bool) -> u32 {
    if again { reenter(n, false) + 1 } else { 1 }
}

#[test]
fn reentering_the_same_key_computes_instead_of_deadlocking() {
    assert_eq!(reenter(5, true), 2);
    assert_eq!(
        reenter(5, false),
        2,
        "the outer call's value is the one stored"
    );
}

#[cached]
#[allow(
    clippy::needless_pass_by_value,
    reason = "a by-value argument is part of what is tested"
)]
unsafe fn raw_len(text: String) -> usize {
    text.len()
}

#[test]
fn unsafe_functions_stay_unsafe() {
    // SAFETY: `raw_len` has no safety requirement; it is `unsafe` to test that the signature is kept.
    assert_eq!(unsafe { raw_len("abc".into()) }, 3);
}
