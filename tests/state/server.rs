//! A real `redis-server` for one test: started on a Unix socket in a temporary directory (and
//! optionally a loopback TCP or TLS port), nothing persisted, killed on drop.
//!
//! Without `redis-server` on the PATH the tests that need it skip with a loud message, except with
//! `CI=true`, where a missing server is a failure (`.ci/run` installs it).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed, or stopped) `redis-server`.
pub struct RedisServer {
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
    port: Option<u16>,
}

/// How the server listens besides its Unix socket.
pub enum Listen {
    /// The Unix socket only.
    Unix,
    /// Also plain TCP on a free loopback port.
    Tcp,
    /// Also TLS on a free loopback port, with this certificate and key (PEM) and no client
    /// certificates.
    Tls { cert_pem: String, key_pem: String },
}

/// True when `redis-server` can run here; otherwise says so loudly, or panics under `CI=true`.
fn available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is not installed and CI=true: the shared-state tests must run in CI \
             (.ci/run installs it with apt-get)"
        );
        // Straight to stderr, once: the test harness captures `eprintln!` of passing tests.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            let _ = std::io::stderr().write_all(
                b"\n==== SKIPPED: redis-server is not installed; the Redis tests in tests/state \
                  did not run (they pass without checking anything). Install it (apt-get install \
                  redis-server) to run them; with CI=true they fail instead. ====\n\n",
            );
        });
    }
    found
}

/// A free loopback port: bound, read, released for the server to take.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts a server, or `None` (after a loud message) when `redis-server` is missing locally.
    pub fn start(listen: Listen) -> Option<Self> {
        Self::start_with(listen, &[])
    }

    /// [`Self::start`] with extra `redis-server` arguments (`--requirepass …`).
    pub fn start_with(listen: Listen, extra: &[&str]) -> Option<Self> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("r.sock");
        let mut args: Vec<String> = vec![
            "--unixsocket".into(),
            socket.display().to_string(),
            "--unixsocketperm".into(),
            "700".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.path().display().to_string(),
            "--loglevel".into(),
            "warning".into(),
            "--daemonize".into(),
            "no".into(),
        ];
        let port = match listen {
            Listen::Unix => {
                args.extend(["--port".into(), "0".into()]);
                None
            }
            Listen::Tcp => {
                let port = free_port();
                args.extend([
                    "--port".into(),
                    port.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                ]);
                Some(port)
            }
            Listen::Tls { cert_pem, key_pem } => {
                let port = free_port();
                let cert = dir.path().join("server.pem");
                let key = dir.path().join("server.key");
                std::fs::write(&cert, cert_pem).expect("write certificate");
                std::fs::write(&key, key_pem).expect("write key");
                args.extend([
                    "--port".into(),
                    "0".into(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--tls-port".into(),
                    port.to_string(),
                    "--tls-cert-file".into(),
                    cert.display().to_string(),
                    "--tls-key-file".into(),
                    key.display().to_string(),
                    // Required by redis-server even when client certificates are not asked for.
                    "--tls-ca-cert-file".into(),
                    cert.display().to_string(),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ]);
                Some(port)
            }
        };
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut server = Self {
            dir,
            args,
            child: None,
            port,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the server answers `PING` on its Unix socket (at most 10 s).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let password = self
            .args
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.args.get(i + 1));
        loop {
            if let Ok(mut s) = UnixStream::connect(self.socket()) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let command = match password {
                    Some(p) => format!("AUTH {p}\r\nPING\r\n"),
                    None => "PING\r\n".to_owned(),
                };
                let mut answer = [0u8; 64];
                if s.write_all(command.as_bytes()).is_ok() {
                    let mut read = 0;
                    while read < answer.len() {
                        match s.read(&mut answer[read..]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => read += n,
                        }
                        if answer[..read].windows(5).any(|w| w == b"+PONG") {
                            return;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("r.sock")
    }

    /// The directory the server runs in (for files tests write next to it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis+unix://…` for the socket.
    pub fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// `redis://127.0.0.1:<port>` (or `rediss://` for TLS).
    pub fn tcp_url(&self, tls: bool) -> String {
        let port = self.port.expect("started with a TCP or TLS port");
        let scheme = if tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{port}")
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// SIGKILL, and reap: the socket file stays, connections are refused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again with the same arguments (same socket, same port) and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: connections stay open, nothing is answered.
    pub fn stop(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn cont(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        self.kill();
    }
}
