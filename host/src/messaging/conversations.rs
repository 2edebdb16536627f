//! Conversations persisted in the store: every delivered message and reply
//! in order, its participants, and its last activity (idle ones close).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::runtime::Message;
use crate::store::{Db, StoreError, now_ms};

use crate::runtime::Performative;

/// One message of a thread, as `GET /api/v1/conversations/{id}/messages` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreadMessage {
    pub seq: i64,
    pub id: String,
    pub performative: Performative,
    pub sender: String,
    pub receiver: Option<String>,
    pub in_reply_to: Option<String>,
    pub content: serde_json::Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConversationView {
    pub id: String,
    pub status: String,
    pub participants: Vec<String>,
    pub messages: i64,
    pub created_at: i64,
    pub last_activity: i64,
}

/// Messages waiting to be written, at most: past this, recording waits
/// (backpressure) instead of growing memory.
const PENDING: usize = 4096;
/// Messages written per transaction at most.
const BATCH: usize = 256;
/// How long a message nobody waits for yet may wait for company (its
/// reply, above all) before it is written alone.
const HOLD: std::time::Duration = std::time::Duration::from_millis(2);

struct Pending {
    /// `None` for a flush marker: nothing to write, only to acknowledge.
    record: Option<(String, Message)>,
    written: Option<oneshot::Sender<Result<(), String>>>,
}

pub struct Conversations {
    db: Arc<Db>,
    writes: mpsc::Sender<Pending>,
}

