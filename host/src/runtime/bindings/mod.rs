//! Host-side bindings of the `caxton:agent` WIT package, one module per
//! supported version (as Zed's extension host keeps one per API version).
//! Each converts its generated types to Caxton's own ([`super::types`]),
//! so the rest of the host never sees a generated type, and a component
//! built against an older supported version keeps loading unchanged.
//!
//! The rule: a shipped version's WIT (`wit/vX.Y.Z/`) is never edited. A
//! new version is a new directory and a new module here; `latest` names
//! the newest; [`SUPPORTED_VERSIONS`] lists what the host links. What the
//! versions share is written once in `shared`.

mod shared;
pub mod v0_1_0;
pub mod v0_2_0;

/// The WIT package every host interface lives under.
pub const PACKAGE: &str = "caxton:agent";

/// Versions of [`PACKAGE`] this host can run, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// Host interfaces a plugin can be granted, as named in manifests.
/// (`llm` exists from 0.2.0 on; granting it to a 0.1.0 component is
/// harmless, the component cannot import it.)
pub const GRANTABLE_INTERFACES: [&str; 5] = ["log", "memory", "tools", "messaging", "llm"];
