//! The [`Manager`]: one node's state, its construction from stored records, and the end of a
//! turn — channels driven to idle, one batch of writes handed out, side effects released
//! only once that batch is durable.
//!
//! Owns: the turn machinery (`poll_persist` / `persisted` / `poll_output`) and the state
//! every other module of this crate works on. Must never: release a message, broadcast,
//! reply or event before the writes of the turn that produced it are acknowledged.

use std::collections::{HashMap, VecDeque};

use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use bitcoin::{BlockHash, Transaction, Txid};
use fulmen_channel::machine::{Channel, Entropy, Phase, SeedKeySource};
use fulmen_wallet::{merge_changesets, Wallet, WalletParams};

use crate::types::{CmdError, InvoiceRecord};
use crate::types::{
    ManagerConfig, ManagerError, NodeEvent, NodeSecrets, Output, PaymentRecord, PersistBatch,
    RequestId, Response, Stored, Writes,
};

/// One channel and what the node keeps beside it.
#[derive(Debug)]
pub struct ChannelEntry {
    /// Local id (the store's key).
    pub id: i64,
    /// The peer.
    pub peer: PublicKey,
    /// The state machine.
    pub ch: Channel,
    /// Our funding transaction (opener).
    pub funding_tx: Option<Transaction>,
    /// The transaction that closed (or will close) the channel, once broadcast or seen.
    pub closing_tx: Option<Transaction>,
    /// Our latest commitment, broadcast after the channel failed (a force close).
    pub force_close_tx: Option<Transaction>,
    /// Height the closing transaction confirmed at.
    pub closing_height: Option<u32>,
    /// Why it closed.
    pub close_reason: Option<String>,
    /// The `openchannel` request waiting for the funding broadcast.
    pub(crate) open_waiter: Option<RequestId>,
    /// `closechannel` requests waiting for the closing broadcast.
    pub(crate) close_waiters: Vec<RequestId>,
    /// `closechannel --force` requests waiting for our commitment's broadcast.
    pub(crate) force_close_waiters: Vec<RequestId>,
    /// The channel's on-chain monitor (once both commitments 0 are signed).
    pub monitor: Option<fulmen_channel::monitor::ChannelMonitor>,
    /// The channel's [`Channel::state_version`] the monitor last synced with.
    pub(crate) monitor_synced: Option<u64>,
    /// What the channel's entry in our graph was last made from.
    pub(crate) graph_key: Option<crate::graph::GraphKey>,
}

impl ChannelEntry {
    pub(crate) fn new(id: i64, peer: PublicKey, ch: Channel) -> ChannelEntry {
        ChannelEntry {
            id,
            peer,
            ch,
            funding_tx: None,
            closing_tx: None,
            force_close_tx: None,
            closing_height: None,
            close_reason: None,
            open_waiter: None,
            close_waiters: Vec::new(),
            force_close_waiters: Vec::new(),
            monitor: None,
            monitor_synced: None,
            graph_key: None,
        }
    }

    /// True while an opening cannot be resumed: before both commitments 0 are signed
    /// (BOLT 2: such an opening is forgotten on disconnection).
    pub fn is_unsigned_opening(&self) -> bool {
        matches!(
            self.ch.state().phase,
            Phase::AwaitingAccept
                | Phase::AwaitingFundingTx
                | Phase::AwaitingFundingCreated
                | Phase::AwaitingFundingSigned
        )
    }

    /// The transaction that takes the funds out of the channel: the closing transaction
    /// (cooperative, or whatever spent the funding), else our force-close commitment.
    pub fn leaving_tx(&self) -> Option<&Transaction> {
        self.closing_tx.as_ref().or(self.force_close_tx.as_ref())
    }

    /// True once the channel machine is closed.
    pub fn is_closed(&self) -> bool {
        self.ch.state().phase == Phase::Closed
    }
}

/// A peer we know.
#[derive(Debug, Default, Clone)]
pub(crate) struct PeerSlot {
    /// Number of the live connection, if connected.
    pub conn: Option<u64>,
    /// Address to dial.
    pub address: Option<String>,
    /// The live connection was dialled by the peer.
    pub inbound: bool,
    /// A reconnect was asked of the shell and has not ended.
    pub reconnecting: bool,
}

/// A side effect waiting for the turn's writes to be durable.
#[derive(Debug)]
pub(crate) enum After {
    /// An output as is.
    Out(Output),
    /// Broadcast a transaction (recorded as ours and fed to the wallet when released).
    Broadcast(Transaction),
}

