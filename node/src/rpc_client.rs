//! A reusable async JSON-RPC 2.0 client for Fulmen daemons, with cookie authentication.
//!
//! Owns: finding a daemon (its data directory's endpoint file such as `chain.json` plus
//! `.cookie`, or an explicit URL and cookie file), sending calls with
//! `Authorization: Basic __cookie__:<cookie>`, and turning failures into [`RpcClientError`].
//! When the daemon restarts (new port or cookie), the next call re-reads the data directory
//! and retries once, so long-lived followers survive restarts.
//! Must never: log the cookie, or retry a call against the same endpoint it already failed on
//! (a retried `mine` or `fund` could otherwise happen twice).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rpc_auth::{basic_auth_header, read_cookie, COOKIE_FILE};

/// What a daemon writes next to its cookie so clients can find it (e.g. `DIR/chain.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The address the JSON-RPC server listens on, e.g. `127.0.0.1:18447`.
    pub rpc_address: String,
    /// The same as a URL, e.g. `http://127.0.0.1:18447`.
    pub rpc_url: String,
    /// Process id of the daemon.
    pub pid: u32,
}

impl EndpointInfo {
    /// Reads an endpoint file written by a daemon.
    pub fn read(path: &Path) -> Result<EndpointInfo, RpcClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RpcClientError::Config(format!(
                "cannot read {} ({e}); is the daemon running with this --datadir?",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| RpcClientError::Config(format!("{} is malformed: {e}", path.display())))
    }
}

/// Where the client finds the daemon.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A daemon's data directory: the URL comes from `dir/<info_file>`, the cookie from
    /// `dir/.cookie`. Both are re-read after a failure (the daemon may have restarted).
    Datadir {
        /// The data directory.
        dir: PathBuf,
        /// The endpoint file name inside it, e.g. `chain.json`.
        info_file: String,
    },
    /// An explicit URL and cookie file (re-read after a failure).
    Url {
        /// e.g. `http://127.0.0.1:18447`.
        url: String,
        /// Path of the cookie file.
        cookie_file: PathBuf,
    },
}

impl Endpoint {
    /// Resolves the URL and cookie right now.
    fn resolve(&self) -> Result<(String, String), RpcClientError> {
        match self {
            Endpoint::Datadir { dir, info_file } => {
                let info = EndpointInfo::read(&dir.join(info_file))?;
                let cookie = read_cookie(&dir.join(COOKIE_FILE))
                    .map_err(|e| RpcClientError::Config(format!("{e:#}")))?;
                Ok((info.rpc_url, cookie))
            }
            Endpoint::Url { url, cookie_file } => {
                let cookie = read_cookie(cookie_file)
                    .map_err(|e| RpcClientError::Config(format!("{e:#}")))?;
                Ok((url.clone(), cookie))
            }
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcClientError {
    /// The daemon answered with a JSON-RPC error.
    #[error("{message}")]
    Rpc {
        /// JSON-RPC error code (bitcoind-style negative numbers for application errors).
        code: i32,
        /// Human-readable reason.
        message: String,
        /// Structured detail, e.g. `{"rule": "script"}` for a refused transaction.
        data: Option<Value>,
    },
    /// The daemon refused the cookie (HTTP 401).
    #[error("unauthorized: the daemon refused the cookie (HTTP 401)")]
    Unauthorized,
    /// The daemon could not be reached or the HTTP exchange failed.
    #[error("cannot reach the daemon at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The daemon did not answer within the request timeout.
    #[error("request to the daemon timed out")]
    Timeout,
    /// The client is misconfigured (missing files, bad URL).
    #[error("{0}")]
    Config(String),
    /// The answer did not have the expected shape.
    #[error("unexpected response: {0}")]
    BadResponse(String),
}

impl RpcClientError {
    /// A numeric code for CLI error output: the JSON-RPC code, or a client-side code
    /// (-401 unauthorized, -1000 unreachable, -1001 timeout, -1002 config, -1003 bad response).
    pub fn code(&self) -> i32 {
        match self {
            RpcClientError::Rpc { code, .. } => *code,
            RpcClientError::Unauthorized => -401,
            RpcClientError::Unreachable { .. } => -1000,
            RpcClientError::Timeout => -1001,
            RpcClientError::Config(_) => -1002,
            RpcClientError::BadResponse(_) => -1003,
        }
    }

    /// The structured `data` of a JSON-RPC error, if any.
    pub fn data(&self) -> Option<&Value> {
        match self {
            RpcClientError::Rpc { data, .. } => data.as_ref(),
            _ => None,
        }
    }

    /// True when the failure is the transport (the daemon may be restarting): worth retrying
    /// later for idempotent calls such as `waitforblock`.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            RpcClientError::Unreachable { .. }
                | RpcClientError::Unauthorized
                | RpcClientError::Config(_)
                | RpcClientError::Timeout
        )
    }

    /// The error as the CLI prints it: `{"error": {"code": .., "message": .., "data": ..}}`.
    pub fn to_json(&self) -> Value {
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let Some(data) = self.data() {
            error["data"] = data.clone();
        }
        serde_json::json!({ "error": error })
    }
}

/// JSON params (an object or an array) passed through to jsonrpsee.
struct JsonParams(Value);

impl ToRpcParams for JsonParams {
    fn to_rpc_params(self) -> Result<Option<Box<serde_json::value::RawValue>>, serde_json::Error> {
        if self.0.is_null() {
            return Ok(None);
        }
        serde_json::value::to_raw_value(&self.0).map(Some)
    }
}

struct Connected {
    url: String,
    cookie: String,
    client: Arc<HttpClient>,
}

/// An async JSON-RPC client for one daemon. Cheap to share (`&self` methods).
pub struct RpcClient {
    endpoint: Endpoint,
    timeout: Duration,
    connected: Mutex<Option<Arc<Connected>>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Default per-request timeout; long enough for `waitforblock` (capped at 60 s by the server)
/// and for mining hundreds of blocks.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl RpcClient {
    /// A client for `endpoint`. Nothing is read or connected until the first call.
    pub fn new(endpoint: Endpoint) -> RpcClient {
        RpcClient {
            endpoint,
            timeout: DEFAULT_TIMEOUT,
            connected: Mutex::new(None),
        }
    }

