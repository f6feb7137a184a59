//! The manager's inputs and outputs as data: commands and their answers, the outputs a shell
//! acts on, the typed writes of one turn, what a restart loads, settings and errors.
//!
//! Owns: the vocabulary between [`crate::Manager`] and its shell (the node daemon, or the
//! in-process test harness). Must never: hold behaviour beyond applying a batch of writes to
//! an in-memory [`Stored`] (exactly what the node's sqlite store does on disk).

use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::Transaction;
use fulmen_channel::machine::{ChannelConfig, Record};
use fulmen_channel::monitor::{MonitorRecord, RevokedCommitment, RevokedHtlc};
use fulmen_wire::Message;
use serde::{Deserialize, Serialize};

use crate::api::{
    AddressResult, BalanceDetailResult, BalanceResult, ChannelsResult, CloseResult,
    DevBroadcastResult, FeesResult, ForwardsResult, GraphResult, InvoiceInfo, InvoicesResult,
    NodeInfo, OpenResult, PaymentInfo, PaymentStatus, PeerInfo, PeersResult, RouteResult,
    TowerInfoResult, TowerStatus,
};
use crate::forward::{ChannelPolicy, ForwardRecord};
use fulmen_watchtower::{Backup, Hint, TowerRecord};

/// A caller-chosen id that ties a [`Command`] to its [`Output::Reply`].
pub type RequestId = u64;

/// What a user (RPC, CLI, test) asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `getinfo`.
    GetInfo,
    /// `newaddress`: answered once the wallet's new index is durable.
    NewAddress,
    /// `balance`.
    Balance,
    /// `disconnect`: drop the live connection and do not redial.
    Disconnect {
        /// The peer.
        node_id: PublicKey,
    },
    /// `listpeers`.
    ListPeers,
    /// `openchannel`: answered once the funding transaction is signed and broadcast.
    Open {
        /// The (connected) peer.
        node_id: PublicKey,
        /// Capacity, sat.
        sats: u64,
        /// Given to the peer at opening, msat.
        push_msat: u64,
    },
    /// `listchannels`.
    ListChannels,
    /// `invoice`.
    Invoice {
        /// Amount, msat.
        amount_msat: u64,
        /// Description.
        description: String,
        /// Validity, seconds.
        expiry_secs: u64,
    },
    /// `pay`: answered with the pending payment once its HTLC is durable; the outcome
    /// arrives later as [`NodeEvent::PaymentCompleted`]. Default limits (see
    /// [`Command::PayWithLimits`]). The shell looks up [`crate::pay_command_hash`] in its
    /// store first and refuses with [`crate::refuse_repeat`] (the manager keeps only open
    /// payments in memory; `listpayments` is the store's, see [`crate::payments_view`]).
    Pay {
        /// The BOLT 11 string.
        invoice: String,
    },
    /// `pay` with limits: at most `max_fee_msat` in fees (default 1 % + 50 sat), retrying
    /// for at most `timeout_secs` (default 60).
    PayWithLimits {
        /// The BOLT 11 string.
        invoice: String,
        /// Fee limit, msat.
        max_fee_msat: Option<u64>,
        /// Retry limit, seconds.
        timeout_secs: Option<u64>,
    },
    /// [`Command::PayWithLimits`] for an invoice the caller already parsed and checked
    /// ([`fulmen_htlc::invoice::parse_invoice`] is the only way to get one): the node's RPC
    /// handlers spend its decoding and its signature check (a public-key recovery) on their
    /// own threads instead of the node task's.
    PayInvoice {
        /// The parsed invoice.
        invoice: Box<fulmen_htlc::invoice::Invoice>,
        /// Fee limit, msat.
        max_fee_msat: Option<u64>,
        /// Retry limit, seconds.
        timeout_secs: Option<u64>,
    },
    /// `keysend`: a spontaneous payment (the preimage travels in the onion).
    Keysend {
        /// The payee.
        node_id: PublicKey,
        /// Amount, msat.
        amount_msat: u64,
        /// Fee limit, msat.
        max_fee_msat: Option<u64>,
    },
    /// `closechannel` (cooperative): answered once the closing transaction is broadcast.
    Close {
        /// Channel id.
        channel_id: [u8; 32],
    },
    /// `closechannel --force`: broadcast our latest commitment now; answered once it is
    /// broadcast.
    ForceClose {
        /// Channel id.
        channel_id: [u8; 32],
    },
    /// `balance --detail`: every sat, on chain, in channels, in flight, in closing outputs.
    BalanceDetail,
    /// Dev only: broadcast one of our own revoked commitments (a breach, for tests).
    DevBroadcastRevoked {
        /// Channel id.
        channel_id: [u8; 32],
        /// Which commitment (default: the oldest where our balance was highest).
        number: Option<u64>,
    },
    /// Dev only: keep incoming HTLCs without settling them (`true`), or settle them again.
    DevHoldHtlcs {
        /// Hold or release.
        on: bool,
    },
    /// `forwards`.
    ListForwards,
    /// `setfees`: our forwarding policy for one channel (a new `channel_update`).
    SetFees {
        /// Channel id.
        channel_id: [u8; 32],
        /// Base fee, msat.
        base_msat: u32,
        /// Proportional fee, millionths.
        ppm: u32,
        /// CLTV delta (unchanged if `None`).
        cltv_delta: Option<u16>,
    },
    /// `route`: the route `pay` would take now.
    Route {
        /// The destination.
        node_id: PublicKey,
        /// Amount to deliver, msat.
        amount_msat: u64,
    },
    /// `graph`: the routing graph (`full` lists every node and channel).
    Graph {
        /// List everything.
        full: bool,
    },
    /// `tower add`: back up justice transactions to the watchtower `node_id` at `address`
    /// (dialled now and redialled, remembered durably); answered once the tower is stored.
    TowerAdd {
        /// The tower's node id.
        node_id: PublicKey,
        /// `host:port`.
        address: String,
    },
    /// `tower info`: our towers and backups; on a tower node, what it holds.
    TowerInfo,
}

