//! `caxton serve`: wires the services together, loads the agents and runs
//! the HTTP API until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use warp::{Filter, Reply};

use crate::agents::{AgentRegistry, Deployments};
use crate::api::{self, ApiState};
use crate::config::{AgentsConfig, CleanupConfig, Config};
use crate::embed::{EmbedError, EmbeddingEngine};
use crate::http::{self, Pipeline};
use crate::memory::Memory;
use crate::messaging::{Conversations, Messenger};
use crate::runtime::Runtime;
use crate::store::Db;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    // Installed before the slow part of startup: a SIGTERM while plugins
    // compile (systemd stopping a unit, a test that stops a server as soon
    // as it logs) is then a clean stop once serving begins, not a kill by
    // the default disposition.
    let stop = StopSignals::install()?;
    let data_dir = config.data_dir()?;
    crate::private_files::restrict_new_files();
    crate::private_files::private_dir(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;

    let runtime = Arc::new(Runtime::new(
        &config.wasm_runtime,
        data_dir.join("cache").join("components"),
    )?);

    // Without a model the host still serves: memory search falls back to
    // keywords until `caxton models fetch` puts one in place (and a
    // restart loads it). A corrupt model stops startup with the fix, as
    // serving from a file that fails its checksum would hide the damage.
    let model_dir = config.model_dir()?;
    let embeddings = match EmbeddingEngine::start(&config.memory.embedding_config, &model_dir) {
        Ok(engine) => Ok(engine),
        Err(EmbedError::Disabled) => {
            tracing::warn!("semantic search is disabled: no embedding model loaded");
            Err(EmbedError::Disabled)
        }
        Err(error) if error.is_not_installed() => {
            tracing::warn!(
                dir = %model_dir.display(),
                "no embedding model: memory search uses keywords only; run `caxton models fetch` and restart"
            );
            Err(error)
        }
        // Present but unreadable (a permission): serve by keywords, and
        // say exactly what failed rather than "not installed".
        Err(error @ EmbedError::MissingFile { .. }) => {
            tracing::error!(%error, "cannot read the embedding model: memory search uses keywords only");
            Err(error)
        }
        Err(error) => return Err(error.into()),
    };

    let database = config
        .memory
        .database_path
        .clone()
        .unwrap_or_else(|| data_dir.join("memory.db"));
    // One store under memory, conversations and deployments; with a
    // memory primary, the knowledge graph lives in a replica of it instead
    // (shared by the fleet), and the rest stays this host's own.
    let store = Arc::new(Db::open(&database, &config.memory.sqlite_config).await?);
    let memory_store = match &config.memory.primary_url {
        Some(url) => {
            let token = primary_token(&config.memory)?;
            let replica = database.with_file_name("memory-replica.db");
            let db = Db::open_replica(&replica, url, &token, &config.memory.sqlite_config).await?;
            tracing::info!(primary = url, replica = %replica.display(), "memory is shared through its primary");
            Arc::new(db)
        }
        None => store.clone(),
    };
    let memory = Memory::on(memory_store, embeddings.as_ref().ok().cloned()).await?;
    let replication = memory
        .db()
        .primary()
        .is_some()
        .then(|| tokio::spawn(follow_primary(memory.clone(), config.memory.sync_interval)));
    // Observations stored while there was no model get their vectors now.
    let backfill = embeddings.is_ok().then(|| {
        let memory = memory.clone();
        tokio::spawn(async move {
            match memory.embed_missing().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    observations = n,
                    "embedded observations stored without a model"
                ),
                Err(error) => {
                    tracing::warn!(%error, "cannot embed observations stored without a model")
                }
            }
        })
    });
    let registry = AgentRegistry::new(runtime.clone(), Some(memory.clone()));
    registry.set_max_agents(config.agents.max_agents);
    registry.set_profiles(config.agents.agent_profiles());
    registry.set_max_reply_bytes(config.agents.max_reply_size);
    // Before the agents: configuration agents are checked against the
    // providers when they load. Nothing is contacted here; the health
    // checks run in the background.
    let llm = Arc::new(crate::llm::LlmService::new(&config.llm).map_err(|e| anyhow::anyhow!(e))?);
    registry.set_llm(llm.clone());
    let llm_health = llm.spawn_health_checks();
    // Started in the background: agents that call a server still starting
    // wait for it within their tool deadline.
    let mcp_servers = crate::mcp_client::McpServers::start(&config.mcp.servers);
    registry.set_mcp_servers(mcp_servers.clone());
    let cleanup = config
        .memory
        .cleanup
        .enabled
        .then(|| tokio::spawn(run_cleanup(memory.clone(), config.memory.cleanup.clone())));

    registry.install_built_ins().await?;
    let agents_dir = config.agents_dir()?;
    // A box's first start: the dir is made, with the examples to copy from.
    // A configured dir is made only where its parent exists, so a typo
    // in --agents-dir still fails instead of serving the examples.
    match crate::agents::seed_agents_dir(&agents_dir, config.server.agents_dir.is_none()) {
        Ok(true) => tracing::info!(
            dir = %agents_dir.display(),
            "created the agents dir with the example agents; put your agent and tool manifests here"
        ),
        Ok(false) => {}
        Err(error) => tracing::warn!(
            %error,
            dir = %agents_dir.display(),
            "cannot create the agents dir; create it or pass --agents-dir"
        ),
    }
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

    // Agents deployed through the API come back after the directory's.
    let deployments = Arc::new(Deployments::new(store.clone(), data_dir.join("deployed")));
    for stored in deployments.list().await? {
        let report = crate::agents::parse_with_component(
            &stored.manifest,
            &deployments.manifest_path(&stored.name),
            &stored.component,
        );
        let outcome = match report.manifest {
            Some(manifest) => registry
                .deploy(&deployments.manifest_path(&stored.name), manifest)
                .await
                .map_err(|e| e.to_string()),
            None => Err(report
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")),
        };
        if let Err(error) = outcome {
            tracing::error!(agent = %stored.name, "an API deployment could not be restored: {error}");
        }
    }
    // Leftovers of uploads cut off by a crash, and versions replaced by
    // older builds that kept every file.
    if let Err(error) = deployments.remove_unreferenced().await {
        tracing::warn!(%error, "cannot clean up unused components");
    }

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server running there? Pick another with --listen",
                config.server.listen
            )
        })?;
    let address = listener.local_addr()?;
    let token = if config.auth.enabled {
        let path = config
            .auth
            .token_file
            .clone()
            .unwrap_or_else(|| data_dir.join(crate::auth::TOKEN_FILE));
        let token = crate::auth::load_or_create(&path)?;
        if token.created {
            // Printed once, at creation; afterwards `caxton auth token` shows it.
            println!(
                "caxton generated an API token (saved to {}): {}",
                token.path.display(),
                token.value
            );
        }
        Some(crate::auth::LiveToken::follow(token))
    } else {
        tracing::warn!("API auth is disabled: any local process can call the API");
        None
    };
    let messenger = Messenger::new(
        registry.clone(),
        Some(Conversations::start(store.clone())),
        config.agents.clone(),
    );
    // The services every agent call reaches, wired once: tools, memory
    // and context from the registry, messaging from the messenger.
    registry.wire(crate::runtime::HostServices {
        tools: registry.clone(),
        memory: registry.clone(),
        context: registry.clone(),
        llm: registry.clone(),
        messaging: messenger.clone(),
        conversations: messenger.clone(),
        http: None,
    });
    let expiry = tokio::spawn(expire_conversations(
        messenger.clone(),
        config.agents.clone(),
    ));
    // What either reload does with a plugin it removed.
    let on_removed: crate::agents::OnRemoved = {
        let messenger = messenger.clone();
        Arc::new(move |name: &str| messenger.remove(name))
    };
    let hot_reload = if config.agents.hot_reload {
        match crate::agents::watch(
            registry.clone(),
            &agents_dir,
            config.agents.reload_debounce,
            on_removed.clone(),
        ) {
            Ok(watch) => Some(watch),
            Err(error) => {
                tracing::warn!(%error, dir = %agents_dir.display(), "hot reload is off: cannot watch the agents directory");
                None
            }
        }
    } else {
        None
    };
    // Profiles in caxton.toml reload the agents they touch, as manifests do.
    let config_reload = match (&config.file, config.agents.hot_reload) {
        (Some(file), true) => match crate::agents::watch_config(
            registry.clone(),
            file,
            config.clone(),
            config
                .agents
                .reload_debounce
                .max(std::time::Duration::from_millis(50)),
            &agents_dir,
            on_removed,
        ) {
            Ok(watch) => Some(watch),
            Err(error) => {
                tracing::warn!(%error, file = %file.display(), "profile changes need a restart: cannot watch the config file");
                None
            }
        },
        _ => None,
    };
    let state = ApiState {
        messenger,
        deployments: Some(deployments),
        agents_dir: agents_dir.clone(),
        registry,
        embeddings,
        memory: Some(memory.clone()),
        fleet: None,
        started,
        max_request_size: config.server.max_request_size,
        max_import_size: config.server.max_import_size,
        history: None,
    };
    // The fleet, when configured: other hosts reach this one's agents, and
    // messages no local agent takes go to them. Joining never waits on
    // NATS: a host whose server is down serves its own agents meanwhile.
    let fleet = match &config.cluster.nats_url {
        Some(_) => {
            let node = config.cluster.node_name();
            let handler = Arc::new(api::ServeFleet::new(state.clone(), node));
            let fleet = crate::cluster::Fleet::start(&config.cluster, handler).await?;
            state
                .messenger
                .set_remote(Arc::new(api::FleetRemote::new(&fleet)));
            Some(fleet)
        }
        None => None,
    };
    // The host's own history (`[history]`): a file of its own beside the
    // store. A history that cannot open costs the operator commands, not
    // the server.
    let history = match config.history.enabled {
        false => None,
        true => match crate::history::History::open(&data_dir, &config.history).await {
            Ok(history) => Some(Arc::new(history)),
            Err(error) => {
                tracing::error!(%error, "history is off for this run: cannot open its file");
                None
            }
        },
    };
    let state = ApiState {
        fleet: fleet.clone(),
        history: history.clone(),
        ..state
    };
    let sampler = history.map(|history| {
        let state = state.clone();
        let database = database.clone();
        history.spawn(move || history_readings(state.clone(), database.clone()))
    });
    let metrics_task = match config.server.metrics_listen {
        Some(listen) => Some(serve_metrics(listen, state.clone(), &config.http_server).await?),
        None => None,
    };
    let mut routes = api::handler(state.clone());
    let mcp = config
        .mcp
        .enabled
        .then(|| crate::mcp::McpEndpoint::new(state, &config.mcp));
    if let Some(endpoint) = &mcp {
        routes = crate::mcp::mount(routes, endpoint.clone());
    }
    routes = crate::ui::mount(routes);
    let pipeline = Arc::new(Pipeline::new(routes, token, &config.http_server, address));
    tracing::info!(
        %address,
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "caxton is serving"
    );
    // Tools and tests read the bound address from this line on stdout.
    println!("caxton listening on http://{address}");

    let shutdown = async {
        stop.received().await;
        if let Some(endpoint) = &mcp {
            endpoint.shutdown();
        }
    };
    http::serve(listener, pipeline, &config.http_server, shutdown).await;
    drop(hot_reload);
    drop(config_reload);
    if let Some(fleet) = &fleet {
        fleet.shutdown();
    }
    mcp_servers.shutdown();
    for task in [
        cleanup,
        backfill,
        replication,
        metrics_task,
        Some(expiry),
        Some(llm_health),
        sampler,
    ]
    .into_iter()
    .flatten()
    {
        task.abort();
    }
    // The next start reads the index back instead of rebuilding it.
    match memory.save_index().await {
        Ok(Some(bytes)) => tracing::info!(bytes, "memory index saved for the next start"),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, "cannot save the memory index; the next start rebuilds it")
        }
    }
    tracing::info!("caxton stopped");
    Ok(())
}

