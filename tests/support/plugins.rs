//! Builds the guest plugins (their own cargo workspace, `wasm32-wasip2`)
//! once per test binary and says where the components are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding the built `*.wasm` components.
pub fn plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
            .arg("--manifest-path")
            .arg(root.join("plugins/Cargo.toml"))
            // Do not inherit the host build's target dir or flags.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo to build the plugins");
        assert!(
            status.success(),
            "building plugins failed; run `rustup target add wasm32-wasip2`"
        );
        caxton::harness::plugin_dir()
    })
}

/// Path of one built component, e.g. `component("echo")`.
pub fn component(name: &str) -> PathBuf {
    plugin_dir().join(format!("{name}.wasm"))
}