impl Conversations {
    /// Starts the writer task. Messages are written in batches, one
    /// transaction each (group commit): one writer lock and one commit for
    /// many messages instead of one each, which was the ceiling on
    /// messages per second.
    pub fn start(db: Arc<Db>) -> Self {
        let (writes, mut pending) = mpsc::channel::<Pending>(PENDING);
        let writer = db.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while pending.recv_many(&mut batch, BATCH).await > 0 {
                // Nobody waits for these yet: a message is queued when its
                // call starts, and the reply usually follows within a
                // fraction of a millisecond. Holding it that long writes
                // the pair in one commit instead of two.
                let hold = tokio::time::Instant::now() + HOLD;
                while batch.len() < BATCH && batch.iter().all(|item| item.written.is_none()) {
                    let room = BATCH - batch.len();
                    match tokio::time::timeout_at(hold, pending.recv_many(&mut batch, room)).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let outcome = write_batch(&writer, &batch).await;
                if let Err(error) = &outcome {
                    tracing::error!(%error, messages = batch.len(), "recording messages failed");
                }
                for item in batch.drain(..) {
                    if let Some(written) = item.written {
                        let _ =
                            written.send(outcome.as_ref().map(|_| ()).map_err(ToString::to_string));
                    }
                }
            }
        });
        Self { db, writes }
    }

    /// Appends `message` to conversation `id` (creating or reopening it,
    /// adding its sender and receiver as participants) and waits until it
    /// is committed, with every message queued before it.
    pub async fn record(&self, id: &str, message: &Message) -> Result<(), String> {
        self.send(Some((id.to_owned(), message.clone())), true)
            .await
    }

    /// Queues `message` without waiting for the commit; a later
    /// [`Self::record`] or [`Self::flush`] returns only once it is written.
    pub async fn record_later(&self, id: &str, message: &Message) -> Result<(), String> {
        self.send(Some((id.to_owned(), message.clone())), false)
            .await
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), String> {
        self.send(None, true).await
    }

    async fn send(&self, record: Option<(String, Message)>, wait: bool) -> Result<(), String> {
        let stopped = || "the conversation writer stopped".to_owned();
        let (written, done) = if wait {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        self.writes
            .send(Pending { record, written })
            .await
            .map_err(|_| stopped())?;
        match done {
            Some(done) => done.await.map_err(|_| stopped())?,
            None => Ok(()),
        }
    }

    /// Active conversations `agent` takes part in.
    pub async fn active_for(&self, agent: &str) -> Result<i64, StoreError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT count(*) FROM conversation_participants p
                 JOIN conversations c ON c.id = p.conversation_id
                 WHERE p.agent = ?1 AND c.status = 'active'",
                [agent],
            )
            .await?;
        Ok(rows.next().await?.map_or(Ok(0), |r| r.get::<i64>(0))?)
    }

    /// Whether `agent` already takes part in active conversation `id`.
    pub async fn is_participant(&self, id: &str, agent: &str) -> Result<bool, StoreError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT 1 FROM conversation_participants p
                 JOIN conversations c ON c.id = p.conversation_id
                 WHERE p.conversation_id = ?1 AND p.agent = ?2 AND c.status = 'active'",
                [id, agent],
            )
            .await?;
        Ok(rows.next().await?.is_some())
    }

    pub async fn get(&self, id: &str) -> Result<Option<ConversationView>, StoreError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT status, created_at, last_activity,
                        (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id)
                 FROM conversations c WHERE id = ?1",
                [id],
            )
            .await?;
        let Some(row) = rows.next().await? else {
            return Ok(None);
        };
        let (status, created_at, last_activity, messages) = (
            row.get::<String>(0)?,
            row.get::<i64>(1)?,
            row.get::<i64>(2)?,
            row.get::<i64>(3)?,
        );
        drop(rows);
        let mut rows = conn
            .query(
                "SELECT agent FROM conversation_participants WHERE conversation_id = ?1 ORDER BY agent",
                [id],
            )
            .await?;
        let mut participants = Vec::new();
        while let Some(row) = rows.next().await? {
            participants.push(row.get::<String>(0)?);
        }
        Ok(Some(ConversationView {
            id: id.to_owned(),
            status,
            participants,
            messages,
            created_at,
            last_activity,
        }))
    }

    /// The conversations with the newest messages, newest first (by their
    /// last message's place in the log). Found from the tail of the message
    /// log (its primary key), the newest `limit` × 64 messages, so the cost
    /// does not grow with the conversations kept; a conversation quieter
    /// than that window is left out.
    pub async fn latest(&self, limit: u32) -> Result<Vec<ConversationView>, StoreError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "WITH recent AS (
                     SELECT conversation_id, max(seq) AS last_seq FROM
                         (SELECT conversation_id, seq FROM conversation_messages
                          ORDER BY seq DESC LIMIT ?1 * 64)
                     GROUP BY conversation_id ORDER BY last_seq DESC LIMIT ?1)
                 SELECT c.id, c.status, c.created_at, c.last_activity,
                        (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id),
                        (SELECT group_concat(agent, char(10)) FROM
                            (SELECT agent FROM conversation_participants p
                             WHERE p.conversation_id = c.id ORDER BY agent))
                 FROM recent r JOIN conversations c ON c.id = r.conversation_id
                 ORDER BY r.last_seq DESC",
                [i64::from(limit)],
            )
            .await?;
        let mut views = Vec::new();
        while let Some(row) = rows.next().await? {
            let participants: Option<String> = row.get(5)?;
            views.push(ConversationView {
                id: row.get(0)?,
                status: row.get(1)?,
                created_at: row.get(2)?,
                last_activity: row.get(3)?,
                messages: row.get(4)?,
                participants: participants
                    .map(|p| p.split('\n').map(str::to_owned).collect())
                    .unwrap_or_default(),
            });
        }
        Ok(views)
    }

    /// The thread in order; `None` when no such conversation exists.
    pub async fn messages(&self, id: &str) -> Result<Option<Vec<ThreadMessage>>, StoreError> {
        if self.get(id).await?.is_none() {
            return Ok(None);
        }
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT seq, message_id, performative, sender, receiver, in_reply_to, content, created_at
                 FROM conversation_messages WHERE conversation_id = ?1 ORDER BY seq",
                [id],
            )
            .await?;
        let mut thread = Vec::new();
        while let Some(row) = rows.next().await? {
            let performative: String = row.get(2)?;
            let content: String = row.get(6)?;
            thread.push(ThreadMessage {
                seq: row.get(0)?,
                id: row.get(1)?,
                performative: serde_json::from_value(serde_json::Value::String(performative))
                    .unwrap_or_default(),
                sender: row.get(3)?,
                receiver: row.get(4)?,
                in_reply_to: row.get(5)?,
                content: serde_json::from_str(&content)
                    .unwrap_or(serde_json::Value::String(content)),
                created_at: row.get(7)?,
            });
        }
        Ok(Some(thread))
    }

    /// The newest `limit` messages of conversation `id` that `agent` sent
    /// or received, other than `except`, oldest first: what an agent reads
    /// as its history.
    pub async fn recent(
        &self,
        id: &str,
        agent: &str,
        except: &str,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT message_id, performative, sender, receiver, in_reply_to, content
                 FROM conversation_messages
                 WHERE conversation_id = ?1 AND message_id <> ?2 AND (sender = ?4 OR receiver = ?4)
                 ORDER BY seq DESC LIMIT ?3",
                libsql::params![id, except, i64::from(limit), agent],
            )
            .await?;
        let mut messages = Vec::new();
        while let Some(row) = rows.next().await? {
            let performative: String = row.get(1)?;
            messages.push(Message {
                id: row.get(0)?,
                performative: serde_json::from_value(serde_json::Value::String(performative))
                    .unwrap_or_default(),
                sender: row.get(2)?,
                receiver: row.get(3)?,
                capability: None,
                conversation_id: Some(id.to_owned()),
                reply_with: None,
                in_reply_to: row.get(4)?,
                content: row.get(5)?,
            });
        }
        messages.reverse();
        Ok(messages)
    }

    /// Closes conversations idle longer than `idle`, deletes closed ones
    /// older than `retention`; returns (closed, deleted).
    pub async fn expire(
        &self,
        idle: Duration,
        retention: Duration,
    ) -> Result<(u64, u64), StoreError> {
        let now = now_ms();
        let writer = self.db.writer().await;
        let closed = writer
            .execute(
                "UPDATE conversations SET status = 'closed'
                 WHERE status = 'active' AND last_activity < ?1",
                [now - idle.as_millis() as i64],
            )
            .await?;
        let deleted = writer
            .execute(
                "DELETE FROM conversations WHERE status = 'closed' AND last_activity < ?1",
                [now - retention.as_millis() as i64],
            )
            .await?;
        Ok((closed, deleted))
    }
}

