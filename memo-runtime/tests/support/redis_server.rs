//! Real `redis-server`s for memo's own tests and benchmarks: the public helpers of
//! `memo_runtime::testing` (a server on a free loopback port, killed on drop and restartable on
//! the same port; a 3-master cluster), and the fault injection only memo's tests need: a proxy
//! that slows replies, and a `MONITOR` that counts the commands a call sends.
//!
//! Needs `redis-server` and `redis-cli` on `PATH` (Debian: `apt-get install -y redis-server`).
#![allow(dead_code, reason = "each test binary uses a part of this module")]
#![allow(unused_imports, reason = "each test binary uses a part of this module")]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) use memo_runtime::testing::{RedisCluster, RedisServer, redis_command as command};

/// A TCP proxy on a free loopback port in front of `127.0.0.1:upstream` that holds every reply
/// back for a delay (requests pass at once): a slow server, or one whose replies are lost to a
/// timeout after it ran the command. The delay can change while it runs (connect fast, then
/// slow down). Its threads end with the process.
pub(crate) struct SlowProxy {
    port: u16,
    delay_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SlowProxy {
    pub(crate) fn start(upstream: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let delay_us = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let proxy = Self { port, delay_us };
        proxy.set_delay(delay);
        let delay_us = std::sync::Arc::clone(&proxy.delay_us);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let none = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                std::thread::spawn(move || pipe(client_in, server_out, &none));
                let delay_us = std::sync::Arc::clone(&delay_us);
                std::thread::spawn(move || pipe(server, client, &delay_us));
            }
        });
        proxy
    }

    /// How long replies are held back from now on.
    pub(crate) fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us.store(micros, Ordering::Relaxed);
    }

    /// `redis://127.0.0.1:port`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Copies `from` to `to`, each chunk the delay after it arrived (in order), until either closes.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay_us: &std::sync::atomic::AtomicU64) {
    let (send, chunks) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, chunk) in chunks {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
    let mut buffer = [0_u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer) {
        let delay = Duration::from_micros(delay_us.load(Ordering::Relaxed));
        if send
            .send((Instant::now() + delay, buffer[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(send);
    let _ = writer.join();
}

/// The commands a server runs, as `MONITOR` shows them: each line one command sent by a client
/// (one round trip, unless pipelined) or run by a script (`[0 lua]`, not a round trip).
pub(crate) struct Monitor {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stream: TcpStream,
}

impl Monitor {
    /// Starts watching the server on `port`; returns once it watches.
    pub(crate) fn start(port: u16) -> Self {
        let mut stream =
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to redis-server");
        stream.write_all(b"MONITOR\r\n").expect("send MONITOR");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut first = String::new();
        std::io::BufRead::read_line(&mut reader, &mut first).expect("MONITOR's +OK");
        assert!(first.starts_with("+OK"), "MONITOR answered {first:?}");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) > 0 {
                seen.lock().unwrap().push(line.trim_end().to_string());
                line.clear();
            }
        });
        Self { lines, stream }
    }

    /// How many lines were seen so far: a mark for [`sent_since`](Self::sent_since).
    pub(crate) fn mark(&self) -> usize {
        self.settle();
        self.lines.lock().unwrap().len()
    }

    /// The names of the commands clients sent since `mark` (script-run commands left out), in
    /// order, lower case: one round trip each.
    pub(crate) fn sent_since(&self, mark: usize) -> Vec<String> {
        self.settle();
        self.lines.lock().unwrap()[mark..]
            .iter()
            .filter(|line| !line.contains(" lua] "))
            .filter_map(|line| {
                let name = line.split("] \"").nth(1)?;
                Some(name.split('"').next()?.to_ascii_lowercase())
            })
            .collect()
    }

    /// Whether a command naming `needle` (a key) was sent since `mark`.
    pub(crate) fn named_since(&self, mark: usize, needle: &str) -> bool {
        self.lines.lock().unwrap()[mark..]
            .iter()
            .any(|line| line.contains(needle))
    }

    /// Waits until no new line came for 100 ms (the stream lags the server a little).
    fn settle(&self) {
        let mut last = usize::MAX;
        loop {
            let now = self.lines.lock().unwrap().len();
            if now == last {
                return;
            }
            last = now;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
