//! `memo-cli redis …`: the entries of `store = redis` and `store = tiered` functions on one Redis
//! server, read by the names memo gives them (`memo_runtime::store::redis_names`).

use std::collections::BTreeMap;

use clap::Subcommand;
use memo_runtime::redis::DEFAULT_URL;
use memo_runtime::store::redis_names::{self, LOCK_SUFFIX, OWN_TTL_SUFFIX, ValueName};
use redis::{Connection, cmd};

use crate::hex;

#[derive(Subcommand)]
pub(crate) enum RedisAction {
    /// Lists the functions with entries on the server, with their entries and bytes.
    Functions,
    /// Prints a function's entries, one JSON object a line.
    Show {
        /// The function's identity (`app::fetch`) or its last segments (`fetch`).
        function: String,
        /// At most this many entries, in the order of their keys.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Removes a function's entries (and locks), or every function's under the prefix.
    Clear { function: Option<String> },
}

/// One function's namespace on the server: a build's layout of it (an older build's entries,
/// under another fingerprint, are a namespace of their own).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Namespace {
    function: String,
    codec: String,
    fingerprint: u64,
}

impl Namespace {
    fn of(name: &ValueName) -> Self {
        Self {
            function: name.function.clone(),
            codec: name.codec.clone(),
            fingerprint: name.fingerprint,
        }
    }
}

/// A value's name and key text; locks (and `idle`'s marks of values with a time to live of
/// their own) are kept beside them, for `clear`.
struct Found {
    values: BTreeMap<Namespace, Vec<(Vec<u8>, String)>>,
    locks: BTreeMap<Namespace, Vec<Vec<u8>>>,
}

pub(crate) fn run(
    url: Option<String>,
    prefix: Option<String>,
    action: RedisAction,
) -> Result<(), String> {
    let url = url
        .or_else(|| var_unless_blank("MEMO_REDIS_URL"))
        .or_else(|| var_unless_blank("REDIS_URL"))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let prefix = prefix
        .or_else(|| var_unless_blank("MEMO_REDIS_PREFIX"))
        .filter(|prefix| !prefix.trim().is_empty())
        .unwrap_or_else(|| "memo".to_string());
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection())
        .map_err(|err| format!("{url}: {err}"))?;
    let found = scan(&mut conn, &prefix).map_err(|err| format!("{url}: {err}"))?;
    match action {
        RedisAction::Functions => {
            for (space, values) in &found.values {
                let names: Vec<&[u8]> = values.iter().map(|(name, _)| name.as_slice()).collect();
                let bytes: u64 = query(&mut conn, "STRLEN", &names)?.iter().sum();
                println!(
                    "{}\t{} entries\t{bytes} bytes\t{}\t{:016x}",
                    space.function,
                    values.len(),
                    space.codec,
                    space.fingerprint
                );
            }
        }
        RedisAction::Show { function, limit } => {
            for space in find(&found, &function)? {
                let values = &found.values[&space];
                let shown = &values[..values.len().min(limit)];
                let names: Vec<&[u8]> = shown.iter().map(|(name, _)| name.as_slice()).collect();
                let bodies: Vec<Option<Vec<u8>>> = query(&mut conn, "GET", &names)?;
                let ttls: Vec<i64> = query(&mut conn, "PTTL", &names)?;
                for (((_, key), body), ttl) in shown.iter().zip(bodies).zip(ttls) {
                    // Gone since the scan: skip it.
                    let Some(body) = body else { continue };
                    println!("{}", entry_json(&space, key, &body, ttl));
                }
            }
        }
        RedisAction::Clear { function } => {
            let spaces = match function {
                Some(name) => find(&found, &name)?,
                None => found.values.keys().cloned().collect(),
            };
            for space in spaces {
                let values = &found.values[&space];
                let mut names: Vec<&[u8]> =
                    values.iter().map(|(name, _)| name.as_slice()).collect();
                names.extend(
                    found
                        .locks
                        .get(&space)
                        .into_iter()
                        .flatten()
                        .map(Vec::as_slice),
                );
                let _: Vec<u64> = query(&mut conn, "UNLINK", &names)?;
                println!("cleared {} ({} entries)", space.function, values.len());
            }
        }
    }
    Ok(())
}

