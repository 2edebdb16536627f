//! The history file (`history.db` in the data dir): samples by resolution,
//! rolled up as they age, trimmed to retention and to a disk budget.
//!
//! A file of its own rather than tables in memory.db: the sampler's
//! commits never queue behind (or in front of) agents' memory writes, the
//! checklist's "database < 1 GB" keeps meaning the knowledge graph, and
//! the budget is a file size an operator can check with `ls`. Commits are
//! not synced one by one (`synchronous = NORMAL` in WAL mode): a power cut
//! may lose the last samples, never the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use libsql::params;
use tokio::sync::Mutex;

use super::point::{Kind, Point};

/// One series' value over one period, as read back.
#[derive(Debug, Clone)]
pub struct Row {
    /// Seconds the period covers (the tier's resolution).
    pub resolution: i64,
    /// Start of the period, Unix seconds.
    pub ts: i64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub point: Point,
}

/// What a metric family is, recorded once per family.
#[derive(Debug, Clone)]
pub struct Family {
    pub kind: Kind,
    /// Bucket upper bounds of a histogram (without `+Inf`).
    pub bounds: Vec<f64>,
}

/// One sample to write.
pub struct NewSample<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub kind: Kind,
    pub bounds: &'a [f64],
    pub point: Point,
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Maintained {
    pub rolled_up: usize,
    pub expired: u64,
    /// Rows deleted to stay within the disk budget.
    pub trimmed: u64,
}

pub struct HistoryStore {
    _db: libsql::Database,
    conn: Mutex<Connection>,
    path: PathBuf,
}

