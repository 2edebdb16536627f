//! `http_client` tool: fetches a URL for an agent through `wasi:http`, so
//! the host decides what may be reached: the calling agent's `[http]
//! allow` list, checked on every request (each redirect is a new request),
//! its timeout and its response cap.
//!
//! Input: `{"url": "https://api.example.com/v1/x", "method": "GET",
//! "headers": {"accept": "application/json"}, "body": "...",
//! "max_bytes": 65536}`; only `url` is required. Output: `{"status": 200,
//! "url": "<final URL>", "headers": {...}, "body": "<text>"}` (or
//! `body_base64` for bytes that are not UTF-8), and `truncated: true` when
//! the body was longer than `max_bytes`.

use std::collections::BTreeMap;

use base64::Engine;
use caxton_agent::{Error, Tool};
use serde::Deserialize;
use serde_json::{Value, json};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;
/// Body kept when the input does not say.
const DEFAULT_MAX_BYTES: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    max_bytes: Option<usize>,
    #[serde(default = "yes")]
    follow_redirects: bool,
}

fn yes() -> bool {
    true
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    truncated: bool,
}

fn method_of(name: &str) -> Result<Method, Error> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => {
            return Err(Error::InvalidInput(format!(
                "method {other:?}: use GET, HEAD, POST, PUT, DELETE, PATCH or OPTIONS"
            )));
        }
    })
}

/// What the host's error code means for the agent, with the URL.
fn explain(url: &url::Url, code: &ErrorCode) -> Error {
    let host = url.host_str().unwrap_or_default();
    match code {
        ErrorCode::HttpRequestDenied => Error::Denied(format!(
            "{url}: the host refused the request; {host} is not on the calling agent's [http] allow list (add it to its manifest)"
        )),
        ErrorCode::DestinationIpProhibited => Error::Denied(format!(
            "{url}: {host} resolves to a private, loopback or link-local address; such addresses are reached only when listed as addresses in [http] allow"
        )),
        ErrorCode::HttpResponseBodySize(limit) => Error::InvalidInput(format!(
            "{url}: the response is larger than the calling agent's [http] max_response_bytes{}",
            limit.map(|l| format!(" ({l} bytes)")).unwrap_or_default()
        )),
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::HttpResponseTimeout => Error::Timeout(format!(
            "{url}: no answer within the calling agent's [http] timeout"
        )),
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            Error::NotFound(format!("{url}: cannot resolve {host}"))
        }
        ErrorCode::ConnectionRefused | ErrorCode::DestinationUnavailable => {
            Error::Unavailable(format!("{url}: {host} refused the connection"))
        }
        other => Error::Unavailable(format!("{url}: the request failed: {other:?}")),
    }
}

/// One request, no redirects followed.
fn send(
    url: &url::Url,
    method: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&[u8]>,
    max_bytes: usize,
) -> Result<Answer, Error> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| Error::InvalidInput(format!("header {name:?}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| Error::InvalidInput(format!("{url}: invalid {what}"));
    request
        .set_method(&method_of(method)?)
        .map_err(|()| invalid("method"))?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(Error::InvalidInput(format!(
                "{url}: scheme {other:?}; only http and https are fetched"
            )));
        }
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    request
        .set_authority(Some(&authority))
        .map_err(|()| invalid("host"))?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("path"))?;

    let outgoing = request
        .body()
        .map_err(|()| Error::Internal("the request body was taken twice".into()))?;
    let pending = outgoing_handler::handle(request, None::<RequestOptions>)
        .map_err(|code| explain(url, &code))?;
    if let Some(bytes) = body {
        let stream = outgoing
            .write()
            .map_err(|()| Error::Internal("the request body stream was taken twice".into()))?;
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| {
                Error::Unavailable(format!("{url}: sending the body failed: {e:?}"))
            })?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| explain(url, &code))?;

    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Error::Internal("the response was not ready after waiting".into()))?
        .map_err(|()| Error::Internal("the response was read twice".into()))?
        .map_err(|code| explain(url, &code))?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| Error::Internal("the response body was taken twice".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| Error::Internal("the response body stream was taken twice".into()))?;
    let mut body = Vec::new();
    let mut truncated = false;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                let room = max_bytes.saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(match wasip2::http::types::http_error_code(&error) {
                    Some(code) => explain(url, &code),
                    None => Error::Unavailable(format!(
                        "{url}: reading the body failed: {}",
                        error.to_debug_string()
                    )),
                });
            }
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
        truncated,
    })
}

