//! `fulmen chain run`: the chain daemon's lifecycle.
//!
//! Owns: creating the data directory, opening the store and loading the chain, binding the
//! JSON-RPC server behind cookie auth, writing `DIR/.cookie` (0600) and `DIR/chain.json`,
//! the optional block timer, waiting for SIGTERM / ctrl-c / the `stop` RPC, and a clean
//! shutdown (server stopped, store closed, cookie and endpoint files removed).
//! Must never: leave a cookie behind after a clean shutdown, or expose the RPC server before
//! the cookie exists.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::chain::api::CHAIN_INFO_FILE;
use crate::chain::rpc;
use crate::chain::service::ChainService;
use crate::chain::store::ChainStore;
use crate::rpc_server::RpcServer;

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

/// Runs the chain daemon until it is told to stop.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let term = crate::signals::sigterm();
    crate::rpc_auth::create_private_dir(&opts.datadir)?;
    let store = ChainStore::open(&opts.datadir).await?;
    let service = Arc::new(ChainService::load(store).await?);

    let server = RpcServer::start(
        &opts.datadir,
        opts.rpc_listen,
        CHAIN_INFO_FILE,
        rpc::module(service.clone())?,
    )
    .await?;
    let tip = service.tip();
    tracing::info!(rpc = %server.local_addr(), height = tip.height, tip = %tip.hash, datadir = %opts.datadir.display(), "chain daemon ready");

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

    let reason = wait_for_stop(&service, term).await;
    tracing::info!(%reason, "chain daemon stopping");
    service.request_stop(&reason); // wakes long polls
    if let Some(miner) = miner {
        miner.abort();
    }
    server.stop().await;
    service.close().await;
    tracing::info!("chain daemon stopped");
    Ok(())
}

async fn wait_for_stop(
    service: &ChainService,
    term: Option<tokio::signal::unix::Signal>,
) -> String {
    tokio::select! {
        reason = service.stopped() => reason,
        reason = crate::signals::wait_for_signal(term) => reason,
    }
}
