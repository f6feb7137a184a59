//! The HTTP server of `fulmen net web`: the page's assets (compiled into the binary), the
//! snapshot and its server-sent event stream, node detail, and the page's actions, each
//! carried out through the same daemon RPC the CLI uses.
//!
//! Owns: the routes of `API.md`, refusing cross-site and rebound requests
//! ([`check_request`]), and turning daemon errors into `{"ok": false, "error"}` answers.
//! Must never: listen on anything but loopback, fetch anything from the network for the
//! page, or reach a daemon other than through its RPC client.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::StreamExt as _;

use crate::net::network::Network;
use crate::net::{chain_client, node_client};
use crate::node::api::NodeClient;
use crate::rpc_client::RpcClientError;

/// The page.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
const APP_JS: &str = include_str!("assets/app.js");
/// Its style sheet.
const APP_CSS: &str = include_str!("assets/app.css");

/// Longest an action may wait for its daemon (a payment waits for its outcome).
pub const ACTION_TIMEOUT_SECS: u64 = 60;
/// Most blocks one `mine` action may ask for.
pub const MAX_MINE: u32 = 1_000;

/// What the handlers share.
#[derive(Clone)]
pub struct WebState {
    /// The network directory (`network.json` is re-read per request).
    pub dir: PathBuf,
    /// The latest snapshot, as JSON text.
    pub snapshot: watch::Receiver<Arc<String>>,
}

/// The router of every endpoint.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/api/state", get(api_state))
        .route("/api/events", get(api_events))
        .route("/api/node/{name}", get(api_node))
        .route("/api/action", post(api_action))
        .layer(axum::middleware::from_fn(same_origin_only))
        .with_state(state)
}

/// Refuses what a page of another site could send to this loopback server: a `Host` that is
/// not loopback (DNS rebinding), an `Origin` other than our own, a `POST` that is not JSON
/// (a cross-site form or `text/plain` fetch, which needs no CORS preflight).
pub fn check_request(
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
) -> Result<(), WebError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(fail(
            StatusCode::FORBIDDEN,
            format!("Host {host:?} is not loopback"),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if origin != format!("http://{host}") {
            return Err(fail(
                StatusCode::FORBIDDEN,
                format!("Origin {origin:?} is not this page"),
            ));
        }
    }
    if method == axum::http::Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        if !json {
            return Err(fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "actions are JSON (Content-Type: application/json)",
            ));
        }
    }
    Ok(())
}

async fn same_origin_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match check_request(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn api_state(State(st): State<WebState>) -> Response {
    let text = st.snapshot.borrow().clone();
    (
        [(header::CONTENT_TYPE, "application/json")],
        text.as_str().to_owned(),
    )
        .into_response()
}

async fn api_events(
    State(st): State<WebState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // The current snapshot first, then every new one.
    let stream = WatchStream::new(st.snapshot.clone())
        .filter(|text| !text.is_empty())
        .map(|text| Ok(Event::default().event("state").data(text.as_str())));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// An error answer: `{"ok": false, "error": …}` with its HTTP status.
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "ok": false, "error": self.message })),
        )
            .into_response()
    }
}

fn fail(status: StatusCode, error: impl std::fmt::Display) -> WebError {
    WebError {
        status,
        message: error.to_string(),
    }
}

/// A daemon's error: its message, HTTP 400 when the daemon refused the request, else 502.
fn daemon_error(e: RpcClientError) -> WebError {
    let status = match e {
        RpcClientError::Rpc { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    fail(status, e)
}

fn read_net(st: &WebState) -> Result<Network, WebError> {
    Network::read(&st.dir).map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))
}

fn client_for(net: &Network, name: &str) -> Result<NodeClient, WebError> {
    net.node(name).map(node_client).ok_or_else(|| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("no node {name:?} in the network (nodes: {})", net.names()),
        )
    })
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn api_node(State(st): State<WebState>, UrlPath(name): UrlPath<String>) -> Response {
    let net = match read_net(&st) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    let client = match client_for(&net, &name) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let (info, channels, payments, invoices, forwards, balance) = tokio::join!(
        client.get_info(),
        client.list_channels(),
        client.list_payments(),
        client.list_invoices(),
        client.list_forwards(),
        client.balance_detail()
    );
    let detail = (|| -> Result<Value, RpcClientError> {
        Ok(json!({
            "name": name,
            "info": to_value(info?),
            "channels": to_value(channels?.channels),
            "payments": to_value(payments?.payments),
            "invoices": to_value(invoices?.invoices),
            "forwards": to_value(forwards?.forwards),
            "balance": to_value(balance?),
        }))
    })();
    match detail {
        Ok(v) => Json(v).into_response(),
        Err(e) => daemon_error(e).into_response(),
    }
}