/// The batch handed out and not yet acknowledged.
#[derive(Debug)]
struct HandedOut {
    id: u64,
    /// (local channel id, channel batch id) to acknowledge.
    channel_acks: Vec<(i64, u64)>,
    after: Vec<After>,
    /// Payments, invoices and forwards this batch records as no longer open: dropped from
    /// memory once durable.
    closed: crate::history::Closed,
}

/// One node's brain: its channels, peers, wallet, payments, invoices and chain view.
///
/// # Call order
/// A *turn* is:
/// 1. Any number of inputs: [`Manager::handle_peer_connected`],
///    [`Manager::handle_peer_disconnected`], [`Manager::handle_peer_message`],
///    [`Manager::handle_block_connected`], [`Manager::handle_blocks_disconnected`],
///    [`Manager::handle_command`], [`Manager::handle_reconnect_ended`],
///    [`Manager::handle_tick`], [`Manager::rebroadcast`]. Each applies at once to the state;
///    nothing leaves the manager yet. `now` (UNIX seconds) is an argument where time
///    matters; entropy comes from the [`Entropy`] given to [`Manager::new`].
/// 2. [`Manager::poll_persist`]: drives every channel to idle (events handled, commitments
///    sent) and hands out **one** [`PersistBatch`] with every write of the turn — channel
///    records, wallet change sets, payment and invoice rows, peers. `None` means there was
///    nothing to write; the turn's outputs are then released at once. With a batch,
///    [`Manager::poll_output`] may already yield channel messages that need no write (an
///    `update_fulfill_htlc`, see [`fulmen_channel::machine::ChannelConfig::early_fulfill`]):
///    send them before writing. [`Manager::release_early`], called before `poll_persist`,
///    lets such messages go before the turn's commitments are signed.
/// 3. The shell writes the batch atomically and durably (to survive power loss when
///    [`PersistBatch::sync`], else at least a crash of the process), then calls
///    [`Manager::persisted`] with its id. Only now do the turn's messages, broadcasts,
///    replies and events become visible to [`Manager::poll_output`], in that order per
///    source (channel messages first, then the rest in the order they arose).
/// 4. Releasing outputs can stage new writes (a broadcast is recorded and fed to the
///    wallet), so the shell repeats 2–3 until `poll_persist` returns `None`, draining
///    [`Manager::poll_output`] after each acknowledgement and once at the end.
///
/// A crash between 2 and 3 loses the batch and, with it, nothing that anyone has seen:
/// restart with [`Manager::new`] from what was durable ([`Stored`], built with
/// [`Stored::apply`] from every acknowledged batch). Only one batch is out at a time.
pub struct Manager {
    pub(crate) config: ManagerConfig,
    pub(crate) node_secret: SecretKey,
    pub(crate) node_id: PublicKey,
    pub(crate) key_source: SeedKeySource,
    pub(crate) secp: Secp256k1<All>,
    pub(crate) entropy: Box<dyn Entropy + Send>,
    pub(crate) wallet: Wallet,
    pub(crate) channels: Vec<ChannelEntry>,
    pub(crate) next_channel_id: i64,
    pub(crate) peers: HashMap<PublicKey, PeerSlot>,
    pub(crate) next_conn: u64,
    pub(crate) payments: HashMap<String, PaymentRecord>,
    pub(crate) payment_by_htlc: HashMap<(i64, u64), String>,
    pub(crate) invoices: HashMap<String, InvoiceRecord>,
    pub(crate) height: u32,
    pub(crate) unconfirmed: HashMap<Txid, Transaction>,
    pub(crate) now: u64,
    /// `dev hold-htlcs on`: incoming HTLCs are kept unsettled.
    pub(crate) hold_htlcs: bool,
    /// Set by [`Manager::handle_wake`]: the next turn sends the commitments held back
    /// because they only settle the peer's updates.
    pub(crate) commit_now: bool,
    /// The HTLCs kept so.
    pub(crate) held: Vec<crate::onchain::HeldHtlc>,
    /// HTLCs we forwarded.
    pub(crate) forwards: crate::forward::Forwards,
    /// Forwarding policy overrides by channel.
    pub(crate) policies: HashMap<i64, crate::forward::ChannelPolicy>,
    /// The routing graph (our channels and what gossip taught us).
    pub(crate) graph: fulmen_routing::NetworkGraph,
    /// The graph's generation right after our channels were last put in it.
    pub(crate) graph_synced: Option<u64>,
    /// What our payments taught us about liquidity.
    pub(crate) scorer: fulmen_routing::ProbabilisticScorer,
    /// The route search (its buffers are reused).
    pub(crate) pathfinder: fulmen_routing::PathFinder,
    /// Validated gossip (BOLT 7).
    pub(crate) gossip: fulmen_routing::GossipStore,
    /// Gossip bookkeeping beside the store.
    pub(crate) gossip_state: crate::gossip::GossipState,
    /// Monitors build justice backups for a watchtower.
    pub(crate) justice_backups: bool,
    /// Justice backups not yet taken by the shell.
    pub(crate) justice_queue: Vec<(i64, fulmen_channel::monitor::JusticeBackup)>,
    /// Paid invoices recalled from the store for incoming HTLCs (see `crate::history`): kept
    /// while an HTLC for their hash is in flight.
    pub(crate) recalled_invoices: std::collections::HashSet<String>,
    /// Resolved forwards recalled from the store for this turn's `forwards` command.
    pub(crate) recalled_forwards: Vec<crate::ForwardRecord>,
    /// Archived revoked HTLC sets asked of the shell ([`Output::LoadRevokedHtlcs`]) since
    /// the last block: (local channel id, commitment number).
    pub(crate) revoked_htlcs_asked: std::collections::HashSet<(i64, u64)>,
    /// Watchtowers: the one we run and the ones we back up to.
    pub(crate) towers: crate::tower::Towers,
    /// Parts of incoming multi-part payments held until they add up.
    pub(crate) mpp: HashMap<fulmen_htlc::PaymentHash, crate::receive::HeldSet>,
    /// Writes of the current turn.
    pub(crate) pending: Writes,
    /// Side effects of the current turn.
    pub(crate) after: Vec<After>,
    handed_out: Option<HandedOut>,
    next_batch_id: u64,
    outputs: VecDeque<Output>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("node_id", &self.node_id)
            .field("height", &self.height)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Builds the node from what was persisted (`Stored::default()` for a new node). Stored
    /// openings that were interrupted before both commitments were signed are abandoned
    /// (their funding is never broadcast and its coins return to the wallet).
    pub fn new(
        config: ManagerConfig,
        secrets: NodeSecrets,
        entropy: Box<dyn Entropy + Send>,
        stored: Stored,
        now: u64,
    ) -> Result<Manager, ManagerError> {
        let params = WalletParams::regtest();
        let wallet = if stored.wallet.is_empty() {
            Wallet::create(&secrets.wallet_seed, params)?
        } else {
            Wallet::load(
                &secrets.wallet_seed,
                params,
                merge_changesets(stored.wallet.iter().cloned()),
            )?
        };
        let secp = Secp256k1::new();
        let node_id = PublicKey::from_secret_key(&secp, &secrets.node_secret);
        let height = wallet.tip().height;
        let towers = crate::tower::Towers::restore(config.tower, &stored)?;
        let mut m = Manager {
            config,
            node_secret: secrets.node_secret,
            node_id,
            key_source: SeedKeySource::new(secrets.channel_seed),
            secp,
            entropy,
            wallet,
            channels: Vec::new(),
            next_channel_id: 1,
            peers: HashMap::new(),
            next_conn: 0,
            payments: HashMap::new(),
            payment_by_htlc: HashMap::new(),
            invoices: HashMap::new(),
            height,
            unconfirmed: HashMap::new(),
            now,
            hold_htlcs: false,
            commit_now: false,
            held: Vec::new(),
            forwards: crate::forward::Forwards::default(),
            policies: stored.policies.iter().copied().collect(),
            graph: fulmen_routing::NetworkGraph::new(),
            graph_synced: None,
            scorer: fulmen_routing::ProbabilisticScorer::new(
                fulmen_routing::ScorerParams::default(),
            ),
            pathfinder: fulmen_routing::PathFinder::new(),
            mpp: HashMap::new(),
            towers,
            justice_backups: false,
            justice_queue: Vec::new(),
            revoked_htlcs_asked: Default::default(),
            recalled_invoices: Default::default(),
            recalled_forwards: Vec::new(),
            gossip: fulmen_routing::GossipStore::new(fulmen_routing::GossipConfig::new(
                crate::peers::chain_hash(),
            )),
            gossip_state: crate::gossip::GossipState::default(),
            pending: Writes::default(),
            after: Vec::new(),
            handed_out: None,
            next_batch_id: 0,
            outputs: VecDeque::new(),
        };
        for (pk, addr) in &stored.peers {
            m.peers.insert(
                *pk,
                PeerSlot {
                    address: addr.clone(),
                    ..PeerSlot::default()
                },
            );
        }
        // Rebuilt on every core (key derivations dominate a start with many channels), then
        // taken in, in their stored order.
        let rebuilt = fulmen_channel::parallel::map_in_order(&stored.channels, |c| {
            crate::channels::rebuild_channel(
                &m.key_source,
                &m.config.channel_config,
                m.config.dev,
                c,
            )
        })?;
        for (c, r) in stored.channels.iter().zip(rebuilt) {
            m.restore_channel(c, r);
        }
        // Only open payments are kept (the node's store loads only those; the others are
        // served from the store, see `crate::history`).
        for p in stored.payments.iter().filter(|p| p.is_open()) {
            m.index_payment(p);
            m.payments.insert(p.info.payment_hash.clone(), p.clone());
        }
        // Open forwards only, likewise.
        for f in stored.forwards.iter().filter(|f| f.is_open()) {
            m.forwards.insert(f.clone());
        }
        // Likewise only open invoices (see `crate::history`).
        for i in stored.invoices.iter().filter(|i| i.is_open()) {
            m.invoices.insert(i.info.payment_hash.clone(), i.clone());
        }
        // Towers we back up to: the monitors keep building backups, the towers are redialled.
        for t in &stored.towers {
            m.peers.entry(t.node_id).or_default().address = Some(t.address.clone());
        }
        if m.towers.has_towers() {
            m.enable_justice_backups();
        }
        // Restored channels learn the current height even if no block arrives soon.
        for e in &mut m.channels {
            if !e.is_closed() {
                if let Err(err) = e.ch.handle_block(height) {
                    tracing::warn!(error = %err, "channel block at start-up");
                }
            }
        }
        // Monitors hand out every claim still needed.
        m.monitors_rebroadcast();
        // Redial every peer we have open channels with.
        let peers: Vec<PublicKey> = m.peers.keys().copied().collect();
        for p in peers {
            m.maybe_reconnect(p);
        }
        tracing::info!(
            channels = m.channels.len(),
            open_payments = m.payments.len(),
            invoices = m.invoices.len(),
            height,
            "node loaded"
        );
        Ok(m)
    }

