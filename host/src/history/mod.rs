//! The host's memory of its own metrics, for boxes without Prometheus: a
//! sampler records the process's metrics into `history.db` every
//! `[history] interval`, rolled up as they age and kept within a disk
//! budget; reports summarise a window of it, and the shipped alert rules
//! are evaluated over it. The operator commands (`caxton check daily`,
//! `--last 7d`, `alerts summary`) read it through the API.

pub mod alerts;
mod config;
pub mod point;
pub mod report;
mod sampler;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use config::HistoryConfig;
pub use sampler::Extra;
use sampler::Sampler;
use store::{HistoryStore, NewSample};

use self::point::{Kind, Point};
use self::report::{Coverage, Summariser, UP};

/// The history file in the data dir.
pub const FILE: &str = "history.db";

pub struct History {
    store: HistoryStore,
    config: HistoryConfig,
    rules: Result<Vec<alerts::Rule>, String>,
}

impl History {
    pub async fn open(data_dir: &Path, config: &HistoryConfig) -> anyhow::Result<Self> {
        let store = HistoryStore::open(&data_dir.join(FILE)).await?;
        let rules = match &config.alert_rules {
            None => alerts::parse_rules(alerts::SHIPPED_RULES),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read [history] alert_rules {}: {e}", path.display()))
                .and_then(|text| {
                    alerts::parse_rules(&text).map_err(|e| format!("{}: {e}", path.display()))
                }),
        };
        if let Err(error) = &rules {
            tracing::warn!(%error, "alerts summary will not evaluate any rule");
        }
        Ok(Self {
            store,
            config: config.clone(),
            rules,
        })
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    fn interval(&self) -> i64 {
        self.config.interval.as_secs().max(1) as i64
    }

    /// Samples every `interval` until the task is dropped. `refresh` sets
    /// the gauges the registry holds and returns the readings it does not.
    pub fn spawn<F, Fut>(self: Arc<Self>, refresh: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Vec<Extra>> + Send,
    {
        tokio::spawn(async move {
            let mut sampler = Sampler::default();
            let mut ticks = tokio::time::interval(self.config.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick fires at once: skip it, a sample covers a whole interval.
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let started = Instant::now();
                let extras = refresh().await;
                if let Err(error) = self.tick(&mut sampler, &extras).await {
                    tracing::warn!(%error, "recording history failed; retrying at the next sample");
                }
                crate::metrics::metrics()
                    .history_sample_duration
                    .observe(started.elapsed().as_secs_f64());
            }
        })
    }

    async fn tick(&self, sampler: &mut Sampler, extras: &[Extra]) -> anyhow::Result<()> {
        let now = unix_now();
        let interval = self.interval();
        let families = crate::metrics::metrics().gather();
        let mut sampled = sampler.sample(&families, extras);
        sampled.push(sampler::Sampled {
            name: UP.to_owned(),
            labels: Default::default(),
            kind: Kind::Gauge,
            bounds: Vec::new(),
            point: Point::reading(1.0),
        });
        let samples: Vec<NewSample> = sampled
            .iter()
            .map(|s| NewSample {
                name: &s.name,
                labels: &s.labels,
                kind: s.kind,
                bounds: &s.bounds,
                point: s.point.clone(),
            })
            .collect();
        self.store
            .record(now - interval, interval, &samples)
            .await?;
        let done = self
            .store
            .maintain(
                now,
                self.config.tiers(),
                self.config.disk_budget_mb * 1024 * 1024,
            )
            .await?;
        if done.trimmed > 0 {
            tracing::warn!(
                rows = done.trimmed,
                budget_mb = self.config.disk_budget_mb,
                "history reached its disk budget: the oldest samples were dropped; raise [history] disk_budget_mb to keep more"
            );
        }
        Ok(())
    }

    /// Which window `last` asks for, and how much of it is on record.
    async fn window(&self, last: Duration) -> anyhow::Result<(i64, i64, Option<i64>)> {
        let to = unix_now() + 1;
        let from = to - last.as_secs().max(1) as i64;
        Ok((from, to, self.store.first_ts().await?))
    }

    /// Figures of `names` (all series when empty) over the last `last`,
    /// with `slices` equal trend slices (none when 0).
    pub async fn report(
        &self,
        last: Duration,
        names: &[&str],
        slices: usize,
    ) -> anyhow::Result<Value> {
        let (from, to, first) = self.window(last).await?;
        let families = self.store.families().await;
        let mut summariser = Summariser::new(from, to, slices, &families);
        let mut wanted: Vec<&str> = names.to_vec();
        if !wanted.is_empty() {
            wanted.push(UP);
        }
        self.store
            .scan(from, to, &wanted, |row| summariser.add(row))
            .await?;
        let covered = summariser.covered_seconds(self.interval());
        let series = summariser.finish(self.interval());
        Ok(json!({
            "window": Coverage::new(from, to, covered, first),
            "interval_seconds": self.interval(),
            "series": series,
            "disk": self.disk().await?,
        }))
    }

    /// The alert rules evaluated over the last `last`, firings of the
    /// severities in `severities` (all when empty).
    pub async fn alerts(&self, last: Duration, severities: &[String]) -> anyhow::Result<Value> {
        let rules = self.rules.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (from, to, first) = self.window(last).await?;
        let families = self.store.families().await;
        let mut data = alerts::Data::new(families, self.interval());
        // An hour before the window, for the ranges of the first steps.
        self.store
            .scan(from - 3600, to, &[], |row| data.add(row))
            .await?;
        let chosen: Vec<&alerts::Rule> = rules
            .iter()
            .filter(|r| severities.is_empty() || severities.contains(&r.severity))
            .collect();
        let start = first.map_or(to, |first| first.max(from));
        let (firings, skipped) = alerts::evaluate(&chosen, &data, start, to - 1, self.interval());
        let covered = (to - start).max(0);
        Ok(json!({
            "window": Coverage::new(from, to, covered, first),
            "rules_evaluated": chosen.len() - skipped.len(),
            "not_evaluated": skipped,
            "firing": firings,
        }))
    }

    /// The history file's size against its budget.
    /// The history file's size on disk.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(self.store.path()).map_or(0, |m| m.len())
    }

    pub async fn disk(&self) -> anyhow::Result<Value> {
        Ok(json!({
            "path": self.store.path(),
            "file_bytes": self.file_bytes(),
            "used_bytes": self.store.used_bytes().await?,
            "budget_bytes": self.config.disk_budget_mb * 1024 * 1024,
        }))
    }
}

/// The longest window a report may ask for: what the default retention keeps.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a window such as `7d`, `1h` or `30m`; the error names the
/// accepted forms.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write it like 30m, 1h, 7d or 2w")
    })?;
    if window < Duration::from_secs(1) || window > MAX_WINDOW {
        return Err(format!("{text:?} is out of range: between 1s and 366d"));
    }
    Ok(window)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
