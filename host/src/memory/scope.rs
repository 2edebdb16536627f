//! Who may read and write which memory. Enforced here, in the store layer,
//! whatever surface (WIT, HTTP, CLI) the call came through.

use serde::{Deserialize, Serialize};

/// How widely an entity is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only the owning agent.
    Agent,
    /// Every agent of the owning workspace.
    Workspace,
    /// Every agent reads; writing needs the manifest's global-write grant.
    Global,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Agent => "agent",
            Scope::Workspace => "workspace",
            Scope::Global => "global",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "agent" => Some(Scope::Agent),
            "workspace" => Some(Scope::Workspace),
            "global" => Some(Scope::Global),
            _ => None,
        }
    }

    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

/// The identity a memory call is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An agent: sees its own, its workspace's and global memory.
    Agent {
        name: String,
        workspace: String,
        /// Scope `remember` uses when none is given.
        default_scope: Scope,
        /// May write global memory.
        global_write: bool,
    },
    /// The operator (HTTP without an agent, the CLI): sees and writes all.
    Operator,
}

/// The workspace agents belong to until manifests name one.
pub const DEFAULT_WORKSPACE: &str = "default";

impl Caller {
    /// An agent in the default workspace with agent-scoped memory.
    pub fn agent(name: impl Into<String>) -> Self {
        Caller::Agent {
            name: name.into(),
            workspace: DEFAULT_WORKSPACE.into(),
            default_scope: Scope::Agent,
            global_write: false,
        }
    }

    /// Scopes this caller reads, most private first: a name is resolved
    /// to the first scope that has it.
    pub fn readable(&self) -> Vec<(Scope, String)> {
        match self {
            Caller::Agent {
                name, workspace, ..
            } => vec![
                (Scope::Agent, name.clone()),
                (Scope::Workspace, workspace.clone()),
                (Scope::Global, String::new()),
            ],
            Caller::Operator => Vec::new(),
        }
    }

    /// Whether this caller may read a row with `scope` and `owner`.
    /// Whose turn this caller's embedding work waits for: each agent has
    /// its own, and the operator one (prefixed, so no agent's name can
    /// share another caller's turn).
    pub fn lane(&self) -> String {
        match self {
            Caller::Agent { name, .. } => format!("agent:{name}"),
            Caller::Operator => "operator".to_owned(),
        }
    }

    pub fn can_read(&self, scope: Scope, owner: &str) -> bool {
        match self {
            Caller::Operator => true,
            agent => agent
                .readable()
                .iter()
                .any(|(s, o)| *s == scope && o == owner),
        }
    }

    /// The owner a write into `scope` records, or why it is not allowed.
    pub fn owner_for(&self, scope: Scope) -> Result<String, String> {
        match (self, scope) {
            (Caller::Agent { name, .. }, Scope::Agent) => Ok(name.clone()),
            (Caller::Agent { workspace, .. }, Scope::Workspace) => Ok(workspace.clone()),
            (
                Caller::Agent {
                    global_write, name, ..
                },
                Scope::Global,
            ) => {
                if *global_write {
                    Ok(String::new())
                } else {
                    Err(format!(
                        "agent {name:?} may not write global memory; grant it with `global_write = true` under [memory] in its manifest"
                    ))
                }
            }
            (Caller::Operator, Scope::Agent) => Err(
                "agent-scoped memory belongs to an agent: name it (the `agent` field or parameter)"
                    .into(),
            ),
            (Caller::Operator, Scope::Workspace) => Ok(DEFAULT_WORKSPACE.into()),
            (Caller::Operator, Scope::Global) => Ok(String::new()),
        }
    }

    pub fn default_scope(&self) -> Scope {
        match self {
            Caller::Agent { default_scope, .. } => *default_scope,
            Caller::Operator => Scope::Global,
        }
    }
}
