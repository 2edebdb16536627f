//! `caxton storage maintenance` and `optimize`: integrity check, free-page
//! reclaim (incremental, or a full VACUUM that rewrites the file),
//! reindex, statistics refresh and WAL truncation; and `analyze`, which
//! only reads. The light steps are safe with the server running
//! (busy_timeout waits for its writer); a full VACUUM needs the file to
//! itself, so run it with the server stopped.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::StoreError;
use super::db::Db;
use crate::config::SqliteConfig;

/// Which steps a maintenance run takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    pub integrity_check: bool,
    pub incremental_vacuum: bool,
    /// VACUUM: rewrites the whole file (needs it to itself).
    pub full_vacuum: bool,
    pub reindex: bool,
    /// ANALYZE every table (`PRAGMA optimize` alone refreshes only what
    /// SQLite thinks is stale).
    pub analyze: bool,
}

impl Steps {
    /// The nightly default: check, reclaim, refresh, truncate.
    pub const DEFAULT: Steps = Steps {
        integrity_check: true,
        incremental_vacuum: true,
        full_vacuum: false,
        reindex: false,
        analyze: true,
    };
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MaintenanceReport {
    /// The steps that ran, in order.
    pub steps: Vec<&'static str>,
    /// `"ok"`, or SQLite's list of problems (`["skipped"]` when not asked).
    pub integrity: Vec<String>,
    pub pages_before: i64,
    pub pages_after: i64,
    pub freelist_pages_before: i64,
    pub page_size: i64,
    pub elapsed_ms: u64,
}

impl MaintenanceReport {
    pub fn healthy(&self) -> bool {
        self.integrity == ["ok"] || self.integrity == ["skipped"]
    }
}

/// What `caxton storage analyze` reads: size, free pages, rows per table.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub path: std::path::PathBuf,
    pub file_bytes: u64,
    pub wal_bytes: u64,
    pub page_size: i64,
    pub pages: i64,
    pub free_pages: i64,
    /// Free pages over all pages: the share a VACUUM would give back.
    pub fragmentation: f64,
    pub journal_mode: String,
    pub tables: Vec<(String, i64)>,
}

/// Reads the memory database at `path` without changing it.
pub async fn analyze(path: &Path, config: &SqliteConfig) -> Result<Analysis, StoreError> {
    if !path.exists() {
        return Err(StoreError::Invalid(format!(
            "no memory database at {}; pass --data-dir (or memory.database_path) of the server",
            path.display()
        )));
    }
    let db = Db::open(path, config).await?;
    let conn = db.writer().await;
    let page_size = number(&conn, "PRAGMA page_size").await?;
    let pages = number(&conn, "PRAGMA page_count").await?;
    let free_pages = number(&conn, "PRAGMA freelist_count").await?;
    let journal_mode = strings(&conn, "PRAGMA journal_mode")
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let names = strings(
        &conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .await?;
    let mut tables = Vec::new();
    for name in names {
        let rows = number(
            &conn,
            &format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\"")),
        )
        .await?;
        tables.push((name, rows));
    }
    Ok(Analysis {
        path: path.to_owned(),
        file_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
        wal_bytes: std::fs::metadata(super::wal_path(path)).map_or(0, |m| m.len()),
        page_size,
        pages,
        free_pages,
        fragmentation: if pages > 0 {
            free_pages as f64 / pages as f64
        } else {
            0.0
        },
        journal_mode,
        tables,
    })
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

/// Runs maintenance `steps` on the memory database at `path`.
pub async fn maintain(
    path: &Path,
    config: &SqliteConfig,
    steps: Steps,
) -> Result<MaintenanceReport, StoreError> {
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
    let page_size = number(&conn, "PRAGMA page_size").await?;
    let mut ran = Vec::new();
    let integrity = if steps.integrity_check {
        ran.push("integrity_check");
        strings(&conn, "PRAGMA integrity_check").await?
    } else {
        vec!["skipped".to_owned()]
    };
    if steps.full_vacuum {
        ran.push("vacuum");
        conn.execute("VACUUM", ()).await.map_err(|e| {
            StoreError::Invalid(format!(
                "VACUUM of {} failed ({e}); it needs the file to itself: stop the server and run it again",
                path.display()
            ))
        })?;
    } else if steps.incremental_vacuum {
        // Reclaims free pages (the file was created with auto_vacuum=INCREMENTAL).
        ran.push("incremental_vacuum");
        strings(&conn, "PRAGMA incremental_vacuum").await?;
    }
    if steps.reindex {
        ran.push("reindex");
        conn.execute("REINDEX", ()).await?;
    }
    if steps.analyze {
        ran.push("analyze");
        conn.execute("ANALYZE", ()).await?;
    }
    ran.push("optimize");
    strings(&conn, "PRAGMA optimize").await?;
    ran.push("wal_checkpoint");
    strings(&conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
    let pages_after = number(&conn, "PRAGMA page_count").await?;
    Ok(MaintenanceReport {
        steps: ran,
        page_size,
        integrity,
        pages_before,
        pages_after,
        freelist_pages_before,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