/// Rows per multi-row INSERT: 8 values each stays far below SQLite's
/// limit on bound parameters.
const ROWS_PER_STATEMENT: usize = 64;

/// Writes a batch of messages in one transaction: one statement each for
/// the conversations, their participants and the messages (of up to
/// [`ROWS_PER_STATEMENT`] rows), not three or four per message — parsing
/// SQL was a fifth of the message path's CPU.
async fn write_batch(db: &Db, batch: &[Pending]) -> Result<(), StoreError> {
    let records: Vec<&(String, Message)> = batch.iter().filter_map(|p| p.record.as_ref()).collect();
    if records.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut conversations: Vec<&str> = Vec::new();
    let mut participants: Vec<(&str, &str)> = Vec::new();
    for (id, message) in &records {
        if !conversations.contains(&id.as_str()) {
            conversations.push(id);
        }
        for agent in [Some(&message.sender), message.receiver.as_ref()]
            .into_iter()
            .flatten()
        {
            if !participants.contains(&(id.as_str(), agent.as_str())) {
                participants.push((id, agent));
            }
        }
    }
    let mut statements: Vec<(String, Vec<libsql::Value>)> = Vec::new();
    for chunk in conversations.chunks(ROWS_PER_STATEMENT) {
        statements.push((
            format!(
                "INSERT INTO conversations (id, status, created_at, last_activity) VALUES {}
                 ON CONFLICT (id) DO UPDATE SET last_activity = excluded.last_activity, status = 'active'",
                rows(chunk.len(), "(?, 'active', ?, ?)")
            ),
            chunk
                .iter()
                .flat_map(|id| [libsql::Value::from(*id), now.into(), now.into()])
                .collect(),
        ));
    }
    for chunk in participants.chunks(ROWS_PER_STATEMENT) {
        statements.push((
            format!(
                "INSERT INTO conversation_participants (conversation_id, agent) VALUES {}
                 ON CONFLICT DO NOTHING",
                rows(chunk.len(), "(?, ?)")
            ),
            chunk
                .iter()
                .flat_map(|(id, agent)| [libsql::Value::from(*id), (*agent).into()])
                .collect(),
        ));
    }
    // In arrival order: seq is the thread's order.
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut values = Vec::with_capacity(chunk.len() * 8);
        for (id, message) in chunk {
            let performative = serde_json::to_value(message.performative)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            values.extend([
                id.as_str().into(),
                message.id.as_str().into(),
                performative.into(),
                message.sender.as_str().into(),
                message
                    .receiver
                    .clone()
                    .map_or(libsql::Value::Null, Into::into),
                message
                    .in_reply_to
                    .clone()
                    .map_or(libsql::Value::Null, Into::into),
                message.content.as_str().into(),
                now.into(),
            ]);
        }
        statements.push((
            format!(
                "INSERT INTO conversation_messages
                     (conversation_id, message_id, performative, sender, receiver, in_reply_to, content, created_at)
                 VALUES {}",
                rows(chunk.len(), "(?, ?, ?, ?, ?, ?, ?, ?)")
            ),
            values,
        ));
    }
    // One write in the store's group commit, answered once committed:
    // the reply it holds up never waits for an fsync (memory writes in
    // the same group still wait for theirs).
    db.write_committed(|tx| async move {
        for (sql, values) in statements {
            tx.execute(&sql, libsql::params_from_iter(values)).await?;
        }
        Ok(((), None))
    })
    .await
}

