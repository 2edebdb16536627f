//! Turns the process's Prometheus registry (running totals and readings)
//! into one tick's samples: readings as they are, running totals as their
//! increase since the last tick. Labels that only multiply rows without
//! helping an operator's question are summed away first.

use std::collections::{BTreeMap, HashMap};

use prometheus::proto::{MetricFamily, MetricType};

use super::point::{Kind, Point};

/// A value the registry does not hold, read by the server at each tick.
#[derive(Debug, Clone)]
pub struct Extra {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    /// Counters: the running total; gauges: the reading.
    pub value: f64,
    pub kind: Kind,
}

/// One series of one tick, ready to write.
#[derive(Debug, Clone)]
pub struct Sampled {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub kind: Kind,
    pub bounds: Vec<f64>,
    pub point: Point,
}

/// Running totals seen at the last tick, to take increases from.
#[derive(Default)]
pub struct Sampler {
    previous: HashMap<(String, BTreeMap<String, String>), Total>,
}

/// Running totals of one tick by series, with their kind and bounds.
type Totals = BTreeMap<(String, BTreeMap<String, String>), (Kind, Vec<f64>, Total)>;

#[derive(Clone)]
enum Total {
    Counter(f64),
    Histogram {
        count: u64,
        sum: f64,
        cumulative: Vec<u64>,
    },
}

/// Labels kept per family; families not listed keep all of theirs. The
/// per-route request series would be most of the file for little use on
/// a daily checklist; the status is what the error-ratio rule needs.
fn kept_labels(family: &str) -> Option<&'static [&'static str]> {
    match family {
        "caxton_server_request_duration_seconds" => Some(&[]),
        "caxton_server_requests_total" => Some(&["status"]),
        _ => None,
    }
}

impl Sampler {
    /// This tick's samples. Counters and histograms that did not move are
    /// left out (an idle box writes little); readings always go in.
    pub fn sample(&mut self, families: &[MetricFamily], extras: &[Extra]) -> Vec<Sampled> {
        // Sum series that differ only in dropped labels.
        let mut totals: Totals = BTreeMap::new();
        let mut readings: BTreeMap<(String, BTreeMap<String, String>), f64> = BTreeMap::new();
        for family in families {
            let name = family.name();
            let keep = kept_labels(name);
            for metric in family.get_metric() {
                let labels: BTreeMap<String, String> = metric
                    .get_label()
                    .iter()
                    .filter(|pair| keep.is_none_or(|keep| keep.contains(&pair.name())))
                    .map(|pair| (pair.name().to_owned(), pair.value().to_owned()))
                    .collect();
                let key = (name.to_owned(), labels);
                match family.get_field_type() {
                    MetricType::COUNTER => {
                        let value = metric.get_counter().get_value();
                        add_total(
                            &mut totals,
                            key,
                            Kind::Counter,
                            Vec::new(),
                            Total::Counter(value),
                        );
                    }
                    MetricType::GAUGE => {
                        *readings.entry(key).or_default() += metric.get_gauge().get_value();
                    }
                    MetricType::HISTOGRAM => {
                        let h = metric.get_histogram();
                        let bounds: Vec<f64> =
                            h.get_bucket().iter().map(|b| b.upper_bound()).collect();
                        let cumulative: Vec<u64> = h
                            .get_bucket()
                            .iter()
                            .map(|b| b.cumulative_count())
                            .collect();
                        let total = Total::Histogram {
                            count: h.get_sample_count(),
                            sum: h.get_sample_sum(),
                            cumulative,
                        };
                        add_total(&mut totals, key, Kind::Histogram, bounds, total);
                    }
                    _ => {}
                }
            }
        }
        for extra in extras {
            let labels = extra
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            let key = (extra.name.to_owned(), labels);
            match extra.kind {
                Kind::Counter => add_total(
                    &mut totals,
                    key,
                    Kind::Counter,
                    Vec::new(),
                    Total::Counter(extra.value),
                ),
                _ => {
                    readings.insert(key, extra.value);
                }
            }
        }

        let mut out = Vec::new();
        for ((name, labels), value) in readings {
            out.push(Sampled {
                name,
                labels,
                kind: Kind::Gauge,
                bounds: Vec::new(),
                point: Point::reading(value),
            });
        }
        for (key, (kind, bounds, total)) in totals {
            let previous = self.previous.insert(key.clone(), total.clone());
            if let Some(point) = increase(previous.as_ref(), &total, bounds.len()) {
                out.push(Sampled {
                    name: key.0,
                    labels: key.1,
                    kind,
                    bounds,
                    point,
                });
            }
        }
        out
    }
}

