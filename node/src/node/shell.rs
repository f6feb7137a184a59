//! The node task: the shell around [`fulmen_manager::Manager`]. Turns sockets, RPC calls and
//! chain blocks into manager inputs, and the manager's outputs into sqlite writes, peer sends,
//! broadcasts and RPC answers.
//!
//! Owns: the [`Input`]s every other task sends, the live connection of each peer, the RPC
//! callers waiting for a reply or a payment outcome, and the turn loop: every queued input,
//! then `poll_persist` → durable write → `persisted` → outputs, until nothing is left.
//! Must never: decide anything about channels, payments or the chain (the manager does), or
//! act on an output before the write it depends on returned.

use std::collections::HashMap;
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Block;
use fulmen_manager::api::{PaymentInfo, PaymentStatus};
use fulmen_manager::{
    CmdError, Command, Manager, NodeEvent, Output, PeerAccept, RequestId, Response,
};
use fulmen_wire::transport::NoiseIdentity;
use fulmen_wire::Message;
use tokio::sync::{mpsc, oneshot};

use super::store::{NodeStore, WriteBatch};
use crate::chain::api::ChainClient;
use crate::peer::{Backoff, Peer, PeerConfig, PeerEvent, PeerSender};
use crate::rpc_client::RpcClientError;

/// Where a command's answer goes.
pub type Reply = oneshot::Sender<Result<Response, CmdError>>;

/// Everything the node task reacts to.
#[derive(Debug)]
pub enum Input {
    /// A user command (RPC). `outcome`, for `pay`: where the payment's final state goes.
    Rpc {
        /// The command.
        cmd: Command,
        /// Its answer.
        reply: Reply,
        /// For `pay`: the outcome once the payment resolves.
        outcome: Option<oneshot::Sender<PaymentInfo>>,
    },
    /// A peer finished handshake and `init` (we dialled it, or it dialled us).
    Connected {
        /// The connection.
        peer: Box<Peer>,
        /// The address we dialled (outbound) — remembered to reconnect.
        dialled: Option<String>,
        /// Answer for `connect`.
        reply: Option<Reply>,
    },
    /// A message from a peer.
    PeerMessage {
        /// The peer.
        node_id: PublicKey,
        /// Connection number (stale connections are ignored).
        conn: u64,
        /// The message.
        msg: Box<Message>,
    },
    /// A peer connection ended.
    Disconnected {
        /// The peer.
        node_id: PublicKey,
        /// Connection number.
        conn: u64,
        /// Why.
        reason: String,
    },
    /// A reconnection attempt ended (connected or gave up).
    ReconnectEnded(PublicKey),
    /// The block at this height joined the best chain (from the chain follower).
    Block(u32, Box<Block>),
    /// Every block above this height left the best chain.
    Reorg(u32),
    /// Stop the daemon.
    Stop,
}

/// True when the chain refused a transaction by a rule that waiting cannot change (its
/// inputs are spent or conflict, it is invalid) — not when it already has it, or when it is
/// merely early (time locks, maturity) or cheap.
fn refused_for_good(data: Option<&serde_json::Value>) -> bool {
    let Some(rule) = data.and_then(|d| d.get("rule")).and_then(|r| r.as_str()) else {
        return false;
    };
    !matches!(
        rule,
        "already_known" | "locktime" | "bip68_immature" | "coinbase_immature" | "fee_too_low"
    )
}

/// Current UNIX time in seconds.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The node task's state: the manager and the I/O around it.
pub struct Shell {
    /// The node's brain.
    pub m: Manager,
    /// The store.
    pub store: NodeStore,
    /// The chain daemon.
    pub chain: Arc<ChainClient>,
    /// For redialling.
    pub identity: Arc<NoiseIdentity>,
    /// For redialling.
    pub peer_config: PeerConfig,
    /// Live connections: node id → (connection number, sender).
    links: HashMap<PublicKey, (u64, PeerSender)>,
    /// RPC callers waiting for a reply.
    waiters: HashMap<RequestId, Reply>,
    /// `pay` callers waiting for the started payment (keyed by request until it starts).
    pay_requests: HashMap<RequestId, oneshot::Sender<PaymentInfo>>,
    /// `pay` callers waiting for an outcome, by payment hash.
    pay_waiters: HashMap<String, Vec<oneshot::Sender<PaymentInfo>>>,
    next_request: RequestId,
    /// Sender for inputs (given to spawned tasks).
    pub inputs: mpsc::UnboundedSender<Input>,
    /// Set when the daemon should stop.
    pub stopping: bool,
}

