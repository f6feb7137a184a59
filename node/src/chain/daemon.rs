//! `fulmen chain run`: the chain daemon's lifecycle.
//!
//! Owns: creating the data directory, opening the store and loading the chain, binding the
//! JSON-RPC server behind cookie auth, writing `DIR/.cookie` (0600) and `DIR/chain.json`,
//! the optional block timer, waiting for SIGTERM / ctrl-c / the `stop` RPC, and a clean
//! shutdown (server stopped, store closed, cookie and endpoint files removed).
//! Must never: leave a cookie behind after a clean shutdown, or expose the RPC server before
//! the cookie exists.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jsonrpsee::server::Server;

use crate::chain::api::CHAIN_INFO_FILE;
use crate::chain::rpc;
use crate::chain::service::ChainService;
use crate::chain::store::ChainStore;
use crate::rpc_auth::{
    generate_cookie, write_cookie, write_private_file, CookieAuthLayer, COOKIE_FILE,
};
use crate::rpc_client::EndpointInfo;

/// Default RPC listen address (bitcoind's regtest port is 18443; we stay clear of it).
pub const DEFAULT_RPC_LISTEN: &str = "127.0.0.1:18447";

/// Options of `fulmen chain run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Data directory (created if missing).
    pub datadir: PathBuf,
    /// Where the JSON-RPC server listens; port 0 picks a free port.
    pub rpc_listen: SocketAddr,
    /// Mine one block every this many seconds, if set.
    pub block_interval: Option<Duration>,
}

/// Removes the files it names when dropped (cookie and endpoint file), but only if they
/// still hold what this daemon wrote (a newer daemon may own them).
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

fn create_datadir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

/// Runs the chain daemon until it is told to stop.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    create_datadir(&opts.datadir)?;
    let store = ChainStore::open(&opts.datadir).await?;
    let service = Arc::new(ChainService::load(store).await?);

    let cookie = generate_cookie();
    let server = Server::builder()
        .set_http_middleware(tower::ServiceBuilder::new().layer(CookieAuthLayer::new(&cookie)))
        .build(opts.rpc_listen)
        .await
        .with_context(|| format!("binding the RPC server to {}", opts.rpc_listen))?;
    let local = server.local_addr().context("RPC server address")?;

    let cookie_path = opts.datadir.join(COOKIE_FILE);
    let info_path = opts.datadir.join(CHAIN_INFO_FILE);
    let info = EndpointInfo {
        rpc_address: local.to_string(),
        rpc_url: format!("http://{local}"),
        pid: std::process::id(),
    };
    let info_bytes = serde_json::to_vec_pretty(&info)?;
    let mut guard = FilesGuard { files: Vec::new() };
    write_cookie(&cookie_path, &cookie)?;
    guard.files.push((cookie_path, cookie.into_bytes()));

    let handle = server.start(rpc::module(service.clone())?);
    // Written last: clients poll for it, and both the cookie and the server are ready now.
    write_private_file(&info_path, &info_bytes)?;
    guard.files.push((info_path, info_bytes));
    let tip = service.tip();
    tracing::info!(rpc = %local, height = tip.height, tip = %tip.hash, datadir = %opts.datadir.display(), "chain daemon ready");

    let miner = opts.block_interval.map(|every| {
        let service = service.clone();
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer.tick().await; // the first tick is immediate
            loop {
                timer.tick().await;
                match service.mine(1, None).await {
                    Ok(r) => tracing::info!(height = r.height, "mined a block on the timer"),
                    Err(e) => tracing::error!(error = %e, "timed mining failed"),
                }
            }
        })
    });

    let reason = wait_for_stop(&service).await;
    tracing::info!(%reason, "chain daemon stopping");
    service.request_stop(&reason); // wakes long polls
    if let Some(miner) = miner {
        miner.abort();
    }
    let _ = handle.stop();
    handle.stopped().await;
    service.close().await;
    drop(guard);
    tracing::info!("chain daemon stopped");
    Ok(())
}

async fn wait_for_stop(service: &ChainService) -> String {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            None
        }
    };
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        reason = service.stopped() => reason,
        _ = tokio::signal::ctrl_c() => "ctrl-c".to_owned(),
        _ = sigterm => "SIGTERM".to_owned(),
    }
}
