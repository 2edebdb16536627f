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
    (
        5,
        "0005_store_identity.sql",
        include_str!("../../../migrations/0005_store_identity.sql"),
    ),
];

/// Brings the schema up to date; returns how many migrations ran. What is
/// applied is read first, so a store whose schema is current starts
/// without writing (a replica whose primary is down, say). On a replica,
/// `catch_up` brings the file up to each write before the next read
/// (reads are local, writes go to the primary).
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
    let applied = match applied(conn).await {
        Ok(applied) => applied,
        // A new store: no table yet.
        Err(_) => {
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
            applied(conn).await?
        }
    };

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
        let same = |recorded: &str| {
            if recorded == checksum {
                Ok(())
            } else {
                Err(StoreError::MigrationChanged {
                    name: name.to_owned(),
                })
            }
        };
        if let Some((_, recorded)) = applied.iter().find(|(v, _)| *v == version) {
            same(recorded)?;
            continue;
        }
        let tx = conn
            .transaction_with_behavior(libsql::TransactionBehavior::Immediate)
            .await?;
        // Checked again inside the transaction: hosts sharing a primary
        // that start together would otherwise both apply it.
        let mut rows = tx
            .query(
                "SELECT checksum FROM schema_migrations WHERE version = ?1",
                [version],
            )
            .await?;
        let recorded = match rows.next().await? {
            Some(row) => Some(row.get::<String>(0)?),
            None => None,
        };
        drop(rows);
        if let Some(recorded) = recorded {
            tx.rollback().await?;
            same(&recorded)?;
            continue;
        }
        tracing::info!(migration = name, "applying migration");
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

/// The migrations a store records, by version.
async fn applied(conn: &libsql::Connection) -> Result<Vec<(i64, String)>, StoreError> {
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
    Ok(applied)
}
