//! `memo-cli redis …` against a real `redis-server` this test starts, holding entries written
//! through memo-runtime's Redis store, as a program using `#[cached(store = redis)]` writes them.

use std::process::{Command, Output};
use std::time::Duration;

use memo_runtime::redis::{RedisClient, RedisConfig};
use memo_runtime::testing::RedisServer;
use memo_runtime::{Cache, Codec, Config, RedisOptions, RedisStore};

/// `app::price` (JSON values, text keys, a ttl) and `app::stock` (binary values, number keys).
struct Shop {
    server: RedisServer,
    prices: Cache<String, u64, RedisStore<String, u64>>,
    stock: Cache<u64, String, RedisStore<u64, String>>,
}

impl Shop {
    fn open() -> Self {
        let server = RedisServer::start();
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let prices = Cache::with_store(
            RedisOptions::new("default")
                .client(client.clone())
                .function("app::price", 0)
                .codec(Codec::Json)
                .open(&Config::new().ttl(Duration::from_secs(600))),
        );
        prices.insert("apple".to_string(), 3);
        prices.insert("pear".to_string(), 5);
        let stock = Cache::with_store(
            RedisOptions::new("default")
                .client(client)
                .function("app::stock", 0)
                .open(&Config::new()),
        );
        stock.insert(7, "seven crates".to_string());
        Self {
            server,
            prices,
            stock,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_memo-cli"))
            .arg("redis")
            .arg("--url")
            .arg(self.server.url())
            .args(args)
            .env_remove("MEMO_REDIS_PREFIX")
            .output()
            .unwrap()
    }

    /// The command without `--url`, in an environment naming the server as `env` says.
    fn cli_in(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let url = self.server.url();
        let mut command = Command::new(env!("CARGO_BIN_EXE_memo-cli"));
        command
            .arg("redis")
            .args(args)
            .env_remove("MEMO_REDIS_PREFIX");
        for (name, value) in env {
            command.env(name, value.replace("{url}", &url));
        }
        command.output().unwrap()
    }
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_the_functions_with_their_entries_and_bytes() {
    let shop = Shop::open();
    let listed = stdout(&shop.cli(&["functions"]));
    let lines: Vec<Vec<&str>> = listed.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{listed}");
    // "3" and "5" as JSON: one byte each.
    assert_eq!(
        lines[0][..4],
        ["app::price", "2 entries", "2 bytes", "json"]
    );
    assert_eq!(lines[1][..3], ["app::stock", "1 entries", "13 bytes"]);
    assert_eq!(lines[1][3], "binary");
}

#[test]
fn shows_entries_as_json_with_their_keys_in_clear() {
    let shop = Shop::open();
    let shown = stdout(&shop.cli(&["show", "price"]));
    let entries: Vec<serde_json::Value> = shown
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{shown}");
    assert_eq!(entries[0]["key"], "apple");
    assert_eq!(entries[0]["value"], 3);
    assert_eq!(entries[1]["key"], "pear");
    assert_eq!(entries[1]["value"], 5);
    let ttl = entries[0]["ttl_ms"].as_i64().unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
    // A binary store's value is shown as its bytes (postcard: a length, then the text).
    let stock = stdout(&shop.cli(&["show", "app::stock"]));
    let entry: serde_json::Value = serde_json::from_str(stock.trim()).unwrap();
    assert_eq!(entry["key"], "7");
    assert_eq!(entry["value"], "0x0c736576656e20637261746573");
    assert!(entry["ttl_ms"].is_null());
}

#[test]
fn clearing_a_function_leaves_the_others() {
    let shop = Shop::open();
    assert_eq!(shop.prices.get("apple"), Some(3));
    let cleared = stdout(&shop.cli(&["clear", "price"]));
    assert_eq!(cleared.trim(), "cleared app::price (2 entries)");
    assert_eq!(shop.prices.get("apple"), None);
    assert_eq!(shop.stock.get(&7), Some("seven crates".to_string()));
    stdout(&shop.cli(&["clear"]));
    assert_eq!(shop.stock.get(&7), None);
    assert_eq!(stdout(&shop.cli(&["functions"])), "");
}

#[test]
fn an_unknown_function_is_an_error_naming_those_there_are() {
    let shop = Shop::open();
    let out = shop.cli(&["show", "nothing"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app::price, app::stock"), "{err}");
}

/// The server comes from `MEMO_REDIS_URL`, else `REDIS_URL`, a blank one counting as unset, as
/// for the program that wrote the entries.
#[test]
fn the_server_comes_from_the_environment_as_the_programs_find_it() {
    let shop = Shop::open();
    let listed = |env: &[(&str, &str)]| {
        let out = shop.cli_in(env, &["functions"]);
        out.status.success().then(|| stdout(&out).lines().count())
    };
    let (unused, server) = ("redis://127.0.0.1:1", "{url}");
    assert_eq!(
        listed(&[("MEMO_REDIS_URL", server), ("REDIS_URL", unused)]),
        Some(2)
    );
    assert_eq!(
        listed(&[("MEMO_REDIS_URL", " "), ("REDIS_URL", server)]),
        Some(2)
    );
    assert_eq!(
        listed(&[("MEMO_REDIS_URL", unused), ("REDIS_URL", server)]),
        None
    );
}
