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
use std::iter::Peekable;
use std::sync::Arc;
use std::time::Duration;
use std::vec::IntoIter;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Block;
use fulmen_manager::api::{PaymentInfo, PaymentStatus};
use fulmen_manager::{
    CmdError, Command, Manager, NodeEvent, Output, PeerAccept, RequestId, Response,
};
use fulmen_wire::transport::NoiseIdentity;
use fulmen_wire::Message;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::store::{NodeStore, WriteBatch};
use super::utxo::BlockTxids;
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
        /// The inbound connection slot it holds (returned when the connection ends).
        slot: Option<OwnedSemaphorePermit>,
    },
    /// Messages from a peer, in order: what one read from its socket brought (at most
    /// [`MAX_MESSAGES_PER_INPUT`]), so that an update and the `commitment_signed` the peer
    /// wrote with it are handled in one turn.
    PeerMessages {
        /// The peer.
        node_id: PublicKey,
        /// Connection number (stale connections are ignored).
        conn: u64,
        /// The messages.
        msgs: Vec<Message>,
        /// One of the node's [`MAX_QUEUED_PEER_MESSAGES`] credits per message, returned
        /// when the input is dropped (handled): peer readers wait for credits, so a node
        /// that falls behind pushes back on its peers (TCP) instead of queueing without
        /// bound.
        credit: Option<OwnedSemaphorePermit>,
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
    /// The answer to a UTXO lookup the manager asked for (see [`super::utxo`]).
    UtxoAnswer(fulmen_wire::ShortChannelId, fulmen_manager::UtxoAnswer),
    /// [`fulmen_manager::COMMIT_DELAY_MS`] after a turn that held back a commitment: send
    /// it now ([`Manager::handle_wake`]).
    Wake,
    /// The last turn left work for another pass ([`Manager::has_deferred_work`]): do the
    /// next (queued behind what was already waiting, so RPC calls and peers go first).
    Continue,
    /// Time passed: the manager's periodic work (multi-part sets that timed out are failed
    /// back, stale gossip is pruned). Sent every [`TICK_INTERVAL`].
    Tick,
    /// Stop the daemon.
    Stop,
}

