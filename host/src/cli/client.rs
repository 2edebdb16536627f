//! The CLI's HTTP client for a running server: finds the server and its
//! token, and turns the API's error shape and connection failures into
//! messages (and exit codes) a person can act on.

use std::path::PathBuf;

use serde_json::Value;

/// Where the server is and how to authenticate; shared by every command
/// that talks to a running server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "CAXTON_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token. Default: read from `<data dir>/auth-token`.
    #[arg(long, env = "CAXTON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's data directory, where its token lives.
    #[arg(long, env = "CAXTON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// JSON, for scripts.
    Json,
}

/// A failure talking to the server; each kind has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no Caxton server answers at {url} ({reason}); start one with `caxton serve` or pass --server"
    )]
    Unreachable { url: String, reason: String },
    #[error("the server refused the token ({message}); check `caxton auth token` or pass --token")]
    Unauthorized { message: String },
    #[error("{code} ({status}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ClientError {
    /// 1: the request failed; 3: no server; 4: not authorised.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => 3,
            ClientError::Unauthorized { .. } => 4,
            ClientError::Api { .. } | ClientError::Protocol { .. } => 1,
        }
    }
}

pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(args: &ServerArgs) -> Self {
        let token = args.token.clone().or_else(|| read_token(args));
        Self {
            base: args.server.trim_end_matches('/').to_owned(),
            token,
            http: {
                crate::llm::install_tls_provider();
                reqwest::Client::new()
            },
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        self.json(path, response).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let response = self.send(self.http.post(self.url(path)).json(body)).await?;
        self.json(path, response).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let response = self.send(self.http.put(self.url(path)).json(body)).await?;
        self.json(path, response).await
    }

    pub async fn delete_json(&self, path: &str) -> Result<Value, ClientError> {
        let response = self.send(self.http.delete(self.url(path))).await?;
        self.json(path, response).await
    }

    /// POSTs `body` as `content_type` (the server refuses bodies whose
    /// type it does not read).
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, ClientError> {
        let request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let response = self.send(request).await?;
        self.json(path, response).await
    }

    /// A successful response to stream from (e.g. an export).
    pub async fn get_stream(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// A request to `path` (sent with [`Self::send`]).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Sends with the token; maps refused connections and error replies.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = self.send_any(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned();
        if status == 401 {
            return Err(ClientError::Unauthorized { message });
        }
        Err(ClientError::Api {
            status,
            code: body["error"]["code"].as_str().unwrap_or("error").to_owned(),
            message,
        })
    }

    /// Sends with the token; any answer, error replies included, comes
    /// back as it is (refused connections are still errors).
    pub async fn send_any(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })
    }

    async fn json(&self, path: &str, response: reqwest::Response) -> Result<Value, ClientError> {
        response.json().await.map_err(|e| ClientError::Protocol {
            url: self.url(path),
            reason: e.to_string(),
        })
    }
}

/// The token the server wrote into its data dir, if this user can read it.
fn read_token(args: &ServerArgs) -> Option<String> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => crate::config::Config::default().data_dir().ok()?,
    };
    let text = std::fs::read_to_string(dir.join(crate::auth::TOKEN_FILE)).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The innermost error's text: "connection refused" beats reqwest's
/// "error sending request".
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
