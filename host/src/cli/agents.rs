//! `caxton agents ...`: the agents of a running server, and offline
//! validation of a manifest with its component.

use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{ApiClient, Output, ServerArgs};
use super::output;
use super::run_once::RunOnce;
use crate::agents::{Manifest, PluginKind};
use crate::scaffold::{Kind, Lang, NewProject, project_dir};

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Per agent over a window of the recorded history: calls, p50/p99
    /// response time, fuel, and the traps of the window.
    PerformanceReport {
        /// The window: 30m, 1h, 7d.
        #[arg(long, default_value = "24h")]
        last: String,
        /// Name the slowest agents by p99.
        #[arg(long)]
        include_slowest: bool,
        /// How many slowest agents to name.
        #[arg(long, default_value_t = 5)]
        slowest: usize,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Deployed agents, filtered by capability or status.
    List {
        #[arg(long)]
        capability: Option<String>,
        /// `running` or `degraded`.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Everything about one agent: manifest facts, status, queue, counters.
    Show {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One line: running or degraded (and why). Exits 1 when degraded.
    Status {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Deploy (or with --replace, replace) an agent from its manifest; the
    /// component is the manifest's `component` unless --component is given.
    Deploy {
        manifest: PathBuf,
        #[arg(long)]
        component: Option<PathBuf>,
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Re-read an agent's manifest file and component now (hot reload does
    /// this by itself when the files change).
    Reload {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove an agent deployed through the API.
    Remove {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Check a manifest and its component without a server: every problem
    /// with its line and column. Exits 1 when there are problems.
    Validate { manifest: PathBuf },
    /// Write a new plugin project (manifest, source, the WIT it targets, a
    /// build script and a README) that builds with its language's tools.
    New {
        /// The plugin's name (an agent: kebab-case; a tool: snake_case).
        name: String,
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        #[arg(long, value_enum, default_value_t = Kind::Agent)]
        kind: Kind,
        /// Host interfaces to grant beyond the template's (`log`, `memory`):
        /// `tools`, `messaging`, `llm`; for a Rust tool, `http`.
        #[arg(long = "grant", value_name = "INTERFACE")]
        grants: Vec<String>,
        /// Where to write the project. Default: ./NAME
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Load one agent or tool in a throwaway host, give it one message (or
    /// tool input) and print the answer and what the call used.
    Run {
        manifest: PathBuf,
        /// The message content (or the tool's input), as JSON.
        #[arg(long)]
        message: String,
        /// The message's performative (agents only).
        #[arg(long, default_value = "request")]
        performative: String,
        /// A config file for the throwaway host (its `[llm]` providers, say).
        #[arg(long, env = "CAXTON_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Agents by mean handling time, slowest first.
    PerformanceSummary {
        #[arg(long, default_value_t = 10)]
        show_slowest: usize,
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl AgentsCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        match self {
            AgentsCommand::List {
                capability,
                status,
                server,
            } => {
                let mut query = String::from("/api/v1/agents?page_size=500");
                if let Some(capability) = capability {
                    query.push_str(&format!("&capability={capability}"));
                }
                if let Some(status) = status {
                    query.push_str(&format!("&status={status}"));
                }
                let listed = ApiClient::new(server).get_json(&query).await?;
                output::print(server.output, &listed, |listed| {
                    let rows: Vec<Vec<String>> = listed["agents"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            vec![
                                output::plain(&a["name"]),
                                output::plain(&a["version"]),
                                output::plain(&a["status"]),
                                capabilities(&a["capabilities"]),
                            ]
                        })
                        .collect();
                    output::table(&["NAME", "VERSION", "STATUS", "CAPABILITIES"], &rows);
                });
            }
            AgentsCommand::PerformanceReport {
                last,
                include_slowest,
                slowest,
                server,
            } => {
                super::operator::agents_report(server, last, include_slowest.then_some(*slowest))
                    .await?;
            }
            AgentsCommand::Show { name, server } => {
                let shown = ApiClient::new(server)
                    .get_json(&format!("/api/v1/agents/{name}"))
                    .await?;
                output::print(server.output, &shown, show_agent);
            }
            AgentsCommand::Status { name, server } => {
                let shown = ApiClient::new(server)
                    .get_json(&format!("/api/v1/agents/{name}"))
                    .await?;
                output::print(server.output, &shown, |shown| {
                    match shown["reload_error"].as_str() {
                        Some(error) => println!(
                            "{name} {} {}: last change refused: {error}",
                            output::plain(&shown["version"]),
                            output::plain(&shown["status"])
                        ),
                        None => println!(
                            "{name} {} {}",
                            output::plain(&shown["version"]),
                            output::plain(&shown["status"])
                        ),
                    }
                });
                if shown["status"] == "degraded" {
                    anyhow::bail!("{name} is degraded");
                }
            }
            AgentsCommand::Deploy {
                manifest,
                component,
                replace,
                server,
            } => deploy(manifest, component.as_deref(), *replace, server).await?,
            AgentsCommand::Remove { name, server } => {
                let client = ApiClient::new(server);
                let removed = client
                    .delete_json(&format!("/api/v1/agents/{name}"))
                    .await?;
                output::print(server.output, &removed, |_| println!("removed {name}"));
            }
            AgentsCommand::Reload { name, server } => {
                let reloaded = ApiClient::new(server)
                    .post_json(&format!("/api/v1/agents/{name}/reload"), &json!({}))
                    .await?;
                output::print(server.output, &reloaded, |r| {
                    println!(
                        "reloaded {name} in {:.1} ms",
                        r["reload_ms"].as_f64().unwrap_or(0.0)
                    );
                });
            }
            AgentsCommand::Validate { manifest } => validate(manifest)?,
            AgentsCommand::New {
                name,
                lang,
                kind,
                grants,
                dir,
            } => new_project(name, *lang, *kind, grants, dir.as_deref())?,
            AgentsCommand::Run {
                manifest,
                message,
                performative,
                config,
                output,
            } => {
                RunOnce {
                    manifest,
                    message,
                    performative,
                    config: config.as_deref(),
                    output: *output,
                }
                .run()
                .await?
            }
            AgentsCommand::PerformanceSummary {
                show_slowest,
                server,
            } => performance_summary(*show_slowest, server).await?,
        }
        Ok(())
    }
}

fn capabilities(list: &Value) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

async fn deploy(
    path: &Path,
    component: Option<&Path>,
    replace: bool,
    server: &ServerArgs,
) -> anyhow::Result<()> {
    let deployed = upload(path, component, replace, server, true).await?;
    output::print(server.output, &deployed, |deployed| {
        println!(
            "deployed {} {}",
            output::plain(&deployed["agent"]["name"]),
            output::plain(&deployed["agent"]["version"])
        );
        for warning in deployed["warnings"].as_array().into_iter().flatten() {
            println!("warning: {}", output::plain(&warning["message"]));
        }
    });
    Ok(())
}

/// Deploys a manifest and the component it names, printing nothing (for
/// `caxton agents run`'s throwaway server).
pub(super) async fn deploy_quietly(path: &Path, server: &ServerArgs) -> anyhow::Result<Value> {
    upload(path, None, false, server, false).await
}

async fn upload(
    path: &Path,
    component: Option<&Path>,
    replace: bool,
    server: &ServerArgs,
    progress: bool,
) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            path.display(),
            crate::toml_check::Problem::from_toml(&text, &e)
        )
    })?;
    let named = table.get("component").and_then(|c| c.as_str());
    let component = match (component, named) {
        (Some(component), _) => Some(component.to_owned()),
        // The server carries it too: the manifest is all there is to send.
        (None, Some(named)) if crate::agents::built_in_name(Path::new(named)).is_some() => None,
        (None, Some(named)) => Some(path.parent().unwrap_or(Path::new(".")).join(named)),
        // A configuration agent runs on the prompt agent built into the
        // server: the manifest is all there is to send.
        (None, None) if table.contains_key("system_prompt") => None,
        (None, None) => anyhow::bail!(
            "{} names no component; pass --component FILE (or give it a system_prompt to make it a configuration agent)",
            path.display()
        ),
    };
    let mut body = json!({ "manifest": text });
    if let Some(component) = component {
        let bytes = std::fs::read(&component).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the component {}: {e}; build the plugin first (its README says how)",
                component.display()
            )
        })?;
        if progress {
            eprintln!(
                "uploading {} ({:.0} KB)…",
                component.display(),
                bytes.len() as f64 / 1024.0
            );
        }
        body["component"] = json!(base64::engine::general_purpose::STANDARD.encode(&bytes));
    }
    let client = ApiClient::new(server);
    let deployed = if replace {
        let name = table
            .get("name")
            .and_then(|n| n.as_str().map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("{} has no name", path.display()))?;
        client
            .put_json(&format!("/api/v1/agents/{name}"), &body)
            .await?
    } else {
        client.post_json("/api/v1/agents", &body).await?
    };
    Ok(deployed)
}

fn new_project(
    name: &str,
    lang: Lang,
    kind: Kind,
    grants: &[String],
    dir: Option<&Path>,
) -> anyhow::Result<()> {
    let dir = project_dir(name, dir);
    let project = NewProject {
        name,
        lang,
        kind,
        grants,
        dir: &dir,
    };
    let files = project.create()?;
    println!("created {} ({} files); next:", dir.display(), files.len());
    println!("{}", project.next_steps());
    Ok(())
}

/// Parses the manifest, then compiles its component and checks its world
/// and imports against the grants, as the server would at deployment.
fn validate(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut report = Manifest::parse_report(&text, path);
    if let Some(manifest) = &report.manifest {
        if let Some((problem, fatal)) = profile_problem(manifest, &text) {
            if fatal {
                report.problems.push(problem);
            } else {
                report.warnings.push(problem);
            }
        }
        if manifest.configuration {
            // Run by the prompt agent built into caxton: nothing to
            // compile; the provider and model are checked at deployment
            // against the server's [llm].
        } else if !manifest.component.exists()
            && crate::agents::built_in_component(&manifest.component).is_none()
        {
            report.problems.push(crate::toml_check::Problem::at(
                &text,
                &["component"],
                format!("{} does not exist; build the plugin or fix the path (relative to the manifest)", manifest.component.display()),
            ));
        } else if let Err(error) = compile_check(manifest) {
            report
                .problems
                .push(crate::toml_check::Problem::at(&text, &["component"], error));
        }
    }
    for warning in &report.warnings {
        eprintln!("{}: warning: {warning}", path.display());
    }
    for problem in &report.problems {
        eprintln!("{}: {problem}", path.display());
    }
    if !report.problems.is_empty() {
        anyhow::bail!("{} problem(s) in {}", report.problems.len(), path.display());
    }
    println!("{}: ok", path.display());
    Ok(())
}

/// The profile a manifest names or matches, checked against the profiles
/// of the config in effect here (`caxton.toml` in the config dir, with
/// `CAXTON_*` overrides); true (a problem) when that config defines
/// profiles, false (a warning) when it defines none: the manifest may be
/// meant for a box whose config does.
fn profile_problem(manifest: &Manifest, text: &str) -> Option<(crate::toml_check::Problem, bool)> {
    let config = super::config::load(None).ok()?;
    let profiles = config.agents.agent_profiles();
    let error = profiles.choose(&manifest.facts()).err()?;
    let problem = crate::toml_check::Problem::at(text, &[error.key], error.message);
    Some((problem, !profiles.profiles.is_empty()))
}

fn compile_check(manifest: &Manifest) -> Result<(), String> {
    let cache = tempfile_dir().map_err(|e| e.to_string())?;
    let settings = crate::config::WasmRuntimeConfig {
        pool_size: 1,
        low_priority_threads: 1,
        ..Default::default()
    };
    let runtime =
        crate::runtime::Runtime::new(&settings, cache.clone()).map_err(|e| e.to_string())?;
    let spec = crate::runtime::PluginSpec {
        name: &manifest.name,
        component: &manifest.component,
        wasm: crate::agents::built_in_component(&manifest.component),
        grants: &manifest.grants,
        limits: runtime.default_limits(),
    };
    let checked = match manifest.kind {
        PluginKind::Agent => runtime.load_agent(&spec).map(|_| ()),
        PluginKind::Tool => runtime.load_tool(&spec).map(|_| ()),
    };
    let _ = std::fs::remove_dir_all(&cache);
    checked.map_err(|e| e.to_string())
}

/// A scratch component cache for one validation.
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("caxton-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn performance_summary(slowest: usize, server: &ServerArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let listed = client.get_json("/api/v1/agents?page_size=500").await?;
    let mut rows = Vec::new();
    for agent in listed["agents"].as_array().into_iter().flatten() {
        let name = output::plain(&agent["name"]);
        let shown = client.get_json(&format!("/api/v1/agents/{name}")).await?;
        rows.push(json!({
            "name": name,
            "messages": shown["counters"]["messages"],
            "failures": shown["counters"]["failures"],
            "mean_wall_time_us": shown["counters"]["mean_wall_time_us"],
            "queued": shown["queue"]["queued"],
        }));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r["mean_wall_time_us"].as_u64().unwrap_or(0)));
    rows.truncate(slowest);
    let summary = json!({ "slowest": rows });
    output::print(server.output, &summary, |summary| {
        let rows: Vec<Vec<String>> = summary["slowest"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                vec![
                    output::plain(&r["name"]),
                    format!(
                        "{:.2}",
                        r["mean_wall_time_us"].as_f64().unwrap_or(0.0) / 1000.0
                    ),
                    output::plain(&r["messages"]),
                    output::plain(&r["failures"]),
                    output::plain(&r["queued"]),
                ]
            })
            .collect();
        output::table(
            &["AGENT", "MEAN_MS", "MESSAGES", "FAILURES", "QUEUED"],
            &rows,
        );
    });
    Ok(())
}

/// An agent's fields, then its limits: value and where each came from.
fn show_agent(shown: &Value) {
    let mut fields = shown.clone();
    let limits = fields.as_object_mut().and_then(|o| o.remove("limits"));
    output::fields(&fields);
    if let Some(Value::Object(limits)) = limits {
        println!();
        let rows: Vec<Vec<String>> = limits
            .iter()
            .map(|(key, limit)| {
                let value = match &limit["value"] {
                    Value::Null => "no limit".to_owned(),
                    Value::Number(ms) if key.ends_with("timeout") => format!("{ms}ms"),
                    other => output::plain(other),
                };
                vec![
                    key.clone(),
                    value,
                    output::plain(&limit["source"]),
                    output::plain(&limit["manifest_key"]),
                ]
            })
            .collect();
        output::table(&["LIMIT", "VALUE", "FROM", "MANIFEST KEY"], &rows);
    }
}