/// The memory primary's token: `CAXTON_PRIMARY_TOKEN`, else the file
/// `[memory] primary_token_file` names, else none.
fn primary_token(config: &crate::config::MemoryConfig) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("CAXTON_PRIMARY_TOKEN") {
        return Ok(token.trim().to_owned());
    }
    match &config.primary_token_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|token| token.trim().to_owned())
            .with_context(|| {
                format!(
                    "cannot read [memory] primary_token_file {}; write the primary's token (a JWT) there or set CAXTON_PRIMARY_TOKEN",
                    path.display()
                )
            }),
        None => Ok(String::new()),
    }
}

/// Pulls what other hosts wrote to the memory primary every `interval`
/// and brings the vector index up to it. An unreachable primary is said
/// once, and again when it is back; reads go on from the replica.
async fn follow_primary(memory: Arc<Memory>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reachable = true;
    let mut followed = None;
    loop {
        ticker.tick().await;
        match memory.db().sync().await {
            Ok(position) => {
                if !reachable {
                    tracing::info!("the memory primary is back: syncing again");
                    reachable = true;
                }
                if position != followed {
                    match memory.follow_replication().await {
                        Ok(_) => followed = position,
                        Err(error) => {
                            tracing::warn!(%error, "cannot bring the memory index up to the replica")
                        }
                    }
                }
            }
            Err(error) => {
                if reachable {
                    tracing::warn!(%error, "cannot sync from the memory primary: serving reads from the local replica");
                    reachable = false;
                }
            }
        }
    }
}

