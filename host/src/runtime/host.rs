//! The store data of one call and the host side of the WIT imports, in
//! Caxton's own types: each import goes to its capability's service in
//! [`HostServices`]. Each WIT version's bindings (`bindings::v*`) implement
//! their generated traits by converting and calling these.

use std::future::Future;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outgoing_http::HttpHooks;

use super::chat::{ChatRequest, ChatResponse};
use super::limits::MemoryLimiter;
use super::services::{CallChain, HostServices};
use super::stderr::StderrTail;
use super::types::{LogLevel, MemoryEntity, MemoryHit, Message, PluginError, ToolDescription};

/// Longest log line kept from a plugin; the rest is cut so a chatty plugin
/// cannot flood the host log.
const MAX_LOG_LINE: usize = 4096;
/// Log lines one call may write; a plugin logging in a loop is cut off
/// after these (with one warning) instead of flooding the host log.
const MAX_LOG_LINES_PER_CALL: u32 = 200;
/// Tail of the guest's stderr kept per call and quoted in a trap message
/// (a panic message lands at the end); earlier output is dropped.
const STDERR_KEPT: usize = 2048;

/// Tool calls one `call-parallel` runs at once.
pub const MAX_PARALLEL_CALLS: usize = 32;

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
    /// The id of the message an agent call is handling (kept out of the
    /// history it reads).
    pub(crate) handling: String,
    /// The server's runtime, when there is one (not in offline checks).
    server: Option<tokio::runtime::Handle>,
    http: WasiHttpCtx,
    /// Where `wasi:http` requests go: the calling agent's policy.
    http_hooks: HttpHooks,
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
        let http_hooks = HttpHooks {
            policy: services.http.clone(),
        };
        Self {
            plugin,
            wasi,
            http: WasiHttpCtx::new(),
            http_hooks,
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
            handling: String::new(),
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

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
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

impl HostState {
    /// `log.log`: one line in the host log, cut to size and counted.
    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
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
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            LogLevel::Error => tracing::error!(target: "plugin", plugin, "{message}"),
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

// Memory calls go to the services as the calling plugin: the plugin cannot
// name another owner, so scopes are enforced on the host side.
impl HostState {
    pub(crate) async fn remember(
        &mut self,
        name: String,
        entity_type: String,
        observations: Vec<String>,
    ) -> Result<(), PluginError> {
        let (memory, plugin) = (self.services.memory.clone(), self.plugin.clone());
        write_on_server_threads(self.server.clone(), async move {
            memory
                .remember(&plugin, name, entity_type, observations)
                .await
        })
        .await
    }

    pub(crate) async fn relate(
        &mut self,
        from: String,
        to: String,
        relation_type: String,
    ) -> Result<(), PluginError> {
        let (memory, plugin) = (self.services.memory.clone(), self.plugin.clone());
        write_on_server_threads(self.server.clone(), async move {
            memory.relate(&plugin, from, to, relation_type).await
        })
        .await
    }

    pub(crate) async fn search(
        &mut self,
        query: String,
        limit: u32,
    ) -> Result<Vec<MemoryHit>, PluginError> {
        self.services
            .memory
            .search(&self.plugin, query, limit)
            .await
    }

    pub(crate) async fn open(
        &mut self,
        names: Vec<String>,
    ) -> Result<Vec<MemoryEntity>, PluginError> {
        self.services.memory.open(&self.plugin, names).await
    }

    pub(crate) async fn forget(&mut self, name: String) -> Result<(), PluginError> {
        let (memory, plugin) = (self.services.memory.clone(), self.plugin.clone());
        write_on_server_threads(self.server.clone(), async move {
            memory.forget(&plugin, name).await
        })
        .await
    }
}

impl HostState {
    pub(crate) fn name(&self) -> String {
        self.plugin.to_string()
    }

    pub(crate) fn parameters(&self) -> String {
        self.services.context.parameters(&self.plugin)
    }

    pub(crate) fn manifest(&self) -> String {
        self.services.context.manifest(&self.plugin)
    }

    pub(crate) async fn history(&mut self, limit: u32) -> Result<Vec<Message>, PluginError> {
        self.services
            .conversations
            .history(&self.plugin, self.chain.as_ref(), &self.handling, limit)
            .await
    }
}

impl HostState {
    pub(crate) async fn call_tool(
        &mut self,
        name: String,
        input: String,
    ) -> Result<String, PluginError> {
        self.services
            .tools
            .call_tool(&self.plugin, &name, input)
            .await
    }

    /// Several tool calls at once, each under the same checks as one; past
    /// [`MAX_PARALLEL_CALLS`] the rest are refused (a plugin cannot take
    /// the whole instance pool with one import call).
    pub(crate) async fn call_tools_parallel(
        &mut self,
        calls: Vec<(String, String)>,
    ) -> Vec<Result<String, PluginError>> {
        let tools = &self.services.tools;
        let plugin = &self.plugin;
        let mut results = futures_util::future::join_all(
            calls
                .iter()
                .take(MAX_PARALLEL_CALLS)
                .map(|(name, input)| tools.call_tool(plugin, name, input.clone())),
        )
        .await;
        results.extend(calls.iter().skip(MAX_PARALLEL_CALLS).map(|_| {
            Err(PluginError::InvalidInput(format!(
                "at most {MAX_PARALLEL_CALLS} tool calls run at once; send the rest in another batch"
            )))
        }));
        results
    }

    pub(crate) async fn available_tools(&mut self) -> Vec<ToolDescription> {
        self.services.tools.available(&self.plugin).await
    }
}

impl HostState {
    pub(crate) async fn send(&mut self, message: Message) -> Result<(), PluginError> {
        self.services
            .messaging
            .send(&self.plugin, self.chain.as_ref(), message)
            .await
    }

    pub(crate) async fn request(
        &mut self,
        message: Message,
        timeout_ms: u32,
    ) -> Result<Message, PluginError> {
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        self.services
            .messaging
            .request(&self.plugin, self.chain.as_ref(), message, timeout)
            .await
    }

    pub(crate) async fn chat(&mut self, request: ChatRequest) -> Result<ChatResponse, PluginError> {
        self.services
            .llm
            .chat(&self.plugin, self.chain.as_ref(), request)
            .await
    }
}