fn fetch(input: Input) -> Result<Value, Error> {
    let mut url = url::Url::parse(&input.url)
        .map_err(|e| Error::InvalidInput(format!("url {:?}: {e}", input.url)))?;
    let mut method = input
        .method
        .clone()
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let mut body = input.body.clone().map(String::into_bytes);
    let mut headers = input.headers.clone();
    let max_bytes = input.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    let mut redirects = Vec::new();
    loop {
        let answer = send(&url, &method, &headers, body.as_deref(), max_bytes)?;
        let location = answer
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.clone());
        if input.follow_redirects
            && (300..400).contains(&answer.status)
            && let Some(location) = location
        {
            if redirects.len() == MAX_REDIRECTS {
                return Err(Error::InvalidInput(format!(
                    "{url}: more than {MAX_REDIRECTS} redirects"
                )));
            }
            let next = url.join(&location).map_err(|e| {
                Error::InvalidInput(format!("{url}: redirect to {location:?}: {e}"))
            })?;
            // 303 continues as a GET (HEAD stays HEAD), and so do 301/302
            // after a POST, as browsers do; 307/308 keep method and body.
            if (answer.status == 303 && method != "HEAD")
                || (matches!(answer.status, 301 | 302) && method == "POST")
            {
                method = "GET".into();
                body = None;
            }
            // Credentials are for the origin they were given for: a
            // redirect elsewhere (another host, port or scheme) drops them.
            if next.origin() != url.origin() {
                headers.retain(|name, _| {
                    !matches!(
                        name.to_ascii_lowercase().as_str(),
                        "authorization" | "cookie" | "proxy-authorization"
                    )
                });
            }
            redirects.push(next.to_string());
            url = next;
            continue;
        }
        let mut headers = serde_json::Map::new();
        for (name, value) in answer.headers {
            headers.insert(name, Value::String(value));
        }
        let mut output = json!({
            "status": answer.status,
            "url": url.as_str(),
            "headers": headers,
            "truncated": answer.truncated,
        });
        if !redirects.is_empty() {
            output["redirects"] = json!(redirects);
        }
        match String::from_utf8(answer.body) {
            Ok(text) => output["body"] = Value::String(text),
            Err(bytes) => {
                output["body_base64"] = Value::String(
                    base64::engine::general_purpose::STANDARD.encode(bytes.into_bytes()),
                )
            }
        }
        return Ok(output);
    }
}

struct HttpClient;

impl Tool for HttpClient {
    const NAME: &'static str = "http_client";
    const DESCRIPTION: &'static str = "Fetches a URL (http or https) and returns its status, headers and body. \
                                       Only hosts on the calling agent's allow list can be reached.";
    type Input = Input;
    type Output = Value;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "required": ["url"],
            "additionalProperties": false,
            "properties": {
                "url": {"type": "string", "description": "The URL to fetch"},
                "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"], "default": "GET"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"type": "string", "description": "The request body (text)"},
                "max_bytes": {"type": "integer", "minimum": 0, "description": "Keep at most this much of the response body (default 262144); the rest is cut and `truncated` is true"},
                "follow_redirects": {"type": "boolean", "default": true}
            }
        })
    }

    fn invoke(input: Input) -> Result<Value, Error> {
        fetch(input)
    }
}

caxton_agent::export_tool!(HttpClient);
