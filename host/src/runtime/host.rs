//! The store data of one call and the host side of the WIT imports: each
//! import goes to its capability's service in [`HostServices`].

use std::future::Future;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::latest::agent::caxton::agent::{
    context, log, memory, messaging, tools, types,
};
use super::limits::MemoryLimiter;
use super::services::{CallChain, HostServices};
use super::stderr::StderrTail;
use super::types::PluginError;

/// Longest log line kept from a plugin; the rest is cut so a chatty plugin
/// cannot flood the host log.
const MAX_LOG_LINE: usize = 4096;
/// Log lines one call may write; a plugin logging in a loop is cut off
/// after these (with one warning) instead of flooding the host log.
const MAX_LOG_LINES_PER_CALL: u32 = 200;
/// Tail of the guest's stderr kept per call and quoted in a trap message
/// (a panic message lands at the end); earlier output is dropped.
const STDERR_KEPT: usize = 2048;

/// WASI resources (streams, pollables...) one call may hold at once.
/// wasmtime's default is a million, some 100 MB of host memory a plugin
/// could take outside its memory cap; real plugins hold a handful.
pub const MAX_RESOURCES_PER_CALL: usize = 10_000;

/// Everything one call's `Store` holds.
pub struct HostState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: StderrTail,
    /// Log lines written during this call.
    log_lines: u32,
    pub(crate) limiter: MemoryLimiter,
    services: HostServices,
    /// Where this call sits in a chain of messages, for its `messaging`.
    chain: Option<CallChain>,
    /// The server's runtime, when there is one (not in offline checks).
    server: Option<tokio::runtime::Handle>,
}

impl HostState {
    pub fn new(
        plugin: Arc<str>,
        memory_limit: u64,
        services: HostServices,
        chain: Option<CallChain>,
        server: Option<tokio::runtime::Handle>,
    ) -> Self {
        let stderr = StderrTail::new(STDERR_KEPT);
        // No args, env, preopened dirs, stdin or network: a plugin sees
        // nothing of the host except through the WIT imports it was granted.
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            plugin,
            wasi,
            table: {
                // Every WASI handle a plugin holds lives in this table, in
                // host memory outside the plugin's `memory_mb`: cap it.
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES_PER_CALL);
                table
            },
            stderr,
            log_lines: 0,
            limiter: MemoryLimiter::new(memory_limit),
            services,
            chain,
            server,
        }
    }

    /// What the guest wrote to stderr during the call (a panic message, say).
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Bytes the guest wrote to stderr in all, kept or not.
    pub fn stderr_written(&self) -> u64 {
        self.stderr.written()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(
                    target: "plugin",
                    plugin = &*self.plugin,
                    "more than {MAX_LOG_LINES_PER_CALL} log lines in one call; the rest of this call's lines are dropped"
                );
            }
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let message = super::stderr::one_line(&message);
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
    }
}

/// Runs a memory write on the server's threads. A write holds the store's
/// one writer lock; held by a call on the low-priority threads, every
/// normal-priority writer would wait for it (priority inversion). A spawned
/// write also runs to its end if the call is cancelled.
async fn write_on_server_threads<F>(
    server: Option<tokio::runtime::Handle>,
    write: F,
) -> Result<(), PluginError>
where
    F: Future<Output = Result<(), PluginError>> + Send + 'static,
{
    match server {
        Some(server) => server.spawn(write).await.unwrap_or_else(|error| {
            Err(PluginError::Internal(format!(
                "the memory write failed: {error}"
            )))
        }),
        None => write.await,
    }
}

/// The error a plugin sees, in this version's WIT type.
type WitError = types::Error;

// Memory calls go to the services as the calling plugin: the plugin cannot
// name another owner, so scopes are enforced on the host side.
impl memory::Host for HostState {
    async fn remember(
        &mut self,
        name: String,
        entity_type: String,
        observations: Vec<String>,
    ) -> Result<(), WitError> {
        let (memory, plugin) = (self.services.memory.clone(), self.plugin.clone());
        write_on_server_threads(self.server.clone(), async move {
            memory
                .remember(&plugin, name, entity_type, observations)
                .await
        })
        .await
        .map_err(WitError::from)
    }

    async fn relate(
        &mut self,
        from: String,
        to: String,
        relation_type: String,
    ) -> Result<(), WitError> {
        let (memory, plugin) = (self.services.memory.clone(), self.plugin.clone());
        write_on_server_threads(self.server.clone(), async move {
            memory.relate(&plugin, from, to, relation_type).await
        })
        .await
        .map_err(WitError::from)
    }

    async fn search(
        &mut self,
        query: String,
        limit: u32,
    ) -> Result<Vec<memory::SearchHit>, WitError> {
        let hits = self
            .services
            .memory
            .search(&self.plugin, query, limit)
            .await?;
        Ok(hits.into_iter().map(memory::SearchHit::from).collect())
    }

    async fn open(&mut self, names: Vec<String>) -> Result<Vec<memory::Entity>, WitError> {
        let entities = self.services.memory.open(&self.plugin, names).await?;
        Ok(entities.into_iter().map(memory::Entity::from).collect())
    }

    async fn forget(&mut self, name: String) -> Result<(), WitError> {
        let (memory, plugin) = (self.services.memory.clone(), self.plugin.clone());
        write_on_server_threads(self.server.clone(), async move {
            memory.forget(&plugin, name).await
        })
        .await
        .map_err(WitError::from)
    }
}

impl context::Host for HostState {
    async fn name(&mut self) -> String {
        self.plugin.to_string()
    }

    async fn parameters(&mut self) -> String {
        self.services.context.parameters(&self.plugin)
    }
}

impl tools::Host for HostState {
    async fn call(&mut self, name: String, input: String) -> Result<String, WitError> {
        Ok(self
            .services
            .tools
            .call_tool(&self.plugin, &name, input)
            .await?)
    }
}

impl messaging::Host for HostState {
    async fn send(&mut self, message: types::Message) -> Result<(), WitError> {
        Ok(self
            .services
            .messaging
            .send(&self.plugin, self.chain.as_ref(), message.into())
            .await?)
    }

    async fn request(
        &mut self,
        message: types::Message,
        timeout_ms: u32,
    ) -> Result<types::Message, WitError> {
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        let reply = self
            .services
            .messaging
            .request(&self.plugin, self.chain.as_ref(), message.into(), timeout)
            .await?;
        Ok(reply.into())
    }
}
