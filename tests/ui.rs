//! Compile-fail UI tests: every mistake `#[memo::cached]` reports, one case per file under
//! `tests/ui/<area>/`, with the expected compiler output next to it in a `.stderr` file.
//! Cases whose message depends on the `disk` feature are in `tests/ui-disk/`, likewise
//! `tests/ui-redis/`. The errors for an option whose feature is off (`store = disk` without
//! `disk`, …) are tested by the `memo-tests-nofeatures` package (`tests-nofeatures/`): this
//! package's dev-dependency on itself turns `disk`, `redis` and `tokio` on in every test build.
//!
//! To bless changed messages: `TRYBUILD=overwrite cargo test --all-features --test ui` (and
//! `-p memo-tests-nofeatures`), then review the `.stderr` diffs before committing them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.compile_fail("tests/ui-disk/*.rs");
    t.compile_fail("tests/ui-redis/*.rs");
}
