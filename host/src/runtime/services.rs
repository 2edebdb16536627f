//! The host services a plugin reaches through its imports, one small trait
//! per capability (as Spin's factors are one unit each). The runtime cannot
//! depend on the services above it, so it defines what it needs here; the
//! agent registry and the messenger implement the traits, and `server`
//! assembles them once into [`HostServices`].
//!
//! No method has a default: a service that forgets one fails to compile.
//! Where a capability is missing on purpose (tools calling tools, offline
//! checks) [`Unavailable`] says so explicitly.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::chat::{ChatRequest, ChatResponse};
use super::types::{MemoryEntity, MemoryHit, Message, PluginError, ToolDescription};

/// A boxed future, for the object-safe service traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where one call sits in a chain of messages. The runtime only carries it
/// from the call to the call's imports; the messaging service made it and
/// reads it back (as `dyn Any`), and `llm` finds the call's stream in it.
pub type CallChain = Arc<dyn ChainScope>;

/// Where a call streams the text its `llm.chat` generates: to the client
/// waiting for the agent's reply, when that client asked for a stream.
pub type DeltaSink = tokio::sync::mpsc::Sender<String>;

/// What the host services may ask of a call's chain, whoever made it.
pub trait ChainScope: Any + Send + Sync {
    /// The stream of the client waiting for this call's reply, if any.
    fn deltas(&self) -> Option<&DeltaSink>;
}

/// `tools`: a plugin calling a tool.
pub trait ToolHost: Send + Sync {
    /// Runs tool `tool` with JSON `input` on behalf of plugin `caller`,
    /// after checking the caller's allowlist.
    fn call_tool<'a>(
        &'a self,
        caller: &'a str,
        tool: &'a str,
        input: String,
    ) -> BoxFuture<'a, Result<String, PluginError>>;

    /// What each deployed tool on `caller`'s allowlist says about itself.
    fn available<'a>(&'a self, caller: &'a str) -> BoxFuture<'a, Vec<ToolDescription>>;
}

/// `memory`: the knowledge graph, as plugin `caller` (the plugin cannot
/// name another owner, so scopes are enforced on the host side).
pub trait MemoryHost: Send + Sync {
    fn remember<'a>(
        &'a self,
        caller: &'a str,
        name: String,
        entity_type: String,
        observations: Vec<String>,
    ) -> BoxFuture<'a, Result<(), PluginError>>;

    fn relate<'a>(
        &'a self,
        caller: &'a str,
        from: String,
        to: String,
        relation_type: String,
    ) -> BoxFuture<'a, Result<(), PluginError>>;

    fn search<'a>(
        &'a self,
        caller: &'a str,
        query: String,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, PluginError>>;

    fn open<'a>(
        &'a self,
        caller: &'a str,
        names: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<MemoryEntity>, PluginError>>;

    fn forget<'a>(
        &'a self,
        caller: &'a str,
        name: String,
    ) -> BoxFuture<'a, Result<(), PluginError>>;
}

/// `messaging`: a plugin sending to other agents, from where its call sits
/// in a chain (`None` for a call made outside any chain).
pub trait MessagingHost: Send + Sync {
    /// Deliver without waiting.
    fn send<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        message: Message,
    ) -> BoxFuture<'a, Result<(), PluginError>>;

    /// Deliver and await the reply.
    fn request<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        message: Message,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Message, PluginError>>;
}

/// `context`: what a plugin may know about itself.
pub trait ContextHost: Send + Sync {
    /// The `[parameters]` of plugin `caller`'s manifest as JSON text.
    fn parameters(&self, caller: &str) -> String;

    /// Plugin `caller`'s whole manifest as JSON text.
    fn manifest(&self, caller: &str) -> String;
}

/// `context.history`: the conversation a call belongs to.
pub trait ConversationHost: Send + Sync {
    /// The earlier messages of the conversation of the call at `chain`,
    /// oldest first, at most `limit` (the newest kept), without
    /// `handling` (the message being handled).
    fn history<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        handling: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Message>, PluginError>>;
}

/// `llm`: chat with a language model as plugin `caller` (its manifest's
/// provider, model and options fill what the request leaves unset).
pub trait LlmHost: Send + Sync {
    fn chat<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        request: ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, PluginError>>;
}