/// A successful answer to a [`Command`] (or to a `connect`).
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `getinfo`.
    Info(NodeInfo),
    /// `newaddress`.
    Address(AddressResult),
    /// `balance`.
    Balance(BalanceResult),
    /// `disconnect`.
    Disconnected(PublicKey),
    /// `listpeers`.
    Peers(PeersResult),
    /// `connect`.
    Peer(PeerInfo),
    /// `openchannel`.
    Opened(OpenResult),
    /// `listchannels`.
    Channels(ChannelsResult),
    /// `invoice`.
    Invoice(InvoiceInfo),
    /// `listinvoices`.
    Invoices(InvoicesResult),
    /// `pay`: the payment as it starts (pending).
    PaymentStarted(PaymentInfo),
    /// `closechannel`.
    Closed(CloseResult),
    /// `balance --detail`.
    BalanceDetail(BalanceDetailResult),
    /// `dev broadcast-revoked`.
    DevBroadcast(DevBroadcastResult),
    /// `dev hold-htlcs`: whether HTLCs are now held.
    HoldHtlcs(bool),
    /// `forwards`.
    Forwards(ForwardsResult),
    /// `setfees`.
    FeesSet(FeesResult),
    /// `route`.
    Route(RouteResult),
    /// `graph`.
    Graph(GraphResult),
    /// `tower add`: the tower as it now stands.
    TowerAdded(TowerStatus),
    /// `tower info`.
    TowerInfo(TowerInfoResult),
}

/// A refused or failed command: a JSON-RPC error code and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct CmdError {
    /// JSON-RPC error code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

impl CmdError {
    /// Invalid parameters (-32602).
    pub fn invalid(message: impl Into<String>) -> CmdError {
        CmdError {
            code: -32602,
            message: message.into(),
        }
    }
    /// The request is valid but cannot be done now (-32000).
    pub fn failed(message: impl Into<String>) -> CmdError {
        CmdError {
            code: -32000,
            message: message.into(),
        }
    }
}

/// Something that happened, for the shell to report or wait on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A payment we sent reached its outcome (`succeeded` or `failed`).
    PaymentCompleted(PaymentInfo),
    /// One of our invoices was paid.
    InvoicePaid(InvoiceInfo),
    /// A channel can carry payments.
    ChannelReady {
        /// Channel id.
        channel_id: [u8; 32],
        /// The peer.
        peer: PublicKey,
    },
    /// A channel closed (mutual close, failure, timeout, abandoned opening).
    ChannelClosed {
        /// Channel id.
        channel_id: [u8; 32],
        /// The peer.
        peer: PublicKey,
        /// Why.
        reason: String,
    },
}

