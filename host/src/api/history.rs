//! `GET /api/v1/history` and `GET /api/v1/history/alerts`: the host's
//! recorded metrics over a window, and the alert rules evaluated over it.
//! The operator commands (`caxton check daily`, `--last 7d`) read these.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use warp::http::StatusCode;

use super::ApiState;
use super::error::ApiError;

/// Trend slices at most: a table, not a time series export.
const MAX_SLICES: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// The window: `1h`, `7d`, `30m`. Default: `1h`.
    pub last: Option<String>,
    /// Comma-separated metric names; default: every series.
    pub series: Option<String>,
    /// Equal slices of the window to give each series' trend in.
    pub slices: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    pub last: Option<String>,
    /// Comma-separated severities (`warning,critical`); default: all.
    pub severity: Option<String>,
}

/// Parses a window such as `7d` or `1h`, with the accepted forms in the
/// error.
pub fn parse_window(text: Option<&str>) -> Result<Duration, ApiError> {
    crate::history::parse_window(text.unwrap_or("1h"))
        .map_err(|e| ApiError::bad_request(format!("last: {e}")))
}

fn history(state: &ApiState) -> Result<&crate::history::History, ApiError> {
    state.history.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "history_off",
            "this host records no history: set [history] enabled = true (the default) and restart",
        )
    })
}

fn failed(error: anyhow::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "history_failed",
        format!("reading the history failed: {error:#}"),
    )
}

/// `GET /api/v1/history`
pub async fn report(
    state: &ApiState,
    query: &ReportQuery,
) -> Result<(StatusCode, Value), ApiError> {
    let window = parse_window(query.last.as_deref())?;
    let slices = query.slices.unwrap_or(0);
    if slices > MAX_SLICES {
        return Err(ApiError::bad_request(format!(
            "slices={slices} is too many: at most {MAX_SLICES}"
        )));
    }
    let names: Vec<&str> = query
        .series
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let body = history(state)?
        .report(window, &names, slices)
        .await
        .map_err(failed)?;
    Ok((StatusCode::OK, body))
}

/// `GET /api/v1/history/alerts`
pub async fn alerts(
    state: &ApiState,
    query: &AlertsQuery,
) -> Result<(StatusCode, Value), ApiError> {
    let window = parse_window(query.last.as_deref())?;
    let severities: Vec<String> = query
        .severity
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for severity in &severities {
        if !["info", "warning", "critical"].contains(&severity.as_str()) {
            return Err(ApiError::bad_request(format!(
                "severity {severity:?} is not one of info, warning, critical"
            )));
        }
    }
    let body = history(state)?
        .alerts(window, &severities)
        .await
        .map_err(failed)?;
    Ok((StatusCode::OK, body))
}
