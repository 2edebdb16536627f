//! `[cluster]` in caxton.toml: how this host joins a fleet over NATS.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration_text;

/// `[cluster]`: the NATS server the fleet's hosts meet on. Without
/// `nats_url` the host is a single box and messages stay local.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The NATS server (`nats://host:4222`; several comma-separated).
    /// Default: none (no fleet).
    pub nats_url: Option<String>,
    /// This host's name in the fleet: unique per host.
    /// Default: the machine's host name.
    pub node_name: Option<String>,
    /// A NATS credentials file (`.creds`: a user JWT and its nkey seed).
    /// Default: none (connect without credentials).
    pub credentials_file: Option<PathBuf>,
    /// Subjects start with this, so several fleets can share a NATS server.
    /// Default: `"caxton"`.
    pub subject_prefix: String,
    /// How often a host announces itself and its agents.
    /// Default: `"2s"`.
    #[serde(with = "duration_text")]
    pub heartbeat_interval: Duration,
    /// Heartbeats a host may miss before the others drop it from the fleet.
    /// Default: `3`.
    pub missed_heartbeats: u32,
    /// Requests from other hosts this host runs at once; more wait for
    /// none, they are answered `queue_full`.
    /// Default: `256`.
    pub max_inflight: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            node_name: None,
            credentials_file: None,
            subject_prefix: "caxton".into(),
            heartbeat_interval: Duration::from_secs(2),
            missed_heartbeats: 3,
            max_inflight: 256,
        }
    }
}

impl ClusterConfig {
    /// How long a silent host stays in the fleet view.
    pub fn node_timeout(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats.max(1)
    }

    /// The configured node name, or the machine's host name.
    pub fn node_name(&self) -> String {
        if let Some(name) = &self.node_name {
            return name.clone();
        }
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes a
        // NUL-terminated name into it (truncated when longer).
        let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
        let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
        match std::str::from_utf8(&buffer[..end]) {
            Ok(name) if ok && !name.is_empty() => name.to_owned(),
            _ => "caxton".into(),
        }
    }
}
