//! How commands print: aligned tables for people, JSON for scripts.

use serde_json::Value;

use super::client::Output;

/// Prints `rows` under `headers`, columns padded to their widest cell.
/// The last column is left unpadded so long text wraps naturally.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", text.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A JSON object as `key  value` lines (nested values as compact JSON).
pub fn fields(value: &Value) {
    let rows: Vec<Vec<String>> = value
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(key, value)| vec![key.clone(), plain(value)])
                .collect()
        })
        .unwrap_or_default();
    table(&["FIELD", "VALUE"], &rows);
}

/// A JSON value as a table cell: strings bare, null as "-".
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Prints `value` as pretty JSON, or hands it to `human` for a table.
pub fn print(format: Output, value: &Value, human: impl FnOnce(&Value)) {
    match format {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => human(value),
    }
}
