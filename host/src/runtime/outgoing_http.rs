//! Outgoing HTTP for tools granted `http` (the built-in `http_client`):
//! `wasi:http` requests are sent by this hook, never by wasmtime's default
//! sender, so every request — each redirect the guest follows is a new one
//! — is checked against the calling agent's `[http]` policy: its allow
//! list (host, and optionally scheme and port), the addresses a name
//! resolves to (private, loopback and link-local ones only when listed as
//! addresses, so a public name cannot be pointed at the box's own
//! services), a timeout and a response cap. Without a policy (a tool
//! called by an agent with no `[http]`, or by the operator over MCP) every
//! request is refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Largest request body a tool may send.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// One entry of an `[http] allow` list: `host`, `host:port`,
/// `scheme://host[:port]`, or `*.domain` for its subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Name(String),
    /// `*.example.com`: any name under example.com (not itself).
    Subdomains(String),
    Address(IpAddr),
}

impl AllowRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "write a host (\"api.example.com\"), host:port (\"127.0.0.1:8089\"), a scheme (\"https://api.example.com\") or subdomains (\"*.example.com\")";
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(format!("{text:?}: scheme {scheme:?} is not http or https"));
                }
                (Some(scheme), rest)
            }
            None => (None, text),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!("{text:?} is not a host; {hint}"));
        }
        // `[::1]:8080`, `[::1]`, `host:port`, `host`.
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (address, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(format!("{text:?} is not a host; {hint}")),
            };
            (address, port)
        } else if rest.matches(':').count() == 1 {
            let (host, port) = rest.split_once(':').expect("one colon");
            (host, Some(port))
        } else {
            (rest, None)
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("{text:?}: port {p:?} is not a number from 0 to 65535"))
            })
            .transpose()?;
        let host = host.to_ascii_lowercase();
        let host = if let Ok(address) = host.parse::<IpAddr>() {
            HostPattern::Address(address)
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(format!("{text:?}: write subdomains as \"*.example.com\""));
            }
            HostPattern::Subdomains(domain.to_owned())
        } else if host.contains('*') {
            return Err(format!(
                "{text:?}: a '*' may only begin the name (\"*.example.com\")"
            ));
        } else {
            HostPattern::Name(host)
        };
        Ok(Self { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostPattern::Name(name) => name == host,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1),
            HostPattern::Address(address) => host.parse::<IpAddr>().ok() == Some(*address),
        }
    }

    /// Whether the rule names an address (or `localhost`) itself: only then
    /// may the request reach a private, loopback or link-local address.
    fn lists_a_private_address(&self) -> bool {
        match &self.host {
            HostPattern::Address(_) => true,
            HostPattern::Name(name) => name == "localhost",
            HostPattern::Subdomains(_) => false,
        }
    }
}

/// What one agent's tools may reach over HTTP (`[http]` in its manifest).
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// The agent it belongs to (for the log).
    pub agent: String,
    pub allow: Vec<AllowRule>,
    /// Longest one request may take, body included.
    pub timeout: Duration,
    /// Largest response body one request may read.
    pub max_response_bytes: u64,
}

impl HttpPolicy {
    /// The rule allowing `uri`, or why none does.
    fn rule_for(&self, uri: &hyper::Uri) -> Result<&AllowRule, HttpError> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .ok_or(HttpError::HttpRequestUriInvalid)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.allow
            .iter()
            .find(|rule| rule.matches(&scheme, &host, port))
            .ok_or_else(|| {
                tracing::warn!(agent = %self.agent, %uri, "outgoing HTTP refused: not on the agent's [http] allow list");
                HttpError::HttpRequestDenied
            })
    }
}

/// Whether an address is one a public name must not lead to.
fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                // "This network" 0.0.0.0/8, carrier-grade NAT 100.64.0.0/10,
                // benchmarking 198.18.0.0/15, reserved 240.0.0.0/4.
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            // IPv4 inside IPv6: mapped ::ffff:a.b.c.d, compatible ::a.b.c.d,
            // NAT64 64:ff9b::a.b.c.d and 6to4 2002:AABB:CCDD:: reach the
            // IPv4 address they carry.
            let embedded = if let Some(v4) = v6.to_ipv4_mapped() {
                Some(v4)
            } else if (segments[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
                || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                Some(std::net::Ipv4Addr::from(u128::from(v6) as u32))
            } else if segments[0] == 0x2002 {
                Some(std::net::Ipv4Addr::from(
                    (u32::from(segments[1]) << 16) | u32::from(segments[2]),
                ))
            } else {
                None
            };
            if let Some(v4) = embedded {
                return is_private(IpAddr::V4(v4));
            }
            let first = segments[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7, link-local fe80::/10, documentation
                // 2001:db8::/32.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && segments[1] == 0x0db8)
        }
    }
}

