//! `caxton alerts summary`: the Prometheus alert rules shipped in
//! `examples/monitoring/caxton-alerts.yml` (or the file `[history]
//! alert_rules` names), evaluated over the recorded history, so the CLI
//! and a Prometheus server judge a box by the same expressions.
//!
//! The expressions are parsed with `promql-parser`; the evaluator covers
//! the PromQL the shipped rules use: selectors with `=`, `!=`, `=~`,
//! `!~`; `rate` and `increase` over ranges; `sum`, `avg`, `min`, `max`,
//! `count` with `by`/`without`; `histogram_quantile`; arithmetic and
//! comparisons between scalars and vectors (one-to-one matching). A rule
//! outside that is reported as not evaluated, with why, never skipped in
//! silence. Matchers on `job` and `instance` hold for this box (it is the
//! job); `up` is 1 while the sampler ran and 0 in the gaps. History rolled
//! up to coarser periods is evaluated at that resolution: a `[5m]` rate
//! over 15-minute periods is the period's rate, and a reading is the
//! period's mean.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use promql_parser::label::Matcher;
use promql_parser::parser::token::{
    T_ADD, T_AVG, T_COUNT, T_DIV, T_EQLC, T_GTE, T_GTR, T_LSS, T_LTE, T_MAX, T_MIN, T_MUL, T_NEQ,
    T_SUB, T_SUM,
};
use promql_parser::parser::{Expr, LabelModifier, VectorSelector};
use serde::{Deserialize, Serialize};

use super::point::{Kind, Point, quantile_of};
use super::report::{UP, rfc3339};
use super::store::{Family, Row};