    /// Our node id.
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// Height of the last block processed.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Hash of our block at `height` (for the shell's fork search after a reorg).
    pub fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.wallet.block_hash_at(height)
    }

    /// Hash of our tip (none before the first block beyond genesis is known to the wallet).
    pub fn tip_hash(&self) -> BlockHash {
        self.wallet.tip().hash
    }

    /// Every channel, open and closed, oldest first.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelEntry> {
        self.channels.iter()
    }

    /// The settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The on-chain wallet (read only).
    pub fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    /// Peers with a live connection.
    pub fn connected_peers(&self) -> impl Iterator<Item = (PublicKey, u64)> + '_ {
        self.peers
            .iter()
            .filter_map(|(id, s)| s.conn.map(|c| (*id, c)))
    }

    /// A fresh 32 bytes from the entropy source.
    pub(crate) fn random32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.entropy.fill_bytes(&mut b);
        b
    }

    /// Queues a reply for after the write.
    pub(crate) fn reply(&mut self, request: RequestId, result: Result<Response, CmdError>) {
        self.after
            .push(After::Out(Output::Reply { request, result }));
    }

    /// Queues an event for after the write.
    pub(crate) fn event(&mut self, ev: NodeEvent) {
        self.after.push(After::Out(Output::Event(ev)));
    }

    /// Queues a message to a peer's live connection for after the write (dropped if the
    /// peer is offline).
    pub(crate) fn send_after(&mut self, node_id: PublicKey, msg: fulmen_wire::Message) {
        if let Some(conn) = self.peers.get(&node_id).and_then(|p| p.conn) {
            let msg = Box::new(msg);
            self.after
                .push(After::Out(Output::Send { node_id, conn, msg }));
        }
    }

    /// Optional, before [`Manager::poll_persist`]: handles what the turn's inputs set off in
    /// the channels (HTLCs to fulfill, forward or fail; settlements to relay) and releases
    /// the messages that may leave before the write — an `update_fulfill_htlc`
    /// ([`fulmen_channel::machine::ChannelConfig::early_fulfill`]) — to
    /// [`Manager::poll_output`], ahead of the turn's signing. Does nothing while a batch is
    /// out.
    pub fn release_early(&mut self) {
        if self.handed_out.is_some() {
            return;
        }
        self.sync_graph();
        self.handle_channel_events();
        self.take_channel_messages();
    }

    /// Ends the turn's input phase: drives channels to idle and hands out the turn's writes.
    /// `None`: nothing to write — the turn's outputs are released at once. While a batch is
    /// out (not yet acknowledged) this returns `None` and does nothing.
    pub fn poll_persist(&mut self) -> Option<PersistBatch> {
        if self.handed_out.is_some() {
            return None;
        }
        self.sync_graph();
        self.drive_channels();
        self.feed_invoice_preimages();
        self.sync_monitors();
        self.tower_turn();
        // A monitor event may have settled a payment that frees a channel's commitment.
        self.drive_channels();
        self.commit_now = false;
        self.gossip_turn();
        if let Some(cs) = self.wallet.take_staged() {
            self.pending.wallet.push(cs);
        }
        let mut channel_acks = Vec::new();
        for e in &mut self.channels {
            while let Some(b) = e.ch.poll_persist() {
                self.pending
                    .records
                    .extend(b.records.into_iter().map(|r| (e.id, r)));
                channel_acks.push((e.id, b.id));
            }
        }
        let writes = std::mem::take(&mut self.pending);
        let after = std::mem::take(&mut self.after);
        // Forwards recalled for a `forwards` command this turn were shown by it (or will be
        // read again for the turn that takes it).
        self.recalled_forwards.clear();
        if writes.is_empty() && channel_acks.is_empty() {
            self.release(Vec::new(), after);
            return None;
        }
        let sync = !after.is_empty() || self.channels.iter().any(|e| e.ch.holds_messages());
        // Messages the channels let go before the write (a fulfill): out now.
        self.take_channel_messages();
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        let closed = crate::history::Closed::of(&writes);
        self.handed_out = Some(HandedOut {
            id,
            channel_acks,
            after,
            closed,
        });
        Some(PersistBatch { id, writes, sync })
    }

    /// The batch `id` is durable: releases its messages, broadcasts, replies and events.
    /// An unknown id is ignored (and logged).
    pub fn persisted(&mut self, id: u64) {
        match self.handed_out.take() {
            Some(h) if h.id == id => {
                self.drop_closed(&h.closed);
                self.release(h.channel_acks, h.after)
            }
            other => {
                tracing::error!(batch = id, "persisted() for a batch that is not out");
                self.handed_out = other;
            }
        }
    }

    /// Payments held in memory: the open ones, and those whose outcome is not durable yet
    /// (the others are only in the store, see [`crate::payments_view`]).
    pub fn open_payment_count(&self) -> usize {
        self.payments.len()
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Moves the messages the channels released (by an acknowledgement, because they
    /// needed no write, or early: [`fulmen_channel::machine::ChannelConfig::early_fulfill`])
    /// to the outputs, in each channel's order.
    fn take_channel_messages(&mut self) {
        for e in &mut self.channels {
            let Some(first) = e.ch.poll_message() else {
                continue;
            };
            let conn = self.peers.get(&e.peer).and_then(|p| p.conn);
            for msg in std::iter::once(first).chain(std::iter::from_fn(|| e.ch.poll_message())) {
                match conn {
                    Some(conn) => self.outputs.push_back(Output::Send {
                        node_id: e.peer,
                        conn,
                        msg: Box::new(msg),
                    }),
                    None => {
                        tracing::debug!(peer = %e.peer, msg = msg.msg_type(), "peer offline: message dropped (reestablish resends)")
                    }
                }
            }
        }
    }

    fn release(&mut self, channel_acks: Vec<(i64, u64)>, after: Vec<After>) {
        for (cid, bid) in channel_acks {
            if let Some(e) = self.channels.iter_mut().find(|e| e.id == cid) {
                if let Err(err) = e.ch.persisted(bid) {
                    tracing::error!(error = %err, "acknowledging a persisted channel batch");
                }
            }
        }
        self.take_channel_messages();
        for a in after {
            match a {
                After::Out(o) => self.outputs.push_back(o),
                After::Broadcast(tx) => {
                    self.wallet.apply_mempool_txs([tx.clone()], self.now);
                    self.unconfirmed.insert(tx.compute_txid(), tx.clone());
                    self.outputs.push_back(Output::Broadcast(tx));
                }
            }
        }
        // Transactions the channels want broadcast: recorded first (next batch), sent once
        // that record is durable.
        let mut broadcasts = Vec::new();
        for e in &mut self.channels {
            while let Some(tx) = e.ch.poll_broadcast() {
                broadcasts.push((e.id, tx));
            }
        }
        for (id, tx) in broadcasts {
            self.on_channel_broadcast(id, tx);
        }
    }
}