impl Shell {
    /// Wraps a loaded manager.
    pub fn new(
        m: Manager,
        store: NodeStore,
        chain: Arc<ChainClient>,
        identity: Arc<NoiseIdentity>,
        peer_config: PeerConfig,
        inputs: mpsc::UnboundedSender<Input>,
    ) -> Shell {
        Shell {
            m,
            store,
            chain,
            identity,
            peer_config,
            links: HashMap::new(),
            waiters: HashMap::new(),
            pay_requests: HashMap::new(),
            pay_waiters: HashMap::new(),
            next_request: 0,
            inputs,
            stopping: false,
        }
    }

    fn request_id(&mut self, reply: Option<Reply>) -> RequestId {
        self.next_request += 1;
        if let Some(r) = reply {
            self.waiters.insert(self.next_request, r);
        }
        self.next_request
    }

    /// Applies one input to the manager.
    pub fn handle_input(&mut self, input: Input) {
        let now = now_secs();
        match input {
            Input::Rpc {
                cmd,
                reply,
                outcome,
            } => {
                let id = self.request_id(Some(reply));
                if let Some(o) = outcome {
                    self.pay_requests.insert(id, o);
                }
                self.m.handle_command(now, id, cmd);
            }
            Input::Connected {
                peer,
                dialled,
                reply,
            } => self.on_connected(peer, dialled, reply),
            Input::PeerMessage { node_id, conn, msg } => {
                self.m.handle_peer_message(now, node_id, conn, *msg)
            }
            Input::Disconnected {
                node_id,
                conn,
                reason,
            } => {
                if self.links.get(&node_id).is_some_and(|(c, _)| *c == conn) {
                    self.links.remove(&node_id);
                }
                self.m.handle_peer_disconnected(node_id, conn, &reason);
            }
            Input::ReconnectEnded(node_id) => self.m.handle_reconnect_ended(node_id),
            Input::Block(height, block) => {
                if let Err(e) = self.m.handle_block_connected(now, &block, height) {
                    tracing::warn!(error = %e, "following the chain");
                }
                self.m.rebroadcast();
            }
            Input::Reorg(fork) => {
                if let Err(e) = self.m.handle_blocks_disconnected(fork) {
                    tracing::warn!(error = %e, "chain reorganisation");
                }
            }
            Input::Stop => self.stopping = true,
        }
    }

