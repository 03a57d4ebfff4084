//! Compile-fail UI tests: every mistake `#[memo::cached]` reports, one case per file under
//! `tests/ui/<area>/`, with the expected compiler output next to it in a `.stderr` file.
//! Cases whose message depends on the `disk` feature are in `tests/ui-disk/` (run with it) and
//! `tests/ui-nodisk/` (run without it); likewise `tests/ui-redis/` and `tests/ui-noredis/`.
//!
//! To bless changed messages: `TRYBUILD=overwrite cargo test --test ui` (with `--all-features`,
//! and once without features for `ui-nodisk` and `ui-noredis`), then review the `.stderr` diffs before committing
//! them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    #[cfg(feature = "disk")]
    t.compile_fail("tests/ui-disk/*.rs");
    #[cfg(not(feature = "disk"))]
    t.compile_fail("tests/ui-nodisk/*.rs");
    #[cfg(feature = "redis")]
    t.compile_fail("tests/ui-redis/*.rs");
    #[cfg(not(feature = "redis"))]
    t.compile_fail("tests/ui-noredis/*.rs");
}
