//! The child-process protocol of the facade's multi-process tests: a test binary runs itself
//! again as a child, which prints one `RESULT <what it saw>` line on success.

use std::process::Output;

/// What a child printed after `RESULT `; panics with its output if it failed or printed none.
pub(crate) fn result(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|line| line.split_once("RESULT ").map(|(_, result)| result.trim()))
        .unwrap_or_else(|| panic!("no RESULT line in {text}"))
        .to_string()
}
