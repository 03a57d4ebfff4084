//! The cache object, called directly (as cachetools' `TTLCache`, diskcache's `Cache` or moka's
//! `Cache`): a rate-limit table in memory with its own time to live per entry, parsed
//! configuration files on disk that survive restarts, and an async lookup computed once for many
//! tasks.
//!
//! `cargo run --example cache_object`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memo::{Cache, DiskCache, DiskOptions};

#[tokio::main]
async fn main() {
    // cachetools.TTLCache(maxsize=10_000, ttl=60): hits per client in the current minute.
    let requests: Cache<String, u32> = Cache::builder()
        .maxsize(10_000)
        .ttl(Duration::from_secs(60))
        .build();
    for client in ["alice", "bob", "alice"] {
        let seen = requests.get(client).unwrap_or(0);
        requests.insert(client.to_string(), seen + 1);
    }
    // A ban lasts ten seconds, whatever the cache's minute.
    requests.insert_with_ttl("mallory".to_string(), u32::MAX, Duration::from_secs(10));
    println!(
        "alice: {:?}, bob: {:?}, mallory banned: {}",
        requests.peek("alice"),
        requests.peek("bob"),
        requests.contains_key("mallory")
    );

    // diskcache.Cache(directory): parsed files, kept across runs of this program.
    let dir = std::env::temp_dir().join("memo-example-cache-object");
    let parsed: DiskCache<String, Vec<String>> = Cache::builder()
        .maxsize(1_000)
        .disk_options(DiskOptions::new("parsed").root(&dir))
        .build();
    let lines = parsed.try_get_or_insert_with("settings.ini".to_string(), || {
        println!("parsing settings.ini (cached on disk for the next run)");
        Ok::<_, std::io::Error>(vec!["debug = false".to_string(), "port = 8080".to_string()])
    });
    println!("settings.ini: {lines:?}");

    // moka's `get_with(key, future)`: 16 tasks ask for one missing key; it is fetched once.
    let pages: Arc<Cache<u32, String>> = Arc::new(Cache::builder().maxsize(100).build());
    let fetches = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (pages, fetches) = (Arc::clone(&pages), Arc::clone(&fetches));
            tokio::spawn(async move {
                pages
                    .get_or_insert_with_async(1, async {
                        fetches.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        "page 1".to_string()
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("the task ran"), "page 1");
    }
    let stats = pages.stats();
    println!(
        "16 tasks, {} fetch; stats: {} miss, {} coalesced",
        fetches.load(Ordering::Relaxed),
        stats.misses,
        stats.coalesced
    );
}