/// Resolves names for one request, refusing private addresses unless the
/// rule that allowed the request lists one.
struct CheckedResolver {
    allow_private: bool,
    agent: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to a private, loopback or link-local address")]
struct ProhibitedAddress(String);

#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {0}: {1}")]
struct LookupFailed(String, std::io::Error);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let agent = self.agent.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && addresses.iter().any(|a| is_private(a.ip())) {
                tracing::warn!(%agent, %host, ?addresses, "outgoing HTTP refused: a listed name resolves to a private address");
                return Err(
                    Box::new(ProhibitedAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The `wasi:http` hooks of one call: its calling agent's policy.
#[derive(Default)]
pub struct HttpHooks {
    pub policy: Option<Arc<HttpPolicy>>,
}

type Sent = Result<
    (
        hyper::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let policy = self.policy.clone();
        Box::new(async move {
            let Some(policy) = policy else {
                tracing::warn!(uri = %request.uri(), "outgoing HTTP refused: the calling agent has no [http] allow list");
                return Err(HttpError::HttpRequestDenied);
            };
            let response = send(&policy, request).await?;
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// Sends one request under `policy`; the response body stops with an
/// error past `max_response_bytes`.
async fn send(
    policy: &HttpPolicy,
    request: hyper::Request<WasiBody>,
) -> Result<hyper::Response<WasiBody>, HttpError> {
    let rule = policy.rule_for(request.uri())?;
    crate::llm::install_tls_provider();
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: rule.lists_a_private_address(),
            agent: policy.agent.clone(),
        }))
        // The guest follows redirects itself, each one checked here.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.timeout)
        .no_proxy()
        .build()
        .map_err(|e| HttpError::InternalError(Some(e.to_string())))?;
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|_| HttpError::HttpRequestBodySize(Some(MAX_REQUEST_BYTES as u64)))?
        .to_bytes();
    let url = parts.uri.to_string();
    let mut outgoing = client.request(parts.method, &url).body(body);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await.map_err(|e| error_code(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let limit = policy.max_response_bytes;
    let mut read: u64 = 0;
    let frames = response.bytes_stream().map(move |chunk| {
        let chunk: Bytes = chunk.map_err(|e| error_code(&e))?;
        read += chunk.len() as u64;
        if read > limit {
            return Err(HttpError::HttpResponseBodySize(Some(limit)));
        }
        Ok(Frame::data(chunk))
    });
    let mut answer = hyper::Response::new(StreamBody::new(frames).boxed_unsync());
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// The `wasi:http` error code for a failed request.
fn error_code(error: &reqwest::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<ProhibitedAddress>().is_some() {
            return HttpError::DestinationIpProhibited;
        }
        if cause.downcast_ref::<LookupFailed>().is_some() {
            return HttpError::DnsError {
                rcode: None,
                info_code: None,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return HttpError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return HttpError::ConnectionTimeout,
                _ => {}
            }
        }
        source = cause.source();
    }
    if error.is_timeout() {
        HttpError::HttpResponseTimeout
    } else if error.is_connect() {
        HttpError::DestinationUnavailable
    } else {
        HttpError::InternalError(Some(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(rule: &str, url: &str) -> bool {
        let policy = HttpPolicy {
            agent: "a".into(),
            allow: vec![AllowRule::parse(rule).unwrap()],
            timeout: Duration::from_secs(1),
            max_response_bytes: 1,
        };
        policy.rule_for(&url.parse().unwrap()).is_ok()
    }

    #[test]
    fn rules_match_host_then_optional_scheme_and_port() {
        assert!(allows("api.example.com", "https://api.example.com/x"));
        assert!(allows("api.example.com", "http://API.example.com:8080/"));
        assert!(!allows("api.example.com", "https://evil.example.com/"));
        assert!(!allows(
            "api.example.com",
            "https://api.example.com.evil.net/"
        ));
        assert!(allows("127.0.0.1:8089", "http://127.0.0.1:8089/"));
        assert!(!allows("127.0.0.1:8089", "http://127.0.0.1:8090/"));
        assert!(allows(
            "https://api.example.com",
            "https://api.example.com/"
        ));
        assert!(!allows(
            "https://api.example.com",
            "http://api.example.com/"
        ));
        assert!(allows("*.example.com", "https://a.b.example.com/"));
        assert!(!allows("*.example.com", "https://example.com/"));
        assert!(!allows("*.example.com", "https://badexample.com/"));
        assert!(allows("[::1]:80", "http://[::1]/"));
    }

    #[test]
    fn bad_rules_say_what_to_write() {
        for bad in ["", "ftp://x", "a/b", "x:99999", "a*.b.com", "user@host"] {
            let error = AllowRule::parse(bad).unwrap_err();
            assert!(!error.is_empty(), "{bad}");
        }
    }

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "2606:4700::1",
            "100.128.0.1",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }
}
