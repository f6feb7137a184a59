//! A daemon's JSON-RPC server: jsonrpsee over HTTP behind cookie auth, plus the files clients
//! use to find it. Shared by the chain daemon and (later) the node daemon.
//!
//! Owns: binding the listener (port 0 = any free port), writing `DIR/.cookie` (0600) before
//! the server answers anything, writing the endpoint file (e.g. `DIR/chain.json`) last, and
//! on [`RpcServer::stop`] stopping the server and removing both files.
//! Must never: serve a request without the cookie check, or delete files that a newer daemon
//! on the same data directory wrote.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use jsonrpsee::RpcModule;

use crate::rpc_auth::{
    generate_cookie, write_cookie, write_private_file, CookieAuthLayer, COOKIE_FILE,
};
use crate::rpc_client::EndpointInfo;

/// Concurrent RPC connections a daemon accepts (jsonrpsee's default of 100 refuses a load
/// generator with 100 payments in flight plus a status call).
pub const MAX_RPC_CONNECTIONS: u32 = 1024;

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
        let cookie = generate_cookie();
        let config = ServerConfig::builder()
            .max_connections(MAX_RPC_CONNECTIONS)
            .build();
        let server = Server::builder()
            .set_config(config)
            .set_http_middleware(tower::ServiceBuilder::new().layer(CookieAuthLayer::new(&cookie)))
            .build(listen)
            .await
            .with_context(|| format!("binding the RPC server to {listen}"))?;
        let local = server.local_addr().context("RPC server address")?;

        let mut files = FilesGuard { files: Vec::new() };
        let cookie_path = datadir.join(COOKIE_FILE);
        write_cookie(&cookie_path, &cookie)?;
        files.files.push((cookie_path, cookie.into_bytes()));

        let handle = server.start(module);
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
