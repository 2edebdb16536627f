//! Small commands against a running server: `send`, `conversations show`,
//! `system resources`, `health`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{ApiClient, ServerArgs};
use super::output;

/// `caxton send`: one message, by capability or to a named agent.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Route to whoever offers this capability.
    #[arg(long, conflicts_with = "to", required_unless_present = "to")]
    pub capability: Option<String>,
    /// Send to this agent.
    #[arg(long)]
    pub to: Option<String>,
    /// request, inform, query, propose, accept-proposal, reject-proposal,
    /// failure, not-understood.
    #[arg(long, default_value = "request")]
    pub performative: String,
    /// The content as JSON (a bare word is sent as a JSON string).
    #[arg(long, default_value = "null")]
    pub content: String,
    /// critical, high, normal, background.
    #[arg(long)]
    pub priority: Option<String>,
    /// best, round-robin, broadcast (capability routing only).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Continue this conversation.
    #[arg(long)]
    pub conversation: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl SendArgs {
    pub async fn run(&self) -> anyhow::Result<()> {
        let content: Value = serde_json::from_str(&self.content)
            .unwrap_or_else(|_| Value::String(self.content.clone()));
        let mut body = json!({
            "performative": self.performative,
            "content": content,
        });
        for (key, value) in [
            ("capability", &self.capability),
            ("receiver", &self.to),
            ("priority", &self.priority),
            ("strategy", &self.strategy),
            ("conversation_id", &self.conversation),
        ] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        let answer = ApiClient::new(&self.server)
            .post_json("/api/v1/messages", &body)
            .await?;
        output::print(self.server.output, &answer, |answer| {
            let replies = match answer["replies"].as_array() {
                Some(replies) => replies.clone(),
                None => vec![answer.clone()],
            };
            for reply in replies {
                match reply.get("error").filter(|e| !e.is_null()) {
                    Some(error) => println!(
                        "{}: error {}: {}",
                        output::plain(&reply["agent"]),
                        output::plain(&error["code"]),
                        output::plain(&error["message"])
                    ),
                    None => println!(
                        "{} {}: {}",
                        output::plain(&reply["reply"]["sender"]),
                        output::plain(&reply["reply"]["performative"]),
                        reply["reply"]["content"]
                    ),
                }
            }
            println!("conversation {}", output::plain(&answer["conversation_id"]));
        });
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum ConversationsCommand {
    /// A conversation's messages in order.
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl ConversationsCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        let ConversationsCommand::Show { id, server } = self;
        let thread = ApiClient::new(server)
            .get_json(&format!("/api/v1/conversations/{id}/messages"))
            .await?;
        output::print(server.output, &thread, |thread| {
            let rows: Vec<Vec<String>> = thread["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    vec![
                        output::plain(&m["seq"]),
                        format!(
                            "{} → {}",
                            output::plain(&m["sender"]),
                            output::plain(&m["receiver"])
                        ),
                        output::plain(&m["performative"]),
                        m["content"].to_string(),
                    ]
                })
                .collect();
            output::table(&["SEQ", "FROM → TO", "PERFORMATIVE", "CONTENT"], &rows);
        });
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Memory, store and agents of the running server; with `--last`,
    /// `--trends`, `--breakdown` or `--alerts`, from its recorded history.
    Resources {
        /// The window in seven slices: RSS, CPU, sizes, latency.
        #[arg(long)]
        trends: bool,
        /// The window: 30m, 1h, 7d (default 1h, 7d with --trends).
        #[arg(long)]
        last: Option<String>,
        /// Where the memory and disk go.
        #[arg(long)]
        breakdown: bool,
        /// Alerts that fired in the window.
        #[arg(long)]
        alerts: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl SystemCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        let SystemCommand::Resources {
            trends,
            last,
            breakdown,
            alerts,
            server,
        } = self;
        if *trends || *breakdown || *alerts || last.is_some() {
            let last = last.as_deref().unwrap_or(if *trends { "7d" } else { "1h" });
            return super::operator::system_resources(server, last, *trends, *breakdown, *alerts)
                .await;
        }
        let client = ApiClient::new(server);
        let health = client.get_json("/api/v1/health").await?;
        let memory = client.get_json("/api/v1/memory/stats").await?;
        let resources = json!({
            "uptime_seconds": health["uptime_seconds"],
            "resident_memory_bytes": health["resident_memory_bytes"],
            "agents": health["agents"],
            "embeddings": health["embeddings"],
            "memory_entities": memory["entities"],
            "memory_observations": memory["observations"],
            "database_bytes": memory["database_bytes"],
            "vector_index_bytes": memory["index_bytes"],
            "embedding_cache_hit_rate": memory["embedding_cache_hit_rate"],
        });
        output::print(server.output, &resources, output::fields);
        Ok(())
    }
}

/// `caxton health`: exits 0 when the server answers healthy, 3 when none
/// answers.
pub async fn health(server: &ServerArgs) -> anyhow::Result<()> {
    let health = ApiClient::new(server).get_json("/api/v1/health").await?;
    output::print(server.output, &health, |health| {
        println!(
            "{} (version {}, up {} s, {} agents, embeddings {})",
            output::plain(&health["status"]),
            output::plain(&health["version"]),
            output::plain(&health["uptime_seconds"]),
            output::plain(&health["agents"]),
            output::plain(&health["embeddings"])
        );
    });
    Ok(())
}
