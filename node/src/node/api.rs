//! The node daemon's JSON-RPC interface: method names, parameter and result types, and the
//! typed client [`NodeClient`] used by the CLI, `fulmen net` and the load generator.
//!
//! Owns: the wire shape of every node RPC (serde types, snake_case JSON). Must never: hold
//! logic; the daemon implements these methods, clients only call them.
//!
//! Amounts follow DESIGN.md: sat on chain and for capacities, msat for payments/invoices.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rpc_client::{RpcClient, RpcClientError};

/// File name of the node daemon's endpoint file inside its data directory.
pub const NODE_INFO_FILE: &str = "node.json";

/// `getinfo` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Our node id (compressed secp256k1 public key, hex).
    pub node_id: String,
    /// Alias (`--alias`).
    pub alias: String,
    /// Peer listen address actually bound (`host:port`), if listening.
    pub listen: Option<String>,
    /// `node_id@listen`, ready for `connect`.
    pub uri: Option<String>,
    /// Height of the last block the node has processed.
    pub block_height: u32,
    /// Hash of that block.
    pub block_hash: String,
    /// Connected peers.
    pub num_peers: usize,
    /// Channels able to pay (normal operation, peer connected).
    pub num_active_channels: usize,
    /// Channels being opened (funding not yet usable).
    pub num_pending_channels: usize,
    /// Channels shutting down or closed whose close is not yet confirmed.
    pub num_closing_channels: usize,
    /// Whether dev commands are enabled (`--dev`).
    pub dev: bool,
    /// Always `regtest`.
    pub network: String,
}

/// `newaddress` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddressResult {
    /// A fresh `bcrt1q…` address of the node's wallet.
    pub address: String,
}

/// On-chain part of `balance`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct OnchainBalance {
    /// Confirmed, spendable.
    pub confirmed_sat: u64,
    /// Unconfirmed (own change and incoming).
    pub unconfirmed_sat: u64,
    /// Immature coinbase outputs.
    pub immature_sat: u64,
    /// Sum of the three.
    pub total_sat: u64,
}

/// `balance` result: every sat the node controls, by where it is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BalanceResult {
    /// The wallet.
    pub onchain: OnchainBalance,
    /// Our side of open channels (active or not), msat, HTLCs excluded.
    pub channels_local_msat: u64,
    /// Our outgoing HTLCs in flight, msat.
    pub channels_htlc_out_msat: u64,
    /// Funding amounts (our side) of channels not yet usable, sat.
    pub pending_open_sat: u64,
    /// Our outputs of closing transactions broadcast but not yet confirmed, sat (already
    /// part of `onchain.unconfirmed_sat`: the wallet sees them in the mempool).
    pub pending_close_sat: u64,
    /// onchain.total + channels_local + channels_htlc_out (each rounded down to sat) +
    /// pending_open.
    pub total_sat: u64,
}

/// `connect` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectParams {
    /// `<node_id hex>@host:port`.
    pub peer: String,
}

/// `disconnect` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeIdParams {
    /// Node id, hex.
    pub node_id: String,
}

/// One peer in `listpeers` (also the `connect` result).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerInfo {
    /// Node id, hex.
    pub node_id: String,
    /// Last known address (`host:port`), if any.
    pub address: Option<String>,
    /// Connected right now.
    pub connected: bool,
    /// The peer dialled us.
    pub inbound: bool,
    /// Ids (hex) of channels with this peer.
    pub channels: Vec<String>,
}

/// `listpeers` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeersResult {
    /// Known peers.
    pub peers: Vec<PeerInfo>,
}

/// `openchannel` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenParams {
    /// The (connected) peer, hex.
    pub node_id: String,
    /// Capacity in sat.
    pub sats: u64,
    /// Given to the peer at opening, msat.
    #[serde(default)]
    pub push_msat: u64,
}

/// `openchannel` result: returned once the funding transaction is broadcast.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenResult {
    /// The channel id (from the funding outpoint), hex.
    pub channel_id: String,
    /// Funding transaction id.
    pub funding_txid: String,
    /// Funding output index.
    pub funding_output: u32,
}

/// One channel in `listchannels`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Channel id, hex.
    pub channel_id: String,
    /// The peer, hex.
    pub peer: String,
    /// `opening`, `abandoned` (an opening interrupted before both commitments were
    /// signed; its funding is never broadcast), `awaiting_confirmation`, `active`,
    /// `inactive` (peer offline),
    /// `shutting_down`, `closing` (closing tx broadcast, unconfirmed) or `closed`.
    pub state: String,
    /// We opened it.
    pub initiator: bool,
    /// Capacity, sat.
    pub capacity_sat: u64,
    /// Our balance, msat (HTLCs excluded).
    pub local_msat: u64,
    /// Their balance, msat (HTLCs excluded).
    pub remote_msat: u64,
    /// HTLCs in our current commitment.
    pub pending_htlcs: usize,
    /// Funding txid, once known.
    pub funding_txid: Option<String>,
    /// Funding output index, once known.
    pub funding_output: Option<u32>,
    /// Height the funding confirmed at.
    pub funding_height: Option<u32>,
    /// The transaction that closed it, once broadcast.
    pub closing_txid: Option<String>,
    /// Why it closed, if it did.
    pub close_reason: Option<String>,
}

/// `listchannels` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelsResult {
    /// All channels, open and closed.
    pub channels: Vec<ChannelInfo>,
}

/// `invoice` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvoiceParams {
    /// Amount, msat.
    pub amount_msat: u64,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
    /// Validity in seconds (default 3600).
    #[serde(default)]
    pub expiry_secs: Option<u64>,
}

