//! `caxton serve`: wires the services together, loads the agents and runs
//! the HTTP API until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::agents::AgentRegistry;
use crate::api::{self, ApiState};
use crate::config::{CleanupConfig, Config};
use crate::embed::{EmbedError, EmbeddingEngine};
use crate::memory::Memory;
use crate::runtime::Runtime;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = config.data_dir()?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;

    let runtime = Arc::new(Runtime::new(
        &config.wasm_runtime,
        data_dir.join("cache").join("components"),
    )?);

    // A missing or corrupt model stops startup with a fix-it message, unless
    // the operator turned semantic search off.
    let embeddings = match EmbeddingEngine::start(&config.memory.embedding_config) {
        Ok(engine) => Ok(engine),
        Err(EmbedError::Disabled) => {
            tracing::warn!("semantic search is disabled: no embedding model loaded");
            Err(EmbedError::Disabled)
        }
        Err(error) => return Err(error.into()),
    };

    let database = config
        .memory
        .database_path
        .clone()
        .unwrap_or_else(|| data_dir.join("memory.db"));
    let memory = Memory::open(
        &database,
        &config.memory.sqlite_config,
        embeddings.as_ref().ok().cloned(),
    )
    .await?;
    let registry = AgentRegistry::new(runtime.clone(), Some(memory.clone()));
    let cleanup = config
        .memory
        .cleanup
        .enabled
        .then(|| tokio::spawn(run_cleanup(memory.clone(), config.memory.cleanup.clone())));

    let agents_dir = config.agents_dir();
    let report = registry.load_dir(&agents_dir).await?;
    for failure in &report.failures {
        tracing::error!("{failure}");
    }
    tracing::info!(
        agents = report.agents,
        tools = report.tools,
        failed = report.failures.len(),
        compiled = runtime.compiled_count(),
        from_cache = runtime.cache_hit_count(),
        dir = %agents_dir.display(),
        "plugins loaded"
    );

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server running there? Pick another with --listen",
                config.server.listen
            )
        })?;
    let address = listener.local_addr()?;
    let routes = api::routes(ApiState {
        registry,
        embeddings,
        memory: Some(memory),
        started,
        max_request_size: config.server.max_request_size,
        max_import_size: config.server.max_import_size,
    });
    tracing::info!(
        %address,
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "caxton is serving"
    );
    // Tools and tests read the bound address from this line on stdout.
    println!("caxton listening on http://{address}");

    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown_signal())
        .run()
        .await;
    if let Some(task) = cleanup {
        task.abort();
    }
    tracing::info!("caxton stopped");
    Ok(())
}

/// The periodic memory cleanup. A failed pass is logged and retried at the
/// next interval; it never stops the server.
async fn run_cleanup(memory: Arc<Memory>, policy: CleanupConfig) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + policy.interval,
        policy.interval,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match memory.cleanup(&policy).await {
            Ok(report) if report.removed() > 0 => {
                tracing::info!(?report, "memory cleanup removed rows");
            }
            Ok(report) => tracing::debug!(?report, "memory cleanup: nothing to remove"),
            Err(error) => tracing::error!(%error, "memory cleanup failed; retrying next interval"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}
