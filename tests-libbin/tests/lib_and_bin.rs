//! A package's library and binary are two crates of one name, whose functions' paths are
//! written alike (`app::label` in both): on the disk store their entries are kept apart
//! (`__private::crate_version` mixes `CARGO_BIN_NAME` into the binary's fingerprint), so each
//! gets its own value, in the run that computes it and in the next, which reads it back.

use std::path::Path;
use std::process::Command;

/// Runs the package's binary on the store under `dir`: what it printed.
fn run(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_app"))
        .env("MEMO_CACHE_DIR", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_library_and_a_binary_of_one_name_keep_their_own_disk_entries() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("memo-lib-and-bin");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        run(&dir),
        r#"bin="bin 1" lib="lib 1" runs=1,1 errors=0"#,
        "each computes its own"
    );
    assert_eq!(
        run(&dir),
        r#"bin="bin 1" lib="lib 1" runs=0,0 errors=0"#,
        "each reads its own back"
    );
}
