//! The component runtime: one wasmtime engine with pooled instances, the
//! precompiled-component cache, and calls into agents and tools where every
//! call gets a fresh instance with its own fuel, deadline and memory cap.

mod bindings;
mod cache;
mod chat;
mod engine;
mod error;
mod host;
mod lanes;
mod limits;
mod outgoing_http;
mod services;
mod stderr;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

pub use bindings::{GRANTABLE_INTERFACES, SUPPORTED_VERSIONS};
pub use cache::CacheOutcome;
pub use chat::{
    ChatMessage, ChatRequest, ChatResponse, ChatRole, FinishReason, FunctionSpec, ResponseFormat,
    TokenUsage, ToolCall, ToolChoice,
};
pub use error::RuntimeError;
pub use limits::{CallLimits, CallUsage, MemoryLimitExceeded};
pub use outgoing_http::{AllowRule, HttpPolicy};
pub use services::{
    BoxFuture, CallChain, ChainScope, ContextHost, ConversationHost, DeltaSink, HostServices,
    LlmHost, MemoryHost, MessagingHost, ToolHost, Unavailable, messaging_unavailable,
};
pub use types::{MemoryEntity, MemoryHit, Message, Performative, PluginError, ToolDescription};

use bindings::{v0_1_0, v0_2_0};
use cache::ComponentCache;
use engine::EpochTicker;
use host::HostState;
use lanes::{Lanes, Standing};

use crate::config::WasmRuntimeConfig;

/// The two kinds of plugin a component can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Agent,
    Tool,
}

impl World {
    fn name(self) -> &'static str {
        match self {
            World::Agent => "agent",
            World::Tool => "tool",
        }
    }
}

/// A linked agent of one supported WIT version.
#[derive(Clone)]
enum AgentPre {
    V0_1_0(v0_1_0::agent::AgentPre<HostState>),
    V0_2_0(v0_2_0::agent::AgentPre<HostState>),
}

/// A linked tool of one supported WIT version.
#[derive(Clone)]
enum ToolPre {
    V0_1_0(v0_1_0::tool::ToolPre<HostState>),
    V0_2_0(v0_2_0::tool::ToolPre<HostState>),
}

/// A compiled, linked agent ready to be instantiated per call.
#[derive(Clone)]
pub struct AgentComponent {
    name: Arc<str>,
    pre: AgentPre,
    limits: CallLimits,
    standing: Arc<Standing>,
}

impl AgentComponent {
    /// The `caxton:agent` version the component was built against.
    pub fn wit_version(&self) -> &'static str {
        match self.pre {
            AgentPre::V0_1_0(_) => Version::V0_1_0.text(),
            AgentPre::V0_2_0(_) => Version::V0_2_0.text(),
        }
    }

    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    /// Starts this agent's next calls on the low-priority threads, as a
    /// fault does (for `[wasm_runtime] fault_probation`): for misbehaviour
    /// the runtime cannot see itself, such as a message cycle or a reply
    /// over the size limit.
    pub fn put_on_probation(&self) {
        self.standing.faulted();
    }
}

/// A compiled, linked tool ready to be instantiated per call.
#[derive(Clone)]
pub struct ToolComponent {
    name: Arc<str>,
    pre: ToolPre,
    limits: CallLimits,
    standing: Arc<Standing>,
}

/// The result of one call and what it consumed, whether it succeeded or not.
#[derive(Debug)]
pub struct CallOutcome<T> {
    pub result: Result<T, RuntimeError>,
    pub usage: CallUsage,
}