/// The rules shipped with Caxton, evaluated when no file is configured.
pub const SHIPPED_RULES: &str = include_str!("../../../examples/monitoring/caxton-alerts.yml");

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleGroup {
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
struct RawRule {
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// One alert rule, parsed.
pub struct Rule {
    pub name: String,
    pub severity: String,
    pub expr_text: String,
    expr: Result<Expr, String>,
    pub hold: i64,
    pub summary: String,
}

/// Reads a Prometheus rule file's alerting rules (recording rules are
/// skipped). A rule whose expression does not parse is kept, to be
/// reported as not evaluated.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let file: RuleFile =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not a Prometheus rule file: {e}"))?;
    let mut rules = Vec::new();
    for raw in file.groups.into_iter().flat_map(|g| g.rules) {
        let Some(name) = raw.alert else { continue };
        let hold = match raw.for_.as_deref() {
            None => 0,
            Some(text) => promql_parser::util::parse_duration(text)
                .map_err(|e| format!("alert {name}: for: {text:?}: {e}"))?
                .as_secs() as i64,
        };
        rules.push(Rule {
            severity: raw.labels.get("severity").cloned().unwrap_or_default(),
            expr: promql_parser::parser::parse(&raw.expr),
            expr_text: raw.expr.trim().to_owned(),
            hold,
            summary: raw.annotations.get("summary").cloned().unwrap_or_default(),
            name,
        });
    }
    Ok(rules)
}

/// One stretch of time an alert was firing for one label set.
#[derive(Debug, Clone, Serialize)]
pub struct Firing {
    pub alert: String,
    pub severity: String,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds: when it fired (its condition held for `for`).
    pub started: i64,
    pub started_at: String,
    /// When it stopped firing; `None` while still firing at the window's end.
    pub ended: Option<i64>,
    pub firing_seconds: i64,
    /// The expression's highest value while firing.
    pub peak: f64,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotEvaluated {
    pub alert: String,
    pub reason: String,
}

type Labels = BTreeMap<String, String>;

/// What a selector picked: per matching series, its rows in range and
/// the range as widened to their periods.
struct Selected {
    series: Vec<(Labels, Vec<Point>, i64)>,
    kind: Kind,
    bounds: Arc<Vec<f64>>,
    part: Part,
}

/// The rows an evaluation needs, by series, oldest first.
pub struct Data {
    families: HashMap<String, Family>,
    series: HashMap<String, Vec<(Labels, Vec<Row>)>>,
    /// The periods the sampler ran in: (start, end).
    ups: Vec<(i64, i64)>,
    interval: i64,
    /// The longest period among the rows: how far back a step looks.
    longest: i64,
}

impl Data {
    pub fn new(families: HashMap<String, Family>, interval: i64) -> Self {
        Self {
            families,
            series: HashMap::new(),
            ups: Vec::new(),
            interval,
            longest: interval,
        }
    }

    pub fn add(&mut self, row: Row) {
        self.longest = self.longest.max(row.resolution);
        if row.name == UP {
            self.ups.push((row.ts, row.ts + row.resolution));
            return;
        }
        let list = self.series.entry(row.name.clone()).or_default();
        match list.iter_mut().find(|(labels, _)| *labels == row.labels) {
            Some((_, rows)) => rows.push(row),
            None => list.push((row.labels.clone(), vec![row])),
        }
    }
}

/// Evaluates `rules` every `step` seconds over `[from, to]`.
pub fn evaluate(
    rules: &[&Rule],
    data: &Data,
    from: i64,
    to: i64,
    step: i64,
) -> (Vec<Firing>, Vec<NotEvaluated>) {
    let mut firings = Vec::new();
    let mut skipped = Vec::new();
    for rule in rules {
        let expr = match &rule.expr {
            Ok(expr) => expr,
            Err(error) => {
                skipped.push(NotEvaluated {
                    alert: rule.name.clone(),
                    reason: format!("the expression does not parse: {error}"),
                });
                continue;
            }
        };
        // Per label set: since when the condition holds, and the open firing.
        let mut pending: HashMap<BTreeMap<String, String>, (i64, Option<usize>)> = HashMap::new();
        let mut failed = None;
        let mut t = from;
        while t <= to {
            let held = match eval(expr, data, t) {
                Ok(Value::Vector(elements)) => elements,
                Ok(Value::Scalar(_)) => Vec::new(),
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            };
            let mut now_holding = HashMap::new();
            for element in held {
                let Sample::Num(value) = element.value else {
                    continue;
                };
                if value.is_nan() {
                    continue;
                }
                let (since, open) = pending.remove(&element.labels).unwrap_or((t, None));
                let mut open = open;
                if t - since >= rule.hold {
                    let index = *open.get_or_insert_with(|| {
                        firings.push(Firing {
                            alert: rule.name.clone(),
                            severity: rule.severity.clone(),
                            labels: element.labels.clone(),
                            started: t,
                            started_at: rfc3339(t),
                            ended: None,
                            firing_seconds: 0,
                            peak: value,
                            summary: render(&rule.summary, &element.labels, value),
                        });
                        firings.len() - 1
                    });
                    let firing = &mut firings[index];
                    firing.firing_seconds = t - firing.started;
                    firing.peak = firing.peak.max(value);
                }
                now_holding.insert(element.labels, (since, open));
            }
            // Label sets that stopped holding close their firing.
            for (_, (_, open)) in pending.drain() {
                if let Some(index) = open {
                    firings[index].ended = Some(t);
                    firings[index].firing_seconds = t - firings[index].started;
                }
            }
            pending = now_holding;
            t += step;
        }
        if let Some(reason) = failed {
            skipped.push(NotEvaluated {
                alert: rule.name.clone(),
                reason,
            });
        }
    }
    (firings, skipped)
}

#[derive(Debug, Clone)]
enum Sample {
    Num(f64),
    /// Per-bucket counts (or rates), the last bucket `+Inf`.
    Hist(Vec<f64>, Arc<Vec<f64>>),
}

#[derive(Debug, Clone)]
struct Element {
    labels: BTreeMap<String, String>,
    value: Sample,
}

enum Value {
    Scalar(f64),
    Vector(Vec<Element>),
}

/// Which part of a histogram a selector names.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Whole,
    Buckets,
    Count,
    Sum,
}

fn resolve<'a>(data: &'a Data, name: &str) -> Result<(&'a str, &'a Family, Part), String> {
    if let Some((key, family)) = data.families.get_key_value(name) {
        return Ok((key, family, Part::Whole));
    }
    for (suffix, part) in [
        ("_bucket", Part::Buckets),
        ("_count", Part::Count),
        ("_sum", Part::Sum),
    ] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some((key, family)) = data.families.get_key_value(base)
            && family.kind == Kind::Histogram
        {
            return Ok((key, family, part));
        }
    }
    Err(format!("{name}: no such series on record"))
}

fn matches(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| {
        if m.name == "__name__" || m.name == "job" || m.name == "instance" {
            return true;
        }
        // An absent label is the empty string, as in Prometheus.
        m.is_match(labels.get(&m.name).map(String::as_str).unwrap_or(""))
    })
}

