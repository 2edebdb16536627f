//! The fleet's real servers on loopback, as `scripts/fleet-servers`
//! installs them: `nats-server` and `sqld`. Killed on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn installed(name: &str) -> PathBuf {
    let path = caxton::harness::checkout()
        .join("target/fleet/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing; run ./scripts/setup (scripts/fleet-servers install)",
        path.display()
    );
    path
}

/// A free loopback port (bound and released; the server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `nats-server` on a loopback port.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
}

impl Nats {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts on `port` (a restart keeps the address the hosts know).
    pub fn start_on(port: u16) -> Self {
        let mut child = Command::new(installed("nats-server"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        wait_for_port(port, &mut child, "nats-server");
        Self {
            child: Some(child),
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): the hosts lose it without a goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}
/// `sqld` (libsql's server) on a loopback port, with its data dir.
pub struct Sqld {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Sqld {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut sqld = Self {
            child: None,
            port: free_port(),
            dir,
        };
        sqld.restart();
        sqld
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        let mut child = Command::new(installed("sqld"))
            .arg("-d")
            .arg(self.dir.path().join("data"))
            .args(["--http-listen-addr", &format!("127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sqld");
        wait_for_port(self.port, &mut child, "sqld");
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        self.kill();
    }
}
