//! Compile-fail UI tests of memo-kit without its features: an option whose feature is off is a
//! compile error at the option, naming the feature and the package to add it to. One directory
//! per feature: `tests/ui-nodisk/`, `tests/ui-noredis/`, `tests/ui-notokio/`.
//!
//! The cases build in trybuild's own project, which depends on memo-kit with no features
//! whatever this package's build unifies, so `cargo test --workspace --all-features` runs them too.
//! To bless changed messages: `TRYBUILD=overwrite cargo test -p memo-tests-nofeatures`, then
//! review the `.stderr` diffs before committing them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-nodisk/*.rs");
    t.compile_fail("tests/ui-noredis/*.rs");
    t.compile_fail("tests/ui-notokio/*.rs");
}