/// The rows of each matching series whose period ends in `(t - range, t]`,
/// the range widened to the coarsest period among them.
fn select(data: &Data, vs: &VectorSelector, t: i64, range: i64) -> Result<Selected, String> {
    let name = vs
        .name
        .clone()
        .or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone())
        })
        .ok_or("a selector without a metric name")?;
    if vs.offset.is_some() || vs.at.is_some() {
        return Err("offset and @ are not supported".into());
    }
    let (key, family, part) = match resolve(data, &name) {
        Ok(found) => found,
        // A series never recorded has no value: the rule cannot hold.
        Err(_) => {
            return Ok(Selected {
                series: Vec::new(),
                kind: Kind::Gauge,
                bounds: Arc::new(Vec::new()),
                part: Part::Whole,
            });
        }
    };
    let bounds = Arc::new(family.bounds.clone());
    let mut out = Vec::new();
    for (labels, rows) in data.series.get(key).into_iter().flatten() {
        if !matches(&vs.matchers.matchers, labels) {
            continue;
        }
        let mut widened = range;
        let mut picked = Vec::new();
        // Rows are oldest first; only the recent end matters.
        let start = rows.partition_point(|r| r.ts + r.resolution <= t - range.max(data.longest));
        for row in &rows[start..] {
            let end = row.ts + row.resolution;
            if end > t {
                break;
            }
            if end > t - range.max(row.resolution) {
                widened = widened.max(row.resolution);
                picked.push(row.point.clone());
            }
        }
        out.push((labels.clone(), picked, widened));
    }
    Ok(Selected {
        series: out,
        kind: family.kind,
        bounds,
        part,
    })
}

fn eval(expr: &Expr, data: &Data, t: i64) -> Result<Value, String> {
    match expr {
        Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
        Expr::Paren(p) => eval(&p.expr, data, t),
        Expr::Unary(u) => match eval(&u.expr, data, t)? {
            Value::Scalar(v) => Ok(Value::Scalar(-v)),
            Value::Vector(v) => Ok(Value::Vector(
                v.into_iter()
                    .map(|mut e| {
                        if let Sample::Num(x) = e.value {
                            e.value = Sample::Num(-x);
                        }
                        e
                    })
                    .collect(),
            )),
        },
        Expr::VectorSelector(vs) => instant(data, vs, t),
        Expr::Call(call) => match call.func.name {
            "rate" | "increase" => {
                let Some(Expr::MatrixSelector(ms)) = call.args.args.first().map(|a| &**a) else {
                    return Err(format!("{}() needs a range selector", call.func.name));
                };
                let range = ms.range.as_secs() as i64;
                let Selected {
                    series,
                    kind,
                    bounds,
                    part,
                } = select(data, &ms.vs, t, range)?;
                if kind == Kind::Gauge && !series.is_empty() {
                    return Err(format!("{}() of a gauge", call.func.name));
                }
                let per_second = call.func.name == "rate";
                let elements = series
                    .into_iter()
                    .map(|(labels, points, widened)| {
                        let mut total = Point::default();
                        for point in &points {
                            total.merge(point);
                        }
                        let scale = if per_second {
                            1.0 / widened as f64
                        } else {
                            1.0
                        };
                        let value = match (kind, part) {
                            (Kind::Histogram, Part::Buckets) => {
                                let mut buckets: Vec<f64> =
                                    total.buckets.iter().map(|&b| b as f64 * scale).collect();
                                buckets.resize(bounds.len() + 1, 0.0);
                                Sample::Hist(buckets, bounds.clone())
                            }
                            (Kind::Histogram, Part::Sum) => Sample::Num(total.sum * scale),
                            (Kind::Histogram, _) => Sample::Num(total.count * scale),
                            _ => Sample::Num(total.sum * scale),
                        };
                        Element { labels, value }
                    })
                    .collect();
                Ok(Value::Vector(elements))
            }
            "histogram_quantile" => {
                let q = match call.args.args.first().map(|a| eval(a, data, t)) {
                    Some(Ok(Value::Scalar(q))) => q,
                    _ => return Err("histogram_quantile needs a number first".into()),
                };
                let Some(Ok(Value::Vector(v))) = call.args.args.get(1).map(|a| eval(a, data, t))
                else {
                    return Err("histogram_quantile needs bucket rates".into());
                };
                Ok(Value::Vector(
                    v.into_iter()
                        .filter_map(|e| match e.value {
                            Sample::Hist(buckets, bounds) => Some(Element {
                                labels: e.labels,
                                value: Sample::Num(
                                    quantile_of(q, &bounds, &buckets).unwrap_or(f64::NAN),
                                ),
                            }),
                            Sample::Num(_) => None,
                        })
                        .collect(),
                ))
            }
            other => Err(format!("the function {other}() is not supported")),
        },
        Expr::Aggregate(agg) => {
            let Value::Vector(v) = eval(&agg.expr, data, t)? else {
                return Err("an aggregation of a number".into());
            };
            aggregate(agg.op.id(), agg.modifier.as_ref(), v)
        }
        Expr::Binary(b) => {
            if b.modifier.as_ref().is_some_and(|m| m.matching.is_some()) {
                return Err("on()/ignoring() matching is not supported".into());
            }
            let keep_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
            let op = b.op.id();
            let lhs = eval(&b.lhs, data, t)?;
            let rhs = eval(&b.rhs, data, t)?;
            binary(op, keep_bool, lhs, rhs)
        }
        other => Err(format!("{other} is not supported")),
    }
}