/// What a plugin's manifest says about loading it.
pub struct PluginSpec<'a> {
    pub name: &'a str,
    pub component: &'a Path,
    /// The component's bytes when the caller has them already (an upload
    /// being validated before it is written); otherwise read from `component`.
    pub wasm: Option<&'a [u8]>,
    /// Host interfaces the manifest grants (agents only; tools get `log`).
    pub grants: &'a [String],
    pub limits: CallLimits,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    /// One permit per pool slot: a call that cannot get one is refused
    /// at once (backpressure) instead of waiting on the allocator.
    slots: Arc<Semaphore>,
    config: WasmRuntimeConfig,
    /// Where long calls and plugins on probation run.
    lanes: Lanes,
    /// The server's runtime (absent in offline checks): memory writes of
    /// low-priority calls run there.
    server: Option<tokio::runtime::Handle>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine and linker; compiled components are cached in `cache_dir`.
    pub fn new(config: &WasmRuntimeConfig, cache_dir: PathBuf) -> Result<Self, RuntimeError> {
        let engine = engine::build_engine(config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .map_err(|e| RuntimeError::Engine(format!("linking WASI: {e:#}")))?;
        // Every supported version side by side: wasmtime keeps 0.x minor
        // versions apart (they are semver-incompatible), so each component
        // links to the interfaces of the version it was built against.
        v0_1_0::agent::Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .and_then(|()| {
                v0_2_0::agent::Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            })
            .map_err(|e| RuntimeError::Engine(format!("linking host interfaces: {e:#}")))?;
        let cache = ComponentCache::open(cache_dir, &engine)?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick);
        let lane_threads = match config.low_priority_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        Ok(Self {
            engine,
            linker,
            cache,
            slots: Arc::new(Semaphore::new(config.pool_size as usize)),
            lanes: Lanes::new(lane_threads, config.long_call_after)?,
            server: tokio::runtime::Handle::try_current().ok(),
            config: config.clone(),
            _ticker: ticker,
        })
    }

    /// Limits for a plugin whose manifest sets none.
    pub fn default_limits(&self) -> CallLimits {
        CallLimits {
            fuel: self.config.default_fuel,
            timeout: self.config.default_execution_timeout,
            memory_bytes: self.max_memory_bytes(),
        }
    }

    /// The largest per-instance memory cap the pool allows.
    pub fn max_memory_bytes(&self) -> u64 {
        u64::from(self.config.max_memory_per_instance_mb) << 20
    }

    /// Components compiled (not read from the cache) since start.
    pub fn compiled_count(&self) -> u64 {
        self.cache.compiled_count()
    }

    /// Components read from the cache since start.
    pub fn cache_hit_count(&self) -> u64 {
        self.cache.hit_count()
    }

    /// Slots one plugin may hold at once.
    pub fn max_slots_per_plugin(&self) -> usize {
        match self.config.max_slots_per_plugin {
            0 => (self.config.pool_size as usize / 2).max(1),
            n => n as usize,
        }
    }

    /// Pool slots held by calls right now.
    /// Instance slots in all (`[wasm_runtime] pool_size`).
    pub fn pool_size(&self) -> usize {
        self.config.pool_size as usize
    }

    pub fn slots_in_use(&self) -> usize {
        self.config.pool_size as usize - self.slots.available_permits()
    }

    /// Loads an agent component: compile (or read from cache), check its
    /// imports against the grants, link, and check it exports `handle`.
    /// CPU-heavy on a cache miss: call from a blocking context.
    pub fn load_agent(&self, spec: &PluginSpec) -> Result<AgentComponent, RuntimeError> {
        let (component, version) = self.compile(spec, World::Agent)?;
        let pre = self.link(&component, spec.component)?;
        let wrong_world = |e: wasmtime::Error| RuntimeError::WrongWorld {
            path: spec.component.to_owned(),
            world: World::Agent.name(),
            message: format!("{e:#}"),
        };
        let pre = match version {
            Version::V0_1_0 => {
                AgentPre::V0_1_0(v0_1_0::agent::AgentPre::new(pre).map_err(wrong_world)?)
            }
            Version::V0_2_0 => {
                AgentPre::V0_2_0(v0_2_0::agent::AgentPre::new(pre).map_err(wrong_world)?)
            }
        };
        Ok(AgentComponent {
            name: spec.name.into(),
            pre,
            limits: spec.limits,
            standing: Arc::default(),
        })
    }

    /// Loads a tool component; tools may import `log` only.
    pub fn load_tool(&self, spec: &PluginSpec) -> Result<ToolComponent, RuntimeError> {
        let (component, version) = self.compile(spec, World::Tool)?;
        let pre = self.link(&component, spec.component)?;
        let wrong_world = |e: wasmtime::Error| RuntimeError::WrongWorld {
            path: spec.component.to_owned(),
            world: World::Tool.name(),
            message: format!("{e:#}"),
        };
        let pre = match version {
            Version::V0_1_0 => {
                ToolPre::V0_1_0(v0_1_0::tool::ToolPre::new(pre).map_err(wrong_world)?)
            }
            Version::V0_2_0 => {
                ToolPre::V0_2_0(v0_2_0::tool::ToolPre::new(pre).map_err(wrong_world)?)
            }
        };
        Ok(ToolComponent {
            name: spec.name.into(),
            pre,
            limits: spec.limits,
            standing: Arc::default(),
        })
    }

    /// Compiles (or reads from the cache) and checks the imports, which
    /// also say the WIT version the component was built against.
    fn compile(
        &self,
        spec: &PluginSpec,
        world: World,
    ) -> Result<(Component, Version), RuntimeError> {
        let read;
        let wasm = match spec.wasm {
            Some(bytes) => bytes,
            None => {
                read = std::fs::read(spec.component).map_err(|source| {
                    RuntimeError::ReadComponent {
                        path: spec.component.to_owned(),
                        source,
                    }
                })?;
                &read
            }
        };
        let (component, _) = self.cache.load(&self.engine, wasm, spec.component)?;
        let granted: &[String] = spec.grants;
        let version = check_imports(&self.engine, &component, spec.component, world, granted)?;
        Ok((component, version))
    }

    fn link(
        &self,
        component: &Component,
        path: &Path,
    ) -> Result<wasmtime::component::InstancePre<HostState>, RuntimeError> {
        self.linker
            .instantiate_pre(component)
            .map_err(|e| RuntimeError::UnknownImport {
                path: path.to_owned(),
                interface: format!("{e:#}"),
            })
    }

    /// Delivers `message` to the agent on a fresh instance, its imports
    /// reaching `services`; `chain` says where the call sits in a chain of
    /// messages (for its `messaging` imports).
    pub async fn call_agent(
        &self,
        agent: &AgentComponent,
        message: Message,
        services: &HostServices,
        chain: Option<CallChain>,
    ) -> CallOutcome<Result<Option<Message>, PluginError>> {
        let pre = agent.pre.clone();
        self.run(
            &agent.name,
            &agent.standing,
            agent.limits,
            (services.clone(), chain),
            move |store| {
                Box::pin(async move {
                    store.data_mut().handling = message.id.clone();
                    // The same call in each version's generated types.
                    macro_rules! handle {
                        ($pre:expr) => {{
                            let agent = $pre.instantiate_async(&mut *store).await?;
                            let reply = agent.call_handle(&mut *store, &message.into()).await?;
                            reply
                                .map(|reply| reply.map(Message::from))
                                .map_err(PluginError::from)
                        }};
                    }
                    Ok(match pre {
                        AgentPre::V0_1_0(pre) => handle!(pre),
                        AgentPre::V0_2_0(pre) => handle!(pre),
                    })
                })
            },
        )
        .await
    }

    /// Asks the tool to describe itself.
    pub async fn describe_tool(&self, tool: &ToolComponent) -> CallOutcome<ToolDescription> {
        let pre = tool.pre.clone();
        self.run(
            &tool.name,
            &tool.standing,
            tool.limits,
            (HostServices::none(), None),
            move |store| {
                Box::pin(async move {
                    Ok(match pre {
                        ToolPre::V0_1_0(pre) => {
                            let tool = pre.instantiate_async(&mut *store).await?;
                            tool.call_describe(&mut *store).await?.into()
                        }
                        ToolPre::V0_2_0(pre) => {
                            let tool = pre.instantiate_async(&mut *store).await?;
                            tool.call_describe(&mut *store).await?.into()
                        }
                    })
                })
            },
        )
        .await
    }

    /// Runs the tool on JSON `input` on a fresh instance; a tool granted
    /// `http` may fetch what `http` allows (nothing without it).
    pub async fn invoke_tool(
        &self,
        tool: &ToolComponent,
        input: String,
        http: Option<Arc<HttpPolicy>>,
    ) -> CallOutcome<Result<String, PluginError>> {
        let pre = tool.pre.clone();
        self.run(
            &tool.name,
            &tool.standing,
            tool.limits,
            (
                HostServices {
                    http,
                    ..HostServices::none()
                },
                None,
            ),
            move |store| {
                Box::pin(async move {
                    Ok(match pre {
                        ToolPre::V0_1_0(pre) => {
                            let tool = pre.instantiate_async(&mut *store).await?;
                            tool.call_invoke(&mut *store, &input)
                                .await?
                                .map_err(PluginError::from)
                        }
                        ToolPre::V0_2_0(pre) => {
                            let tool = pre.instantiate_async(&mut *store).await?;
                            tool.call_invoke(&mut *store, &input)
                                .await?
                                .map_err(PluginError::from)
                        }
                    })
                })
            },
        )
        .await
    }

    /// The shape of every call: take a slot, make a store with the call's
    /// limits, run `body` in the right lane, classify any fault, report
    /// usage, free the slot.
    async fn run<T: Send + 'static>(
        &self,
        plugin: &Arc<str>,
        standing: &Standing,
        limits: CallLimits,
        (services, chain): (HostServices, Option<CallChain>),
        body: impl for<'s> FnOnce(&'s mut Store<HostState>) -> BoxFuture<'s, wasmtime::Result<T>>
        + Send
        + 'static,
    ) -> CallOutcome<T> {
        let started = Instant::now();
        // The plugin's share first: a plugin at its cap (deep nested
        // requests, say) is refused without touching the shared pool.
        let Some(plugin_slot) = standing.take_slot(self.max_slots_per_plugin()) else {
            return CallOutcome {
                result: Err(RuntimeError::PluginBusy {
                    limit: self.max_slots_per_plugin(),
                }),
                usage: CallUsage::default(),
            };
        };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return CallOutcome {
                result: Err(RuntimeError::PoolExhausted),
                usage: CallUsage::default(),
            };
        };
        let mut store = match self.store_for(plugin, &limits, services, chain) {
            Ok(store) => store,
            Err(error) => {
                return CallOutcome {
                    result: Err(error),
                    usage: CallUsage::default(),
                };
            }
        };

        // Epochs only interrupt running wasm; this outer timeout also covers
        // time the guest spends waiting in host calls (tools, memory). The
        // call owns its store and slot so it can move between lanes, and it
        // frees them where it ends: a demoted call's teardown (a memory
        // reset of up to the cap) stays at low priority too.
        let deadline = limits.timeout + self.config.epoch_tick * 2;
        let call = async move {
            let result = match tokio::time::timeout(deadline, body(&mut store)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(describe_fault(error, &limits, &store)),
                Err(_elapsed) => Err(RuntimeError::DeadlineExceeded {
                    timeout: limits.timeout,
                }),
            };
            let usage = CallUsage {
                fuel_consumed: limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
                wall_time_us: started.elapsed().as_micros() as u64,
                peak_memory_bytes: store.data().limiter.peak_bytes(),
            };
            drop(store);
            drop(slot);
            drop(plugin_slot);
            CallOutcome { result, usage }
        };
        let probation = standing.on_probation(self.config.fault_probation);
        let (finished, demotion) = self.lanes.drive(call, probation).await;
        if let Some(demotion) = demotion {
            crate::metrics::metrics()
                .low_priority_calls
                .with_label_values(&[plugin, demotion.label()])
                .inc();
        }
        let outcome = finished.unwrap_or_else(|| CallOutcome {
            result: Err(RuntimeError::Engine("the host is shutting down".into())),
            usage: CallUsage::default(),
        });
        if let Err(error) = &outcome.result {
            if counts_for_probation(error, demotion.is_some()) {
                standing.faulted();
            }
            tracing::warn!(plugin = &**plugin, code = error.code(), %error, "plugin call failed");
        }
        outcome
    }

    /// A store for one call: fuel, yields, deadline and memory cap.
    fn store_for(
        &self,
        plugin: &Arc<str>,
        limits: &CallLimits,
        services: HostServices,
        chain: Option<CallChain>,
    ) -> Result<Store<HostState>, RuntimeError> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(
                plugin.clone(),
                limits.memory_bytes,
                services,
                chain,
                self.server.clone(),
            ),
        );
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(limits.fuel)
            .and_then(|()| store.fuel_async_yield_interval(Some(self.config.fuel_yield_interval)))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        // A finite tick count: u64::MAX would wrap and trap at once.
        let tick = self.config.epoch_tick.as_nanos().max(1);
        store.set_epoch_deadline((limits.timeout.as_nanos().div_ceil(tick) + 1) as u64);
        store.epoch_deadline_trap();
        Ok(store)
    }
}

