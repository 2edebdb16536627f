//! `caxton cluster status`: the fleet as a running server sees it.

use clap::Subcommand;
use serde_json::Value;

use super::client::{ApiClient, ServerArgs};
use super::output;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The hosts of the fleet, their agents and when each was last heard.
    /// Exits 1 when the server is configured for a fleet but not connected.
    Status {
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl ClusterCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        match self {
            ClusterCommand::Status { server } => status(server).await,
        }
    }
}

async fn status(server: &ServerArgs) -> anyhow::Result<()> {
    let answer = ApiClient::new(server)
        .get_json("/api/v1/cluster/nodes")
        .await?;
    output::print(server.output, &answer, |answer| {
        if answer["enabled"] != Value::Bool(true) {
            println!("this host is not part of a fleet; set [cluster] nats_url in caxton.toml");
            return;
        }
        let connected = if answer["connected"] == Value::Bool(true) {
            "connected"
        } else {
            "NOT CONNECTED (local agents still answer; reconnecting)"
        };
        println!(
            "node {} on {}: {connected}",
            output::plain(&answer["node"]),
            output::plain(&answer["nats_url"])
        );
        let rows: Vec<Vec<String>> = answer["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|node| {
                let agents = node["agents"].as_array().cloned().unwrap_or_default();
                let mut capabilities: Vec<String> = agents
                    .iter()
                    .flat_map(|a| a["capabilities"].as_array().cloned().unwrap_or_default())
                    .map(|c| output::plain(&c))
                    .collect();
                capabilities.sort();
                capabilities.dedup();
                let name = output::plain(&node["name"]);
                vec![
                    if node["self"] == Value::Bool(true) {
                        format!("{name} (this host)")
                    } else {
                        name
                    },
                    agents.len().to_string(),
                    capabilities.join(","),
                    format!("{} ms", output::plain(&node["last_seen_ms"])),
                    output::plain(&node["version"]),
                ]
            })
            .collect();
        output::table(
            &["NODE", "AGENTS", "CAPABILITIES", "LAST SEEN", "VERSION"],
            &rows,
        );
    });
    if answer["enabled"] == Value::Bool(true) && answer["connected"] != Value::Bool(true) {
        anyhow::bail!(
            "this host is not connected to the fleet's NATS server at {}; check that it runs and is reachable",
            output::plain(&answer["nats_url"])
        );
    }
    Ok(())
}
