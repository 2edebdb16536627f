//! `csv_parser` tool: CSV text in, JSON rows and per-column statistics out.
//!
//! Input: `{"csv": "a,b\n1,2", "has_headers": true, "delimiter": ","}`
//! (`has_headers` defaults to true, `delimiter` to a comma). Without headers
//! the columns are named `column_1`, `column_2`, ...

use std::collections::BTreeSet;

use caxton_agent::{Error, Tool};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    csv: String,
    #[serde(default = "default_true")]
    has_headers: bool,
    #[serde(default = "default_delimiter")]
    delimiter: char,
}

fn default_true() -> bool {
    true
}

fn default_delimiter() -> char {
    ','
}

/// Running statistics for one column.
#[derive(Default)]
struct ColumnStats {
    count: usize,
    empty: usize,
    numeric: usize,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    distinct: BTreeSet<String>,
}

/// Past this many distinct values a column reports `distinct_capped`, so a
/// large file cannot make the tool's memory grow with the number of rows.
const MAX_DISTINCT_TRACKED: usize = 1000;

impl ColumnStats {
    fn add(&mut self, field: &str) -> Value {
        self.count += 1;
        if field.is_empty() {
            self.empty += 1;
            return Value::Null;
        }
        if self.distinct.len() < MAX_DISTINCT_TRACKED {
            self.distinct.insert(field.to_owned());
        }
        match field.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => {
                self.numeric += 1;
                self.sum += n;
                self.min = Some(self.min.map_or(n, |m| m.min(n)));
                self.max = Some(self.max.map_or(n, |m| m.max(n)));
                json!(n)
            }
            _ => Value::String(field.to_owned()),
        }
    }

    fn to_json(&self) -> Value {
        let mut stats = json!({
            "count": self.count,
            "empty": self.empty,
            "numeric": self.numeric,
            "distinct": self.distinct.len(),
            "distinct_capped": self.distinct.len() >= MAX_DISTINCT_TRACKED,
        });
        if self.numeric > 0 {
            stats["min"] = json!(self.min);
            stats["max"] = json!(self.max);
            stats["sum"] = json!(self.sum);
            stats["mean"] = json!(self.sum / self.numeric as f64);
        }
        stats
    }
}

fn parse(input: Input) -> Result<Value, Error> {
    let delimiter = u8::try_from(input.delimiter)
        .map_err(|_| Error::InvalidInput("delimiter must be a single ASCII character".into()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(input.has_headers)
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(input.csv.as_bytes());

    let mut columns: Vec<String> = if input.has_headers {
        let headers = reader
            .headers()
            .map_err(|e| Error::InvalidInput(format!("bad CSV header: {e}")))?;
        headers.iter().map(str::to_owned).collect()
    } else {
        Vec::new()
    };
    let mut stats: Vec<ColumnStats> = columns.iter().map(|_| ColumnStats::default()).collect();
    let mut rows = Vec::new();

    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::InvalidInput(format!("bad CSV: {e}")))?;
        if columns.is_empty() {
            columns = (1..=record.len()).map(|i| format!("column_{i}")).collect();
            stats = columns.iter().map(|_| ColumnStats::default()).collect();
        }
        if record.len() != columns.len() {
            return Err(Error::InvalidInput(format!(
                "row {} has {} fields, expected {}",
                index + 1,
                record.len(),
                columns.len()
            )));
        }
        let mut row = Map::new();
        for ((column, field), column_stats) in columns.iter().zip(record.iter()).zip(&mut stats) {
            row.insert(column.clone(), column_stats.add(field));
        }
        rows.push(Value::Object(row));
    }

    let stats: Map<String, Value> = columns
        .iter()
        .zip(&stats)
        .map(|(column, s)| (column.clone(), s.to_json()))
        .collect();
    Ok(json!({
        "columns": columns,
        "row_count": rows.len(),
        "rows": rows,
        "stats": stats,
    }))
}

struct CsvParser;

impl Tool for CsvParser {
    const NAME: &'static str = "csv_parser";
    const DESCRIPTION: &'static str = "Parses CSV text into JSON rows with per-column statistics \
                                       (count, empty, numeric min/max/mean/sum, distinct values).";
    type Input = Input;
    type Output = Value;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "required": ["csv"],
            "additionalProperties": false,
            "properties": {
                "csv": {"type": "string", "description": "CSV text"},
                "has_headers": {"type": "boolean", "default": true},
                "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","}
            }
        })
    }

    fn invoke(input: Input) -> Result<Value, Error> {
        parse(input)
    }
}

caxton_agent::export_tool!(CsvParser);