/// Every value and lock of memo's under `prefix`, by namespace, in the order of their keys.
/// The environment variable `name`, where set and not blank: a blank one counts as unset, as
/// it does for the programs that wrote the entries (`memo_runtime`'s `RedisConfig::from_env`).
fn var_unless_blank(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn scan(conn: &mut Connection, prefix: &str) -> redis::RedisResult<Found> {
    let pattern = format!("{}:*", glob_escape(prefix));
    let mut found = Found {
        values: BTreeMap::new(),
        locks: BTreeMap::new(),
    };
    let mut cursor = 0_u64;
    loop {
        let (next, names): (u64, Vec<Vec<u8>>) = cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        for name in names {
            let Ok(text) = std::str::from_utf8(&name) else {
                continue;
            };
            if let Some(value) = redis_names::parse(prefix, text) {
                let key = value.key.clone();
                found
                    .values
                    .entry(Namespace::of(&value))
                    .or_default()
                    .push((name, key));
            } else if let Some(value) = [LOCK_SUFFIX, OWN_TTL_SUFFIX]
                .iter()
                .find_map(|suffix| text.strip_suffix(suffix))
                .and_then(|value| redis_names::parse(prefix, value))
            {
                found
                    .locks
                    .entry(Namespace::of(&value))
                    .or_default()
                    .push(name);
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for values in found.values.values_mut() {
        values.sort_by(|a, b| a.1.cmp(&b.1));
    }
    Ok(found)
}

/// `command name` for each of `names`, in one pipeline.
fn query<T: redis::FromRedisValue>(
    conn: &mut Connection,
    command: &str,
    names: &[&[u8]],
) -> Result<Vec<T>, String> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for name in names {
        pipe.cmd(command).arg(*name);
    }
    pipe.query(conn).map_err(|err| format!("{command}: {err}"))
}

/// The namespaces of the function whose identity is `name` or ends with `::name`; an error
/// names the functions there are.
fn find(found: &Found, name: &str) -> Result<Vec<Namespace>, String> {
    let suffix = format!("::{name}");
    let matching: Vec<Namespace> = found
        .values
        .keys()
        .filter(|space| space.function == name || space.function.ends_with(&suffix))
        .cloned()
        .collect();
    let functions: std::collections::BTreeSet<&str> = matching
        .iter()
        .map(|space| space.function.as_str())
        .collect();
    match functions.len() {
        1 => Ok(matching),
        0 => {
            let all: std::collections::BTreeSet<&str> = found
                .values
                .keys()
                .map(|space| space.function.as_str())
                .collect();
            Err(format!(
                "no function `{name}` has entries; these do: {}",
                all.into_iter().collect::<Vec<_>>().join(", ")
            ))
        }
        _ => Err(format!(
            "`{name}` names several functions: {}",
            functions.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `{"key": …, "value": …, "bytes": n, "ttl_ms": n}`: the key as its name shows it, the value as
/// JSON for a JSON store (else hex), the time it has left (`null`: none).
fn entry_json(space: &Namespace, key: &str, body: &[u8], ttl_ms: i64) -> serde_json::Value {
    let value: serde_json::Value = if space.codec == "json" {
        serde_json::from_slice(body).unwrap_or_else(|_| hex(body).into())
    } else {
        hex(body).into()
    };
    serde_json::json!({
        "key": key,
        "value": value,
        "bytes": body.len(),
        "ttl_ms": (ttl_ms >= 0).then_some(ttl_ms),
        "fingerprint": format!("{:016x}", space.fingerprint),
    })
}

/// `prefix` with the bytes that `SCAN MATCH` reads as a pattern escaped.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