/// An instant selector: a reading's value in its latest period, or `up`.
fn instant(data: &Data, vs: &VectorSelector, t: i64) -> Result<Value, String> {
    if vs.name.as_deref() == Some(UP) {
        // Up when a tick landed within two intervals (or the period of a
        // rolled-up tick).
        let lookback = 2 * data.interval;
        let after = data.ups.partition_point(|&(_, end)| end <= t - lookback);
        let up = data.ups[after..]
            .iter()
            .take_while(|&&(start, _)| start < t)
            .any(|&(_, end)| end > t - lookback);
        return Ok(Value::Vector(vec![Element {
            labels: BTreeMap::new(),
            value: Sample::Num(if up { 1.0 } else { 0.0 }),
        }]));
    }
    let Selected {
        series, kind, part, ..
    } = select(data, vs, t, 2 * data.interval)?;
    if !series.is_empty() && (kind != Kind::Gauge || part != Part::Whole) {
        return Err("a running total needs rate() or increase()".into());
    }
    Ok(Value::Vector(
        series
            .into_iter()
            .filter_map(|(labels, points, _)| {
                points.last().map(|p| Element {
                    labels,
                    value: Sample::Num(p.mean()),
                })
            })
            .collect(),
    ))
}

fn aggregate(op: u16, modifier: Option<&LabelModifier>, v: Vec<Element>) -> Result<Value, String> {
    let mut groups: BTreeMap<BTreeMap<String, String>, Vec<Sample>> = BTreeMap::new();
    for element in v {
        let key = match modifier {
            Some(LabelModifier::Include(keep)) => element
                .labels
                .into_iter()
                .filter(|(k, _)| keep.labels.iter().any(|l| l == k))
                .collect(),
            Some(LabelModifier::Exclude(drop)) => element
                .labels
                .into_iter()
                .filter(|(k, _)| !drop.labels.iter().any(|l| l == k))
                .collect(),
            None => BTreeMap::new(),
        };
        groups.entry(key).or_default().push(element.value);
    }
    let mut out = Vec::new();
    for (labels, samples) in groups {
        let value = if let Some(Sample::Hist(_, bounds)) = samples.first() {
            if op != T_SUM {
                return Err("only sum() of histogram buckets is supported".into());
            }
            let mut total = vec![0.0; bounds.len() + 1];
            for sample in &samples {
                if let Sample::Hist(buckets, _) = sample {
                    for (a, b) in total.iter_mut().zip(buckets) {
                        *a += b;
                    }
                }
            }
            Sample::Hist(total, bounds.clone())
        } else {
            let nums: Vec<f64> = samples
                .iter()
                .filter_map(|s| match s {
                    Sample::Num(x) => Some(*x),
                    Sample::Hist(..) => None,
                })
                .collect();
            let n = nums.len() as f64;
            Sample::Num(match op {
                T_SUM => nums.iter().sum(),
                T_AVG => nums.iter().sum::<f64>() / n,
                T_MAX => nums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                T_MIN => nums.iter().copied().fold(f64::INFINITY, f64::min),
                T_COUNT => n,
                _ => return Err("only sum, avg, min, max and count are supported".into()),
            })
        };
        out.push(Element { labels, value });
    }
    Ok(Value::Vector(out))
}