/// Serves `GET /metrics` on its own listener, through the same front as
/// the API (connection limits, header timeout, request timeout) but
/// without a token: scrapers are configured by address. Gauges that are
/// cheap to read are sampled at each scrape; the store's counts on a timer.
async fn serve_metrics(
    listen: std::net::SocketAddr,
    state: ApiState,
    settings: &crate::config::HttpServerConfig,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen for metrics on {listen}; set [server] metrics_listen to a free address")
    })?;
    let address = listener.local_addr()?;
    println!("caxton metrics on http://{address}/metrics");
    let route = warp::path!("metrics")
        .and(warp::get())
        .map({
            let state = state.clone();
            move || {
                crate::metrics::metrics().record_state(&state_sample(&state));
                warp::reply::with_header(
                    crate::metrics::metrics().render(),
                    "content-type",
                    "text/plain; version=0.0.4",
                )
                .into_response()
            }
        })
        .recover(api::recover)
        .unify();
    let service = warp::service(route);
    let handler: api::Handler = Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            match tower_service::Service::call(&mut service, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    });
    let mut settings = settings.clone();
    settings.rate_limit.enabled = false;
    let pipeline = Arc::new(Pipeline::metrics(handler, &settings));
    tokio::spawn(sample_store_gauges(state));
    Ok(tokio::spawn(async move {
        http::serve(listener, pipeline, &settings, std::future::pending()).await;
    }))
}

