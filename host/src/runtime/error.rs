//! The runtime's one error type: load-time refusals and call-time faults,
//! each distinct so the API can report them with their own codes.

use std::path::PathBuf;
use std::time::Duration;

use super::limits::MemoryLimitExceeded;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("failed to build the wasm engine: {0}")]
    Engine(String),
    #[error("cannot read component {path}: {source}")]
    ReadComponent {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid WebAssembly component: {message}. Build plugins with `cargo build --release --target wasm32-wasip2`"
    )]
    InvalidComponent { path: PathBuf, message: String },
    #[error("{path} is not a `{world}` component: {message}")]
    WrongWorld {
        path: PathBuf,
        world: &'static str,
        message: String,
    },
    #[error(
        "{path} imports `{interface}`, which its manifest does not grant; add \"{grant}\" to `grants` or remove the import"
    )]
    UngrantedImport {
        path: PathBuf,
        interface: String,
        grant: String,
    },
    #[error(
        "{path} imports `{interface}`, but an agent cannot make HTTP requests itself; call the built-in `http_client` tool (list it in `tools`, grant \"tools\", and set the `[http]` allow list), or fetch from a tool granted \"http\" (a JavaScript build leaves `wasi:http` out with disableFeatures: ['http'])"
    )]
    AgentHttpImport { path: PathBuf, interface: String },
    #[error("{path} imports `{interface}`, which this host does not provide")]
    UnknownImport { path: PathBuf, interface: String },
    #[error(
        "{path} was built against caxton:agent@{version}, which this host does not run (it supports {supported}); rebuild the plugin against a supported version of the WIT package"
    )]
    UnsupportedVersion {
        path: PathBuf,
        version: String,
        supported: String,
    },
    #[error(
        "{path}: the component imports caxton:agent {versions} at once; build it against one version"
    )]
    MixedVersions { path: PathBuf, versions: String },
    #[error("component cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ran out of fuel ({fuel} units)")]
    OutOfFuel { fuel: u64 },
    #[error("execution deadline of {timeout:?} exceeded")]
    DeadlineExceeded { timeout: Duration },
    #[error("{0}")]
    MemoryLimit(MemoryLimitExceeded),
    #[error("plugin trapped: {message}")]
    Trap { message: String },
    #[error("every instance slot is busy; retry shortly")]
    PoolExhausted,
    #[error(
        "this plugin already holds {limit} instance slots ([wasm_runtime] max_slots_per_plugin); retry shortly"
    )]
    PluginBusy { limit: usize },
    #[error("instantiation failed: {0}")]
    Instantiate(String),
}

impl RuntimeError {
    /// A stable, machine-readable code for the API's error shape.
    pub fn code(&self) -> &'static str {
        match self {
            RuntimeError::Engine(_) => "engine_error",
            RuntimeError::ReadComponent { .. } => "component_unreadable",
            RuntimeError::InvalidComponent { .. } => "invalid_component",
            RuntimeError::WrongWorld { .. } => "wrong_world",
            RuntimeError::UngrantedImport { .. } | RuntimeError::AgentHttpImport { .. } => {
                "ungranted_import"
            }
            RuntimeError::UnknownImport { .. } => "unknown_import",
            RuntimeError::UnsupportedVersion { .. } => "unsupported_wit_version",
            RuntimeError::MixedVersions { .. } => "mixed_wit_versions",
            RuntimeError::Cache { .. } => "component_cache_error",
            RuntimeError::OutOfFuel { .. } => "out_of_fuel",
            RuntimeError::DeadlineExceeded { .. } => "deadline_exceeded",
            RuntimeError::MemoryLimit(_) => "memory_limit_exceeded",
            RuntimeError::Trap { .. } => "plugin_trap",
            RuntimeError::PoolExhausted => "pool_exhausted",
            RuntimeError::PluginBusy { .. } => "plugin_busy",
            RuntimeError::Instantiate(_) => "instantiation_failed",
        }
    }

    /// Turns a wasmtime error from instantiating or calling a guest into the
    /// fault it stands for: the wasm `Trap` first (fuel, epoch deadline,
    /// stack overflow, unreachable...), then the limiter's memory error,
    /// then pool exhaustion.
    pub(crate) fn from_call(error: wasmtime::Error, limits: &super::CallLimits) -> Self {
        if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            return match trap {
                wasmtime::Trap::OutOfFuel => RuntimeError::OutOfFuel { fuel: limits.fuel },
                wasmtime::Trap::Interrupt => RuntimeError::DeadlineExceeded {
                    timeout: limits.timeout,
                },
                wasmtime::Trap::StackOverflow => RuntimeError::Trap {
                    message: "stack overflow (call stack exhausted)".into(),
                },
                other => RuntimeError::Trap {
                    message: other.to_string(),
                },
            };
        }
        if let Some(exceeded) = error.downcast_ref::<MemoryLimitExceeded>() {
            return RuntimeError::MemoryLimit(MemoryLimitExceeded {
                limit_bytes: exceeded.limit_bytes,
                requested_bytes: exceeded.requested_bytes,
            });
        }
        if error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return RuntimeError::PoolExhausted;
        }
        RuntimeError::Trap {
            message: format!("{error:#}"),
        }
    }
}
