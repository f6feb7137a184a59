//! `fulmen node run`: the node daemon's lifecycle.
//!
//! Owns: the data directory (mnemonic, store, cookie, `node.json`), loading the node from
//! its store, the peer listener, the chain follower, the RPC server, the node task's loop,
//! and a clean shutdown on `stop`, SIGTERM or ctrl-c. Must never: serve RPC before the node
//! is loaded, or exit without the last turn's writes being durable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bitcoin::secp256k1::Secp256k1;
use fulmen_channel::machine::ChannelConfig;
use fulmen_manager::{Manager, ManagerConfig, NodeSecrets};
use fulmen_wire::transport::NoiseIdentity;
use tokio::sync::mpsc;

use super::api::NODE_INFO_FILE;
use super::follow::{spawn_follower, ChainStep, Followed};
use super::keys::NodeKeys;
use super::rpc::{self, RpcCtx};
use super::shell::{now_secs, Input, Shell};
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
    /// Run as a watchtower for peers (`--tower`).
    pub tower: bool,
    /// Records between channel and monitor snapshots (`None`: the default of
    /// [`channel_config`]).
    pub snapshot_every: Option<u64>,
}

/// The channel parameters a node uses: the `fulmen-channel` defaults (funding depth 3,
/// `to_self_delay` 144, reserve 1%, up to 483 HTLCs).
pub fn channel_config() -> ChannelConfig {
    ChannelConfig::default()
}

/// Most inputs one turn takes before its writes are made durable and its outputs acted on
/// (a peer's input counts once per message it carries).
const MAX_INPUTS_PER_TURN: usize = 128;