/// Whether a failed call puts its plugin on probation. A deadline missed
/// at low priority does not: under load a legitimately busy plugin can run
/// out of wall time there, and probation would keep it there (and failing)
/// for as long as the load lasts. A runaway loop is demoted on every call
/// anyway; what probation catches is the plugin that traps, burns its fuel,
/// hits its memory cap, or stalls the normal lane until its deadline.
fn counts_for_probation(error: &RuntimeError, ran_at_low_priority: bool) -> bool {
    match error {
        RuntimeError::DeadlineExceeded { .. } => !ran_at_low_priority,
        RuntimeError::OutOfFuel { .. }
        | RuntimeError::MemoryLimit(_)
        | RuntimeError::Trap { .. } => true,
        _ => false,
    }
}

/// A trap with the end of the plugin's stderr (a panic message, say).
fn describe_fault(
    error: wasmtime::Error,
    limits: &CallLimits,
    store: &Store<HostState>,
) -> RuntimeError {
    match RuntimeError::from_call(error, limits) {
        RuntimeError::Trap { message } => {
            let state = store.data();
            let raw = state.stderr_text();
            let stderr = stderr::one_line(&raw);
            let message = if stderr.is_empty() {
                message
            } else if state.stderr_written() > raw.len() as u64 {
                let written = state.stderr_written();
                format!("{message}; plugin stderr (end of {written} bytes): {stderr}")
            } else {
                format!("{message}; plugin stderr: {stderr}")
            };
            RuntimeError::Trap { message }
        }
        other => other,
    }
}