/// `n` copies of `row`, comma-separated: the VALUES of a multi-row INSERT.
fn rows(n: usize, row: &str) -> String {
    vec![row; n].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SqliteConfig;

    fn message(n: usize, sender: &str, receiver: &str) -> Message {
        Message {
            id: format!("m{n}"),
            performative: Performative::Request,
            sender: sender.into(),
            receiver: Some(receiver.into()),
            capability: None,
            conversation_id: None,
            reply_with: None,
            in_reply_to: None,
            content: format!("{{\"n\":{n}}}"),
        }
    }

    /// More records than one statement holds, interleaved across three
    /// conversations, queued without waiting: each thread reads back in
    /// order, with its participants once each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_across_conversations_keep_each_thread_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(
            Db::open(&dir.path().join("memory.db"), &SqliteConfig::default())
                .await
                .unwrap(),
        );
        let conversations = Conversations::start(db);
        let ids = ["c-one", "c-two", "c-three"];
        let total = ROWS_PER_STATEMENT * 3 + 7;
        for n in 0..total {
            let id = ids[n % 3];
            let (sender, receiver) = if n % 2 == 0 {
                ("client", "echo")
            } else {
                ("echo", "client")
            };
            conversations
                .record_later(id, &message(n, sender, receiver))
                .await
                .unwrap();
        }
        conversations.flush().await.unwrap();
        for (k, id) in ids.iter().enumerate() {
            let thread = conversations.messages(id).await.unwrap().unwrap();
            let order: Vec<String> = thread.iter().map(|m| m.id.clone()).collect();
            let expected: Vec<String> = (0..total)
                .filter(|n| n % 3 == k)
                .map(|n| format!("m{n}"))
                .collect();
            assert_eq!(order, expected, "{id}");
            let view = conversations.get(id).await.unwrap().unwrap();
            let mut participants = view.participants.clone();
            participants.sort();
            assert_eq!(participants, ["client", "echo"], "{id}");
            assert_eq!(view.messages as usize, expected.len());
            assert_eq!(view.status, "active");
        }
    }
}
