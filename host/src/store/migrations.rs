//! Schema migrations: the numbered SQL files of `migrations/`, compiled in,
//! applied in order at startup, each in its own transaction and recorded
//! with its checksum. A database from a newer Caxton is refused.

use sha2::{Digest, Sha256};

use super::StoreError;

/// `(version, name, sql)`, in order. Add new files here; never edit one
/// that has shipped (its checksum is recorded in every database).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_knowledge_graph.sql",
        include_str!("../../../migrations/0001_knowledge_graph.sql"),
    ),
    (
        2,
        "0002_conversations.sql",
        include_str!("../../../migrations/0002_conversations.sql"),
    ),
    (
        3,
        "0003_deployments.sql",
        include_str!("../../../migrations/0003_deployments.sql"),
    ),
    (
        4,
        "0004_observations_without_embedding.sql",
        include_str!("../../../migrations/0004_observations_without_embedding.sql"),
    ),
];

/// Brings the schema up to date; returns how many migrations ran. On a
/// replica, `catch_up` brings the file up to each write before the next
/// read (reads are local, writes go to the primary).
pub async fn migrate(
    conn: &libsql::Connection,
    catch_up: Option<&super::CatchUp>,
) -> Result<usize, StoreError> {
    let caught_up = || async {
        match catch_up {
            Some(catch_up) => catch_up().await.map_err(StoreError::from),
            None => Ok(()),
        }
    };
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT    NOT NULL,
             checksum   TEXT    NOT NULL,
             applied_at INTEGER NOT NULL
         )",
        (),
    )
    .await?;
    caught_up().await?;

    let mut applied = Vec::new();
    let mut rows = conn
        .query(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            (),
        )
        .await?;
    while let Some(row) = rows.next().await? {
        applied.push((row.get::<i64>(0)?, row.get::<String>(1)?));
    }
    drop(rows);

    let newest_known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some((version, _)) = applied.iter().find(|(v, _)| *v > newest_known) {
        return Err(StoreError::NewerSchema {
            found: *version,
            supported: newest_known,
        });
    }

    let mut ran = 0;
    for &(version, name, sql) in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        if let Some((_, recorded)) = applied.iter().find(|(v, _)| *v == version) {
            if *recorded != checksum {
                return Err(StoreError::MigrationChanged {
                    name: name.to_owned(),
                });
            }
            continue;
        }
        tracing::info!(migration = name, "applying migration");
        let tx = conn.transaction().await?;
        tx.execute_batch(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            libsql::params![version, name, checksum, super::now_ms()],
        )
        .await?;
        tx.commit().await?;
        caught_up().await?;
        ran += 1;
    }
    Ok(ran)
}
