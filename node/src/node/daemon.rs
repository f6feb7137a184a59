//! `fulmen node run`: the node daemon's lifecycle.
//!
//! Owns: the data directory (mnemonic, store, cookie, `node.json`), loading the node from
//! its store, the peer listener, the chain follower, the RPC server, the node task's loop,
//! and a clean shutdown on `stop`, SIGTERM or ctrl-c. Must never: serve RPC before the node
//! is loaded, or exit without the last turn's writes being durable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bitcoin::secp256k1::Secp256k1;
use fulmen_channel::machine::{ChannelConfig, SeedKeySource};
use fulmen_wallet::{merge_changesets, ChangeSet, Wallet, WalletParams};
use fulmen_wire::transport::NoiseIdentity;
use tokio::sync::mpsc;

use super::api::NODE_INFO_FILE;
use super::keys::NodeKeys;
use super::rpc::{self, RpcCtx};
use super::state::{Input, InvoiceRecord, Node, PaymentRecord, PeerSlot, Settings};
use super::store::{DbSync, NodeStore, WriteBatch};
use crate::chain::api::ChainClient;
use crate::peer::{PeerConfig, PeerListener};
use crate::rpc_client::{Endpoint, RpcClient};
use crate::rpc_server::RpcServer;

/// Default peer listen address of a node.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9735";
/// Default RPC listen address of a node.
pub const DEFAULT_RPC_LISTEN: &str = "127.0.0.1:10009";

/// Where the node finds the chain daemon.
#[derive(Clone, Debug)]
pub enum ChainLocation {
    /// The chain daemon's data directory (endpoint file and cookie read from it).
    Datadir(PathBuf),
    /// An explicit URL and the chain's cookie file.
    Url {
        /// e.g. `http://127.0.0.1:18447`.
        url: String,
        /// The chain daemon's cookie file.
        cookie_file: PathBuf,
    },
}

/// Options of `fulmen node run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Data directory (created if missing).
    pub datadir: PathBuf,
    /// The chain daemon.
    pub chain: ChainLocation,
    /// Peer listen address (port 0 = any free port; see `getinfo`).
    pub listen: Option<SocketAddr>,
    /// JSON-RPC listen address (port 0 = any free port; see `DIR/node.json`).
    pub rpc_listen: SocketAddr,
    /// Alias shown in `getinfo`.
    pub alias: String,
    /// Enable dev commands.
    pub dev: bool,
    /// sqlite `synchronous` setting.
    pub db_sync: DbSync,
}

/// The channel parameters a node uses: the `fulmen-channel` defaults (funding depth 3,
/// `to_self_delay` 144, reserve 1%, up to 483 HTLCs).
pub fn channel_config() -> ChannelConfig {
    ChannelConfig::default()
}