struct Connection {
    conn: libsql::Connection,
    series_ids: HashMap<(String, String), i64>,
    families: HashMap<String, Family>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS families (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    bounds TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS samples (
    resolution INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    series INTEGER NOT NULL,
    count REAL NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    buckets BLOB,
    PRIMARY KEY (resolution, ts, series)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_by_ts ON samples (ts);
";

impl HistoryStore {
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .with_context(|| format!("cannot open the history file {}", path.display()))?;
        let conn = db.connect()?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        for pragma in [
            // Before the first table: freed pages go back to the disk.
            "PRAGMA auto_vacuum = INCREMENTAL",
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
            // A small WAL: the budget is about the disk, not just the file.
            "PRAGMA wal_autocheckpoint = 256",
            "PRAGMA journal_size_limit = 1048576",
            "PRAGMA cache_size = -512",
        ] {
            let mut rows = conn.query(pragma, ()).await?;
            while rows.next().await?.is_some() {}
        }
        conn.execute_batch(SCHEMA)
            .await
            .with_context(|| format!("creating the tables of {}", path.display()))?;
        let mut connection = Connection {
            conn,
            series_ids: HashMap::new(),
            families: HashMap::new(),
        };
        connection.load_families().await?;
        Ok(Self {
            _db: db,
            conn: Mutex::new(connection),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one tick's samples, all at period start `ts` and resolution
    /// `resolution`, in one transaction.
    pub async fn record(
        &self,
        ts: i64,
        resolution: i64,
        samples: &[NewSample<'_>],
    ) -> anyhow::Result<()> {
        let mut guard = self.conn.lock().await;
        let c = &mut *guard;
        let tx = c.conn.transaction().await?;
        for sample in samples {
            if !c.families.contains_key(sample.name) {
                tx.execute(
                    "INSERT OR REPLACE INTO families (name, kind, bounds) VALUES (?1, ?2, ?3)",
                    params![
                        sample.name,
                        sample.kind.as_str(),
                        serde_json::to_string(sample.bounds)?
                    ],
                )
                .await?;
                c.families.insert(
                    sample.name.to_owned(),
                    Family {
                        kind: sample.kind,
                        bounds: sample.bounds.to_vec(),
                    },
                );
            }
            let labels = serde_json::to_string(sample.labels)?;
            let key = (sample.name.to_owned(), labels);
            let id = match c.series_ids.get(&key) {
                Some(id) => *id,
                None => {
                    tx.execute(
                        "INSERT OR IGNORE INTO series (name, labels) VALUES (?1, ?2)",
                        params![key.0.as_str(), key.1.as_str()],
                    )
                    .await?;
                    let mut rows = tx
                        .query(
                            "SELECT id FROM series WHERE name = ?1 AND labels = ?2",
                            params![key.0.as_str(), key.1.as_str()],
                        )
                        .await?;
                    let id: i64 = rows
                        .next()
                        .await?
                        .context("a series row just written")?
                        .get(0)?;
                    c.series_ids.insert(key, id);
                    id
                }
            };
            insert(&tx, resolution, ts, id, &sample.point).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rolls samples past each tier's age into the next tier, deletes what
    /// is past `retention`, then trims the oldest samples until the file's
    /// used pages fit `budget_bytes`.
    pub async fn maintain(
        &self,
        now: i64,
        tiers: [(i64, i64); 3],
        budget_bytes: u64,
    ) -> anyhow::Result<Maintained> {
        let mut guard = self.conn.lock().await;
        let conn = &guard.conn;
        let mut done = Maintained::default();
        for pair in tiers.windows(2) {
            let ((fine, keep), (coarse, _)) = (pair[0], pair[1]);
            let cutoff = (now - keep).div_euclid(coarse) * coarse;
            done.rolled_up += roll_up(conn, fine, coarse, cutoff).await?;
        }
        let (coarse, retention) = tiers[2];
        done.expired = conn
            .execute(
                "DELETE FROM samples WHERE resolution = ?1 AND ts < ?2",
                params![coarse, now - retention],
            )
            .await?;
        for _ in 0..20 {
            if used_bytes(conn).await? <= budget_bytes {
                break;
            }
            // The oldest tenth of the rows (at least one period's).
            let mut rows = conn
                .query(
                    "SELECT ts FROM samples ORDER BY ts LIMIT 1 OFFSET (SELECT count(*) / 10 FROM samples)",
                    (),
                )
                .await?;
            let Some(row) = rows.next().await? else { break };
            let threshold: i64 = row.get(0)?;
            drop(rows);
            done.trimmed += conn
                .execute("DELETE FROM samples WHERE ts <= ?1", params![threshold])
                .await?;
        }
        if done.expired > 0 || done.trimmed > 0 {
            conn.execute(
                "DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series FROM samples)",
                (),
            )
            .await?;
            guard.series_ids.clear();
            let mut rows = guard.conn.query("PRAGMA incremental_vacuum", ()).await?;
            while rows.next().await?.is_some() {}
        }
        Ok(done)
    }

    /// Bytes the file's pages in use take (what the budget limits).
    pub async fn used_bytes(&self) -> anyhow::Result<u64> {
        used_bytes(&self.conn.lock().await.conn).await
    }

    /// The oldest period start on record.
    pub async fn first_ts(&self) -> anyhow::Result<Option<i64>> {
        let guard = self.conn.lock().await;
        let mut rows = guard.conn.query("SELECT min(ts) FROM samples", ()).await?;
        Ok(match rows.next().await? {
            Some(row) => row.get::<Option<i64>>(0)?,
            None => None,
        })
    }

    pub async fn families(&self) -> HashMap<String, Family> {
        self.conn.lock().await.families.clone()
    }

    /// Calls `each` with every sample whose period starts in `[from, to)`,
    /// of the families `names` (all when empty), oldest first. Streams:
    /// a week of history is never held in memory at once.
    pub async fn scan(
        &self,
        from: i64,
        to: i64,
        names: &[&str],
        mut each: impl FnMut(Row),
    ) -> anyhow::Result<()> {
        let guard = self.conn.lock().await;
        let filter = if names.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = names
                .iter()
                .map(|n| format!("'{}'", n.replace('\'', "''")))
                .collect();
            format!("AND s.name IN ({})", quoted.join(","))
        };
        let sql = format!(
            "SELECT p.resolution, p.ts, s.name, s.labels, p.count, p.sum, p.min, p.max, p.buckets
             FROM samples p JOIN series s ON s.id = p.series
             WHERE p.ts >= ?1 AND p.ts < ?2 {filter}
             ORDER BY p.ts"
        );
        let mut rows = guard.conn.query(&sql, params![from, to]).await?;
        while let Some(row) = rows.next().await? {
            let labels: String = row.get(3)?;
            each(Row {
                resolution: row.get(0)?,
                ts: row.get(1)?,
                name: row.get(2)?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
                point: point_at(&row, 4)?,
            });
        }
        Ok(())
    }
}

impl Connection {
    async fn load_families(&mut self) -> anyhow::Result<()> {
        let mut rows = self
            .conn
            .query("SELECT name, kind, bounds FROM families", ())
            .await?;
        while let Some(row) = rows.next().await? {
            let name: String = row.get(0)?;
            let kind: String = row.get(1)?;
            let bounds: String = row.get(2)?;
            if let Some(kind) = Kind::parse(&kind) {
                self.families.insert(
                    name,
                    Family {
                        kind,
                        bounds: serde_json::from_str(&bounds).unwrap_or_default(),
                    },
                );
            }
        }
        Ok(())
    }
}

async fn insert(
    conn: &libsql::Connection,
    resolution: i64,
    ts: i64,
    series: i64,
    point: &Point,
) -> anyhow::Result<()> {
    let buckets = if point.buckets.is_empty() {
        libsql::Value::Null
    } else {
        libsql::Value::Blob(point.encode_buckets())
    };
    conn.execute(
        "INSERT OR REPLACE INTO samples (resolution, ts, series, count, sum, min, max, buckets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            resolution,
            ts,
            series,
            point.count,
            point.sum,
            point.min,
            point.max,
            buckets
        ],
    )
    .await?;
    Ok(())
}

/// Moves the `fine` samples before `cutoff` (a multiple of `coarse`) into
/// `coarse` periods, merged with any coarse sample already there.
async fn roll_up(
    conn: &libsql::Connection,
    fine: i64,
    coarse: i64,
    cutoff: i64,
) -> anyhow::Result<usize> {
    let mut merged: BTreeMap<(i64, i64), Point> = BTreeMap::new();
    let mut rows = conn
        .query(
            "SELECT ts, series, count, sum, min, max, buckets FROM samples
             WHERE resolution = ?1 AND ts < ?2",
            params![fine, cutoff],
        )
        .await?;
    let mut first = None;
    while let Some(row) = rows.next().await? {
        let ts: i64 = row.get(0)?;
        first = Some(first.map_or(ts, |f: i64| f.min(ts)));
        let period = ts.div_euclid(coarse) * coarse;
        merge_row(&mut merged, period, &row)?;
    }
    drop(rows);
    let Some(first) = first else { return Ok(0) };
    let mut rows = conn
        .query(
            "SELECT ts, series, count, sum, min, max, buckets FROM samples
             WHERE resolution = ?1 AND ts >= ?2 AND ts < ?3",
            params![coarse, first.div_euclid(coarse) * coarse, cutoff],
        )
        .await?;
    while let Some(row) = rows.next().await? {
        let ts: i64 = row.get(0)?;
        merge_row(&mut merged, ts, &row)?;
    }
    drop(rows);
    let tx = conn.transaction().await?;
    tx.execute(
        "DELETE FROM samples WHERE resolution = ?1 AND ts < ?2",
        params![fine, cutoff],
    )
    .await?;
    for ((ts, series), point) in &merged {
        insert(&tx, coarse, *ts, *series, point).await?;
    }
    tx.commit().await?;
    Ok(merged.len())
}

/// The point in `row`'s columns `count, sum, min, max, buckets` from `first`.
fn point_at(row: &libsql::Row, first: i32) -> anyhow::Result<Point> {
    let buckets: Option<Vec<u8>> = row.get(first + 4)?;
    Ok(Point {
        count: row.get(first)?,
        sum: row.get(first + 1)?,
        min: row.get(first + 2)?,
        max: row.get(first + 3)?,
        buckets: buckets
            .as_deref()
            .map(Point::decode_buckets)
            .unwrap_or_default(),
    })
}

fn merge_row(
    merged: &mut BTreeMap<(i64, i64), Point>,
    period: i64,
    row: &libsql::Row,
) -> anyhow::Result<()> {
    let point = point_at(row, 2)?;
    let series: i64 = row.get(1)?;
    merged.entry((period, series)).or_default().merge(&point);
    Ok(())
}

async fn used_bytes(conn: &libsql::Connection) -> anyhow::Result<u64> {
    let mut values = [0i64; 3];
    for (value, pragma) in values.iter_mut().zip([
        "PRAGMA page_size",
        "PRAGMA page_count",
        "PRAGMA freelist_count",
    ]) {
        let mut rows = conn.query(pragma, ()).await?;
        *value = rows.next().await?.context("pragma row")?.get(0)?;
    }
    let [page_size, pages, free] = values;
    Ok(((pages - free).max(0) * page_size) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(agent: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("agent".to_owned(), agent.to_owned())])
    }

    async fn totals(store: &HistoryStore) -> (usize, f64, BTreeMap<i64, usize>) {
        let mut rows = 0;
        let mut observations = 0.0;
        let mut by_resolution = BTreeMap::new();
        store
            .scan(0, i64::MAX, &["latency"], |row| {
                rows += 1;
                observations += row.point.count;
                *by_resolution.entry(row.resolution).or_insert(0) += 1;
            })
            .await
            .unwrap();
        (rows, observations, by_resolution)
    }

    fn hist(count: u64) -> Point {
        Point {
            count: count as f64,
            sum: count as f64 * 0.01,
            min: 0.0,
            max: 0.0,
            buckets: vec![count, 0, 0],
        }
    }

    #[tokio::test]
    async fn roll_ups_keep_totals_and_retention_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(&dir.path().join("h.db")).await.unwrap();
        let echo = labels("echo");
        // 120 one-minute samples of 3 observations each, two hours ago to now.
        let start = 1_000_000 * 3600;
        for i in 0..120 {
            let sample = NewSample {
                name: "latency",
                labels: &echo,
                kind: Kind::Histogram,
                bounds: &[0.1, 1.0],
                point: hist(3),
            };
            store.record(start + i * 60, 60, &[sample]).await.unwrap();
        }
        let now = start + 120 * 60;
        // Raw for 30 min, 15-min periods for 1 h, hourly for 150 min.
        let tiers = [(60, 1800), (900, 3600), (3600, 9000)];
        store.maintain(now, tiers, u64::MAX).await.unwrap();
        let (_, observations, by_resolution) = totals(&store).await;
        assert_eq!(
            observations, 360.0,
            "no observation lost: {by_resolution:?}"
        );
        assert_eq!(by_resolution.get(&60), Some(&30), "{by_resolution:?}");
        assert!(by_resolution.contains_key(&900), "{by_resolution:?}");
        assert!(by_resolution.contains_key(&3600), "{by_resolution:?}");
        // An hour on, everything is hourly, and the first hour is past the
        // retention: its 180 observations go, the second hour's stay.
        store.maintain(now + 3600, tiers, u64::MAX).await.unwrap();
        let (_, observations, by_resolution) = totals(&store).await;
        assert_eq!(observations, 180.0, "{by_resolution:?}");
        assert_eq!(store.first_ts().await.unwrap(), Some(start + 3600));
    }

    #[tokio::test]
    async fn the_disk_budget_holds_and_the_newest_samples_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(&dir.path().join("h.db")).await.unwrap();
        let agents: Vec<BTreeMap<String, String>> =
            (0..50).map(|i| labels(&format!("agent-{i}"))).collect();
        for tick in 0..200 {
            let samples: Vec<NewSample> = agents
                .iter()
                .map(|l| NewSample {
                    name: "latency",
                    labels: l,
                    kind: Kind::Histogram,
                    bounds: &[0.1, 1.0],
                    point: hist(1),
                })
                .collect();
            store.record(tick * 60, 60, &samples).await.unwrap();
        }
        let before = store.used_bytes().await.unwrap();
        let budget = 256 * 1024;
        assert!(before > budget, "the test must start over budget: {before}");
        let tiers = [
            (60, i64::MAX / 4),
            (900, i64::MAX / 4),
            (3600, i64::MAX / 4),
        ];
        let done = store.maintain(200 * 60, tiers, budget).await.unwrap();
        assert!(done.trimmed > 0);
        assert!(store.used_bytes().await.unwrap() <= budget);
        let file = std::fs::metadata(store.path()).unwrap().len();
        assert!(
            file < before,
            "freed pages go back to the disk: {file} vs {before}"
        );
        // What is left is the newest.
        let mut newest = 0;
        store
            .scan(0, i64::MAX, &[], |row| newest = newest.max(row.ts))
            .await
            .unwrap();
        assert_eq!(newest, 199 * 60);
    }
}