/// The services a plugin call gets, assembled once.
#[derive(Clone)]
pub struct HostServices {
    pub tools: Arc<dyn ToolHost>,
    pub memory: Arc<dyn MemoryHost>,
    pub messaging: Arc<dyn MessagingHost>,
    pub context: Arc<dyn ContextHost>,
    pub conversations: Arc<dyn ConversationHost>,
    pub llm: Arc<dyn LlmHost>,
    /// What a tool granted `http` may fetch: its calling agent's `[http]`
    /// policy (none: every request is refused).
    pub http: Option<Arc<super::outgoing_http::HttpPolicy>>,
}

impl HostServices {
    /// Nothing but refusals: for tools (which may call nothing) and for
    /// checks that run a plugin outside a server.
    pub fn none() -> Self {
        let unavailable = Arc::new(Unavailable);
        Self {
            tools: unavailable.clone(),
            memory: unavailable.clone(),
            messaging: unavailable.clone(),
            context: unavailable.clone(),
            conversations: unavailable.clone(),
            llm: unavailable,
            http: None,
        }
    }
}

/// Every capability, refused with a reason.
pub struct Unavailable;

fn refuse<'a, T: Send + 'a>(error: PluginError) -> BoxFuture<'a, Result<T, PluginError>> {
    Box::pin(async move { Err(error) })
}

fn memory_unavailable() -> PluginError {
    PluginError::Unavailable("agent memory is not available on this host".into())
}

impl ToolHost for Unavailable {
    fn call_tool<'a>(
        &'a self,
        caller: &'a str,
        tool: &'a str,
        _input: String,
    ) -> BoxFuture<'a, Result<String, PluginError>> {
        refuse(PluginError::Denied(format!(
            "{caller} cannot call tool {tool}: tools cannot call other tools"
        )))
    }

    fn available<'a>(&'a self, _caller: &'a str) -> BoxFuture<'a, Vec<ToolDescription>> {
        Box::pin(async { Vec::new() })
    }
}

impl MemoryHost for Unavailable {
    fn remember<'a>(
        &'a self,
        _caller: &'a str,
        _name: String,
        _entity_type: String,
        _observations: Vec<String>,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        refuse(memory_unavailable())
    }

    fn relate<'a>(
        &'a self,
        _caller: &'a str,
        _from: String,
        _to: String,
        _relation_type: String,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        refuse(memory_unavailable())
    }

    fn search<'a>(
        &'a self,
        _caller: &'a str,
        _query: String,
        _limit: u32,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, PluginError>> {
        refuse(memory_unavailable())
    }

    fn open<'a>(
        &'a self,
        _caller: &'a str,
        _names: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<MemoryEntity>, PluginError>> {
        refuse(memory_unavailable())
    }

    fn forget<'a>(
        &'a self,
        _caller: &'a str,
        _name: String,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        refuse(memory_unavailable())
    }
}

impl MessagingHost for Unavailable {
    fn send<'a>(
        &'a self,
        _caller: &'a str,
        _chain: Option<&'a CallChain>,
        _message: Message,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        refuse(messaging_unavailable())
    }

    fn request<'a>(
        &'a self,
        _caller: &'a str,
        _chain: Option<&'a CallChain>,
        _message: Message,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Message, PluginError>> {
        refuse(messaging_unavailable())
    }
}

/// Why `messaging` fails where it is not wired or a call is outside a chain.
pub fn messaging_unavailable() -> PluginError {
    PluginError::Unavailable("agent-to-agent messaging is not available to this plugin".into())
}

impl ContextHost for Unavailable {
    fn parameters(&self, _caller: &str) -> String {
        "{}".into()
    }

    fn manifest(&self, _caller: &str) -> String {
        "{}".into()
    }
}

impl ConversationHost for Unavailable {
    fn history<'a>(
        &'a self,
        _caller: &'a str,
        _chain: Option<&'a CallChain>,
        _handling: &'a str,
        _limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Message>, PluginError>> {
        // Outside a conversation there is no history: not an error.
        Box::pin(async { Ok(Vec::new()) })
    }
}

impl LlmHost for Unavailable {
    fn chat<'a>(
        &'a self,
        _caller: &'a str,
        _chain: Option<&'a CallChain>,
        _request: ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, PluginError>> {
        refuse(PluginError::Unavailable(
            "no language model is available to this plugin".into(),
        ))
    }
}