    fn on_connected(&mut self, peer: Box<Peer>, dialled: Option<String>, reply: Option<Reply>) {
        let node_id = peer.remote_node_id;
        let request = reply.map(|r| self.request_id(Some(r)));
        match self.m.handle_peer_connected(request, node_id, dialled) {
            PeerAccept::Duplicate => {
                tokio::spawn(async move { peer.close("duplicate connection").await });
            }
            PeerAccept::Accepted { conn } => {
                tracing::info!(%node_id, addr = %peer.remote_addr, "peer connected");
                self.links.insert(node_id, (conn, peer.sender()));
                let inputs = self.inputs.clone();
                let mut peer = peer;
                tokio::spawn(async move {
                    while let Some(ev) = peer.recv().await {
                        let input = match ev {
                            PeerEvent::Message(msg) => Input::PeerMessage { node_id, conn, msg },
                            PeerEvent::Disconnected(r) => Input::Disconnected {
                                node_id,
                                conn,
                                reason: r.to_string(),
                            },
                        };
                        if inputs.send(input).is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }

    /// The end of a turn: each batch of writes made durable, then its outputs acted on,
    /// until the manager has nothing left.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        loop {
            let batch = self.m.poll_persist();
            if let Some(batch) = &batch {
                self.store
                    .write(&WriteBatch::from_writes(&batch.writes)?)
                    .await?;
                self.m.persisted(batch.id);
            }
            // Acting can feed the manager (a refused broadcast): go round until quiet.
            let fed = self.act().await;
            if batch.is_none() && !fed {
                return Ok(());
            }
        }
    }

    /// Acts on every released output; true if that fed the manager an input.
    async fn act(&mut self) -> bool {
        let mut fed = false;
        while let Some(o) = self.m.poll_output() {
            match o {
                Output::Send { node_id, conn, msg } => match self.links.get(&node_id) {
                    Some((c, s)) if *c == conn => {
                        if let Err(err) = s.send(&msg) {
                            tracing::warn!(peer = %node_id, error = %err, "sending to peer");
                        }
                    }
                    _ => {
                        tracing::debug!(peer = %node_id, msg = msg.msg_type(), "connection gone: message dropped")
                    }
                },
                Output::Disconnect {
                    node_id,
                    conn,
                    reason,
                } => {
                    if let Some((c, s)) = self.links.remove(&node_id) {
                        if c == conn {
                            s.disconnect(&reason);
                        } else {
                            self.links.insert(node_id, (c, s));
                        }
                    }
                }
                Output::Broadcast(tx) => {
                    let txid = tx.compute_txid();
                    let hex = bitcoin::consensus::encode::serialize_hex(&tx);
                    match self.chain.send_raw_transaction(&hex).await {
                        Ok(_) => tracing::info!(%txid, "broadcast"),
                        Err(RpcClientError::Rpc { message, data, .. })
                            if refused_for_good(data.as_ref()) =>
                        {
                            // Refused for good: only accepted transactions count.
                            self.m.handle_broadcast_refused(now_secs(), txid, &message);
                            fed = true;
                        }
                        Err(e) => tracing::debug!(%txid, error = %e, "broadcast not sent"),
                    }
                }
                Output::Reply { request, result } => {
                    let outcome = self.pay_requests.remove(&request);
                    if let (Some(o), Ok(Response::PaymentStarted(info))) = (outcome, &result) {
                        if info.status == PaymentStatus::Pending {
                            self.pay_waiters
                                .entry(info.payment_hash.clone())
                                .or_default()
                                .push(o);
                        } else {
                            let _ = o.send(info.clone());
                        }
                    }
                    if let Some(w) = self.waiters.remove(&request) {
                        let _ = w.send(result);
                    }
                }
                Output::Event(NodeEvent::PaymentCompleted(info)) => {
                    for w in self
                        .pay_waiters
                        .remove(&info.payment_hash)
                        .unwrap_or_default()
                    {
                        let _ = w.send(info.clone());
                    }
                }
                Output::Event(ev) => tracing::debug!(event = ?ev, "node event"),
                Output::Connect { node_id, address } => self.redial(node_id, address),
            }
        }
        fed
    }

    fn redial(&self, node_id: PublicKey, address: String) {
        if self.stopping {
            return;
        }
        let Ok(sock) = address.parse() else {
            tracing::warn!(%node_id, %address, "stored peer address is not ip:port; not reconnecting");
            let _ = self.inputs.send(Input::ReconnectEnded(node_id));
            return;
        };
        let identity = self.identity.clone();
        let cfg = self.peer_config.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_secs(10),
            );
            let res =
                crate::peer::connect_with_backoff(identity, node_id, sock, cfg, &mut backoff, None)
                    .await;
            let _ = inputs.send(Input::ReconnectEnded(node_id));
            match res {
                Ok(peer) => {
                    let _ = inputs.send(Input::Connected {
                        peer: Box::new(peer),
                        dialled: Some(address),
                        reply: None,
                    });
                }
                Err(e) => tracing::warn!(%node_id, error = %e, "reconnect gave up"),
            }
        });
    }

    /// Closes every live connection (at shutdown).
    pub fn disconnect_all(&mut self, reason: &str) {
        for (_, (_, s)) in self.links.drain() {
            s.disconnect(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refused_for_good;
    use serde_json::json;

    #[test]
    fn only_final_refusals_make_the_wallet_forget_a_broadcast() {
        for rule in [
            "mempool_conflict",
            "missing_or_spent",
            "already_spent",
            "script",
        ] {
            assert!(refused_for_good(Some(&json!({ "rule": rule }))), "{rule}");
        }
        for rule in ["already_known", "locktime", "bip68_immature", "fee_too_low"] {
            assert!(!refused_for_good(Some(&json!({ "rule": rule }))), "{rule}");
        }
        assert!(!refused_for_good(None));
    }
}