/// How often the node task gets an [`Input::Tick`].
pub const TICK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl Input {
    /// How much the input counts towards a turn's limit of inputs: a peer input counts its
    /// messages, any other 1.
    pub fn weight(&self) -> usize {
        match self {
            Input::PeerMessages { msgs, .. } => msgs.len().max(1),
            _ => 1,
        }
    }

    /// A short name of the input for the turn trace: `rpc`, `peer:<message type>`, `block`…
    pub fn label(&self) -> String {
        match self {
            Input::Rpc { .. } => "rpc".into(),
            Input::Connected { .. } => "connected".into(),
            Input::PeerMessages { msgs, .. } => {
                let types: Vec<String> = msgs.iter().map(|m| m.msg_type().to_string()).collect();
                format!("peer:{}", types.join("+"))
            }
            Input::Disconnected { .. } => "disconnected".into(),
            Input::ReconnectEnded(_) => "reconnect-ended".into(),
            Input::Block(..) => "block".into(),
            Input::Reorg(_) => "reorg".into(),
            Input::UtxoAnswer(..) => "utxo".into(),
            Input::Wake => "wake".into(),
            Input::Continue => "continue".into(),
            Input::Tick => "tick".into(),
            Input::Stop => "stop".into(),
        }
    }
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

/// Most peer messages queued for the node task at once, over all peers.
pub const MAX_QUEUED_PEER_MESSAGES: usize = 4096;

/// Most messages of one read handed to the node task as one input: a gossip sync's long
/// reads go in pieces, so a turn's time limit still applies between them (a live peer's
/// events are no longer than this already).
pub const MAX_MESSAGES_PER_INPUT: usize = crate::peer::MAX_MESSAGES_PER_EVENT;

/// Where a peer reader takes its events from (a live [`Peer`], or a test's script).
pub trait PeerEvents {
    /// The next event; `None` once the connection is gone.
    fn next_event(&mut self) -> impl std::future::Future<Output = Option<PeerEvent>> + Send;
}

impl PeerEvents for Peer {
    fn next_event(&mut self) -> impl std::future::Future<Output = Option<PeerEvent>> + Send {
        self.recv()
    }
}

/// Most messages to one connection a turn holds before queueing them to its writer.
const MAX_GROUP: usize = 64;

/// Most consecutive commands handed to the manager together (their `pay`s start as one
/// batch: see `Manager::handle_commands`).
const MAX_COMMANDS_TOGETHER: usize = 64;

/// A peer reader: forwards `events` of connection `conn` to the node task as inputs. Each
/// message first takes a credit from `credits` (waiting while the node is
/// [`MAX_QUEUED_PEER_MESSAGES`] behind); the disconnection is forwarded without one.
pub async fn forward_peer_events<E: PeerEvents>(
    events: &mut E,
    node_id: PublicKey,
    conn: u64,
    inputs: &mpsc::UnboundedSender<Input>,
    credits: &Arc<Semaphore>,
) {
    while let Some(ev) = events.next_event().await {
        match ev {
            PeerEvent::Messages(mut msgs) => {
                while !msgs.is_empty() {
                    let rest = msgs.split_off(msgs.len().min(MAX_MESSAGES_PER_INPUT));
                    // At most MAX_MESSAGES_PER_INPUT (16) of the 4,096 credits at once.
                    let n = msgs.len() as u32;
                    let Ok(credit) = credits.clone().acquire_many_owned(n).await else {
                        return;
                    };
                    let input = Input::PeerMessages {
                        node_id,
                        conn,
                        msgs: std::mem::replace(&mut msgs, rest),
                        credit: Some(credit),
                    };
                    if inputs.send(input).is_err() {
                        return;
                    }
                }
            }
            PeerEvent::Disconnected(r) => {
                let input = Input::Disconnected {
                    node_id,
                    conn,
                    reason: r.to_string(),
                };
                if inputs.send(input).is_err() {
                    return;
                }
            }
        }
    }
}

/// Current UNIX time in seconds.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Time spent in [`Shell::flush`] by phase, in µs, summed until reset (the daemon logs and
/// resets it each turn: `RUST_LOG=fulmen_node::node::daemon=trace`).
#[derive(Clone, Copy, Debug, Default)]
pub struct FlushTiming {
    /// The turn's store reads before its inputs are handled (earlier payments, recalled
    /// invoices and forwards).
    pub read_us: u64,
    /// In [`Manager::poll_persist`]: commitments built and signed, revocations, the batch.
    pub persist_us: u64,
    /// Encoding the batch into rows.
    pub encode_us: u64,
    /// The store's transaction, until durable.
    pub write_us: u64,
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
    /// Credits of queued peer messages (see [`MAX_QUEUED_PEER_MESSAGES`]).
    peer_credits: Arc<Semaphore>,
    /// Sender for inputs (given to spawned tasks).
    pub inputs: mpsc::UnboundedSender<Input>,
    /// Set when the daemon should stop.
    pub stopping: bool,
    /// Where the flushes since the last [`FlushTiming`] reset went (for the turn trace).
    pub timing: FlushTiming,
    /// Txids of the recent blocks, for UTXO lookups.
    block_txids: BlockTxids,
    /// Lookups in flight (see [`super::utxo::MAX_LOOKUPS_IN_FLIGHT`]).
    lookups: Arc<Semaphore>,
    /// This turn's `pay` hashes → their earlier payment's status in the store (`None`: no
    /// row) or why it could not be read; read in one query by [`Shell::handle_turn`], valid
    /// only until the turn's flush (which can drop settled payments into the store).
    earlier_payments: HashMap<String, Result<Option<PaymentStatus>, String>>,
    /// An [`Input::Wake`] is on its way.
    wake_armed: bool,
    /// An [`Input::Continue`] is queued.
    continue_armed: bool,
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
            peer_credits: Arc::new(Semaphore::new(MAX_QUEUED_PEER_MESSAGES)),
            inputs,
            stopping: false,
            timing: FlushTiming::default(),
            block_txids: BlockTxids::default(),
            lookups: Arc::new(Semaphore::new(super::utxo::MAX_LOOKUPS_IN_FLIGHT)),
            earlier_payments: HashMap::new(),
            wake_armed: false,
            continue_armed: false,
        }
    }

    fn request_id(&mut self, reply: Option<Reply>) -> RequestId {
        self.next_request += 1;
        if let Some(r) = reply {
            self.waiters.insert(self.next_request, r);
        }
        self.next_request
    }

    /// Applies a turn's `inputs` to the manager, in order, until `budget` has passed; returns
    /// the inputs not handled (for the next turn). The earlier payments of its `pay`
    /// commands are read from the store first, in one query, and so are the paid invoices of
    /// the payment hashes its `update_add_htlc`s carry.
    pub async fn handle_turn(&mut self, inputs: Vec<Input>, budget: Duration) -> Vec<Input> {
        let started = std::time::Instant::now();
        self.read_earlier_payments(&inputs).await;
        self.recall_invoices(&inputs).await;
        self.recall_forwards(&inputs).await;
        self.timing.read_us += started.elapsed().as_micros() as u64;
        let mut inputs = inputs.into_iter().peekable();
        while let Some(i) = inputs.next() {
            self.handle_input(i, &mut inputs);
            if started.elapsed() >= budget {
                break;
            }
        }
        inputs.collect()
    }

    /// Takes a user's command for the manager (into `cmds`), unless it repeats a payment
    /// the store knows of (answered at once).
    fn accept_command(
        &mut self,
        cmd: Command,
        reply: Reply,
        outcome: Option<oneshot::Sender<PaymentInfo>>,
        cmds: &mut Vec<(RequestId, Command)>,
    ) {
        if let Err(e) = self.check_repeat_payment(&cmd) {
            let _ = reply.send(Err(e));
            return;
        }
        let id = self.request_id(Some(reply));
        if let Some(o) = outcome {
            self.pay_requests.insert(id, o);
        }
        cmds.push((id, cmd));
    }

    /// Applies one input to the manager; a user's command takes the commands right after it
    /// in `rest` along (at most [`MAX_COMMANDS_TOGETHER`]): the manager starts their `pay`s
    /// together, their onions built on all cores (`Manager::handle_commands`).
    fn handle_input(&mut self, input: Input, rest: &mut Peekable<IntoIter<Input>>) {
        let now = now_secs();
        match input {
            Input::Rpc {
                cmd,
                reply,
                outcome,
            } => {
                let mut cmds = Vec::new();
                self.accept_command(cmd, reply, outcome, &mut cmds);
                while cmds.len() < MAX_COMMANDS_TOGETHER {
                    let Some(Input::Rpc {
                        cmd,
                        reply,
                        outcome,
                    }) = rest.next_if(|i| matches!(i, Input::Rpc { .. }))
                    else {
                        break;
                    };
                    self.accept_command(cmd, reply, outcome, &mut cmds);
                }
                self.m.handle_commands(now, cmds);
            }
            Input::Connected {
                peer,
                dialled,
                reply,
                slot,
            } => self.on_connected(peer, dialled, reply, slot),
            Input::PeerMessages {
                node_id,
                conn,
                msgs,
                credit,
            } => {
                for msg in msgs {
                    self.m.handle_peer_message(now, node_id, conn, msg);
                }
                drop(credit);
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
                self.block_txids.connected(height, &block);
                if let Err(e) = self.m.handle_block_connected(now, &block, height) {
                    tracing::warn!(error = %e, "following the chain");
                }
                self.m.rebroadcast();
            }
            Input::Reorg(fork) => {
                self.block_txids.disconnected_above(fork);
                if let Err(e) = self.m.handle_blocks_disconnected(fork) {
                    tracing::warn!(error = %e, "chain reorganisation");
                }
            }
            Input::UtxoAnswer(scid, answer) => self.m.handle_utxo_answer(now, scid, answer),
            Input::Wake => {
                self.wake_armed = false;
                self.m.handle_wake();
            }
            // Nothing to apply: the turn's `poll_persist` does the deferred work.
            Input::Continue => self.continue_armed = false,
            Input::Tick => self.m.handle_tick(now),
            Input::Stop => self.stopping = true,
        }
    }

    /// A `pay` of an invoice the store has as paid (or in flight) is refused here: the
    /// manager keeps only open payments, and earlier turns' writes are durable by now (this
    /// runs in the node task, between flushes), so the store plus the manager's memory is
    /// the whole history.
    fn check_repeat_payment(&self, cmd: &Command) -> Result<(), CmdError> {
        let Some(hash) = fulmen_manager::pay_command_hash(cmd) else {
            return Ok(());
        };
        match self.earlier_payments.get(&hash) {
            Some(Ok(earlier)) => fulmen_manager::refuse_repeat(*earlier),
            Some(Err(e)) => Err(CmdError::failed(e.clone())),
            None => Err(CmdError::failed(
                "the payment history was not read for this pay",
            )),
        }
    }

    /// Reads the earlier payments of every `pay` among `inputs` in one store query, for
    /// [`Shell::check_repeat_payment`]: under load, a query per `pay` was a round trip to
    /// sqlx's thread each.
    async fn read_earlier_payments(&mut self, inputs: &[Input]) {
        self.earlier_payments.clear();
        let hashes: Vec<String> = inputs
            .iter()
            .filter_map(|i| match i {
                Input::Rpc { cmd, .. } => fulmen_manager::pay_command_hash(cmd),
                _ => None,
            })
            .collect();
        if hashes.is_empty() {
            return;
        }
        let rows = match self.store.payments_by_hash(&hashes).await {
            Ok(rows) => rows,
            Err(e) => {
                let e = format!("{e:#}");
                self.earlier_payments = hashes.into_iter().map(|h| (h, Err(e.clone()))).collect();
                return;
            }
        };
        for h in hashes {
            self.earlier_payments.insert(h, Ok(None));
        }
        for (hash, json) in rows {
            let status = super::store::decode_payment(&json)
                .map(|p| Some(p.info.status))
                .map_err(|e| format!("{e:#}"));
            self.earlier_payments.insert(hash, status);
        }
    }

    /// Hands the manager the stored invoices no longer open whose payment hashes the
    /// `update_add_htlc`s among `inputs` carry, in one store query
    /// ([`fulmen_manager::Manager::recall_invoices`]): an HTLC for a paid invoice is refused
    /// as a repeat. A failed read is logged and the turn goes on (such an HTLC is then
    /// treated as for an unknown payment hash).
    async fn recall_invoices(&mut self, inputs: &[Input]) {
        let hashes: Vec<String> = inputs
            .iter()
            .filter_map(|i| match i {
                Input::PeerMessages { msgs, .. } => Some(msgs),
                _ => None,
            })
            .flatten()
            .filter_map(|m| match m {
                Message::UpdateAddHtlc(a) => Some(hex::encode(a.payment_hash)),
                _ => None,
            })
            // An open invoice is in memory already (the common case: no query).
            .filter(|h| !self.m.holds_invoice(h))
            .collect();
        if hashes.is_empty() {
            return;
        }
        let rows = match self.store.closed_invoices_by_hash(&hashes).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading paid invoices");
                return;
            }
        };
        self.m
            .recall_invoices(decode_logged(&rows, "a stored invoice"));
    }

    /// For a `forwards` command among `inputs`: hands the manager the resolved forwards from
    /// the store ([`fulmen_manager::Manager::recall_forwards`]), which it shows with the open
    /// ones it holds. A failed read is logged (the answer then shows the open ones only).
    async fn recall_forwards(&mut self, inputs: &[Input]) {
        let asked = inputs.iter().any(|i| {
            matches!(
                i,
                Input::Rpc {
                    cmd: Command::ListForwards,
                    ..
                }
            )
        });
        if !asked {
            return;
        }
        let rows = match self.store.closed_forwards().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading forwards");
                return;
            }
        };
        self.m
            .recall_forwards(decode_logged(&rows, "a stored forward"));
    }

    fn on_connected(
        &mut self,
        peer: Box<Peer>,
        dialled: Option<String>,
        reply: Option<Reply>,
        slot: Option<OwnedSemaphorePermit>,
    ) {
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
                let credits = self.peer_credits.clone();
                let mut peer = peer;
                tokio::spawn(async move {
                    forward_peer_events(&mut *peer, node_id, conn, &inputs, &credits).await;
                    // The connection slot (inbound) is returned when the reader ends.
                    drop(slot);
                });
            }
        }
    }

    /// The end of a turn: each batch of writes made durable, then its outputs acted on,
    /// until the manager has nothing left.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        // What was read for this turn's checks may be stale once the turn's batch is written.
        self.earlier_payments.clear();
        loop {
            // A fulfill leaves before the turn's signing and its write.
            self.m.release_early();
            self.act().await;
            let t0 = std::time::Instant::now();
            let batch = self.m.poll_persist();
            self.timing.persist_us += t0.elapsed().as_micros() as u64;
            if let Some(batch) = &batch {
                // What may leave before the write (a fulfill) goes first.
                self.act().await;
                let t1 = std::time::Instant::now();
                let rows = WriteBatch::from_writes(&batch.writes)?;
                let t2 = std::time::Instant::now();
                self.store.write_with(&rows, batch.sync).await?;
                self.timing.encode_us += (t2 - t1).as_micros() as u64;
                self.timing.write_us += t2.elapsed().as_micros() as u64;
                self.m.persisted(batch.id);
            }
            // Acting can feed the manager (a refused broadcast): go round until quiet.
            let fed = self.act().await;
            if batch.is_none() && !fed {
                self.arm_wake();
                self.arm_continue();
                return Ok(());
            }
        }
    }

    /// If the manager holds back a commitment, an [`Input::Wake`] after
    /// [`fulmen_manager::COMMIT_DELAY_MS`] (one at a time).
    fn arm_wake(&mut self) {
        if self.wake_armed || !self.m.has_held_commitments() {
            return;
        }
        self.wake_armed = true;
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(
                fulmen_manager::COMMIT_DELAY_MS,
            ))
            .await;
            let _ = inputs.send(Input::Wake);
        });
    }

    /// If the manager left work for another pass ([`Manager::has_deferred_work`]), an
    /// [`Input::Continue`] at the back of the queue (one at a time).
    fn arm_continue(&mut self) {
        if self.continue_armed || !self.m.has_deferred_work() {
            return;
        }
        self.continue_armed = self.inputs.send(Input::Continue).is_ok();
    }

    /// Acts on every released output; true if that fed the manager an input.
    async fn act(&mut self) -> bool {
        let mut fed = false;
        // A connection's messages go out together (one socket write), in their order; only
        // a disconnection must wait for the messages released before it.
        let mut groups: Vec<(PublicKey, u64, Vec<Message>)> = Vec::new();
        while let Some(o) = self.m.poll_output() {
            match o {
                Output::Send { node_id, conn, msg } => {
                    let i = match groups
                        .iter()
                        .position(|(n, c, _)| *n == node_id && *c == conn)
                    {
                        Some(i) => i,
                        None => {
                            groups.push((node_id, conn, Vec::new()));
                            groups.len() - 1
                        }
                    };
                    if let Some((_, _, msgs)) = groups.get_mut(i) {
                        msgs.push(*msg);
                        // A long run (a gossip sync) goes on in pieces, not held whole.
                        if msgs.len() >= MAX_GROUP {
                            let msgs = std::mem::take(msgs);
                            self.send_group(node_id, conn, &msgs);
                        }
                    }
                }
                Output::Disconnect {
                    node_id,
                    conn,
                    reason,
                } => {
                    for (n, c, msgs) in std::mem::take(&mut groups) {
                        self.send_group(n, c, &msgs);
                    }
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
                Output::LookupUtxo { short_channel_id } => self.lookup_utxo(short_channel_id),
                Output::LoadRevokedHtlcs { channel, number } => {
                    // Rare (the peer broadcast a revoked commitment): read it here, in order.
                    match self.store.revoked_htlcs(channel, number).await {
                        Ok(htlcs) => {
                            self.m.handle_revoked_htlcs(channel, number, htlcs);
                            fed = true;
                        }
                        Err(e) => tracing::error!(
                            channel,
                            number,
                            error = %format!("{e:#}"),
                            "reading the revocation archive (asked again at the next block)"
                        ),
                    }
                }
            }
        }
        for (n, c, msgs) in groups {
            self.send_group(n, c, &msgs);
        }
        fed
    }

    /// Queues `msgs` for connection `conn` of `node_id` in one piece, if it is still up.
    fn send_group(&self, node_id: PublicKey, conn: u64, msgs: &[Message]) {
        match self.links.get(&node_id) {
            Some((c, s)) if *c == conn => {
                if let Err(err) = s.send_all(msgs) {
                    tracing::warn!(peer = %node_id, error = %err, "sending to peer");
                }
            }
            _ => tracing::debug!(
                peer = %node_id,
                messages = msgs.len(),
                "connection gone: messages dropped"
            ),
        }
    }

    /// Starts a lookup of the output a short channel id names (a peer announced a channel
    /// there) in its own task, which hands the answer back as [`Input::UtxoAnswer`]: the
    /// node task does not wait on the chain daemon, and the block's txids come from
    /// [`BlockTxids`] when the node has seen it recently.
    fn lookup_utxo(&self, scid: fulmen_wire::ShortChannelId) {
        let known = self.block_txids.lookup(scid);
        let chain = self.chain.clone();
        let inputs = self.inputs.clone();
        let slots = self.lookups.clone();
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let answer = super::utxo::resolve(&chain, scid, known).await;
            let _ = inputs.send(Input::UtxoAnswer(scid, answer));
        });
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
                        slot: None,
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