/// What the shell must do, drained with [`crate::Manager::poll_output`] after the turn's
/// writes are durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `msg` on connection `conn` to `node_id` (drop it if that connection is gone:
    /// `channel_reestablish` resends what matters).
    Send {
        /// The peer.
        node_id: PublicKey,
        /// The connection it is meant for.
        conn: u64,
        /// The message (boxed: messages are large, other outputs small).
        msg: Box<Message>,
    },
    /// Close connection `conn` to `node_id`.
    Disconnect {
        /// The peer.
        node_id: PublicKey,
        /// The connection.
        conn: u64,
        /// Why (logged).
        reason: String,
    },
    /// Broadcast a transaction to the chain.
    Broadcast(Transaction),
    /// The answer to request `request`.
    Reply {
        /// The caller's id.
        request: RequestId,
        /// The answer.
        result: Result<Response, CmdError>,
    },
    /// Something happened.
    Event(NodeEvent),
    /// Ask the chain what the output named by `short_channel_id` is (a peer announced a
    /// channel there): answer with [`crate::Manager::handle_utxo_answer`].
    LookupUtxo {
        /// The channel's position on chain.
        short_channel_id: fulmen_wire::ShortChannelId,
    },
    /// Read the archived HTLC set of revoked commitment `number` of channel `channel` (the
    /// peer broadcast it: justice needs it) and answer with
    /// [`crate::Manager::handle_revoked_htlcs`] (an empty set if the archive has no row).
    LoadRevokedHtlcs {
        /// Local channel id.
        channel: i64,
        /// The revoked commitment's number.
        number: u64,
    },
    /// Dial `node_id` at `address` (with backoff); on success call
    /// [`crate::Manager::handle_peer_connected`], on giving up
    /// [`crate::Manager::handle_reconnect_ended`].
    Connect {
        /// The peer.
        node_id: PublicKey,
        /// `host:port`.
        address: String,
    },
}

/// Whether a new connection was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAccept {
    /// Kept as the peer's live connection, numbered `conn`.
    Accepted {
        /// Connection number (messages carry it; stale ones are ignored).
        conn: u64,
    },
    /// The peer is already connected: close the new connection.
    Duplicate,
}

/// A payment we sent, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// What `listpayments` shows.
    pub info: PaymentInfo,
    /// Local id of the channel the HTLC went out on.
    pub channel: Option<i64>,
    /// Our HTLC id on it.
    pub htlc_id: Option<u64>,
    /// Onion shared secrets (hex), to decode a failure.
    pub shared_secrets: Vec<String>,
    /// Every HTLC sent for it (attempts and parts of a split payment).
    #[serde(default)]
    pub parts: Vec<crate::send::PartRecord>,
    /// What it is trying to do (to retry after a restart); `None` for payments stored
    /// before routing existed.
    #[serde(default)]
    pub plan: Option<crate::send::PaymentPlan>,
}

impl PaymentRecord {
    /// True while the payment's HTLC is unresolved.
    pub fn is_pending(&self) -> bool {
        self.info.status == PaymentStatus::Pending
    }
}

/// An invoice we issued, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRecord {
    /// What `listinvoices` shows.
    pub info: InvoiceInfo,
    /// The preimage, hex.
    pub preimage: String,
    /// The payment secret, hex.
    pub payment_secret: String,
    /// `min_final_cltv_expiry_delta`.
    pub min_final_cltv: u32,
}

