//! `memo-starter titles URL…` prints each page's title, from a disk cache shared by every run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Titles of web pages, cached on disk for 15 minutes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the title of each page.
    Titles {
        urls: Vec<String>,
        /// Download every page, neither reading nor writing the cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Shows or empties the cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Where the cache is and how many pages it holds.
    Stats,
    /// Removes every cached page.
    Clear,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Titles { urls, no_cache } => {
            let mut failed = false;
            for url in &urls {
                let page = if no_cache {
                    memo_starter::download(url)
                } else {
                    memo_starter::fetch(url)
                };
                match page {
                    Ok(page) => println!("{url}: {} ({} bytes)", page.title, page.bytes),
                    Err(err) => {
                        eprintln!("{url}: {err}");
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Cache { action } => {
            let cache = memo_starter::fetch_cache();
            match action {
                CacheAction::Stats => {
                    println!("directory: {}", cache.store().dir().display());
                    println!("pages: {}", cache.len());
                }
                CacheAction::Clear => {
                    let pages = cache.len();
                    cache.clear();
                    println!("removed {pages} pages");
                }
            }
            ExitCode::SUCCESS
        }
    }
}
