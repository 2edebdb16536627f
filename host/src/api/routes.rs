//! The API's route table: every route once, with what the front needs to
//! know about it before the route runs (is a token needed, what the body
//! may be sent as) and the template that names it in metrics.
//!
//! A new route is added here and to `openapi.json` beside this file:
//! `tests/openapi.rs` checks that the two list the same routes and that
//! each one answers on a live server.

/// One route: a method and a path template, `{placeholder}` standing for
/// one path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// Answered without a token and outside the rate limit: probes must
    /// work without credentials and must not be starved by a busy client.
    pub public: bool,
    /// Media types the body may be sent as; `None` for routes that read no
    /// body. A browser's form post cannot send `application/json`, so
    /// requiring it keeps web pages from driving the API.
    pub body: Option<&'static [&'static str]>,
    /// Compiles a component: a large one (a Python or JavaScript plugin
    /// carries its interpreter) takes longer than an ordinary request, so
    /// these get `[http_server] deploy_timeout` instead of `request_timeout`.
    pub compiles: bool,
}

const JSON: &[&str] = &["application/json"];
/// A manifest may be sent as JSON or as the TOML text itself.
const MANIFEST: &[&str] = &["application/json", "application/toml", "text/plain"];
const JSON_LINES: &[&str] = &[
    "application/x-ndjson",
    "application/jsonl",
    "application/json",
];

const fn get(path: &'static str) -> Route {
    Route {
        method: "GET",
        path,
        public: false,
        body: None,
        compiles: false,
    }
}

/// A route that deploys or checks a component.
const fn compiling(route: Route) -> Route {
    Route {
        compiles: true,
        ..route
    }
}

const fn public(path: &'static str) -> Route {
    Route {
        public: true,
        ..get(path)
    }
}

const fn delete(path: &'static str) -> Route {
    Route {
        method: "DELETE",
        ..get(path)
    }
}

const fn post(path: &'static str, body: Option<&'static [&'static str]>) -> Route {
    Route {
        method: "POST",
        body,
        ..get(path)
    }
}

const fn put(path: &'static str) -> Route {
    Route {
        method: "PUT",
        body: Some(JSON),
        ..get(path)
    }
}

/// Where MCP is served (the `mcp` module mounts it in front of these
/// routes). Not a REST route: it is not in the table or the OpenAPI
/// document; its own service checks methods and media types.
pub const MCP_PATH: &str = "/mcp";

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    public("/api/v1/health"),
    public("/api/v1/ready"),
    get("/api/v1/status"),
    get("/api/v1/cluster/nodes"),
    get("/api/v1/openapi.json"),
    get("/api/v1/agents"),
    compiling(post("/api/v1/agents", Some(JSON))),
    post("/api/v1/agents/validate", Some(MANIFEST)),
    get("/api/v1/agents/{name}"),
    compiling(put("/api/v1/agents/{name}")),
    delete("/api/v1/agents/{name}"),
    post("/api/v1/agents/{name}/messages", Some(JSON)),
    compiling(post("/api/v1/agents/{name}/reload", None)),
    post("/api/v1/messages", Some(JSON)),
    post("/api/v1/chat/completions", Some(JSON)),
    get("/api/v1/conversations"),
    get("/api/v1/conversations/{id}"),
    get("/api/v1/conversations/{id}/messages"),
    post("/api/v1/embeddings", Some(JSON)),
    get("/api/v1/models"),
    get("/api/v1/models/{model}"),
    get("/api/v1/mcp/servers"),
    post("/api/v1/memory/entities", Some(JSON)),
    post("/api/v1/memory/observations", Some(JSON)),
    post("/api/v1/memory/relations", Some(JSON)),
    post("/api/v1/memory/search", Some(JSON)),
    get("/api/v1/memory/entities/{name}"),
    delete("/api/v1/memory/entities/{name}"),
    get("/api/v1/memory/graph/{name}"),
    get("/api/v1/memory/stats"),
    get("/api/v1/history"),
    get("/api/v1/history/alerts"),
    get("/api/v1/memory/export"),
    post("/api/v1/memory/import", Some(JSON_LINES)),
];

/// What the front needs to know about one request's path, found in one
/// pass over the table: its metric label, whether it is public, and what
/// its body may be sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// See [`route_template`].
    pub template: String,
    /// Whether any route at the path is public (whatever the method: a
    /// wrong method on a probe gets its 405 without a token).
    pub public: bool,
    /// The media types of the route `method path` is, if it reads a body.
    pub body: Option<&'static [&'static str]>,
    /// Whether the route `method path` compiles a component.
    pub compiles: bool,
}

