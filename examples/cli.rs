//! A command-line tool whose second run is instant: it lists the headings of web pages, with the
//! pages cached on disk by the scraper recipe's code (`scraper.rs`, a module here: its entries are
//! this tool's, `cli::scraper::fetch`, apart from the scraper example's own), shared by every run
//! and by runs going on at the same time (each page is downloaded once).
//!
//! ```sh
//! cargo run --example cli -- titles http://127.0.0.1:8000/a http://127.0.0.1:8000/b
//! cargo run --example cli -- titles --from urls.txt      # with a progress bar
//! cargo run --example cli -- --ttl 60 titles URL         # pages fetched now stay fresh a minute
//! cargo run --example cli -- --no-cache titles URL       # always download
//! cargo run --example cli -- cache stats
//! cargo run --example cli -- cache clear
//! ```

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[path = "scraper.rs"]
#[allow(dead_code, reason = "the recipe's own `main` is not used here")]
mod scraper;

#[derive(Parser)]
#[command(about = "Headings of web pages, cached on disk")]
struct Cli {
    /// Download every page, neither reading nor writing the cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// How long a downloaded page stays fresh, in seconds (default: 900).
    #[arg(long, global = true, value_name = "SECONDS")]
    ttl: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the h1, h2 and h3 headings of each page.
    Titles {
        urls: Vec<String>,
        /// Also reads URLs from this file, one a line.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Shows or empties the cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Where the cache is and what it holds.
    Stats,
    /// Removes every cached page.
    Clear,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(seconds) = cli.ttl {
        let _ = scraper::TTL.set(Duration::from_secs(seconds));
    }
    match cli.command {
        Command::Titles { mut urls, from } => {
            if let Some(file) = from {
                match std::fs::read_to_string(&file) {
                    Ok(text) => urls.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    ),
                    Err(err) => {
                        eprintln!("{}: {err}", file.display());
                        return std::process::ExitCode::FAILURE;
                    }
                }
            }
            titles(&urls, cli.no_cache)
        }
        Command::Cache { action } => {
            let cache = scraper::fetch_cache();
            match action {
                CacheAction::Stats => {
                    println!("directory: {}", cache.store().dir().display());
                    println!("pages: {}", cache.len());
                }
                CacheAction::Clear => {
                    let pages = cache.len();
                    scraper::clear();
                    println!("removed {pages} pages");
                }
            }
            std::process::ExitCode::SUCCESS
        }
    }
}

/// Pages fetched at once.
const FETCHERS: usize = 4;

/// A page's headings, or why they could not be had; `None` until fetched.
type Slot = Mutex<Option<Result<Vec<String>, String>>>;

/// Prints the headings of each page, in the order given. The pages are fetched on
/// [`FETCHERS`] threads by `memo::warm`, whose progress callback drives a progress bar (on a
/// terminal, when there are many pages).
fn titles(urls: &[String], no_cache: bool) -> std::process::ExitCode {
    let progress = if urls.len() > 3 {
        ProgressBar::new(urls.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} fetched") {
        progress.set_style(style);
    }
    // One slot per URL, filled by whichever thread fetches it.
    let results: Vec<Slot> = urls.iter().map(|_| Mutex::new(None)).collect();
    memo::warm(
        urls.iter().enumerate(),
        FETCHERS,
        |(i, url)| {
            let titles = if no_cache {
                scraper::download(url, None).map(|page| scraper::headings(&page.body))
            } else {
                scraper::titles(url)
            };
            *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(titles);
        },
        |done, _| progress.set_position(done as u64),
    );
    progress.finish_and_clear();
    let mut failed = false;
    for (url, result) in urls.iter().zip(results) {
        match result.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(Ok(titles)) => println!("{url}: {}", titles.join(" | ")),
            Some(Err(err)) => {
                failed = true;
                eprintln!("{url}: error: {err}");
            }
            None => failed = true,
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
