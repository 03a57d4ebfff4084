//! `memo-cli`: look inside memo's disk and Redis stores (see the README).

mod disk;
mod redis;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use memo_runtime::store::default_root;

#[derive(Parser)]
#[command(about = "Look inside memo's disk and Redis stores", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The disk stores: `store = disk` functions' entries on this machine.
    Disk {
        /// The directory holding the stores (default: `$MEMO_CACHE_DIR`, else `~/.cache/memo`).
        #[arg(long, global = true, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(subcommand)]
        action: disk::DiskAction,
    },
    /// A Redis server: `store = redis` and `store = tiered` functions' entries.
    Redis {
        /// The server (default: `$MEMO_REDIS_URL`, else `$REDIS_URL`, else
        /// `redis://127.0.0.1:6379`).
        #[arg(long, global = true, value_name = "URL")]
        url: Option<String>,
        /// The prefix of the program's keys (default: `$MEMO_REDIS_PREFIX`, else `memo`).
        #[arg(long, global = true)]
        prefix: Option<String>,
        #[command(subcommand)]
        action: redis::RedisAction,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Disk { root, action } => disk::run(&root.unwrap_or_else(default_root), action),
        Command::Redis {
            url,
            prefix,
            action,
        } => redis::run(url, prefix, action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("memo-cli: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `bytes` as `0x…` hex: how values that are not JSON are shown.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::from("0x"), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}