/// One turn's writes, typed (the node's store encodes them; the test harness keeps them).
/// Apply all of it atomically, in order, then call [`crate::Manager::persisted`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes {
    /// Wallet change sets, in order.
    pub wallet: Vec<fulmen_wallet::ChangeSet>,
    /// New channels: (local id, peer).
    pub new_channels: Vec<(i64, PublicKey)>,
    /// Channel records to append: (local channel id, record), in order.
    pub records: Vec<(i64, Record)>,
    /// Funding transactions we built: (local channel id, tx).
    pub funding_txs: Vec<(i64, Transaction)>,
    /// Transactions that closed a channel (or will): (local channel id, tx).
    pub closing_txs: Vec<(i64, Transaction)>,
    /// Our commitments broadcast after a channel failed: (local channel id, tx).
    pub commitment_txs: Vec<(i64, Transaction)>,
    /// Monitor records to append: (local channel id, record), in order.
    pub monitor_records: Vec<(i64, MonitorRecord)>,
    /// Revoked HTLC sets a monitor snapshot among `monitor_records` archived: (local channel
    /// id, set), to insert by (channel, commitment number) in the same transaction.
    pub revoked_htlcs: Vec<(i64, RevokedCommitment)>,
    /// Heights at which a channel's funding was spent: (local channel id, height).
    pub closing_heights: Vec<(i64, u32)>,
    /// Payment upserts (by payment hash).
    pub payments: Vec<PaymentRecord>,
    /// Invoice upserts (by payment hash).
    pub invoices: Vec<InvoiceRecord>,
    /// Peer upserts: (node id, address; `None` keeps a known address).
    pub peers: Vec<(PublicKey, Option<String>)>,
    /// Forward upserts (by incoming channel and HTLC id).
    pub forwards: Vec<ForwardRecord>,
    /// Forwarding policy overrides (by channel), from `setfees`.
    pub policies: Vec<(i64, ChannelPolicy)>,
    /// Watchtower (server side) records to append, in order.
    pub tower_records: Vec<TowerRecord>,
    /// Towers we back up to: upserts of (node id, address).
    pub towers: Vec<(PublicKey, String)>,
    /// Changes to the queue of backups waiting for a tower's acknowledgement, in order.
    pub tower_queue: Vec<TowerQueueWrite>,
}

/// One change to the durable queue of backups for towers (client side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TowerQueueWrite {
    /// A backup to send to `tower` (ignored if one under its hint is queued already).
    Queued {
        /// The tower.
        tower: PublicKey,
        /// The sealed backup.
        backup: Backup,
    },
    /// The tower acknowledged the backup under `hint`: delete it, count it acknowledged.
    Acked {
        /// The tower.
        tower: PublicKey,
        /// The backup's hint.
        hint: Hint,
    },
    /// The tower refused the backup under `hint`: delete it, count it refused.
    Refused {
        /// The tower.
        tower: PublicKey,
        /// The backup's hint.
        hint: Hint,
    },
}

/// A tower we back up to, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTower {
    /// The tower's node id.
    pub node_id: PublicKey,
    /// Where it listens (`host:port`).
    pub address: String,
    /// Backups it acknowledged.
    pub acked: u64,
    /// Backups it refused.
    pub refused: u64,
}

impl Writes {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self == &Writes::default()
    }
}

/// One turn's writes and the id to acknowledge them with.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistBatch {
    /// Acknowledge with [`crate::Manager::persisted`].
    pub id: u64,
    /// What to write.
    pub writes: Writes,
    /// True when its acknowledgement releases something — a channel message that waits for
    /// it (`commitment_signed`, `revoke_and_ack`, …), a reply, an event, a broadcast: write
    /// it to survive power loss. False for a batch nobody waits on (a `revoke_and_ack`
    /// received and nothing to answer): a write that survives the process crashing is
    /// enough, since the next synced write makes it durable too (writes are durable in
    /// order) and losing it to power loss is losing messages in flight, which the
    /// protocol recovers from at the reconnection.
    pub sync: bool,
}

/// One stored channel.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChannel {
    /// Local id.
    pub id: i64,
    /// The peer.
    pub peer: PublicKey,
    /// Its records, in order.
    pub records: Vec<Record>,
    /// The funding transaction, if we built it.
    pub funding_tx: Option<Transaction>,
    /// The transaction that closes it, once known.
    pub closing_tx: Option<Transaction>,
    /// Our commitment broadcast after it failed (a force close), if any.
    pub commitment_tx: Option<Transaction>,
    /// Height at which the funding was spent (the channel is closed on chain), if seen.
    pub closing_height: Option<u32>,
    /// Its on-chain monitor's records, in order (empty before the monitor exists).
    pub monitor_records: Vec<MonitorRecord>,
    /// Some of its stored rows are in an older record format (JSON: see
    /// `fulmen_channel::machine::codec::is_json_record`): the next clean stop
    /// ([`crate::Manager::compact_logs`]) rewrites them, one snapshot each for the channel
    /// and its monitor.
    pub old_format: bool,
}