/// One invoice (`invoice` result and `listinvoices` entry).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvoiceInfo {
    /// The BOLT 11 string (`lnbcrt…`).
    pub bolt11: String,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// Amount, msat.
    pub amount_msat: u64,
    /// Description.
    pub description: String,
    /// `unpaid`, `paid` or `expired`.
    pub status: String,
    /// Amount received, msat (when paid).
    pub received_msat: Option<u64>,
    /// Creation time, UNIX seconds.
    pub created_at: u64,
    /// Expiry time, UNIX seconds.
    pub expires_at: u64,
    /// When it was paid, UNIX seconds.
    pub paid_at: Option<u64>,
}

/// `listinvoices` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvoicesResult {
    /// Invoices, oldest first.
    pub invoices: Vec<InvoiceInfo>,
}

/// `pay` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PayParams {
    /// The BOLT 11 invoice.
    pub invoice: String,
    /// Give up waiting after this many seconds (default 60); the payment itself stays
    /// pending and resolves later (see `listpayments`).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// One payment (`pay` result and `listpayments` entry).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentInfo {
    /// Payment hash, hex.
    pub payment_hash: String,
    /// Destination node id, hex.
    pub destination: String,
    /// Amount delivered, msat.
    pub amount_msat: u64,
    /// Fees paid, msat (0 for single-hop).
    pub fee_msat: u64,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// The preimage, hex, once succeeded.
    pub preimage: Option<String>,
    /// Why it failed (e.g. the BOLT 4 failure and the failing hop).
    pub failure: Option<String>,
    /// Channel used, hex.
    pub channel_id: Option<String>,
    /// Creation time, UNIX seconds.
    pub created_at: u64,
    /// Completion time, UNIX seconds.
    pub completed_at: Option<u64>,
}

/// `listpayments` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentsResult {
    /// Payments, oldest first.
    pub payments: Vec<PaymentInfo>,
}

/// `closechannel` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CloseParams {
    /// Channel id, hex.
    pub channel_id: String,
}

/// `closechannel` result: returned once the closing transaction is broadcast.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseResult {
    /// Channel id, hex.
    pub channel_id: String,
    /// The closing transaction id.
    pub closing_txid: String,
}

/// Typed client for the node daemon's RPC.
#[derive(Debug)]
pub struct NodeClient {
    /// The underlying JSON-RPC client.
    pub rpc: RpcClient,
}

impl NodeClient {
    /// Wraps an RPC client.
    pub fn new(rpc: RpcClient) -> NodeClient {
        NodeClient { rpc }
    }

    /// A client for the node daemon whose data directory is `dir`.
    pub fn from_datadir(dir: impl Into<std::path::PathBuf>) -> NodeClient {
        NodeClient::new(RpcClient::from_datadir(dir, NODE_INFO_FILE))
    }

    /// `getinfo`.
    pub async fn get_info(&self) -> Result<NodeInfo, RpcClientError> {
        self.rpc.call("getinfo", Value::Null).await
    }

    /// `newaddress`.
    pub async fn new_address(&self) -> Result<AddressResult, RpcClientError> {
        self.rpc.call("newaddress", Value::Null).await
    }

    /// `balance`.
    pub async fn balance(&self) -> Result<BalanceResult, RpcClientError> {
        self.rpc.call("balance", Value::Null).await
    }

    /// `connect`.
    pub async fn connect(&self, peer: &str) -> Result<PeerInfo, RpcClientError> {
        self.rpc.call("connect", json!({ "peer": peer })).await
    }

    /// `disconnect`.
    pub async fn disconnect(&self, node_id: &str) -> Result<Value, RpcClientError> {
        self.rpc
            .call("disconnect", json!({ "node_id": node_id }))
            .await
    }

    /// `listpeers`.
    pub async fn list_peers(&self) -> Result<PeersResult, RpcClientError> {
        self.rpc.call("listpeers", Value::Null).await
    }

    /// `openchannel`.
    pub async fn open_channel(
        &self,
        node_id: &str,
        sats: u64,
        push_msat: u64,
    ) -> Result<OpenResult, RpcClientError> {
        let params = json!({ "node_id": node_id, "sats": sats, "push_msat": push_msat });
        self.rpc.call("openchannel", params).await
    }

    /// `listchannels`.
    pub async fn list_channels(&self) -> Result<ChannelsResult, RpcClientError> {
        self.rpc.call("listchannels", Value::Null).await
    }

    /// `invoice`.
    pub async fn invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: Option<u64>,
    ) -> Result<InvoiceInfo, RpcClientError> {
        let params = json!({
            "amount_msat": amount_msat,
            "description": description,
            "expiry_secs": expiry_secs,
        });
        self.rpc.call("invoice", params).await
    }

    /// `listinvoices`.
    pub async fn list_invoices(&self) -> Result<InvoicesResult, RpcClientError> {
        self.rpc.call("listinvoices", Value::Null).await
    }

    /// `pay` (waits up to `timeout_secs` for the outcome).
    pub async fn pay(
        &self,
        invoice: &str,
        timeout_secs: Option<u64>,
    ) -> Result<PaymentInfo, RpcClientError> {
        let params = json!({ "invoice": invoice, "timeout_secs": timeout_secs });
        self.rpc.call("pay", params).await
    }

    /// `listpayments`.
    pub async fn list_payments(&self) -> Result<PaymentsResult, RpcClientError> {
        self.rpc.call("listpayments", Value::Null).await
    }

    /// `closechannel` (cooperative).
    pub async fn close_channel(&self, channel_id: &str) -> Result<CloseResult, RpcClientError> {
        self.rpc
            .call("closechannel", json!({ "channel_id": channel_id }))
            .await
    }

    /// `stop`.
    pub async fn stop(&self) -> Result<Value, RpcClientError> {
        self.rpc.call("stop", Value::Null).await
    }
}