/// The page's actions (see `API.md`, "Actions").
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// An invoice on `node`.
    Invoice {
        /// The payee.
        node: String,
        /// Amount, msat.
        amount_msat: u64,
        /// Description.
        #[serde(default)]
        description: String,
    },
    /// `node` pays `bolt11`.
    Pay {
        /// The payer.
        node: String,
        /// The invoice.
        bolt11: String,
    },
    /// An invoice on `to`, paid by `from`.
    PayInvoice {
        /// The payer.
        from: String,
        /// The payee.
        to: String,
        /// Amount, msat.
        amount_msat: u64,
    },
    /// `node` sends `amount_msat` to `destination` (a name or a node id) without invoice.
    Keysend {
        /// The payer.
        node: String,
        /// The payee: a node name or id.
        destination: String,
        /// Amount, msat.
        amount_msat: u64,
    },
    /// `node` connects to `peer` and opens a channel.
    Open {
        /// The opener.
        node: String,
        /// The peer's name.
        peer: String,
        /// Capacity, sat.
        capacity_sat: u64,
        /// Given to the peer, msat.
        #[serde(default)]
        push_msat: u64,
    },
    /// `node` closes a channel.
    Close {
        /// The closer.
        node: String,
        /// Channel id, hex.
        channel_id: String,
        /// Broadcast our commitment instead of negotiating.
        #[serde(default)]
        force: bool,
    },
    /// Mines blocks.
    Mine {
        /// How many.
        blocks: u32,
    },
    /// `node` (a `--dev` node) broadcasts one of its revoked commitments.
    Breach {
        /// The cheater.
        node: String,
        /// Channel id, hex.
        channel_id: String,
    },
}

async fn api_action(State(st): State<WebState>, body: axum::body::Bytes) -> Response {
    let action: Action = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return fail(StatusCode::BAD_REQUEST, format!("bad action: {e}")).into_response(),
    };
    let net = match read_net(&st) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    tracing::info!(?action, "web action");
    match run_action(&net, action).await {
        Ok(result) => Json(json!({ "ok": true, "result": result })).into_response(),
        Err(r) => r.into_response(),
    }
}

/// The node id of a network node's name, or `id` itself.
fn resolve_id(net: &Network, who: &str) -> String {
    net.node(who)
        .map(|n| n.node_id.clone())
        .unwrap_or_else(|| who.to_string())
}

async fn run_action(net: &Network, action: Action) -> Result<Value, WebError> {
    let timeout = Some(ACTION_TIMEOUT_SECS);
    match action {
        Action::Invoice {
            node,
            amount_msat,
            description,
        } => {
            let c = client_for(net, &node)?;
            let inv = c
                .invoice(amount_msat, &description, None)
                .await
                .map_err(daemon_error)?;
            Ok(to_value(inv))
        }
        Action::Pay { node, bolt11 } => {
            let c = client_for(net, &node)?;
            let p = c.pay(bolt11.trim(), timeout).await.map_err(daemon_error)?;
            Ok(to_value(p))
        }
        Action::PayInvoice {
            from,
            to,
            amount_msat,
        } => {
            let payer = client_for(net, &from)?;
            let payee = client_for(net, &to)?;
            let inv = payee
                .invoice(amount_msat, &format!("from {from} on the web page"), None)
                .await
                .map_err(daemon_error)?;
            let p = payer
                .pay(&inv.bolt11, timeout)
                .await
                .map_err(daemon_error)?;
            Ok(json!({ "invoice": to_value(inv), "payment": to_value(p) }))
        }
        Action::Keysend {
            node,
            destination,
            amount_msat,
        } => {
            let c = client_for(net, &node)?;
            let id = resolve_id(net, &destination);
            let p = c
                .keysend(&id, amount_msat, None, timeout)
                .await
                .map_err(daemon_error)?;
            Ok(to_value(p))
        }
        Action::Open {
            node,
            peer,
            capacity_sat,
            push_msat,
        } => {
            let c = client_for(net, &node)?;
            let entry = net.node(&peer).ok_or_else(|| {
                fail(
                    StatusCode::BAD_REQUEST,
                    format!("no node {peer:?} in the network"),
                )
            })?;
            c.connect(&entry.uri()).await.map_err(daemon_error)?;
            let r = c
                .open_channel(&entry.node_id, capacity_sat, push_msat)
                .await
                .map_err(daemon_error)?;
            Ok(to_value(r))
        }
        Action::Close {
            node,
            channel_id,
            force,
        } => {
            let c = client_for(net, &node)?;
            let r = c
                .close_channel_with(&channel_id, force)
                .await
                .map_err(daemon_error)?;
            Ok(to_value(r))
        }
        Action::Mine { blocks } => {
            if blocks == 0 || blocks > MAX_MINE {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    format!("blocks must be 1..={MAX_MINE}"),
                ));
            }
            let r = chain_client(net)
                .mine(blocks, None)
                .await
                .map_err(daemon_error)?;
            Ok(to_value(r))
        }
        Action::Breach { node, channel_id } => {
            let c = client_for(net, &node)?;
            let r = c
                .dev_broadcast_revoked(&channel_id, None)
                .await
                .map_err(daemon_error)?;
            Ok(to_value(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, Method};

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_same_origin_json_requests_to_a_loopback_host_pass() {
        let page_post = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
            (header::CONTENT_TYPE, "application/json"),
        ]);
        assert!(check_request(&Method::POST, &page_post).is_ok());
        assert!(check_request(&Method::GET, &headers(&[(header::HOST, "localhost:1")])).is_ok());
        let rebound = headers(&[(header::HOST, "evil.example:8080")]);
        assert_eq!(
            check_request(&Method::GET, &rebound).map_err(|e| e.status),
            Err(StatusCode::FORBIDDEN)
        );
        let cross_site = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://evil.example"),
            (header::CONTENT_TYPE, "application/json"),
        ]);
        assert_eq!(
            check_request(&Method::POST, &cross_site).map_err(|e| e.status),
            Err(StatusCode::FORBIDDEN)
        );
        let plain_text = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::CONTENT_TYPE, "text/plain"),
        ]);
        assert_eq!(
            check_request(&Method::POST, &plain_text).map_err(|e| e.status),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert!(check_request(&Method::GET, &HeaderMap::new()).is_err());
    }
}