/// The gauges that cost a query (entity and relation counts, store size),
/// refreshed every few seconds rather than per scrape: a scrape must stay
/// cheap whoever sends it and however often.
async fn sample_store_gauges(state: ApiState) {
    let mut ticks = tokio::time::interval(STORE_GAUGE_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Some(memory) = &state.memory {
            match memory.stats().await {
                Ok(stats) => crate::metrics::metrics().record_store(
                    stats.entities,
                    stats.relations,
                    stats.database_bytes,
                ),
                Err(error) => tracing::warn!(%error, "reading memory stats for metrics"),
            }
        }
    }
}

/// What the state gauges show, read from the services (cheap: no query).
fn state_sample(state: &ApiState) -> crate::metrics::StateSample {
    let (agents, tools) = state.registry.counts();
    let configuration = state.registry.configuration_agent_count();
    crate::metrics::StateSample {
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        pool_slots_in_use: state.registry.runtime().slots_in_use(),
        configuration_agents: configuration,
        component_plugins: agents + tools - configuration,
        embedding_cache_hit_rate: state
            .embeddings
            .as_ref()
            .ok()
            .and_then(|engine| engine.cache_stats().hit_rate()),
    }
}

/// Refreshes the gauges the history records (as a scrape would) and
/// reads what the registry does not hold: CPU time, the WAL's size, the
/// embedding cache's running hit and miss counts.
async fn history_readings(
    state: ApiState,
    database: std::path::PathBuf,
) -> Vec<crate::history::Extra> {
    use crate::history::{Extra, point::Kind};
    let metrics = crate::metrics::metrics();
    metrics.record_state(&state_sample(&state));
    if let Some(memory) = &state.memory
        && let Ok(stats) = memory.stats().await
    {
        metrics.record_store(stats.entities, stats.relations, stats.database_bytes);
    }
    let mut extras = Vec::new();
    let mut add = |name, labels: Vec<(&'static str, String)>, value, kind| {
        extras.push(Extra {
            name,
            labels,
            value,
            kind,
        })
    };
    if let Some(cpu) = crate::metrics::cpu_seconds_total() {
        add(
            "caxton_process_cpu_seconds_total",
            vec![],
            cpu,
            Kind::Counter,
        );
    }
    let wal_bytes = std::fs::metadata(crate::store::wal_path(&database)).map_or(0, |m| m.len());
    add(
        "caxton_memory_wal_size_bytes",
        vec![],
        wal_bytes as f64,
        Kind::Gauge,
    );
    if let Ok(engine) = &state.embeddings {
        let cache = engine.cache_stats();
        add(
            "caxton_embedding_cache_lookups_total",
            vec![("result", "hit".into())],
            cache.hits as f64,
            Kind::Counter,
        );
        add(
            "caxton_embedding_cache_lookups_total",
            vec![("result", "miss".into())],
            cache.misses as f64,
            Kind::Counter,
        );
        add(
            "caxton_embedding_cache_entries",
            vec![],
            cache.entries as f64,
            Kind::Gauge,
        );
    }
    if let Some(history) = &state.history {
        add(
            "caxton_history_size_bytes",
            vec![],
            history.file_bytes() as f64,
            Kind::Gauge,
        );
    }
    extras
}