/// Resolves `method path` against the table once per request. Literal
/// segments win over placeholders (`agents/validate` is the validate
/// route, not an agent called "validate"), then the table's order.
pub fn resolve(method: &str, path: &str) -> Resolved {
    if path == MCP_PATH {
        return Resolved {
            template: path.into(),
            public: false,
            body: None,
            compiles: false,
        };
    }
    // The status page's files hold no data: loaded without a token, which
    // the page then asks for.
    if crate::ui::is_ui_path(path) {
        return Resolved {
            template: "/ui".into(),
            public: true,
            body: None,
            compiles: false,
        };
    }
    let matches: Vec<&'static Route> = matching(path).collect();
    let own = matches
        .iter()
        .find(|route| route.method.eq_ignore_ascii_case(method));
    Resolved {
        template: matches
            .first()
            .map_or_else(|| "other".into(), |r| template_of(r)),
        public: matches.iter().any(|route| route.public),
        body: own.and_then(|route| route.body),
        compiles: own.is_some_and(|route| route.compiles),
    }
}

/// The template of the route at `path` in the `:placeholder` form metrics
/// use (`/api/v1/agents/:name/messages`), or `other`: a bounded set of
/// label values, whatever paths clients send.
pub fn route_template(path: &str) -> String {
    matching(path)
        .next()
        .map_or_else(|| "other".into(), template_of)
}

/// A route's path with `{name}` written `:name`.
fn template_of(route: &Route) -> String {
    route
        .path
        .split('/')
        .map(|segment| match placeholder(segment) {
            Some(name) => format!(":{name}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes whose template matches `path`, most literal first.
fn matching(path: &str) -> impl Iterator<Item = &'static Route> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut found: Vec<(usize, &'static Route)> = ROUTES
        .iter()
        .filter_map(|route| {
            let template: Vec<&str> = route.path.split('/').collect();
            if template.len() != segments.len() {
                return None;
            }
            let mut placeholders = 0;
            for (want, got) in template.iter().zip(&segments) {
                if placeholder(want).is_some() {
                    if got.is_empty() {
                        return None;
                    }
                    placeholders += 1;
                } else if want != got {
                    return None;
                }
            }
            Some((placeholders, route))
        })
        .collect();
    found.sort_by_key(|(placeholders, _)| *placeholders);
    found.into_iter().map(|(_, route)| route)
}

fn placeholder(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_hide_names() {
        assert_eq!(route_template("/api/v1/health"), "/api/v1/health");
        assert_eq!(
            route_template("/api/v1/agents/echo/messages"),
            "/api/v1/agents/:name/messages"
        );
        assert_eq!(
            route_template("/api/v1/memory/entities/Alice%20Smith"),
            "/api/v1/memory/entities/:name"
        );
        assert_eq!(
            route_template("/api/v1/memory/entities"),
            "/api/v1/memory/entities"
        );
        assert_eq!(
            route_template("/api/v1/agents/validate"),
            "/api/v1/agents/validate"
        );
        assert_eq!(
            route_template("/api/v1/agents/validate/messages"),
            "/api/v1/agents/:name/messages"
        );
        assert_eq!(route_template("/wp-admin/x"), "other");
        assert_eq!(route_template("/api/v1/Random123"), "other");
        // Made-up paths under the API are one label, not one each.
        assert_eq!(route_template("/api/v1/aaaa"), "other");
    }

    #[test]
    fn the_table_says_what_the_front_checks() {
        assert!(resolve("GET", "/api/v1/health").public);
        assert!(!resolve("GET", "/api/v1/agents").public);
        assert_eq!(resolve("POST", "/api/v1/memory/search").body, Some(JSON));
        assert_eq!(
            resolve("POST", "/api/v1/agents/validate").body,
            Some(MANIFEST)
        );
        // An agent named "validate" is replaced with JSON, like any other.
        assert_eq!(resolve("PUT", "/api/v1/agents/validate").body, Some(JSON));
        assert_eq!(resolve("post", "/api/v1/agents/x/reload").body, None);
        assert_eq!(
            resolve("POST", "/api/v1/agents/validate/reload").template,
            "/api/v1/agents/:name/reload"
        );
        assert_eq!(resolve("GET", "/api/v1/nope").template, "other");
        // Deployments and reloads compile; nothing else gets their deadline.
        assert!(resolve("POST", "/api/v1/agents").compiles);
        assert!(resolve("PUT", "/api/v1/agents/echo").compiles);
        assert!(resolve("POST", "/api/v1/agents/echo/reload").compiles);
        assert!(!resolve("GET", "/api/v1/agents/echo").compiles);
        assert!(!resolve("POST", "/api/v1/agents/validate").compiles);
        assert!(!resolve("POST", "/api/v1/agents/echo/messages").compiles);
        let resolved = resolve("POST", "/api/v1/agents/echo/messages");
        assert_eq!(resolved.template, "/api/v1/agents/:name/messages");
        assert_eq!((resolved.public, resolved.body), (false, Some(JSON)));
        assert!(resolve("GET", "/api/v1/ready").public);
    }
}
