//! The fleet's real servers on loopback, as `scripts/fleet-servers`
//! installs them into `target/fleet/bin`: `nats-server` and `sqld`, for
//! the tests and `caxton benchmark fleet`. Killed on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn installed(name: &str) -> anyhow::Result<PathBuf> {
    let path = super::checkout().join("target/fleet/bin").join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing; run ./scripts/setup (scripts/fleet-servers install)",
        path.display()
    );
    Ok(path)
}

/// A free loopback port (bound and released; the server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{what} exited before listening: {status}");
        }
        anyhow::ensure!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A server child process, killed (SIGKILL) when stopped or dropped.
#[derive(Default)]
struct Running(Option<Child>);

impl Running {
    /// Spawns `command` and waits until it listens on `port`.
    fn start(command: &mut Command, port: u16, what: &str) -> anyhow::Result<Self> {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut running = Self(Some(child));
        wait_for_port(port, running.0.as_mut().expect("just spawned"), what)?;
        Ok(running)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `nats-server` on a loopback port. It pings its clients every second
/// and drops one after two unanswered pings (the defaults are 2 minutes
/// and 2): a host that stops answering loses its subscriptions, and its
/// capabilities fail over, within about three seconds.
pub struct Nats {
    process: Running,
    pub port: u16,
    _config: tempfile::TempDir,
}

impl Nats {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on(free_port())
    }

    /// Starts on `port` (a restart keeps the address the hosts know).
    pub fn start_on(port: u16) -> anyhow::Result<Self> {
        let config = tempfile::tempdir()?;
        let file = config.path().join("nats.conf");
        std::fs::write(&file, "ping_interval: \"1s\"\nping_max: 2\n")?;
        let process = Running::start(
            Command::new(installed("nats-server")?)
                .arg("-c")
                .arg(&file)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()]),
            port,
            "nats-server",
        )?;
        Ok(Self {
            process,
            port,
            _config: config,
        })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): the hosts lose it without a goodbye.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// `sqld` (libsql's server) on a loopback port, with its data dir.
pub struct Sqld {
    process: Running,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Sqld {
    pub fn start() -> anyhow::Result<Self> {
        let mut sqld = Self {
            process: Running::default(),
            port: free_port(),
            dir: tempfile::tempdir()?,
        };
        sqld.restart()?;
        Ok(sqld)
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.process = Running::start(
            Command::new(installed("sqld")?)
                .arg("-d")
                .arg(self.dir.path().join("data"))
                .args(["--http-listen-addr", &format!("127.0.0.1:{}", self.port)]),
            self.port,
            "sqld",
        )?;
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
