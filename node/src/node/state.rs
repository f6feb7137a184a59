//! The node's state and its single owner task: inputs in, durable writes, then side effects.
//!
//! Owns: the [`Node`] (wallet, channels, peers, payments, invoices, chain view), the
//! [`Input`]s every other task sends it, and the loop that applies them. Each turn handles
//! every queued input (so updates from many payments ride on one commitment and one sqlite
//! transaction), drives the channels until they are idle, writes one [`WriteBatch`], and
//! only then acknowledges the channels' batches (which releases their messages), sends
//! messages, broadcasts transactions and answers RPC callers.
//! Must never: send a peer message, broadcast or answer a caller before the state it
//! reports is durable; block on anything but the store and the chain daemon.

use std::collections::HashMap;
use std::sync::Arc;

use bitcoin::secp256k1::{All, PublicKey, Secp256k1};
use bitcoin::{Transaction, Txid};
use fulmen_channel::machine::{Channel, ChannelConfig, Record, SeedKeySource};
use fulmen_wallet::Wallet;
use fulmen_wire::transport::NoiseIdentity;
use fulmen_wire::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::api::{
    AddressResult, BalanceResult, ChannelsResult, CloseResult, InvoiceInfo, InvoicesResult,
    NodeInfo, OpenResult, PaymentInfo, PaymentsResult, PeerInfo, PeersResult,
};
use super::keys::NodeKeys;
use super::store::{NodeStore, WriteBatch};
use crate::chain::api::ChainClient;
use crate::peer::{Peer, PeerConfig, PeerSender};

/// An RPC-level failure: a JSON-RPC error code and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Where a command's answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, CmdError>>;

/// What the RPC server asks of the node.
#[derive(Debug)]
pub enum Command {
    /// `getinfo`.
    GetInfo(Reply<NodeInfo>),
    /// `newaddress`.
    NewAddress(Reply<AddressResult>),
    /// `balance`.
    Balance(Reply<BalanceResult>),
    /// `disconnect`.
    Disconnect(PublicKey, Reply<serde_json::Value>),
    /// `listpeers`.
    ListPeers(Reply<PeersResult>),
    /// `openchannel`: answered once the funding transaction is broadcast.
    Open {
        /// The peer.
        node_id: PublicKey,
        /// Capacity.
        sats: u64,
        /// Pushed to the peer.
        push_msat: u64,
        /// Answer.
        reply: Reply<OpenResult>,
    },
    /// `listchannels`.
    ListChannels(Reply<ChannelsResult>),
    /// `invoice`.
    Invoice {
        /// Amount.
        amount_msat: u64,
        /// Description.
        description: String,
        /// Expiry.
        expiry_secs: u64,
        /// Answer.
        reply: Reply<InvoiceInfo>,
    },
    /// `listinvoices`.
    ListInvoices(Reply<InvoicesResult>),
    /// `pay`: answered once the HTLC is committed to be sent, with a receiver of the outcome.
    Pay {
        /// The BOLT 11 string.
        invoice: String,
        /// Answer: the pending payment and where its outcome will arrive.
        reply: Reply<(PaymentInfo, oneshot::Receiver<PaymentInfo>)>,
    },
    /// `listpayments`.
    ListPayments(Reply<PaymentsResult>),
    /// `closechannel`: answered once the closing transaction is broadcast.
    Close {
        /// Channel id.
        channel_id: [u8; 32],
        /// Answer.
        reply: Reply<CloseResult>,
    },
}

/// Everything the node task reacts to.
#[derive(Debug)]
pub enum Input {
    /// An RPC command.
    Rpc(Command),
    /// A peer finished handshake and `init` (we dialled it, or it dialled us).
    Connected {
        /// The connection.
        peer: Box<Peer>,
        /// The address we dialled (outbound) — remembered to reconnect.
        dialled: Option<String>,
        /// Answer for `connect`.
        reply: Option<Reply<PeerInfo>>,
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
    /// A reconnection attempt gave up.
    ReconnectEnded(PublicKey),
    /// The chain tip changed.
    ChainTip,
    /// Stop the daemon.
    Stop,
}

/// A payment we sent, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// What `listpayments` shows.
    pub info: PaymentInfo,
    /// Local id of the channel the HTLC went out on.
    pub channel: Option<i64>,
    /// Our HTLC id on it.
    pub htlc_id: Option<u64>,
    /// Onion shared secrets (hex), to decode a failure.
    pub shared_secrets: Vec<String>,
}