fn binary(op: u16, keep_bool: bool, lhs: Value, rhs: Value) -> Result<Value, String> {
    let apply = |a: f64, b: f64| -> Option<f64> {
        let truth = |c: bool| {
            if keep_bool {
                Some(if c { 1.0 } else { 0.0 })
            } else {
                c.then_some(a)
            }
        };
        match op {
            T_ADD => Some(a + b),
            T_SUB => Some(a - b),
            T_MUL => Some(a * b),
            T_DIV => Some(a / b),
            T_GTR => truth(a > b),
            T_LSS => truth(a < b),
            T_GTE => truth(a >= b),
            T_LTE => truth(a <= b),
            T_EQLC => truth(a == b),
            T_NEQ => truth(a != b),
            _ => None,
        }
    };
    if !matches!(
        op,
        T_ADD | T_SUB | T_MUL | T_DIV | T_GTR | T_LSS | T_GTE | T_LTE | T_EQLC | T_NEQ
    ) {
        return Err("only + - * / and comparisons are supported".into());
    }
    let num = |e: &Element| match e.value {
        Sample::Num(x) => Some(x),
        Sample::Hist(..) => None,
    };
    Ok(match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(apply(a, b).unwrap_or(f64::NAN)),
        (Value::Vector(v), Value::Scalar(b)) => Value::Vector(
            v.into_iter()
                .filter_map(|e| {
                    let value = apply(num(&e)?, b)?;
                    Some(Element {
                        labels: e.labels,
                        value: Sample::Num(value),
                    })
                })
                .collect(),
        ),
        (Value::Scalar(a), Value::Vector(v)) => Value::Vector(
            v.into_iter()
                .filter_map(|e| {
                    let x = num(&e)?;
                    // A comparison keeps the vector's value, as Prometheus.
                    let value = match apply(a, x)? {
                        _ if op_is_comparison(op) && !keep_bool => x,
                        value => value,
                    };
                    Some(Element {
                        labels: e.labels,
                        value: Sample::Num(value),
                    })
                })
                .collect(),
        ),
        (Value::Vector(l), Value::Vector(r)) => Value::Vector(
            l.into_iter()
                .filter_map(|e| {
                    let other = r.iter().find(|o| o.labels == e.labels)?;
                    let value = apply(num(&e)?, num(other)?)?;
                    Some(Element {
                        labels: e.labels,
                        value: Sample::Num(value),
                    })
                })
                .collect(),
        ),
    })
}

fn op_is_comparison(op: u16) -> bool {
    matches!(op, T_GTR | T_LSS | T_GTE | T_LTE | T_EQLC | T_NEQ)
}

/// Fills a summary template's `{{ $labels.x }}` and `{{ $value }}` (with
/// the humanize functions the shipped rules use).
fn render(template: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = rest[open + 2..open + close].trim();
        if let Some(label) = inner.strip_prefix("$labels.") {
            out.push_str(labels.get(label.trim()).map(String::as_str).unwrap_or(""));
        } else if inner.starts_with("$value") {
            out.push_str(&humanize(inner, value));
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

fn humanize(how: &str, value: f64) -> String {
    if how.contains("humanizeDuration") {
        if value < 1.0 {
            format!("{:.1}ms", value * 1000.0)
        } else {
            format!("{value:.2}s")
        }
    } else if how.contains("humanizePercentage") {
        format!("{:.1}%", value * 100.0)
    } else if how.contains("humanize1024") {
        format!("{:.1}Mi", value / 1024.0 / 1024.0)
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_rule_parses() {
        let rules = parse_rules(SHIPPED_RULES).unwrap();
        assert!(rules.len() >= 10, "{}", rules.len());
        for rule in &rules {
            assert!(
                rule.expr.is_ok(),
                "{}: {:?}",
                rule.name,
                rule.expr.as_ref().err()
            );
            assert!(!rule.severity.is_empty(), "{}", rule.name);
        }
    }

    #[test]
    fn a_template_gets_its_labels_and_value() {
        let labels = BTreeMap::from([("agent".to_owned(), "echo".to_owned())]);
        assert_eq!(
            render(
                "Agent {{ $labels.agent }} P99 {{ $value | humanizeDuration }}",
                &labels,
                2.5
            ),
            "Agent echo P99 2.50s"
        );
    }
}