/// How often the store's gauges are refreshed.
const STORE_GAUGE_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

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
        let outcome = memory.cleanup(&policy).await;
        crate::metrics::metrics()
            .memory_cleanup_runs
            .with_label_values(&[if outcome.is_ok() { "ok" } else { "failed" }])
            .inc();
        match outcome {
            Ok(report) if report.removed() > 0 => {
                tracing::info!(?report, "memory cleanup removed rows");
            }
            Ok(report) => tracing::debug!(?report, "memory cleanup: nothing to remove"),
            Err(error) => tracing::error!(%error, "memory cleanup failed; retrying next interval"),
        }
    }
}

/// Closes idle conversations and deletes old closed ones, every minute or
/// a quarter of the idle timeout, whichever is shorter.
async fn expire_conversations(messenger: Arc<Messenger>, settings: AgentsConfig) {
    let period = (settings.conversation_idle_timeout / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(60),
    );
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        ticks.tick().await;
        let Some(conversations) = messenger.conversations() else {
            return;
        };
        match conversations
            .expire(
                settings.conversation_idle_timeout,
                settings.conversation_retention,
            )
            .await
        {
            Ok((0, 0)) => {}
            Ok((closed, deleted)) => tracing::info!(closed, deleted, "conversations expired"),
            Err(error) => tracing::error!(%error, "expiring conversations failed"),
        }
    }
}

/// SIGINT and SIGTERM, listened for from the moment they are installed:
/// a signal that arrives before `received` is polled is kept, not lost.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())
                    .context("installing the SIGINT handler")?,
                terminate: signal(SignalKind::terminate())
                    .context("installing the SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    }
}
