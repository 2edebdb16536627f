//! One recorded value of one series over one period, and how periods merge
//! when history is rolled up or a window is summarised.

use serde::Serialize;

/// What a series measures, which decides how its periods merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A reading (RSS, queue depth): kept as count, sum, min and max of
    /// the readings in the period.
    Gauge,
    /// A running total (requests, traps): kept as its increase in the period.
    Counter,
    /// Observations in buckets (latencies): kept as the period's
    /// observation count, sum and per-bucket counts.
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "gauge" => Some(Kind::Gauge),
            "counter" => Some(Kind::Counter),
            "histogram" => Some(Kind::Histogram),
            _ => None,
        }
    }
}

/// A period's value. Gauge: `count` readings summing to `sum`, within
/// `min..=max`. Counter: the increase is `sum`. Histogram: `count`
/// observations summing to `sum`, `buckets[i]` of them in bucket `i` (not
/// cumulative; the last bucket is `+Inf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub buckets: Vec<u64>,
}

impl Point {
    pub fn reading(value: f64) -> Self {
        Self {
            count: 1.0,
            sum: value,
            min: value,
            max: value,
            buckets: Vec::new(),
        }
    }

    pub fn increase(delta: f64) -> Self {
        Self {
            count: 1.0,
            sum: delta,
            min: delta,
            max: delta,
            buckets: Vec::new(),
        }
    }

    /// Folds `other` (a later or earlier period of the same series) in.
    pub fn merge(&mut self, other: &Point) {
        if self.count == 0.0 && self.buckets.is_empty() && self.sum == 0.0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// A gauge's mean reading.
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// Buckets as stored: little-endian u64 each.
    pub fn encode_buckets(&self) -> Vec<u8> {
        self.buckets.iter().flat_map(|b| b.to_le_bytes()).collect()
    }

    pub fn decode_buckets(bytes: &[u8]) -> Vec<u64> {
        bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
            .collect()
    }
}

/// The `q` quantile (0..=1) of observations in `buckets` (per bucket, the
/// last one `+Inf`) with upper bounds `bounds`, interpolated inside the
/// bucket the way Prometheus' `histogram_quantile` does, so the CLI and a
/// Prometheus server agree. `None` without observations.
pub fn quantile(q: f64, bounds: &[f64], buckets: &[u64]) -> Option<f64> {
    quantile_of(
        q,
        bounds,
        &buckets.iter().map(|&b| b as f64).collect::<Vec<_>>(),
    )
}

/// [`quantile`] over fractional counts (rates).
pub fn quantile_of(q: f64, bounds: &[f64], buckets: &[f64]) -> Option<f64> {
    let total: f64 = buckets.iter().sum();
    if total <= 0.0 || q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    let rank = q * total;
    let mut below = 0.0;
    for (i, &count) in buckets.iter().enumerate() {
        if below + count >= rank && count > 0.0 {
            let Some(&upper) = bounds.get(i) else {
                // The +Inf bucket: the highest finite bound, as Prometheus.
                return bounds.last().copied();
            };
            let lower = if i == 0 {
                if upper > 0.0 { 0.0 } else { upper }
            } else {
                bounds[i - 1]
            };
            return Some(lower + (upper - lower) * (rank - below) / count);
        }
        below += count;
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_prometheus() {
        let bounds = [0.1, 0.5, 1.0];
        // 10 under 0.1, 10 in (0.1, 0.5], none above.
        let buckets = [10, 10, 0, 0];
        assert_eq!(quantile(0.5, &bounds, &buckets), Some(0.1));
        assert!((quantile(0.75, &bounds, &buckets).unwrap() - 0.3).abs() < 1e-12);
        assert!((quantile(0.25, &bounds, &buckets).unwrap() - 0.05).abs() < 1e-12);
        // Everything past the last bound: the last bound.
        assert_eq!(quantile(0.99, &bounds, &[0, 0, 0, 5]), Some(1.0));
        assert_eq!(quantile(0.5, &bounds, &[0, 0, 0, 0]), None);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_extremes() {
        let mut a = Point::reading(3.0);
        a.merge(&Point::reading(5.0));
        a.merge(&Point::reading(1.0));
        assert_eq!((a.count, a.sum, a.min, a.max), (3.0, 9.0, 1.0, 5.0));
        assert_eq!(a.mean(), 3.0);
        let mut h = Point {
            count: 2.0,
            sum: 0.3,
            buckets: vec![1, 1, 0],
            ..Point::default()
        };
        h.merge(&Point {
            count: 1.0,
            sum: 2.0,
            buckets: vec![0, 0, 1],
            ..Point::default()
        });
        assert_eq!(h.buckets, vec![1, 1, 1]);
        assert_eq!(Point::decode_buckets(&h.encode_buckets()), h.buckets);
    }
}
