//! Checks that keep web pages from driving the API from a browser: a body
//! must be declared as what the route reads (a form post cannot be), and,
//! with auth off, the `Host` header must name this server (DNS rebinding
//! gives an attacker's page a name that resolves to loopback).

use std::net::{IpAddr, SocketAddr};

use warp::http::{HeaderMap, Method, header};

/// Media types a route's body may be sent as; `None` for routes that read
/// no body (and for paths that are no route: those get their 404).
/// `route` is the template from `api::route_template`.
pub fn body_media_types(method: &Method, route: &str) -> Option<&'static [&'static str]> {
    const JSON: &[&str] = &["application/json"];
    match (method.as_str(), route) {
        // A manifest may be sent as JSON or as the TOML text itself.
        ("POST", "/api/v1/agents/validate") => {
            Some(&["application/json", "application/toml", "text/plain"])
        }
        ("POST", "/api/v1/memory/import") => Some(&[
            "application/x-ndjson",
            "application/jsonl",
            "application/json",
        ]),
        (
            "POST",
            "/api/v1/agents"
            | "/api/v1/agents/:name/messages"
            | "/api/v1/messages"
            | "/api/v1/embeddings"
            | "/api/v1/memory/entities"
            | "/api/v1/memory/observations"
            | "/api/v1/memory/relations"
            | "/api/v1/memory/search",
        ) => Some(JSON),
        // An agent may be named `validate`: its replacement is JSON too.
        ("PUT", "/api/v1/agents/:name" | "/api/v1/agents/validate") => Some(JSON),
        _ => None,
    }
}

/// Whether the request's `Content-Type` (parameters such as `charset`
/// aside) is one of `accepted`.
pub fn content_type_is(headers: &HeaderMap, accepted: &[&str]) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    accepted.iter().any(|a| essence.eq_ignore_ascii_case(a))
}

/// The host names a server listening on `listen` answers to.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    names: Vec<String>,
    /// Listening on every address: any IP literal names this server.
    any_ip: bool,
}

impl AllowedHosts {
    pub fn new(listen: SocketAddr, extra: &[String]) -> Self {
        let ip = listen.ip();
        let mut names: Vec<String> = extra.iter().map(|n| n.to_ascii_lowercase()).collect();
        names.push(ip.to_string());
        if ip.is_loopback() || ip.is_unspecified() {
            names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
        }
        Self {
            names,
            any_ip: ip.is_unspecified(),
        }
    }

    /// Whether a request that changes something may come from the page
    /// that sent it: a browser names that page's origin in `Origin`, and
    /// with auth off only pages of this server itself may write (a form on
    /// any web page could otherwise post to a loopback address). Requests
    /// without `Origin` are not from a browser's cross-site form.
    pub fn allows_origin(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        // `scheme://host[:port]`; "null" (sandboxed pages, files) is foreign.
        let Some((_, authority)) = origin.split_once("://") else {
            return false;
        };
        self.names_host(authority)
    }

    /// Whether the `Host` header names this server (the port is not
    /// checked: a rebinding attack keeps it). A request without one is
    /// not from a browser, which always sends it.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST) else {
            return true;
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        self.names_host(host)
    }

    /// Whether `host[:port]` names this server.
    fn names_host(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        (self.any_ip && name.parse::<IpAddr>().is_ok()) || self.names.iter().any(|n| n == name)
    }
}

/// `host[:port]` or `[v6][:port]` without the port and brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use warp::http::HeaderValue;

    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn loopback_answers_to_its_own_names_only() {
        let allowed = AllowedHosts::new("127.0.0.1:8080".parse().unwrap(), &[]);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "localhost.",
        ] {
            assert!(allowed.allows(&with(header::HOST, ok)), "{ok}");
        }
        for refused in ["evil.example:8080", "127.0.0.1.nip.io", "10.0.0.1"] {
            assert!(!allowed.allows(&with(header::HOST, refused)), "{refused}");
        }
        assert!(allowed.allows(&HeaderMap::new()));
        assert!(allowed.allows_origin(&with(header::ORIGIN, "http://localhost:8080")));
        assert!(!allowed.allows_origin(&with(header::ORIGIN, "https://evil.example")));
        assert!(!allowed.allows_origin(&with(header::ORIGIN, "null")));
        assert!(allowed.allows_origin(&HeaderMap::new()));
    }

    #[test]
    fn a_wildcard_listener_takes_ip_literals_and_configured_names() {
        let allowed = AllowedHosts::new("0.0.0.0:80".parse().unwrap(), &["Box.Local".into()]);
        assert!(allowed.allows(&with(header::HOST, "192.168.1.20")));
        assert!(allowed.allows(&with(header::HOST, "box.local:80")));
        assert!(!allowed.allows(&with(header::HOST, "attacker.example")));
    }

    #[test]
    fn json_routes_need_a_json_content_type() {
        let json = body_media_types(&Method::POST, "/api/v1/memory/search").unwrap();
        assert!(content_type_is(
            &with(header::CONTENT_TYPE, "application/json; charset=utf-8"),
            json
        ));
        assert!(!content_type_is(
            &with(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            json
        ));
        assert!(!content_type_is(&HeaderMap::new(), json));
        assert!(body_media_types(&Method::GET, "/api/v1/agents").is_none());
        assert!(body_media_types(&Method::POST, "/api/v1/agents/:name/reload").is_none());
        assert!(body_media_types(&Method::POST, "/api/v1/agents/validate/reload").is_none());
        assert_eq!(
            body_media_types(&Method::PUT, "/api/v1/agents/validate"),
            Some(json)
        );
    }
}