/// Refuses a component that imports a host interface its manifest does not
/// grant (or that this host does not have), naming the interface. WASI is
/// allowed: the store's WASI context grants no files, env or network.
fn check_imports(
    engine: &Engine,
    component: &Component,
    path: &Path,
    world: World,
    granted: &[String],
) -> Result<Version, RuntimeError> {
    let prefix = format!("{}/", bindings::PACKAGE);
    let mut found: Option<Version> = None;
    for (import, _) in component.component_type().imports(engine) {
        // Outgoing HTTP only for a tool granted it (agents reach the web
        // through such a tool, under their `[http]` allow list).
        if import.starts_with("wasi:http/") {
            if world == World::Tool && granted.iter().any(|g| g == "http") {
                continue;
            }
            if world == World::Agent {
                return Err(RuntimeError::AgentHttpImport {
                    path: path.to_owned(),
                    interface: import.to_owned(),
                });
            }
            return Err(RuntimeError::UngrantedImport {
                path: path.to_owned(),
                interface: import.to_owned(),
                grant: "http".into(),
            });
        }
        if import.starts_with("wasi:") {
            continue;
        }
        let Some(rest) = import.strip_prefix(&prefix) else {
            return Err(RuntimeError::UnknownImport {
                path: path.to_owned(),
                interface: import.to_owned(),
            });
        };
        // The package version first: an unsupported one is refused by
        // name, before any import is looked up.
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(RuntimeError::UnsupportedVersion {
                path: path.to_owned(),
                version: if version.is_empty() {
                    "(unversioned)".into()
                } else {
                    version.to_owned()
                },
                supported: SUPPORTED_VERSIONS.join(", "),
            });
        }
        let this = Version::parse(version).expect("a supported version");
        match found {
            Some(other) if other != this => {
                return Err(RuntimeError::MixedVersions {
                    path: path.to_owned(),
                    versions: format!("{} and {}", other.text(), this.text()),
                });
            }
            _ => found = Some(this),
        }
        let allowed = match (world, interface) {
            (_, "types") => true,
            (World::Agent, "context") => true,
            (World::Tool, "log") => true,
            (World::Tool, _) => false,
            (World::Agent, name) => granted.iter().any(|g| g == name),
        };
        if allowed {
            continue;
        }
        if world == World::Agent && GRANTABLE_INTERFACES.contains(&interface) {
            return Err(RuntimeError::UngrantedImport {
                path: path.to_owned(),
                interface: import.to_owned(),
                grant: interface.to_owned(),
            });
        }
        return Err(RuntimeError::UnknownImport {
            path: path.to_owned(),
            interface: import.to_owned(),
        });
    }
    // A component that imports nothing of ours (not even a type) can only
    // be a trivial one; the newest version's world fits it.
    Ok(found.unwrap_or(Version::LATEST))
}

/// The `caxton:agent` versions this host links, as a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V0_1_0,
    V0_2_0,
}

impl Version {
    const LATEST: Version = Version::V0_2_0;

    fn parse(text: &str) -> Option<Self> {
        match text {
            "0.1.0" => Some(Self::V0_1_0),
            "0.2.0" => Some(Self::V0_2_0),
            _ => None,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::V0_1_0 => "0.1.0",
            Self::V0_2_0 => "0.2.0",
        }
    }
}