/// A turn stops taking inputs once handling them has taken this long, so that an RPC call
/// (taken first by the next turn) waits at most about this plus one flush: after a restart
/// of a node with many channels, the inputs of its reconnecting peers (re-establishment,
/// announcement signatures, gossip to verify) cost milliseconds each.
const MAX_TURN_HANDLING: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs the node daemon until it is told to stop.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let ms = |since: std::time::Instant| since.elapsed().as_millis() as u64;
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

    // The node id row, for tools that inspect a data directory.
    store
        .write(&WriteBatch {
            meta: vec![("node_id".into(), keys.node_id.to_string().into_bytes())],
            ..WriteBatch::default()
        })
        .await?;
    let phase = std::time::Instant::now();
    let loaded = store.load().await?;
    let load_ms = ms(phase);
    let phase = std::time::Instant::now();
    let stored = loaded.decode()?;
    drop(loaded);
    let decode_ms = ms(phase);
    let config = ManagerConfig {
        alias: opts.alias.clone(),
        listen: listen.clone(),
        dev: opts.dev,
        channel_config: ChannelConfig {
            snapshot_every: opts
                .snapshot_every
                .unwrap_or(channel_config().snapshot_every),
            ..channel_config()
        },
        funding_sat_per_vb: 2,
        max_pending_inbound_opens: fulmen_manager::MAX_PENDING_INBOUND_OPENS,
        forwarding: fulmen_manager::DEFAULT_POLICY,
        // Test-network nodes (`--dev`) accept keysend by default.
        accept_keysend: opts.dev,
        announce_channels: true,
        announce_depth: if opts.dev { 1 } else { 6 },
        tower: opts.tower,
    };
    let secrets = NodeSecrets {
        node_secret: keys.node_secret,
        channel_seed: keys.channel_seed,
        wallet_seed: keys.seed.clone(),
    };
    let phase = std::time::Instant::now();
    let manager = Manager::new(config, secrets, Box::new(OsEntropy), stored, now_secs())
        .context("loading the node")?;
    let restore_ms = ms(phase);
    let phase = std::time::Instant::now();
    release_freed_memory();
    let trim_ms = ms(phase);
    let (inputs, mut rx) = mpsc::unbounded_channel();
    // RPC calls get their own queue, taken first: a user's command does not wait behind a
    // backlog of peer messages (a thousand channels re-establishing after a restart).
    let (rpc_inputs, mut rpc_rx) = mpsc::unbounded_channel();
    let mut followed = Followed::new(
        (0..=manager.height()).filter_map(|h| manager.block_hash_at(h).map(|b| (h, b.to_string()))),
    );
    let mut node = Shell::new(
        manager,
        store,
        chain.clone(),
        identity.clone(),
        peer_config.clone(),
        inputs.clone(),
    );
    // Catch up with the chain before serving anyone.
    let phase = std::time::Instant::now();
    let steps = followed
        .catch_up(&chain)
        .await
        .context("catching up with the chain")?
        .into_iter()
        .map(|step| match step {
            ChainStep::Disconnect(fork) => Input::Reorg(fork),
            ChainStep::Connect(h, b) => Input::Block(h, b),
        })
        .collect();
    node.handle_turn(steps, Duration::MAX).await;
    node.m.rebroadcast();
    node.flush().await?;
    let catch_up_ms = ms(phase);

    let server = RpcServer::start(
        &opts.datadir,
        opts.rpc_listen,
        NODE_INFO_FILE,
        rpc::module(RpcCtx {
            inputs: rpc_inputs,
            identity: identity.clone(),
            peer_config: peer_config.clone(),
            store: node.store.clone(),
        })?,
    )
    .await?;
    tracing::info!(node_id = %node.m.node_id(), rpc = %server.local_addr(), listen = ?listen, height = node.m.height(), "node daemon ready");
    // Where the start went (store rows read, decoded, the manager rebuilt from them, the
    // chain caught up with): see BENCHMARKS.md, "Node start".
    tracing::info!(
        total_ms = ms(started),
        load_ms,
        decode_ms,
        restore_ms,
        trim_ms,
        catch_up_ms,
        "start-up"
    );

    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND_PEERS));
    let accept_task = listener.map(|l| {
        spawn_acceptor(
            l,
            identity.clone(),
            peer_config.clone(),
            inputs.clone(),
            slots,
        )
    });
    let follow_task = spawn_follower(chain.clone(), inputs.clone(), followed);
    let tick_task = {
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(super::shell::TICK_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await; // the first tick is immediate: skip it
            loop {
                every.tick().await;
                if inputs.send(Input::Tick).is_err() {
                    break;
                }
            }
        })
    };
    let signal_task = {
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let reason = crate::signals::wait_for_signal(term).await;
            tracing::info!(%reason, "stopping");
            let _ = inputs.send(Input::Stop);
        })
    };

    // The node task: one turn = the queued inputs (at most MAX_INPUTS_PER_TURN, handled for
    // at most MAX_TURN_HANDLING; the rest wait for the next turn, after its RPC calls), then
    // the durable writes, then the side effects.
    let mut backlog: std::collections::VecDeque<Input> = std::collections::VecDeque::new();
    while !node.stopping {
        if backlog.is_empty() {
            let first = tokio::select! {
                biased;
                Some(i) = rpc_rx.recv() => i,
                Some(i) = rx.recv() => i,
                else => break,
            };
            backlog.push_back(first);
        }
        let turn = take_turn(
            &mut rpc_rx,
            &mut backlog,
            &mut rx,
            MAX_INPUTS_PER_TURN,
            Input::weight,
        );
        let n = turn.len();
        let kinds = tracing::enabled!(tracing::Level::TRACE)
            .then(|| turn.iter().map(Input::label).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let turn_t0 = std::time::Instant::now();
        let rest = node.handle_turn(turn, MAX_TURN_HANDLING).await;
        let left = rest.len();
        for i in rest.into_iter().rev() {
            backlog.push_front(i);
        }
        let handled_us = turn_t0.elapsed().as_micros();
        let flushed = node.flush().await;
        let total_us = turn_t0.elapsed().as_micros();
        let t = std::mem::take(&mut node.timing);
        let (read_us, persist_us, encode_us, write_us) =
            (t.read_us, t.persist_us, t.encode_us, t.write_us);
        if total_us > 50_000 {
            tracing::debug!(
                inputs = n - left,
                left,
                handled_us,
                total_us,
                persist_us,
                write_us,
                "slow turn"
            );
        } else {
            // Every turn, for profiling (`RUST_LOG=fulmen_node::node::daemon=trace`).
            tracing::trace!(
                inputs = n - left,
                left,
                handled_us,
                total_us,
                read_us,
                persist_us,
                encode_us,
                write_us,
                kinds,
                "turn"
            );
        }
        if let Err(e) = flushed {
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
    tick_task.abort();
    signal_task.abort();
    node.disconnect_all("node shutting down");
    // Snapshots of every channel and monitor with records since its last: the next start
    // reads one record of each.
    let phase = std::time::Instant::now();
    node.m.compact_logs();
    node.flush().await?;
    tracing::info!(ms = ms(phase), "channel and monitor logs compacted");
    node.store.close().await;
    tracing::info!("node daemon stopped");
    Ok(())
}

/// The inputs of one turn, taken until they weigh `max` (the last one may go past it):
/// RPC calls first (each caller waits for its answer before it sends more, so no caller's
/// order changes), then what the last turn left, then peer and chain inputs.
fn take_turn<T>(
    rpc: &mut mpsc::UnboundedReceiver<T>,
    backlog: &mut std::collections::VecDeque<T>,
    peers: &mut mpsc::UnboundedReceiver<T>,
    max: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut turn = Vec::new();
    let mut taken = 0;
    while taken < max {
        let Some(i) = rpc
            .try_recv()
            .ok()
            .or_else(|| backlog.pop_front())
            .or_else(|| peers.try_recv().ok())
        else {
            break;
        };
        taken += weight(&i);
        turn.push(i);
    }
    turn
}

/// Hands the heap's free pages back to the OS. The start decodes every stored row on every
/// core and drops the rows and their decoded copies once the manager holds the state: glibc
/// keeps those pages (in each thread's arena) unless asked, ≈ 10 MB for a thousand channels.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap pages to the kernel; it takes no pointer
    // and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Entropy from the OS RNG.
pub struct OsEntropy;

impl fulmen_channel::machine::Entropy for OsEntropy {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use rand::RngCore as _;
        rand::rngs::OsRng.fill_bytes(dest);
    }
}

/// Most inbound peer connections at once (handshakes included): node ids are free, so the
/// per-peer limits alone bound nothing.
pub const MAX_INBOUND_PEERS: usize = 512;

/// Accepts inbound peers: each connection takes one of `slots` before its handshake (a
/// connection beyond them is closed at once) and holds it until the connection ends.
pub fn spawn_acceptor(
    listener: PeerListener,
    identity: Arc<NoiseIdentity>,
    cfg: PeerConfig,
    inputs: mpsc::UnboundedSender<Input>,
    slots: Arc<tokio::sync::Semaphore>,
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
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%addr, "too many inbound peers: connection refused");
                drop(stream);
                continue;
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
                            slot: Some(slot),
                        });
                    }
                    Err(e) => tracing::info!(%addr, error = %e, "inbound connection failed"),
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::tests::{cfg, ident};
    use std::time::Duration;

    /// [harden] 5(d): inbound connections beyond the node's slots are closed at once; a
    /// slot comes back when its connection's input is done with.
    #[tokio::test]
    async fn inbound_peers_beyond_the_slots_are_refused() {
        let us = ident(1);
        let listener = PeerListener::bind("127.0.0.1:0".parse().expect("addr"), us.clone(), cfg())
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let task = spawn_acceptor(listener, us.clone(), cfg(), tx, slots.clone());
        let first = crate::peer::connect(ident(2), us.node_id(), addr, cfg())
            .await
            .expect("the first peer connects");
        let held = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("in time")
            .expect("an input");
        assert!(matches!(held, Input::Connected { slot: Some(_), .. }));
        let second = crate::peer::connect(ident(3), us.node_id(), addr, cfg()).await;
        assert!(second.is_err(), "a second inbound peer beyond one slot");
        drop(held);
        assert_eq!(slots.available_permits(), 1);
        let third = crate::peer::connect(ident(4), us.node_id(), addr, cfg()).await;
        assert!(third.is_ok(), "the slot came back");
        drop(first);
        task.abort();
    }

    /// RPC calls go before what a previous turn left, which goes before new peer inputs;
    /// a turn takes at most `max`, the rest stay queued in order.
    #[test]
    fn a_turn_takes_rpc_calls_then_the_backlog_then_peers() {
        let (rpc_tx, mut rpc) = mpsc::unbounded_channel();
        let (peer_tx, mut peers) = mpsc::unbounded_channel();
        let mut backlog: std::collections::VecDeque<&str> = ["left 1", "left 2"].into();
        peer_tx.send("peer 1").unwrap();
        peer_tx.send("peer 2").unwrap();
        rpc_tx.send("rpc 1").unwrap();
        rpc_tx.send("rpc 2").unwrap();
        let one = |_: &&str| 1;
        let turn = take_turn(&mut rpc, &mut backlog, &mut peers, 5, one);
        assert_eq!(turn, ["rpc 1", "rpc 2", "left 1", "left 2", "peer 1"]);
        rpc_tx.send("rpc 3").unwrap();
        let turn = take_turn(&mut rpc, &mut backlog, &mut peers, 5, one);
        assert_eq!(turn, ["rpc 3", "peer 2"]);
        assert!(take_turn(&mut rpc, &mut backlog, &mut peers, 5, one).is_empty());
    }

    /// A turn counts inputs by weight (a peer input weighs its messages) and stops once
    /// they reach the limit, the last one taken whole.
    #[test]
    fn a_turn_weighs_its_inputs() {
        let (_rpc_tx, mut rpc) = mpsc::unbounded_channel::<usize>();
        let (peer_tx, mut peers) = mpsc::unbounded_channel();
        let mut backlog = std::collections::VecDeque::new();
        for w in [16, 16, 1, 200, 3] {
            peer_tx.send(w).unwrap();
        }
        let w = |i: &usize| *i;
        let turn = take_turn(&mut rpc, &mut backlog, &mut peers, 32, w);
        assert_eq!(turn, [16, 16]);
        let turn = take_turn(&mut rpc, &mut backlog, &mut peers, 32, w);
        assert_eq!(turn, [1, 200], "past the limit by the last one taken");
        let turn = take_turn(&mut rpc, &mut backlog, &mut peers, 32, w);
        assert_eq!(turn, [3]);
    }
}