/// Runs the node daemon until it is told to stop.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let term = crate::signals::sigterm();
    crate::rpc_auth::create_private_dir(&opts.datadir)?;
    let keys = NodeKeys::load_or_create(&opts.datadir)?;
    let store = NodeStore::open(&opts.datadir, opts.db_sync).await?;
    let chain = Arc::new(ChainClient::new(RpcClient::new(match &opts.chain {
        ChainLocation::Datadir(dir) => Endpoint::Datadir {
            dir: dir.clone(),
            info_file: crate::chain::api::CHAIN_INFO_FILE.into(),
        },
        ChainLocation::Url { url, cookie_file } => Endpoint::Url {
            url: url.clone(),
            cookie_file: cookie_file.clone(),
        },
    })));
    chain
        .get_info()
        .await
        .context("cannot reach the chain daemon (is `fulmen chain run` up?)")?;

    let secp = Secp256k1::new();
    let identity = Arc::new(NoiseIdentity::new(
        &secp,
        &keys.node_secret,
        keys.noise_secret,
    ));
    let peer_config = PeerConfig {
        chain_hash: Some(bitcoin::constants::ChainHash::REGTEST.to_bytes()),
        ..PeerConfig::default()
    };
    let listener = match opts.listen {
        Some(addr) => Some(
            PeerListener::bind(addr, identity.clone(), peer_config.clone())
                .await
                .with_context(|| format!("binding the peer listener to {addr}"))?,
        ),
        None => None,
    };
    let listen = listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.to_string());

    let (inputs, mut rx) = mpsc::unbounded_channel();
    let mut node = load_node(
        &opts,
        keys,
        store,
        chain.clone(),
        identity.clone(),
        peer_config.clone(),
        listen.clone(),
        inputs.clone(),
    )
    .await?;
    node.sync_chain()
        .await
        .context("catching up with the chain")?;
    // Restored channels learn the current height even if no block arrives soon.
    let height = node.height;
    for e in &mut node.channels {
        if e.ch.state().phase != fulmen_channel::machine::Phase::Closed {
            if let Err(err) = e.ch.handle_block(height) {
                tracing::warn!(error = %err, "channel block at start-up");
            }
        }
    }
    node.rebroadcast().await;
    node.flush().await?;
    let peers: Vec<_> = node.peers.keys().copied().collect();
    for p in peers {
        node.maybe_reconnect(p);
    }

    let server = RpcServer::start(
        &opts.datadir,
        opts.rpc_listen,
        NODE_INFO_FILE,
        rpc::module(RpcCtx {
            inputs: inputs.clone(),
            identity: identity.clone(),
            peer_config: peer_config.clone(),
        })?,
    )
    .await?;
    tracing::info!(node_id = %node.keys.node_id, rpc = %server.local_addr(), listen = ?listen, height = node.height, "node daemon ready");

    let accept_task =
        listener.map(|l| spawn_acceptor(l, identity.clone(), peer_config.clone(), inputs.clone()));
    let follow_task = spawn_follower(
        chain.clone(),
        inputs.clone(),
        node.height,
        node.tip_hash.clone(),
    );
    let signal_task = {
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let reason = crate::signals::wait_for_signal(term).await;
            tracing::info!(%reason, "stopping");
            let _ = inputs.send(Input::Stop);
        })
    };

    // The node task: one turn = every queued input, then one durable write.
    while !node.stopping {
        let Some(first) = rx.recv().await else { break };
        node.handle_input(first).await;
        let mut n = 1;
        while n < 1024 {
            match rx.try_recv() {
                Ok(i) => {
                    node.handle_input(i).await;
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = node.flush().await {
            tracing::error!(error = %format!("{e:#}"), "store write failed: stopping");
            node.stopping = true;
            server.stop().await;
            return Err(e);
        }
    }
    tracing::info!("node daemon stopping");
    server.stop().await;
    if let Some(t) = accept_task {
        t.abort();
    }
    follow_task.abort();
    signal_task.abort();
    for slot in node.peers.values() {
        if let Some(s) = &slot.sender {
            s.disconnect("node shutting down");
        }
    }
    node.flush().await?;
    node.store.close().await;
    tracing::info!("node daemon stopped");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn load_node(
    opts: &RunOptions,
    keys: NodeKeys,
    store: NodeStore,
    chain: Arc<ChainClient>,
    identity: Arc<NoiseIdentity>,
    peer_config: PeerConfig,
    listen: Option<String>,
    inputs: mpsc::UnboundedSender<Input>,
) -> anyhow::Result<Node> {
    let loaded = store.load().await?;
    let params = WalletParams::regtest();
    let mut pending = WriteBatch::default();
    let wallet = if loaded.wallet.is_empty() {
        Wallet::create(&keys.seed, params).context("creating the wallet")?
    } else {
        let sets = loaded
            .wallet
            .iter()
            .map(|b| serde_json::from_slice::<ChangeSet>(b))
            .collect::<Result<Vec<_>, _>>()
            .context("decoding stored wallet change sets")?;
        Wallet::load(&keys.seed, params, merge_changesets(sets)).context("loading the wallet")?
    };
    pending
        .meta
        .push(("node_id".into(), keys.node_id.to_string().into_bytes()));
    let mut node = Node {
        settings: Settings {
            alias: opts.alias.clone(),
            listen,
            dev: opts.dev,
            channel_config: channel_config(),
            peer_config,
            funding_sat_per_vb: 2,
        },
        key_source: SeedKeySource::new(keys.channel_seed),
        keys,
        identity,
        secp: Secp256k1::new(),
        store,
        chain,
        wallet,
        channels: Vec::new(),
        next_channel_id: 1,
        peers: HashMap::new(),
        next_conn: 0,
        payments: HashMap::new(),
        payment_order: Vec::new(),
        payment_by_htlc: HashMap::new(),
        pay_waiters: HashMap::new(),
        invoices: HashMap::new(),
        invoice_order: Vec::new(),
        height: 0,
        tip_hash: String::new(),
        unconfirmed: HashMap::new(),
        pending,
        after: Vec::new(),
        inputs,
        stopping: false,
    };
    node.height = node.wallet.tip().height;
    node.tip_hash = node.wallet.tip().hash.to_string();
    for (id, addr) in &loaded.peers {
        let Ok(pk) = id.parse() else { continue };
        node.peers.insert(
            pk,
            PeerSlot {
                address: addr.clone(),
                ..PeerSlot::default()
            },
        );
    }
    for c in &loaded.channels {
        node.restore_channel(c)?;
    }
    for json in &loaded.payments {
        let p: PaymentRecord = serde_json::from_str(json).context("decoding a stored payment")?;
        node.payment_order.push(p.info.payment_hash.clone());
        if let (Some(c), Some(h), "pending") = (p.channel, p.htlc_id, p.info.status.as_str()) {
            node.payment_by_htlc
                .insert((c, h), p.info.payment_hash.clone());
        }
        node.payments.insert(p.info.payment_hash.clone(), p);
    }
    for json in &loaded.invoices {
        let i: InvoiceRecord = serde_json::from_str(json).context("decoding a stored invoice")?;
        node.invoice_order.push(i.info.payment_hash.clone());
        node.invoices.insert(i.info.payment_hash.clone(), i);
    }
    tracing::info!(
        channels = node.channels.len(),
        payments = node.payments.len(),
        invoices = node.invoices.len(),
        "node loaded"
    );
    Ok(node)
}

fn spawn_acceptor(
    listener: PeerListener,
    identity: Arc<NoiseIdentity>,
    cfg: PeerConfig,
    inputs: mpsc::UnboundedSender<Input>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, addr) = match listener.accept_tcp().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let identity = identity.clone();
            let cfg = cfg.clone();
            let inputs = inputs.clone();
            tokio::spawn(async move {
                match crate::peer::accept_stream(stream, identity, cfg).await {
                    Ok(peer) => {
                        let _ = inputs.send(Input::Connected {
                            peer: Box::new(peer),
                            dialled: None,
                            reply: None,
                        });
                    }
                    Err(e) => tracing::info!(%addr, error = %e, "inbound connection failed"),
                }
            });
        }
    })
}

fn spawn_follower(
    chain: Arc<ChainClient>,
    inputs: mpsc::UnboundedSender<Input>,
    mut height: u32,
    mut hash: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match chain.wait_for_block(height, Some(&hash), 30_000).await {
                Ok(r) => {
                    if r.height != height || r.hash != hash {
                        height = r.height;
                        hash = r.hash;
                        if inputs.send(Input::ChainTip).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "chain daemon unreachable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}
