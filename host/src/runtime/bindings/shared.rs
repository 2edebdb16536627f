//! What every `caxton:agent` version so far has in common, written once:
//! the conversions between a version's generated types and Caxton's own,
//! and the host side of the interfaces that did not change. Each version
//! module invokes these with its own generated modules; a version that
//! changes an interface writes that part by hand instead.

/// `From` both ways between a version's `types`/`memory`/`log` and
/// [`crate::runtime::types`]. The invoking module names its generated
/// interface modules `wit_types`, `wit_memory` and `wit_log`.
macro_rules! conversions {
    () => {
        use $crate::runtime::types as own;

        impl From<wit_types::Performative> for own::Performative {
            fn from(performative: wit_types::Performative) -> Self {
                use wit_types::Performative as P;
                match performative {
                    P::Request => Self::Request,
                    P::Inform => Self::Inform,
                    P::Query => Self::Query,
                    P::Propose => Self::Propose,
                    P::AcceptProposal => Self::AcceptProposal,
                    P::RejectProposal => Self::RejectProposal,
                    P::Failure => Self::Failure,
                    P::NotUnderstood => Self::NotUnderstood,
                }
            }
        }

        impl From<own::Performative> for wit_types::Performative {
            fn from(performative: own::Performative) -> Self {
                use own::Performative as P;
                match performative {
                    P::Request => Self::Request,
                    P::Inform => Self::Inform,
                    P::Query => Self::Query,
                    P::Propose => Self::Propose,
                    P::AcceptProposal => Self::AcceptProposal,
                    P::RejectProposal => Self::RejectProposal,
                    P::Failure => Self::Failure,
                    P::NotUnderstood => Self::NotUnderstood,
                }
            }
        }

        impl From<wit_types::Message> for own::Message {
            fn from(m: wit_types::Message) -> Self {
                Self {
                    id: m.id,
                    performative: m.performative.into(),
                    sender: m.sender,
                    receiver: m.receiver,
                    capability: m.capability,
                    conversation_id: m.conversation_id,
                    reply_with: m.reply_with,
                    in_reply_to: m.in_reply_to,
                    content: m.content,
                }
            }
        }

        impl From<own::Message> for wit_types::Message {
            fn from(m: own::Message) -> Self {
                Self {
                    id: m.id,
                    performative: m.performative.into(),
                    sender: m.sender,
                    receiver: m.receiver,
                    capability: m.capability,
                    conversation_id: m.conversation_id,
                    reply_with: m.reply_with,
                    in_reply_to: m.in_reply_to,
                    content: m.content,
                }
            }
        }

        impl From<wit_types::Error> for own::PluginError {
            fn from(error: wit_types::Error) -> Self {
                use wit_types::Error as E;
                match error {
                    E::InvalidInput(t) => Self::InvalidInput(t),
                    E::NotFound(t) => Self::NotFound(t),
                    E::Denied(t) => Self::Denied(t),
                    E::Unavailable(t) => Self::Unavailable(t),
                    E::Timeout(t) => Self::Timeout(t),
                    E::Internal(t) => Self::Internal(t),
                }
            }
        }

        impl From<own::PluginError> for wit_types::Error {
            fn from(error: own::PluginError) -> Self {
                use own::PluginError as E;
                match error {
                    E::InvalidInput(t) => Self::InvalidInput(t),
                    E::NotFound(t) => Self::NotFound(t),
                    E::Denied(t) => Self::Denied(t),
                    E::Unavailable(t) => Self::Unavailable(t),
                    E::Timeout(t) => Self::Timeout(t),
                    E::Internal(t) => Self::Internal(t),
                }
            }
        }

        impl From<wit_types::ToolDescription> for own::ToolDescription {
            fn from(d: wit_types::ToolDescription) -> Self {
                Self {
                    name: d.name,
                    description: d.description,
                    input_schema: d.input_schema,
                }
            }
        }

        impl From<own::ToolDescription> for wit_types::ToolDescription {
            fn from(d: own::ToolDescription) -> Self {
                Self {
                    name: d.name,
                    description: d.description,
                    input_schema: d.input_schema,
                }
            }
        }

        impl From<own::MemoryEntity> for wit_memory::Entity {
            fn from(e: own::MemoryEntity) -> Self {
                Self {
                    name: e.name,
                    entity_type: e.entity_type,
                    observations: e.observations,
                }
            }
        }

        impl From<own::MemoryHit> for wit_memory::SearchHit {
            fn from(h: own::MemoryHit) -> Self {
                Self {
                    entity: h.entity,
                    entity_type: h.entity_type,
                    observation: h.observation,
                    score: h.score,
                }
            }
        }

        impl From<wit_log::Level> for own::LogLevel {
            fn from(level: wit_log::Level) -> Self {
                use wit_log::Level as L;
                match level {
                    L::Trace => Self::Trace,
                    L::Debug => Self::Debug,
                    L::Info => Self::Info,
                    L::Warn => Self::Warn,
                    L::Error => Self::Error,
                }
            }
        }
    };
}

/// The host side of `types`, `log`, `memory` and `messaging`, unchanged
/// since 0.1.0: each converts and calls [`HostState`](crate::runtime::host::HostState).
/// The invoking module also names its `messaging` module `wit_messaging`.
macro_rules! unchanged_interfaces {
    () => {
        use $crate::runtime::host::HostState;

        impl wit_types::Host for HostState {}

        impl wit_log::Host for HostState {
            async fn log(&mut self, level: wit_log::Level, message: String) {
                HostState::log(self, level.into(), message)
            }
        }

        impl wit_memory::Host for HostState {
            async fn remember(
                &mut self,
                name: String,
                entity_type: String,
                observations: Vec<String>,
            ) -> Result<(), wit_types::Error> {
                Ok(HostState::remember(self, name, entity_type, observations).await?)
            }

            async fn relate(
                &mut self,
                from: String,
                to: String,
                relation_type: String,
            ) -> Result<(), wit_types::Error> {
                Ok(HostState::relate(self, from, to, relation_type).await?)
            }

            async fn search(
                &mut self,
                query: String,
                limit: u32,
            ) -> Result<Vec<wit_memory::SearchHit>, wit_types::Error> {
                let hits = HostState::search(self, query, limit).await?;
                Ok(hits.into_iter().map(Into::into).collect())
            }

            async fn open(
                &mut self,
                names: Vec<String>,
            ) -> Result<Vec<wit_memory::Entity>, wit_types::Error> {
                let entities = HostState::open(self, names).await?;
                Ok(entities.into_iter().map(Into::into).collect())
            }

            async fn forget(&mut self, name: String) -> Result<(), wit_types::Error> {
                Ok(HostState::forget(self, name).await?)
            }
        }

        impl wit_messaging::Host for HostState {
            async fn send(&mut self, message: wit_types::Message) -> Result<(), wit_types::Error> {
                Ok(HostState::send(self, message.into()).await?)
            }

            async fn request(
                &mut self,
                message: wit_types::Message,
                timeout_ms: u32,
            ) -> Result<wit_types::Message, wit_types::Error> {
                Ok(HostState::request(self, message.into(), timeout_ms)
                    .await?
                    .into())
            }
        }
    };
}

pub(super) use {conversions, unchanged_interfaces};
