//! `memo-cli disk …`: the disk stores under a root directory.

use std::path::Path;

use clap::Subcommand;
use memo_runtime::store::disk_admin::{DiskDirectory, StoredEntry, StoredFunction};

use crate::hex;

#[derive(Subcommand)]
pub(crate) enum DiskAction {
    /// Lists the stores under the root, with their functions, entries and bytes.
    Stores,
    /// Lists a store's functions, with their entries and bytes.
    Functions { store: String },
    /// Prints a function's entries, one JSON object a line.
    Show {
        store: String,
        /// The function's identity (`app::fetch`) or its last segments (`fetch`).
        function: String,
        /// At most this many entries, oldest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Removes a function's entries, or every function's of the store.
    Clear {
        store: String,
        function: Option<String>,
    },
    /// Removes the entries that earlier versions of the store's functions left: of each
    /// function, keeps the namespace written last (each edit of its code or types starts one).
    Prune {
        store: String,
        /// Lists what would be removed, and removes nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn run(root: &Path, action: DiskAction) -> Result<(), String> {
    match action {
        DiskAction::Stores => {
            let mut names: Vec<String> = std::fs::read_dir(root)
                .map_err(|err| format!("{}: {err}", root.display()))?
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join("cache.db").is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let Some(store) = DiskDirectory::open(&root.join(&name)) else {
                    println!("{name}\t(cannot be opened)");
                    continue;
                };
                let functions = store.functions();
                let entries: u64 = functions.iter().map(|f| f.entries).sum();
                let bytes: u64 = functions.iter().map(|f| f.bytes).sum();
                let count = functions.len();
                let noun = if count == 1 { "function" } else { "functions" };
                println!("{name}\t{count} {noun}\t{entries} entries\t{bytes} bytes");
            }
        }
        DiskAction::Functions { store } => {
            for function in open(root, &store)?.functions() {
                println!(
                    "{}\t{} entries\t{} bytes\t{}\t{:016x}",
                    function.function,
                    function.entries,
                    function.bytes,
                    function.codec(),
                    function.fingerprint
                );
            }
        }
        DiskAction::Show {
            store,
            function,
            limit,
        } => {
            let store = open(root, &store)?;
            for function in find(&store, &function)? {
                for entry in store.entries(&function, limit) {
                    println!("{}", entry_json(&function, &entry));
                }
            }
        }
        DiskAction::Clear { store, function } => {
            let store = open(root, &store)?;
            let functions = match function {
                Some(name) => find(&store, &name)?,
                None => store.functions(),
            };
            for function in functions {
                store.clear(&function);
                println!(
                    "cleared {} ({} entries)",
                    function.function, function.entries
                );
            }
        }
        DiskAction::Prune { store, dry_run } => {
            let store = open(root, &store)?;
            for function in store.superseded() {
                if !dry_run {
                    store.forget(&function);
                }
                let verb = if dry_run { "would prune" } else { "pruned" };
                println!(
                    "{verb} {} {:016x} ({} entries)",
                    function.function, function.fingerprint, function.entries
                );
            }
        }
    }
    Ok(())
}

fn open(root: &Path, name: &str) -> Result<DiskDirectory, String> {
    let dir = root.join(name);
    DiskDirectory::open(&dir).ok_or_else(|| format!("no disk store at {}", dir.display()))
}

/// The namespaces of the function whose identity is `name` or ends with `::name`: one, or
/// several where the function changed (its code's hash and its types' shapes are part of its
/// fingerprint, so each build's entries are a namespace of their own). An error names the
/// candidates.
fn find(store: &DiskDirectory, name: &str) -> Result<Vec<StoredFunction>, String> {
    let functions = store.functions();
    let suffix = format!("::{name}");
    let matching: Vec<StoredFunction> = functions
        .iter()
        .filter(|f| f.function == name || f.function.ends_with(&suffix))
        .cloned()
        .collect();
    let identities: std::collections::BTreeSet<&str> =
        matching.iter().map(|f| f.function.as_str()).collect();
    match identities.len() {
        1 => Ok(matching),
        0 => Err(format!(
            "no function `{name}` in {}; it has: {}",
            store.path().display(),
            names(&functions)
        )),
        _ => Err(format!(
            "`{name}` names several functions: {}",
            names(&matching)
        )),
    }
}

/// The functions' identities, each once, in order.
fn names(functions: &[StoredFunction]) -> String {
    let names: std::collections::BTreeSet<&str> =
        functions.iter().map(|f| f.function.as_str()).collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// `{"key": …, "value": …, "bytes": n, "expires_ms": n, "expired": b, "intact": b}`: the key as
/// text where it is one (else its bytes in hex), the value as JSON for a JSON store (else hex);
/// `expired` for a row past its lifetime that no sweep has removed yet, `intact` false for a
/// value that does not match its stored check (no program reads either).
fn entry_json(function: &StoredFunction, entry: &StoredEntry) -> serde_json::Value {
    let key = memo_runtime::key::text_of(&entry.key).unwrap_or_else(|| hex(&entry.key));
    let value: serde_json::Value = match &entry.value {
        None => format!("({} bytes in a file of their own)", entry.size).into(),
        Some(bytes) if function.codec() == "json" => {
            serde_json::from_slice(bytes).unwrap_or_else(|_| hex(bytes).into())
        }
        Some(bytes) => hex(bytes).into(),
    };
    serde_json::json!({
        "key": key,
        "value": value,
        "bytes": entry.size,
        "expires_ms": entry.expires_ms,
        "expired": entry.expires_ms.is_some_and(|at| at <= now_ms()),
        "intact": entry.intact,
    })
}

/// Milliseconds since the Unix epoch, as the stores write `expires`.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}