/// An invoice we issued, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// One channel and what the node keeps beside it.
pub struct ChannelEntry {
    /// Local id (the store's key).
    pub id: i64,
    /// The peer.
    pub peer: PublicKey,
    /// The state machine.
    pub ch: Channel,
    /// Our funding transaction (opener).
    pub funding_tx: Option<Transaction>,
    /// The closing transaction once broadcast.
    pub closing_tx: Option<Transaction>,
    /// Height the closing transaction confirmed at.
    pub closing_height: Option<u32>,
    /// Why it closed.
    pub close_reason: Option<String>,
    /// `openchannel` caller.
    pub open_waiter: Option<Reply<OpenResult>>,
    /// `closechannel` callers.
    pub close_waiters: Vec<Reply<CloseResult>>,
}

/// A peer we know.
#[derive(Debug, Default)]
pub struct PeerSlot {
    /// Sender of the live connection.
    pub sender: Option<PeerSender>,
    /// Number of the live connection.
    pub conn: u64,
    /// Address to dial.
    pub address: Option<String>,
    /// The live connection was dialled by the peer.
    pub inbound: bool,
    /// A reconnect task is running.
    pub reconnecting: bool,
}

/// Something to do once the current turn's writes are durable.
pub enum After {
    /// Broadcast a transaction (and feed it to the wallet).
    Broadcast(Transaction),
    /// Answer an `openchannel` caller.
    OpenDone(Reply<OpenResult>, Result<OpenResult, CmdError>),
    /// Answer `closechannel` callers.
    CloseDone(Vec<Reply<CloseResult>>, Result<CloseResult, CmdError>),
    /// Wake `pay` callers.
    PaymentDone(PaymentInfo),
    /// Answer a `pay` caller.
    PayStarted(
        Reply<(PaymentInfo, oneshot::Receiver<PaymentInfo>)>,
        PaymentInfo,
        oneshot::Receiver<PaymentInfo>,
    ),
    /// Answer a `newaddress` caller.
    Address(Reply<AddressResult>, AddressResult),
    /// Answer an `invoice` caller.
    InvoiceDone(Reply<InvoiceInfo>, InvoiceInfo),
}

/// Static settings of the node.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Alias.
    pub alias: String,
    /// Bound peer address.
    pub listen: Option<String>,
    /// Dev commands enabled.
    pub dev: bool,
    /// Channel parameters.
    pub channel_config: ChannelConfig,
    /// Peer connection settings.
    pub peer_config: PeerConfig,
    /// Funding feerate, sat/vB.
    pub funding_sat_per_vb: u64,
}

/// The node: every piece of state, owned by one task.
pub struct Node {
    /// Settings.
    pub settings: Settings,
    /// Keys.
    pub keys: NodeKeys,
    /// Channel key source.
    pub key_source: SeedKeySource,
    /// Noise identity.
    pub identity: Arc<NoiseIdentity>,
    /// secp context.
    pub secp: Secp256k1<All>,
    /// The store.
    pub store: NodeStore,
    /// The chain daemon.
    pub chain: Arc<ChainClient>,
    /// The wallet.
    pub wallet: Wallet,
    /// Channels by local id.
    pub channels: Vec<ChannelEntry>,
    /// Next local channel id.
    pub next_channel_id: i64,
    /// Peers.
    pub peers: HashMap<PublicKey, PeerSlot>,
    /// Next connection number.
    pub next_conn: u64,
    /// Payments by hash (hex).
    pub payments: HashMap<String, PaymentRecord>,
    /// Payment hashes in creation order.
    pub payment_order: Vec<String>,
    /// Pending payments by (local channel id, our HTLC id).
    pub payment_by_htlc: HashMap<(i64, u64), String>,
    /// Callers waiting for a payment's outcome.
    pub pay_waiters: HashMap<String, Vec<oneshot::Sender<PaymentInfo>>>,
    /// Invoices by hash (hex).
    pub invoices: HashMap<String, InvoiceRecord>,
    /// Invoice hashes in creation order.
    pub invoice_order: Vec<String>,
    /// Height of the last processed block.
    pub height: u32,
    /// Hash of the last processed block.
    pub tip_hash: String,
    /// Our own unconfirmed broadcasts (txid → tx), re-sent after restarts and reorgs.
    pub unconfirmed: HashMap<Txid, Transaction>,
    /// Writes of the current turn.
    pub pending: WriteBatch,
    /// Side effects of the current turn, run after the write.
    pub after: Vec<After>,
    /// Sender for inputs (given to spawned tasks).
    pub inputs: mpsc::UnboundedSender<Input>,
    /// Set when the daemon should stop.
    pub stopping: bool,
}