    /// A client for the daemon whose data directory is `dir` and endpoint file `info_file`.
    pub fn from_datadir(dir: impl Into<PathBuf>, info_file: &str) -> RpcClient {
        RpcClient::new(Endpoint::Datadir {
            dir: dir.into(),
            info_file: info_file.to_owned(),
        })
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> RpcClient {
        self.timeout = timeout;
        self
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn build(&self) -> Result<Arc<Connected>, RpcClientError> {
        let (url, cookie) = self.endpoint.resolve()?;
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&basic_auth_header(&cookie))
            .map_err(|_| RpcClientError::Config("cookie contains invalid characters".into()))?;
        headers.insert("authorization", value);
        let client = HttpClientBuilder::default()
            .set_headers(headers)
            .request_timeout(self.timeout)
            .max_response_size(256 * 1024 * 1024)
            .build(&url)
            .map_err(|e| RpcClientError::Config(format!("bad daemon URL {url}: {e}")))?;
        Ok(Arc::new(Connected {
            url,
            cookie,
            client: Arc::new(client),
        }))
    }

    fn current(&self) -> Result<Arc<Connected>, RpcClientError> {
        let mut guard = self
            .connected
            .lock()
            .map_err(|_| RpcClientError::Config("client state poisoned".into()))?;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.build()?;
        *guard = Some(c.clone());
        Ok(c)
    }

    fn forget(&self) {
        if let Ok(mut guard) = self.connected.lock() {
            *guard = None;
        }
    }

    /// Calls `method` with `params` (a JSON object, an array, or `Value::Null` for none) and
    /// decodes the result as `R`.
    pub async fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<R, RpcClientError> {
        let value = self.call_value(method, params).await?;
        serde_json::from_value(value).map_err(|e| RpcClientError::BadResponse(e.to_string()))
    }

    /// Like [`RpcClient::call`] but returns the raw JSON result.
    pub async fn call_value(&self, method: &str, params: Value) -> Result<Value, RpcClientError> {
        let first = self.current()?;
        match call_once(&first, method, params.clone()).await {
            Err(e) if e.is_transport() => {
                // The daemon may have restarted with a new port or cookie: re-read the
                // endpoint and retry once, but only if it actually changed.
                self.forget();
                let second = self.current()?;
                if second.url == first.url && second.cookie == first.cookie {
                    return Err(e);
                }
                tracing::debug!(method, url = %second.url, "daemon endpoint changed, retrying");
                call_once(&second, method, params).await
            }
            other => other,
        }
    }
}

async fn call_once(c: &Connected, method: &str, params: Value) -> Result<Value, RpcClientError> {
    use jsonrpsee::core::client::Error;
    match c
        .client
        .request::<Value, _>(method, JsonParams(params))
        .await
    {
        Ok(v) => Ok(v),
        Err(Error::Call(obj)) => Err(RpcClientError::Rpc {
            code: obj.code(),
            message: obj.message().to_owned(),
            data: obj
                .data()
                .and_then(|raw| serde_json::from_str(raw.get()).ok()),
        }),
        Err(Error::RequestTimeout) => Err(RpcClientError::Timeout),
        Err(Error::Transport(err)) => {
            if let Some(jsonrpsee::http_client::transport::Error::Rejected { status_code }) =
                err.downcast_ref::<jsonrpsee::http_client::transport::Error>()
            {
                if *status_code == 401 {
                    return Err(RpcClientError::Unauthorized);
                }
            }
            Err(RpcClientError::Unreachable {
                url: c.url.clone(),
                reason: error_chain(&*err),
            })
        }
        Err(Error::ParseError(e)) => Err(RpcClientError::BadResponse(e.to_string())),
        Err(other) => Err(RpcClientError::Unreachable {
            url: c.url.clone(),
            reason: other.to_string(),
        }),
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_datadir_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let client = RpcClient::from_datadir(dir.path(), "chain.json");
        let err = client.current().err().unwrap();
        assert!(matches!(err, RpcClientError::Config(_)));
        assert!(err.to_string().contains("chain.json"));
        assert_eq!(err.to_json()["error"]["code"], -1002);
    }

    #[test]
    fn rpc_error_json_carries_data() {
        let err = RpcClientError::Rpc {
            code: -26,
            message: "input 0: script".into(),
            data: Some(serde_json::json!({"rule": "script"})),
        };
        let json = err.to_json();
        assert_eq!(json["error"]["code"], -26);
        assert_eq!(json["error"]["data"]["rule"], "script");
        assert!(!err.is_transport());
    }
}
