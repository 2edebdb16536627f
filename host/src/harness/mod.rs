//! A real `caxton serve` child process on loopback: what the integration
//! tests, `caxton benchmark` and the benches all start, the same way. It
//! listens on random ports, reads the addresses from the lines the server
//! prints, keeps what the server logs (when asked), and is killed on drop.

pub mod fleet_servers;
pub mod scripted_llm;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Caxton checkout that tests and benchmarks draw on (built plugins,
/// the benchmark Python env, the fetched models): `$CAXTON_CHECKOUT`, else
/// the nearest ancestor of the current dir holding `models/manifest.toml`,
/// else the current dir. Found at run time: the binary carries no path
/// into the tree it was built in.
pub fn checkout() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAXTON_CHECKOUT") {
        return dir.into();
    }
    let here = std::env::current_dir().unwrap_or_default();
    here.ancestors()
        .find(|dir| dir.join("models/manifest.toml").is_file() && dir.join("plugins").is_dir())
        .map(Path::to_owned)
        .unwrap_or(here)
}

/// The checkout's copy of the default embedding model, fetched by
/// `./scripts/setup` (`models/fetch.py`).
pub fn model_dir() -> PathBuf {
    checkout()
        .join("models")
        .join(crate::config::EmbeddingConfig::default().model)
}

/// Where `./scripts/setup` builds the plugins in `plugins/` (their own
/// workspace, `wasm32-wasip2`).
pub fn plugin_dir() -> PathBuf {
    checkout().join("plugins/target/wasm32-wasip2/release")
}

/// A component built from `plugins/`, by crate name (`csv_parser`).
pub fn plugin_component(name: &str) -> PathBuf {
    plugin_dir().join(format!("{name}.wasm"))
}

/// How to start one server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The `caxton` binary.
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub agents_dir: PathBuf,
    /// Config file text, written into the data dir (`None`: defaults).
    pub config: Option<String>,
    /// `CAXTON_LOG` for the server.
    pub log_filter: String,
    /// Keep the server's log (stderr and stdout) in memory for the caller.
    pub capture_log: bool,
    /// Longest wait for the "listening" line.
    pub start_timeout: Duration,
    /// A cgroup's `cgroup.procs` file: the server runs in that cgroup from
    /// its first instruction (so its start counts against the cgroup's
    /// limits too).
    pub cgroup_procs: Option<PathBuf>,
}

impl ServeOptions {
    pub fn new(binary: &Path, data_dir: &Path, agents_dir: &Path) -> Self {
        Self {
            binary: binary.to_owned(),
            data_dir: data_dir.to_owned(),
            agents_dir: agents_dir.to_owned(),
            config: None,
            log_filter: "warn".into(),
            capture_log: false,
            start_timeout: Duration::from_secs(120),
            cgroup_procs: None,
        }
    }
}

/// Puts the checkout's model where a server with this data dir looks for
/// it by default (a link; a config's `model_path` still wins), so servers
/// start with semantic search without fetching the model again.
fn link_checkout_model(data_dir: &Path) -> anyhow::Result<()> {
    let source = model_dir();
    let models = data_dir.join("models");
    if !source.is_dir() || models.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&models)?;
    let name = source.file_name().expect("a model dir has a name");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&source, models.join(name))?;
    Ok(())
}

/// Makes the process `command` starts write itself into the cgroup whose
/// `cgroup.procs` is `procs` before it runs the program.
fn join_cgroup_at_exec(command: &mut Command, procs: &Path) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let path = std::ffi::CString::new(procs.as_os_str().as_bytes())?;
    // SAFETY: between fork and exec the hook calls only open, write and
    // close (async-signal-safe) on memory allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" is the writing process itself.
            let written = libc::write(fd, b"0\n".as_ptr().cast(), 2);
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 2 {
                return Err(error);
            }
            Ok(())
        });
    }
    Ok(())
}

/// A running server; killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// `http://ADDR`.
    pub base: String,
    /// `http://ADDR/metrics`, when the metrics listener is on.
    pub metrics_url: Option<String>,
    /// The API token the server uses (`None` when auth is off).
    pub token: Option<String>,
    /// From spawning the process to its "listening" line.
    pub startup: Duration,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `caxton serve` with `options` and waits for its address.
    pub fn start(options: &ServeOptions) -> anyhow::Result<Self> {
        link_checkout_model(&options.data_dir)?;
        let mut command = Command::new(&options.binary);
        if let Some(procs) = &options.cgroup_procs {
            join_cgroup_at_exec(&mut command, procs)?;
        }
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&options.data_dir)
            .arg("--agents-dir")
            .arg(&options.agents_dir)
            .env("CAXTON_LOG", &options.log_filter)
            .env_remove("CAXTON_CONFIG")
            // No caxton.toml from the user's config dir.
            .env("XDG_CONFIG_HOME", options.data_dir.join("config"))
            // Whatever the config says, the store and the token live in
            // the data dir: another host's files are never touched, and
            // the token is where `token` below reads it.
            .env(
                "CAXTON_MEMORY__DATABASE_PATH",
                options.data_dir.join("memory.db"),
            )
            .env(
                "CAXTON_AUTH__TOKEN_FILE",
                options.data_dir.join(crate::auth::TOKEN_FILE),
            )
            .stdout(Stdio::piped())
            .stderr(if options.capture_log {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if let Some(text) = &options.config {
            std::fs::create_dir_all(&options.data_dir)?;
            let path = options.data_dir.join("caxton-harness.toml");
            std::fs::write(&path, text)?;
            command.arg("--config").arg(path);
        }
        let started = Instant::now();
        let mut child = command.spawn()?;
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().expect("log lock");
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }

        // The addresses arrive on stdout; the rest of stdout joins the log.
        let (addresses, listening) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let capture = options.capture_log;
        std::thread::spawn({
            let log = log.clone();
            move || {
                let mut metrics = None;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("caxton metrics on ") {
                        metrics = Some(url.to_owned());
                    }
                    if let Some(address) = line.strip_prefix("caxton listening on ") {
                        let _ = addresses.send((address.to_owned(), metrics.clone()));
                    }
                    if capture {
                        let mut log = log.lock().expect("log lock");
                        log.push_str("[stdout] ");
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            }
        });
        let (base, metrics_url) = match listening.recv_timeout(options.start_timeout) {
            Ok(found) => found,
            Err(error) => {
                let _ = child.kill();
                let status = child.wait();
                let what = match (error, status) {
                    (std::sync::mpsc::RecvTimeoutError::Disconnected, Ok(status)) => {
                        format!("the server exited before listening ({status})")
                    }
                    _ => format!(
                        "the server did not start within {:?}",
                        options.start_timeout
                    ),
                };
                anyhow::bail!("{what}; its log:\n{}", log.lock().expect("log lock"));
            }
        };
        let startup = started.elapsed();
        // Servers configured without auth have no token file.
        let token = std::fs::read_to_string(options.data_dir.join(crate::auth::TOKEN_FILE))
            .map(|t| t.trim().to_owned())
            .ok();
        Ok(Self {
            child,
            base,
            metrics_url,
            token,
            startup,
            log,
        })
    }

    /// Everything the server logged so far (with `capture_log`).
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child process, for signals and exit status.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends SIGTERM (a clean stop) and waits up to 30 s for the exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        // SAFETY: kill only sends a signal to our own child's pid.
        if unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the server did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
