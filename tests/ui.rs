//! Compile-fail UI tests: every mistake `#[memo::cached]` reports, one case per file under
//! `tests/ui/<area>/`, with the expected compiler output next to it in a `.stderr` file.
//!
//! To bless changed messages: `TRYBUILD=overwrite cargo test --test ui`, then review the
//! `.stderr` diffs before committing them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
}
