//! A private `redis-server` per test: on a free loopback port, without persistence, stopped on
//! drop; or a 3-master Redis Cluster.
//!
//! Needs `redis-server` and `redis-cli` on `PATH` (Debian: `apt-get install -y redis-server`),
//! and `openssl` for [`RedisServer::start_tls`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// One `redis-server` without persistence on `127.0.0.1` and a free port, killed on drop.
///
/// Each test starts its own, so tests running in parallel never see each other's keys:
///
/// ```no_run
/// use memo::redis::{RedisClient, RedisConfig};
/// use memo::testing::RedisServer;
///
/// let server = RedisServer::start();
/// let client = RedisClient::new(RedisConfig::from_url(&server.url())?)?;
/// client.set(b"greeting", b"hello")?;
/// assert_eq!(client.get(b"greeting")?.as_deref(), Some(&b"hello"[..]));
/// # Ok::<(), memo::redis::Error>(())
/// ```
///
/// # Panics
///
/// The constructors and [`restart`](Self::restart) panic when `redis-server` is not installed or
/// does not answer within 10 s: they are for tests. [`RedisServer::installed`] tells beforehand.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
    cluster: bool,
    tls: bool,
}

impl RedisServer {
    /// Whether `redis-server` and `redis-cli` can be run.
    #[must_use]
    pub fn installed() -> bool {
        ["redis-server", "redis-cli"].iter().all(|program| {
            Command::new(program)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
    }

    /// Starts a server on a free port and waits until it answers `PING`.
    #[must_use]
    pub fn start() -> Self {
        Self::start_on(free_port(), false, false)
    }

    /// A server that speaks TLS only, with a certificate for `127.0.0.1` from a CA made here
    /// ([`ca_pem`](Self::ca_pem)); needs `openssl`.
    #[must_use]
    pub fn start_tls() -> Self {
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

    /// `redis://127.0.0.1:port` (`rediss://` for a TLS server).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed a TLS server's certificate, in PEM.
    ///
    /// # Panics
    ///
    /// For a server started without TLS.
    #[must_use]
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("a TLS server has a CA")
    }

    /// The loopback port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would: no shutdown command).
    pub fn kill(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`): connections are accepted by the kernel but nothing
    /// answers, the worst kind of "down".
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self) {
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
    ///
    /// # Panics
    ///
    /// When `redis-server` cannot be run or does not answer within 10 s.
    pub fn restart(&mut self) {
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

/// Three masters (no replicas) sharing the 16384 slots, on free loopback ports; stopped on drop.
///
/// Needs `redis-server` 7 or later.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled servers, joins them with `redis-cli --cluster create`, and waits
    /// until every node reports the cluster ok.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` cannot be run, or the cluster does not form within 20 s.
    #[must_use]
    pub fn start() -> Self {
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
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Its three servers (to kill or pause one).
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
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

/// Sends one inline command (`"DBSIZE"`, `"KEYS memo:*"`) to the server on `127.0.0.1:port` and
/// returns the start of its raw reply (`""` on any failure).
#[allow(
    clippy::must_use_candidate,
    reason = "sent for its effect (`SHUTDOWN`, `INCR`) as often as for its reply"
)]
pub fn command(port: u16, line: &str) -> String {
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