/// Everything persisted so far: what [`crate::Manager::new`] restarts from.
/// `Stored::default()` is a new node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    /// Wallet change sets, in order.
    pub wallet: Vec<fulmen_wallet::ChangeSet>,
    /// Channels by local id, ascending.
    pub channels: Vec<StoredChannel>,
    /// Latest row of each payment, in creation order.
    pub payments: Vec<PaymentRecord>,
    /// Latest row of each invoice, in creation order.
    pub invoices: Vec<InvoiceRecord>,
    /// Known peers and their addresses.
    pub peers: Vec<(PublicKey, Option<String>)>,
    /// Latest row of each forward, in creation order.
    pub forwards: Vec<ForwardRecord>,
    /// Forwarding policy overrides by channel.
    pub policies: Vec<(i64, ChannelPolicy)>,
    /// Watchtower (server side) records, in the order they were written.
    pub tower_records: Vec<TowerRecord>,
    /// Towers we back up to.
    pub towers: Vec<StoredTower>,
    /// Backups not yet acknowledged: (tower, backup), oldest first.
    pub tower_queue: Vec<(PublicKey, Backup)>,
    /// The revocation archive, by (local channel id, commitment number). Never read by
    /// [`crate::Manager::new`] (the node's store leaves it empty when loading and reads a row
    /// when asked with [`Output::LoadRevokedHtlcs`]); the test harness answers from it.
    pub revoked_htlcs: std::collections::BTreeMap<(i64, u64), Vec<RevokedHtlc>>,
}

impl Stored {
    /// Applies one durable batch exactly as the node's sqlite store does: append change
    /// sets and records, insert channels, set transactions, upsert payments, invoices and
    /// peers (a `None` address keeps the known one).
    pub fn apply(&mut self, w: &Writes) {
        // (Channels are few and ids ascend: a linear search per write is fine here.)
        self.wallet.extend(w.wallet.iter().cloned());
        for (id, peer) in &w.new_channels {
            self.channels.push(StoredChannel {
                id: *id,
                peer: *peer,
                records: Vec::new(),
                funding_tx: None,
                closing_tx: None,
                commitment_tx: None,
                closing_height: None,
                monitor_records: Vec::new(),
                old_format: false,
            });
        }
        for (id, r) in &w.records {
            if let Some(c) = self.channel_mut(*id) {
                // As the node's store: a snapshot replaces the records before it.
                if matches!(r, Record::Snapshot(_)) {
                    c.records.clear();
                }
                c.records.push(r.clone());
            }
        }
        for (id, r) in &w.monitor_records {
            if let Some(c) = self.channel_mut(*id) {
                // As the node's store: a snapshot replaces the records before it.
                if matches!(r, MonitorRecord::Snapshot(_)) {
                    c.monitor_records.clear();
                }
                c.monitor_records.push(r.clone());
            }
        }
        for (id, c) in &w.revoked_htlcs {
            self.revoked_htlcs.insert((*id, c.number), c.htlcs.clone());
        }
        for (id, tx) in &w.funding_txs {
            if let Some(c) = self.channel_mut(*id) {
                c.funding_tx = Some(tx.clone());
            }
        }
        for (id, tx) in &w.closing_txs {
            if let Some(c) = self.channel_mut(*id) {
                c.closing_tx = Some(tx.clone());
            }
        }
        for (id, tx) in &w.commitment_txs {
            if let Some(c) = self.channel_mut(*id) {
                c.commitment_tx = Some(tx.clone());
            }
        }
        for (id, h) in &w.closing_heights {
            if let Some(c) = self.channel_mut(*id) {
                c.closing_height = Some(*h);
            }
        }
        upsert(&mut self.payments, &w.payments, |p| &p.info.payment_hash);
        for f in &w.forwards {
            match self
                .forwards
                .iter_mut()
                .find(|r| (r.in_channel, r.in_htlc) == (f.in_channel, f.in_htlc))
            {
                Some(r) => *r = f.clone(),
                None => self.forwards.push(f.clone()),
            }
        }
        for (id, p) in &w.policies {
            match self.policies.iter_mut().find(|(c, _)| c == id) {
                Some(r) => r.1 = *p,
                None => self.policies.push((*id, *p)),
            }
        }
        upsert(&mut self.invoices, &w.invoices, |i| &i.info.payment_hash);
        self.tower_records.extend(w.tower_records.iter().cloned());
        for (id, addr) in &w.towers {
            match self.towers.iter_mut().find(|t| t.node_id == *id) {
                Some(t) => t.address.clone_from(addr),
                None => self.towers.push(StoredTower {
                    node_id: *id,
                    address: addr.clone(),
                    acked: 0,
                    refused: 0,
                }),
            }
        }
        for q in &w.tower_queue {
            self.apply_tower_queue(q);
        }
        for (id, addr) in &w.peers {
            match self.peers.iter_mut().find(|(p, _)| p == id) {
                Some((_, a)) => {
                    if addr.is_some() {
                        a.clone_from(addr);
                    }
                }
                None => self.peers.push((*id, addr.clone())),
            }
        }
    }