/// Current UNIX time in seconds.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Node {
    /// Queues a channel's records for this turn's write (with the batch to acknowledge).
    fn collect_channel_batches(&mut self, acks: &mut Vec<(usize, u64)>) {
        for (i, e) in self.channels.iter_mut().enumerate() {
            while let Some(b) = e.ch.poll_persist() {
                for r in &b.records {
                    self.pending.records.push((e.id, Record::encode(r)));
                }
                acks.push((i, b.id));
            }
        }
    }

    /// Queues the wallet's staged changes for this turn's write.
    pub fn stage_wallet(&mut self) {
        if let Some(cs) = self.wallet.take_staged() {
            match serde_json::to_vec(&cs) {
                Ok(bytes) => self.pending.wallet.push(bytes),
                Err(e) => tracing::error!(error = %e, "cannot serialize a wallet change set"),
            }
        }
    }

    /// One turn's end: drive channels to idle, write durably, then release messages and run
    /// side effects. Loops while acknowledging produced more work.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        loop {
            self.drive_channels();
            self.stage_wallet();
            let mut acks = Vec::new();
            self.collect_channel_batches(&mut acks);
            let batch = std::mem::take(&mut self.pending);
            self.store.write(&batch).await?;
            for (i, id) in acks {
                if let Some(e) = self.channels.get_mut(i) {
                    if let Err(err) = e.ch.persisted(id) {
                        tracing::error!(error = %err, "acknowledging a persisted batch");
                    }
                }
            }
            self.send_channel_messages();
            let mut broadcasts = Vec::new();
            for e in &mut self.channels {
                while let Some(tx) = e.ch.poll_broadcast() {
                    broadcasts.push((e.id, tx));
                }
            }
            let had_broadcasts = !broadcasts.is_empty();
            for (id, tx) in broadcasts {
                self.on_channel_broadcast(id, tx);
            }
            let after = std::mem::take(&mut self.after);
            let had_after = !after.is_empty();
            for a in after {
                self.run_after(a).await;
            }
            if !had_broadcasts && !had_after && self.pending.is_empty() && !self.channels_busy() {
                return Ok(());
            }
        }
    }

    fn channels_busy(&self) -> bool {
        self.channels.iter().any(|e| e.ch.can_send_commitment())
    }

    fn send_channel_messages(&mut self) {
        for e in &mut self.channels {
            let sender = self.peers.get(&e.peer).and_then(|p| p.sender.clone());
            while let Some(m) = e.ch.poll_message() {
                match &sender {
                    Some(s) => {
                        if let Err(err) = s.send(&m) {
                            tracing::warn!(peer = %e.peer, error = %err, "sending to peer");
                        }
                    }
                    None => {
                        tracing::debug!(peer = %e.peer, msg = m.msg_type(), "peer offline: message dropped (reestablish resends)")
                    }
                }
            }
        }
    }

    async fn run_after(&mut self, a: After) {
        match a {
            After::Broadcast(tx) => self.broadcast(tx).await,
            After::OpenDone(r, res) => {
                let _ = r.send(res);
            }
            After::CloseDone(rs, res) => {
                for r in rs {
                    let _ = r.send(res.clone());
                }
            }
            After::PaymentDone(info) => {
                for w in self
                    .pay_waiters
                    .remove(&info.payment_hash)
                    .unwrap_or_default()
                {
                    let _ = w.send(info.clone());
                }
            }
            After::PayStarted(r, info, rx) => {
                let _ = r.send(Ok((info, rx)));
            }
            After::Address(r, a) => {
                let _ = r.send(Ok(a));
            }
            After::InvoiceDone(r, i) => {
                let _ = r.send(Ok(i));
            }
        }
    }

    /// Sends a transaction to the chain daemon and tells the wallet about it.
    pub async fn broadcast(&mut self, tx: Transaction) {
        let txid = tx.compute_txid();
        let hex = bitcoin::consensus::encode::serialize_hex(&tx);
        match self.chain.send_raw_transaction(&hex).await {
            Ok(_) => tracing::info!(%txid, "broadcast"),
            Err(e) => tracing::warn!(%txid, error = %e, "broadcast refused"),
        }
        self.wallet.apply_mempool_txs([tx.clone()], now_secs());
        self.unconfirmed.insert(txid, tx);
    }

    /// Finds a channel by id (or temporary id).
    pub fn channel_index(&self, id: &[u8; 32]) -> Option<usize> {
        self.channels.iter().position(|e| {
            e.ch.channel_id() == *id || e.ch.state().setup.temporary_channel_id == *id
        })
    }
}