fn add_total(
    totals: &mut Totals,
    key: (String, BTreeMap<String, String>),
    kind: Kind,
    bounds: Vec<f64>,
    total: Total,
) {
    match totals.get_mut(&key) {
        None => {
            totals.insert(key, (kind, bounds, total));
        }
        Some((_, _, existing)) => match (existing, total) {
            (Total::Counter(a), Total::Counter(b)) => *a += b,
            (
                Total::Histogram {
                    count,
                    sum,
                    cumulative,
                },
                Total::Histogram {
                    count: c,
                    sum: s,
                    cumulative: more,
                },
            ) => {
                *count += c;
                *sum += s;
                for (a, b) in cumulative.iter_mut().zip(more) {
                    *a += b;
                }
            }
            _ => {}
        },
    }
}

/// The increase from `previous` to `now` (all of `now` after a restart of
/// the total or on the first tick), `None` when nothing moved.
fn increase(previous: Option<&Total>, now: &Total, bounds: usize) -> Option<Point> {
    match (previous, now) {
        (previous, Total::Counter(now)) => {
            let before = match previous {
                Some(Total::Counter(before)) if before <= now => *before,
                _ => 0.0,
            };
            let delta = now - before;
            (delta > 0.0).then(|| Point::increase(delta))
        }
        (
            previous,
            Total::Histogram {
                count,
                sum,
                cumulative,
            },
        ) => {
            let (c0, s0, cum0) = match previous {
                Some(Total::Histogram {
                    count: c,
                    sum: s,
                    cumulative: cum,
                }) if c <= count => (*c, *s, cum.clone()),
                _ => (0, 0.0, vec![0; cumulative.len()]),
            };
            let observed = count - c0;
            if observed == 0 {
                return None;
            }
            // Per bucket (not cumulative), then what fell past the last bound.
            let mut buckets = Vec::with_capacity(bounds + 1);
            let mut below = 0u64;
            for (now, before) in cumulative
                .iter()
                .zip(cum0.iter().chain(std::iter::repeat(&0)))
            {
                let in_bucket_so_far = now.saturating_sub(*before);
                buckets.push(in_bucket_so_far.saturating_sub(below));
                below = in_bucket_so_far;
            }
            buckets.push(observed.saturating_sub(below));
            Some(Point {
                count: observed as f64,
                sum: sum - s0,
                min: 0.0,
                max: 0.0,
                buckets,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_totals_become_increases_and_idle_ones_are_left_out() {
        let registry = prometheus::Registry::new();
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new("t_requests_total", "t"),
            &["status"],
        )
        .unwrap();
        let histogram = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("t_seconds", "t").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        let mut sampler = Sampler::default();
        counter.with_label_values(&["200"]).inc_by(5);
        histogram.observe(0.05);
        histogram.observe(0.5);
        histogram.observe(5.0);
        let first = sampler.sample(&registry.gather(), &[]);
        assert_eq!(first.len(), 2);
        let h = first.iter().find(|s| s.name == "t_seconds").unwrap();
        assert_eq!(h.point.buckets, vec![1, 1, 1]);
        assert_eq!(h.point.count, 3.0);

        counter.with_label_values(&["200"]).inc_by(2);
        let second = sampler.sample(&registry.gather(), &[]);
        assert_eq!(second.len(), 1, "the histogram did not move");
        assert_eq!(second[0].point.sum, 2.0);
        assert_eq!(
            second[0].labels.get("status").map(String::as_str),
            Some("200")
        );
    }
}