    fn apply_tower_queue(&mut self, q: &TowerQueueWrite) {
        match q {
            TowerQueueWrite::Queued { tower, backup } => {
                if !self
                    .tower_queue
                    .iter()
                    .any(|(t, b)| t == tower && b.hint == backup.hint)
                {
                    self.tower_queue.push((*tower, backup.clone()));
                }
            }
            TowerQueueWrite::Acked { tower, hint } | TowerQueueWrite::Refused { tower, hint } => {
                let before = self.tower_queue.len();
                self.tower_queue
                    .retain(|(t, b)| !(t == tower && b.hint == *hint));
                if self.tower_queue.len() == before {
                    return;
                }
                if let Some(t) = self.towers.iter_mut().find(|t| t.node_id == *tower) {
                    if matches!(q, TowerQueueWrite::Acked { .. }) {
                        t.acked += 1;
                    } else {
                        t.refused += 1;
                    }
                }
            }
        }
    }

    fn channel_mut(&mut self, id: i64) -> Option<&mut StoredChannel> {
        self.channels.iter_mut().find(|c| c.id == id)
    }
}

/// Replaces the row of `rows` with the key of each of `new` (appending unknown ones), in order.
fn upsert<T: Clone>(rows: &mut Vec<T>, new: &[T], key: impl Fn(&T) -> &String) {
    for n in new {
        match rows.iter_mut().find(|r| key(r) == key(n)) {
            Some(r) => *r = n.clone(),
            None => rows.push(n.clone()),
        }
    }
}

/// Static settings of a node.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Alias shown in `getinfo`.
    pub alias: String,
    /// The peer listen address actually bound, shown in `getinfo`.
    pub listen: Option<String>,
    /// Dev commands enabled.
    pub dev: bool,
    /// Channel parameters.
    pub channel_config: ChannelConfig,
    /// Funding feerate, sat/vB (commitments use the same rate, at least 253 sat/kw).
    pub funding_sat_per_vb: u64,
    /// Most channels peers may have pending (opened by them, not yet usable) with us at
    /// once, over all peers: node ids are free, so a per-peer limit alone bounds nothing.
    pub max_pending_inbound_opens: usize,
    /// Forwarding policy of every channel without an override (`setfees`).
    pub forwarding: ChannelPolicy,
    /// Accept keysend payments (test networks do).
    pub accept_keysend: bool,
    /// Announce our channels to the network (BOLT 7).
    pub announce_channels: bool,
    /// Confirmations before a channel is announced (6 by default, 1 in test networks).
    pub announce_depth: u32,
    /// Act as a watchtower: store peers' justice backups and broadcast them on a breach.
    pub tower: bool,
}

/// The node's default for [`ManagerConfig::max_pending_inbound_opens`].
pub const MAX_PENDING_INBOUND_OPENS: usize = 64;

/// The node's secrets.
pub struct NodeSecrets {
    /// Node secret key (its public key is the node id; signs invoices, peels onions).
    pub node_secret: SecretKey,
    /// Seed of the channels' key source.
    pub channel_seed: [u8; 32],
    /// The wallet seed.
    pub wallet_seed: fulmen_wallet::Seed,
}

impl std::fmt::Debug for NodeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSecrets(..)")
    }
}

/// Why the manager could not start or follow the chain.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The wallet refused (creating, loading, applying a block).
    #[error("wallet: {0}")]
    Wallet(#[from] fulmen_wallet::WalletError),
    /// A stored channel does not replay.
    #[error("channel {id}: {source}")]
    Channel {
        /// Local channel id.
        id: i64,
        /// The channel's error.
        source: fulmen_channel::machine::ChannelError,
    },
    /// The stored watchtower records do not replay.
    #[error("watchtower records: {0}")]
    Tower(String),
    /// A block does not follow our tip.
    #[error("block at height {got} does not follow our tip {tip}")]
    NotNext {
        /// Height of the block given.
        got: u32,
        /// Our tip height.
        tip: u32,
    },
}
