//! `caxton storage maintenance`: integrity check, free-page reclaim,
//! statistics refresh and WAL truncation. Safe with the server running
//! (busy_timeout waits for its writer) or stopped.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::StoreError;
use super::db::Db;
use crate::config::SqliteConfig;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MaintenanceReport {
    /// `"ok"`, or SQLite's list of problems.
    pub integrity: Vec<String>,
    pub pages_before: i64,
    pub pages_after: i64,
    pub freelist_pages_before: i64,
    pub elapsed_ms: u64,
}

impl MaintenanceReport {
    pub fn healthy(&self) -> bool {
        self.integrity == ["ok"]
    }
}

async fn strings(conn: &libsql::Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut rows = conn.query(sql, ()).await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(match row.get_value(0)? {
            libsql::Value::Text(text) => text,
            libsql::Value::Integer(n) => n.to_string(),
            other => format!("{other:?}"),
        });
    }
    Ok(out)
}

async fn number(conn: &libsql::Connection, sql: &str) -> Result<i64, StoreError> {
    Ok(strings(conn, sql)
        .await?
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// Runs maintenance on the memory database at `path`.
pub async fn maintain(path: &Path, config: &SqliteConfig) -> Result<MaintenanceReport, StoreError> {
    if !path.exists() {
        return Err(StoreError::Invalid(format!(
            "no memory database at {}; pass --data-dir (or memory.database_path) of the server",
            path.display()
        )));
    }
    let started = Instant::now();
    let db = Db::open(path, config).await?;
    let conn = db.writer().await;
    let pages_before = number(&conn, "PRAGMA page_count").await?;
    let freelist_pages_before = number(&conn, "PRAGMA freelist_count").await?;
    let integrity = strings(&conn, "PRAGMA integrity_check").await?;
    // Reclaims free pages (the file was created with auto_vacuum=INCREMENTAL).
    strings(&conn, "PRAGMA incremental_vacuum").await?;
    conn.execute("ANALYZE", ()).await?;
    strings(&conn, "PRAGMA optimize").await?;
    strings(&conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
    let pages_after = number(&conn, "PRAGMA page_count").await?;
    Ok(MaintenanceReport {
        integrity,
        pages_before,
        pages_after,
        freelist_pages_before,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
