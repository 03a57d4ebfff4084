//! Real `redis-server`s for tests and benchmarks: one on a free loopback port, killed on drop and
//! restartable on the same port (fault tests), or a 3-master cluster.
//!
//! Needs `redis-server` and `redis-cli` on `PATH` (Debian: `apt-get install -y redis-server`).
#![allow(dead_code, reason = "each test binary uses a part of this module")]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// One `redis-server` without persistence, on `127.0.0.1:port`.
pub(crate) struct RedisServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
    cluster: bool,
    tls: bool,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub(crate) fn start() -> Self {
        Self::start_on(free_port(), false, false)
    }

    /// A server that speaks TLS only, with a certificate for `127.0.0.1` from a CA made here
    /// ([`ca_pem`](Self::ca_pem)); needs `openssl`.
    pub(crate) fn start_tls() -> Self {
        Self::start_on(free_port(), false, true)
    }

    fn start_on(port: u16, cluster: bool, tls: bool) -> Self {
        let dir = std::env::temp_dir().join(format!("memo-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a directory for redis-server");
        let mut server = Self {
            port,
            dir,
            child: None,
            cluster,
            tls,
        };
        if tls {
            make_certificates(&server.dir);
        }
        server.restart();
        server
    }

    /// `redis://127.0.0.1:port`.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed a TLS server's certificate, in PEM.
    pub(crate) fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("a TLS server has a CA")
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would: no shutdown command).
    pub(crate) fn kill(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`): connections are accepted by the kernel but nothing
    /// answers, the worst kind of "down".
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Undoes [`pause`](Self::pause).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub(crate) fn restart(&mut self) {
        self.kill();
        let mut command = Command::new("redis-server");
        let port = self.port.to_string();
        if self.tls {
            let file = |name: &str| self.dir.join(name).display().to_string();
            command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .args(["--tls-cert-file", &file("server.crt")])
                .args(["--tls-key-file", &file("server.key")])
                .args(["--tls-ca-cert-file", &file("ca.crt")]);
        } else {
            command.args(["--port", &port]);
        }
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        if self.cluster {
            command.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it with `apt-get install -y redis-server`");
        self.child = Some(child);
        if self.tls {
            self.wait_for_tls_pong();
        } else {
            wait_for_pong(self.port);
        }
    }

    fn wait_for_tls_pong(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = Command::new("redis-cli")
                .args(["--tls", "--cacert"])
                .arg(self.dir.join("ca.crt"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "PING"])
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("PONG"));
            if pong {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the TLS redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters (no replicas) sharing the 16384 slots; stopped on drop.
pub(crate) struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled servers, joins them with `redis-cli --cluster create`, and waits
    /// until every node reports the cluster ok.
    pub(crate) fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_on(free_port(), true, false))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli not found: install it with `apt-get install -y redis-server`");
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !command(node.port, "CLUSTER INFO").contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    /// `redis+cluster://127.0.0.1:a,127.0.0.1:b,127.0.0.1:c`.
    pub(crate) fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub(crate) fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A port free on loopback whose cluster-bus port (+10000) is free too.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("no free loopback port");
        let bus_free =
            port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok();
        // Two ports handed out in one process must differ even if the OS reuses one.
        if bus_free && NEXT.swap(port, Ordering::Relaxed) != port {
            return port;
        }
    }
}

fn wait_for_pong(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !command(port, "PING").starts_with("+PONG") {
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one inline command and returns what came back first ("" on any failure).
pub(crate) fn command(port: u16, line: &str) -> String {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(format!("{line}\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let mut buffer = [0_u8; 4096];
    let n = stream.read(&mut buffer).unwrap_or(0);
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// A CA and a server certificate for `127.0.0.1` signed by it, in `dir`.
fn make_certificates(dir: &std::path::Path) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write san.ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=memo test CA",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl not found: install it with `apt-get install -y openssl`");
        assert!(status.success(), "openssl {args:?} failed");
    }
}

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
