//! `[history]` in caxton.toml: how often the host samples its own metrics,
//! how long each resolution is kept, and the disk the history may take.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration_text;

/// `[history]`: the host's record of its own metrics, for the operator
/// commands (`caxton check daily`, `--last 7d`, `alerts summary`) on a box
/// without Prometheus. Samples are kept at `interval` for `raw_for`, then
/// as `medium_interval` roll-ups until `medium_for`, then as
/// `coarse_interval` roll-ups until `retention`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Record history at all.
    /// Default: `true`.
    pub enabled: bool,
    /// Time between samples.
    /// Default: `"1m"`.
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// How long samples are kept at full resolution.
    /// Default: `"48h"`.
    #[serde(with = "duration_text")]
    pub raw_for: Duration,
    /// The resolution samples are rolled up to after `raw_for` (a multiple
    /// of `interval`).
    /// Default: `"15m"`.
    #[serde(with = "duration_text")]
    pub medium_interval: Duration,
    /// How long the medium roll-ups are kept.
    /// Default: `"30days"`.
    #[serde(with = "duration_text")]
    pub medium_for: Duration,
    /// The resolution after `medium_for` (a multiple of `medium_interval`).
    /// Default: `"1h"`.
    #[serde(with = "duration_text")]
    pub coarse_interval: Duration,
    /// History older than this is deleted.
    /// Default: `"365days"`.
    #[serde(with = "duration_text")]
    pub retention: Duration,
    /// The most disk the history file may take, in MiB; past it the oldest
    /// samples go first, whatever `retention` says.
    /// Default: `32`.
    pub disk_budget_mb: u64,
    /// The Prometheus rule file `caxton alerts summary` evaluates.
    /// Default: none (the rules shipped in `examples/monitoring/caxton-alerts.yml`, built in).
    pub alert_rules: Option<PathBuf>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(60),
            raw_for: Duration::from_secs(48 * 3600),
            medium_interval: Duration::from_secs(15 * 60),
            medium_for: Duration::from_secs(30 * 24 * 3600),
            coarse_interval: Duration::from_secs(3600),
            retention: Duration::from_secs(365 * 24 * 3600),
            disk_budget_mb: 32,
            alert_rules: None,
        }
    }
}

impl HistoryConfig {
    /// Every value out of its range, at its key.
    pub fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                problems.push((vec!["history".to_owned(), key.to_owned()], message));
            }
        };
        let secs = |d: Duration| d.as_secs();
        check(
            self.interval >= Duration::from_secs(1) && self.interval.subsec_nanos() == 0,
            "interval",
            "must be a whole number of seconds, at least \"1s\"".into(),
        );
        let interval = secs(self.interval).max(1);
        check(
            secs(self.medium_interval) >= interval && secs(self.medium_interval) % interval == 0,
            "medium_interval",
            format!("must be a multiple of interval ({interval}s)"),
        );
        let medium = secs(self.medium_interval).max(1);
        check(
            secs(self.coarse_interval) >= medium && secs(self.coarse_interval) % medium == 0,
            "coarse_interval",
            format!("must be a multiple of medium_interval ({medium}s)"),
        );
        check(
            self.raw_for >= self.interval,
            "raw_for",
            "must be at least interval".into(),
        );
        check(
            self.medium_for >= self.raw_for,
            "medium_for",
            "must be at least raw_for".into(),
        );
        check(
            self.retention >= self.medium_for,
            "retention",
            "must be at least medium_for".into(),
        );
        check(
            self.disk_budget_mb >= 1,
            "disk_budget_mb",
            "must be at least 1".into(),
        );
        problems
    }

    /// The resolutions in seconds, finest first, each with how long its
    /// samples are kept.
    pub fn tiers(&self) -> [(i64, i64); 3] {
        let s = |d: Duration| d.as_secs() as i64;
        [
            (s(self.interval), s(self.raw_for)),
            (s(self.medium_interval), s(self.medium_for)),
            (s(self.coarse_interval), s(self.retention)),
        ]
    }
}
