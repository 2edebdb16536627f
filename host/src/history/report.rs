//! Summaries of a window of history: per series, the figures an operator
//! asks for (a latency's p50/p99, a counter's rate, a gauge's range), over
//! the whole window and, for `--trends`, over equal slices of it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use super::point::{Kind, Point, quantile};
use super::store::{Family, Row};

/// The window a report covers and how much of it the box has on record.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Unix seconds.
    pub from: i64,
    pub to: i64,
    /// What was asked, in seconds.
    pub asked_seconds: i64,
    /// Seconds inside the window the sampler was running.
    pub covered_seconds: i64,
    /// The oldest sample the box holds at all.
    pub history_starts: Option<i64>,
    /// The box holds history for the whole window.
    pub complete: bool,
    /// Said when the window is not complete: how much history there is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Coverage {
    pub fn new(from: i64, to: i64, covered_seconds: i64, history_starts: Option<i64>) -> Self {
        let asked = to - from;
        let complete = history_starts.is_some_and(|first| first <= from);
        let note = (!complete).then(|| match history_starts {
            None => format!(
                "no history yet: asked for {}, the sampler has not recorded a sample",
                human(asked)
            ),
            Some(first) => format!(
                "this box has {} of history (since {}); asked for {}",
                human(to - first),
                rfc3339(first),
                human(asked)
            ),
        });
        Self {
            from,
            to,
            asked_seconds: asked,
            covered_seconds,
            history_starts,
            complete,
            note,
        }
    }
}

/// One series' figures over the window.
#[derive(Debug, Clone)]
struct Accumulated {
    kind: Kind,
    bounds: Vec<f64>,
    total: Point,
    first: Option<f64>,
    last: Option<f64>,
    slices: Vec<Point>,
}

/// Folds rows into per-series summaries.
pub struct Summariser<'a> {
    from: i64,
    to: i64,
    slices: usize,
    families: &'a HashMap<String, Family>,
    series: BTreeMap<(String, BTreeMap<String, String>), Accumulated>,
    /// Ticks on record, from the `up` series.
    ticks: f64,
}

/// The series a tick always writes: 1 while the sampler runs.
pub const UP: &str = "up";

impl<'a> Summariser<'a> {
    pub fn new(from: i64, to: i64, slices: usize, families: &'a HashMap<String, Family>) -> Self {
        Self {
            from,
            to,
            slices,
            families,
            series: BTreeMap::new(),
            ticks: 0.0,
        }
    }

    pub fn add(&mut self, row: Row) {
        if row.name == UP {
            self.ticks += row.point.count;
        }
        let Some(family) = self.families.get(&row.name) else {
            return;
        };
        let slices = self.slices;
        let acc = self
            .series
            .entry((row.name, row.labels))
            .or_insert_with(|| Accumulated {
                kind: family.kind,
                bounds: family.bounds.clone(),
                total: Point::default(),
                first: None,
                last: None,
                slices: vec![Point::default(); slices],
            });
        if acc.kind == Kind::Gauge {
            acc.first.get_or_insert(row.point.mean());
            acc.last = Some(row.point.mean());
        }
        if slices > 0 {
            let span = (self.to - self.from).max(1) as f64;
            let at = ((row.ts - self.from) as f64 / span * slices as f64) as usize;
            acc.slices[at.min(slices - 1)].merge(&row.point);
        }
        acc.total.merge(&row.point);
    }

    /// Seconds of the window the sampler ran.
    pub fn covered_seconds(&self, interval: i64) -> i64 {
        (self.ticks * interval as f64) as i64
    }

    /// Every series, as JSON objects.
    pub fn finish(self, interval: i64) -> Vec<Value> {
        let covered = self.covered_seconds(interval).max(1) as f64;
        let slice_seconds = covered / self.slices.max(1) as f64;
        let span = (self.to - self.from) as f64 / self.slices.max(1) as f64;
        self.series
            .into_iter()
            .map(|((name, labels), acc)| {
                let mut value = figures(acc.kind, &acc.bounds, &acc.total, covered);
                let object = value.as_object_mut().expect("figures are an object");
                object.insert("name".into(), json!(name));
                object.insert("labels".into(), json!(labels));
                object.insert("kind".into(), json!(acc.kind.as_str()));
                if acc.kind == Kind::Gauge {
                    object.insert("first".into(), json!(acc.first));
                    object.insert("last".into(), json!(acc.last));
                }
                if self.slices > 0 {
                    let trend: Vec<Value> = acc
                        .slices
                        .iter()
                        .enumerate()
                        .map(|(i, point)| {
                            let mut slice = if point.count == 0.0 && point.buckets.is_empty() {
                                json!({})
                            } else {
                                figures(acc.kind, &acc.bounds, point, slice_seconds)
                            };
                            slice["from"] = json!(self.from + (i as f64 * span) as i64);
                            slice
                        })
                        .collect();
                    object.insert("trend".into(), json!(trend));
                }
                value
            })
            .collect()
    }
}

/// The headline figures of one merged period.
fn figures(kind: Kind, bounds: &[f64], point: &Point, seconds: f64) -> Value {
    match kind {
        Kind::Gauge => json!({
            "mean": point.mean(),
            "min": point.min,
            "max": point.max,
            "readings": point.count,
        }),
        Kind::Counter => json!({
            "increase": point.sum,
            "rate_per_second": point.sum / seconds,
        }),
        Kind::Histogram => json!({
            "observations": point.count,
            "rate_per_second": point.count / seconds,
            "mean": if point.count > 0.0 { point.sum / point.count } else { 0.0 },
            "p50": quantile(0.5, bounds, &point.buckets),
            "p90": quantile(0.9, bounds, &point.buckets),
            "p99": quantile(0.99, bounds, &point.buckets),
        }),
    }
}

pub fn human(seconds: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds.max(0) as u64)).to_string()
}

pub fn rfc3339(ts: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.max(0) as u64),
    )
    .to_string()
}
