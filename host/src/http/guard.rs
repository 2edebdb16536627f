//! Checks that keep web pages from driving the API from a browser: a body
//! must be declared as what the route reads (a form post cannot be; the
//! route table says what each reads), and, with auth off, the `Host`
//! header must name this server (DNS rebinding gives an attacker's page a
//! name that resolves to loopback) and a write must not come from another
//! site's page.

use std::net::{IpAddr, SocketAddr};

use warp::http::{HeaderMap, header};

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
    fn content_types_are_compared_without_their_parameters() {
        let json = &["application/json"];
        assert!(content_type_is(
            &with(header::CONTENT_TYPE, "application/json; charset=utf-8"),
            json
        ));
        assert!(!content_type_is(
            &with(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            json
        ));
        assert!(!content_type_is(&HeaderMap::new(), json));
    }
}
