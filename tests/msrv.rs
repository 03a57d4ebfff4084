//! The declared `rust-version` holds for what users build: memo's own code is checked by
//! clippy's `incompatible_msrv` (it reads the same field); this checks that no dependency a user
//! compiles (normal and build dependencies, every feature on) declares a newer one.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// `"1.88"` → `(1, 88)`.
fn version(text: &str) -> (u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn no_dependency_users_build_needs_a_newer_rust_than_declared() {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["metadata", "--format-version", "1", "--all-features"])
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{out:?}");
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let declared = version(env!("CARGO_PKG_RUST_VERSION"));
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // From the workspace's packages, through the dependencies a user's build compiles.
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let compiled = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind["kind"].as_str() != Some("dev"));
            if compiled {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let newer: Vec<String> = seen
        .iter()
        .filter_map(|id| {
            let package = packages[id];
            let wants = package["rust_version"].as_str()?;
            (version(wants) > declared)
                .then(|| format!("{} {} needs {wants}", package["name"], package["version"]))
        })
        .collect();
    assert!(
        newer.is_empty(),
        "rust-version {} is declared, but: {newer:?}",
        env!("CARGO_PKG_RUST_VERSION")
    );
    assert!(
        seen.len() > 20,
        "walked the dependency graph ({} packages)",
        seen.len()
    );
}