/// The JSON rows that decode as `T`; one that does not is logged as `what` and left out (a
/// recall is an aid to a decision or a view, not the state itself).
fn decode_logged<T: serde::de::DeserializeOwned>(rows: &[String], what: &str) -> Vec<T> {
    rows.iter()
        .filter_map(|json| match serde_json::from_str(json) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "{what}");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{forward_peer_events, refused_for_good, Input, PeerEvents};
    use crate::peer::PeerEvent;
    use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
    use fulmen_wire::Message;
    use serde_json::json;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use tokio::sync::{mpsc, Semaphore};

    /// A scripted peer: its events, then the end of the connection.
    struct Script(VecDeque<PeerEvent>);

    impl PeerEvents for Script {
        fn next_event(&mut self) -> impl std::future::Future<Output = Option<PeerEvent>> + Send {
            let ev = self.0.pop_front();
            async move { ev }
        }
    }

    /// The node id the scripted peer's inputs carry.
    fn peer_id() -> PublicKey {
        let sk = SecretKey::from_slice(&[7; 32]).expect("key");
        PublicKey::from_secret_key(&Secp256k1::new(), &sk)
    }

    /// [harden] 5(b): a node that falls behind pushes back on its peer readers instead of
    /// queueing their messages without bound.
    #[tokio::test(flavor = "current_thread")]
    async fn peer_readers_wait_for_credits_when_the_node_falls_behind() {
        let node_id = peer_id();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let credits = Arc::new(Semaphore::new(2));
        let msg = || {
            let e = fulmen_wire::msgs::Error::text([0; 32], "x");
            PeerEvent::Messages(vec![Message::Error(e)])
        };
        let mut script = Script((0..5).map(|_| msg()).collect());
        let c = credits.clone();
        let reader =
            tokio::spawn(
                async move { forward_peer_events(&mut script, node_id, 1, &tx, &c).await },
            );
        // Let the reader run as far as it can (one thread: it runs only when we yield).
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let first = rx.try_recv().expect("first message queued");
        let second = rx.try_recv().expect("second message queued");
        assert!(
            rx.try_recv().is_err(),
            "a third message queued without a credit"
        );
        assert!(!reader.is_finished(), "the reader waits for a credit");
        // The node handles them: their credits come back and the reader goes on.
        drop((first, second));
        let mut rest = 0;
        while let Some(i) = rx.recv().await {
            assert!(matches!(i, Input::PeerMessages { ref msgs, .. } if msgs.len() == 1));
            rest += 1;
        }
        assert_eq!(rest, 3);
        reader.await.expect("reader ends");
        assert_eq!(credits.available_permits(), 2);
    }

    /// A read's messages reach the node as one input (one turn), a long read in pieces of
    /// at most `MAX_MESSAGES_PER_INPUT`, in order, each holding a credit per message.
    #[tokio::test(flavor = "current_thread")]
    async fn a_reads_messages_arrive_together_and_a_long_read_in_pieces() {
        let node_id = peer_id();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let credits = Arc::new(Semaphore::new(super::MAX_QUEUED_PEER_MESSAGES));
        let fee = |i: u32| {
            Message::UpdateFee(fulmen_wire::msgs::UpdateFee {
                channel_id: [0; 32],
                feerate_per_kw: i,
                extra_tlvs: Default::default(),
            })
        };
        let reads = vec![
            PeerEvent::Messages(vec![fee(0), fee(1)]),
            PeerEvent::Messages((2..42).map(fee).collect()),
        ];
        forward_peer_events(&mut Script(reads.into()), node_id, 1, &tx, &credits).await;
        drop(tx);
        let mut sizes = Vec::new();
        let mut rates = Vec::new();
        let mut held = Vec::new();
        while let Some(i) = rx.recv().await {
            let Input::PeerMessages { msgs, .. } = &i else {
                panic!("unexpected input {}", i.label());
            };
            sizes.push(msgs.len());
            rates.extend(msgs.iter().map(|m| match m {
                Message::UpdateFee(f) => f.feerate_per_kw,
                other => panic!("unexpected {other:?}"),
            }));
            held.push(i);
        }
        assert_eq!(sizes, [2, 16, 16, 8]);
        assert_eq!(rates, (0..42).collect::<Vec<_>>());
        assert_eq!(
            credits.available_permits(),
            super::MAX_QUEUED_PEER_MESSAGES - 42
        );
        drop(held);
        assert_eq!(credits.available_permits(), super::MAX_QUEUED_PEER_MESSAGES);
    }

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
