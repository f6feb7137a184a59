//! A daemon's JSON-RPC server: jsonrpsee over HTTP behind cookie auth, plus the files clients
//! use to find it. Shared by the chain daemon and (later) the node daemon.
//!
//! Owns: binding the listener (port 0 = any free port), writing `DIR/.cookie` (0600) before
//! the server answers anything, writing the endpoint file (e.g. `DIR/chain.json`) last, and
//! on [`RpcServer::stop`] stopping the server and removing both files. Connections are
//! accepted by our own loop: at most [`RpcLimits::max_connections`] at once (one more is
//! closed at once), and a connection that does not deliver a request's headers within
//! [`RpcLimits::header_timeout`] — the first request or the next on a kept-alive
//! connection — is closed, so idle or slow connections cannot hold the slots for ever.
//! Must never: serve a request without the cookie check, or delete files that a newer daemon
//! on the same data directory wrote.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jsonrpsee::server::{stop_channel, Methods, Server, ServerConfig, ServerHandle};
use jsonrpsee::RpcModule;
use tokio::sync::Semaphore;

use crate::rpc_auth::{
    generate_cookie, write_cookie, write_private_file, CookieAuthLayer, COOKIE_FILE,
};
use crate::rpc_client::EndpointInfo;

/// Concurrent RPC connections a daemon accepts (jsonrpsee's default of 100 refuses a load
/// generator with 100 payments in flight plus a status call).
pub const MAX_RPC_CONNECTIONS: u32 = 1024;

/// Time a connection has to deliver a request's headers (also between requests on a
/// kept-alive connection) before it is closed.
pub const RPC_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits on the RPC server's connections.
#[derive(Debug, Clone, Copy)]
pub struct RpcLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: u32,
    /// Time to deliver a request's headers, for the first request and between requests.
    pub header_timeout: Duration,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            max_connections: MAX_RPC_CONNECTIONS,
            header_timeout: RPC_HEADER_TIMEOUT,
        }
    }
}

/// Removes the files it names when dropped, but only if they still hold what this daemon
/// wrote (a newer daemon may own them).
#[derive(Debug)]
struct FilesGuard {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Drop for FilesGuard {
    fn drop(&mut self) {
        for (path, contents) in &self.files {
            if std::fs::read(path).is_ok_and(|c| &c == contents) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// A running, cookie-protected JSON-RPC server.
#[derive(Debug)]
pub struct RpcServer {
    handle: ServerHandle,
    local: SocketAddr,
    files: FilesGuard,
}

impl RpcServer {
    /// Binds `listen`, writes a fresh cookie to `datadir/.cookie`, starts serving `module`,
    /// then writes `datadir/<info_file>` ([`EndpointInfo`]) so clients can find it.
    pub async fn start<Ctx: Send + Sync + 'static>(
        datadir: &Path,
        listen: SocketAddr,
        info_file: &str,
        module: RpcModule<Ctx>,
    ) -> anyhow::Result<RpcServer> {
        Self::start_with(datadir, listen, info_file, module, RpcLimits::default()).await
    }

    /// [`RpcServer::start`] with explicit connection limits.
    pub async fn start_with<Ctx: Send + Sync + 'static>(
        datadir: &Path,
        listen: SocketAddr,
        info_file: &str,
        module: RpcModule<Ctx>,
        limits: RpcLimits,
    ) -> anyhow::Result<RpcServer> {
        let cookie = generate_cookie();
        let config = ServerConfig::builder()
            .max_connections(limits.max_connections)
            .build();
        let builder = Server::builder()
            .set_config(config)
            .set_http_middleware(tower::ServiceBuilder::new().layer(CookieAuthLayer::new(&cookie)))
            .to_service_builder();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the RPC server to {listen}"))?;
        let local = listener.local_addr().context("RPC server address")?;
        let (stop, handle) = stop_channel();
        let methods: Methods = module.into();
        let slots = Arc::new(Semaphore::new(limits.max_connections as usize));

        let mut files = FilesGuard { files: Vec::new() };
        let cookie_path = datadir.join(COOKIE_FILE);
        write_cookie(&cookie_path, &cookie)?;
        files.files.push((cookie_path, cookie.into_bytes()));

        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = stop.clone().shutdown() => break,
                };
                let sock = match accepted {
                    Ok((sock, _)) => sock,
                    Err(e) => {
                        tracing::warn!(error = %e, "RPC accept");
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::debug!("RPC connection refused: too many open");
                    drop(sock);
                    continue;
                };
                let svc = builder.clone().build(methods.clone(), stop.clone());
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut http = hyper::server::conn::http1::Builder::new();
                    http.timer(TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .keep_alive(true);
                    let conn =
                        http.serve_connection(TokioIo::new(sock), TowerToHyperService::new(svc));
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = &mut conn => {}
                        () = stop.shutdown() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                    drop(permit);
                });
            }
        });
        // Written last: clients poll for it, and the cookie and the server are ready now.
        let info = EndpointInfo {
            rpc_address: local.to_string(),
            rpc_url: format!("http://{local}"),
            pid: std::process::id(),
        };
        let info_bytes = serde_json::to_vec_pretty(&info)?;
        let info_path = datadir.join(info_file);
        write_private_file(&info_path, &info_bytes)?;
        files.files.push((info_path, info_bytes));
        Ok(RpcServer {
            handle,
            local,
            files,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, lets in-flight calls finish, then removes the cookie and endpoint
    /// files.
    pub async fn stop(self) {
        let _ = self.handle.stop();
        self.handle.stopped().await;
        drop(self.files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc_client::{Endpoint, RpcClient};
    use std::time::Instant;

    /// 1,000 idle connections (far more than the cap) do not stop `getinfo` from being
    /// answered: the idle ones are closed after the header timeout, the extra ones at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_do_not_starve_getinfo() {
        let dir = tempfile::tempdir().unwrap();
        let mut module = RpcModule::new(());
        module
            .register_method("getinfo", |_, _, _| serde_json::json!({"ok": true}))
            .unwrap();
        let limits = RpcLimits {
            max_connections: 16,
            header_timeout: Duration::from_millis(300),
        };
        let server = RpcServer::start_with(
            dir.path(),
            "127.0.0.1:0".parse().unwrap(),
            "test.json",
            module,
            limits,
        )
        .await
        .unwrap();
        let mut idle = Vec::new();
        for _ in 0..1000 {
            idle.push(
                tokio::net::TcpStream::connect(server.local_addr())
                    .await
                    .unwrap(),
            );
        }
        let client = RpcClient::new(Endpoint::Datadir {
            dir: dir.path().to_path_buf(),
            info_file: "test.json".into(),
        });
        // Without the header timeout the 16 slots stay taken for ever: give up after 30 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = loop {
            match client.call_value("getinfo", serde_json::json!([])).await {
                Ok(v) => break v,
                Err(e) => {
                    assert!(Instant::now() < deadline, "getinfo never answered: {e}");
                    tokio::task::yield_now().await;
                }
            }
        };
        assert_eq!(answer["ok"], true);
        drop(idle);
        server.stop().await;
    }
}
