//! The answers a node gives to its commands: `getinfo`, `balance`, `listchannels`,
//! `listpeers`, `listpayments`, `listinvoices` and the results of `openchannel`, `invoice`,
//! `pay` and `closechannel`, with their serde shape (snake_case JSON, as the node's JSON-RPC
//! interface returns them).
//!
//! Owns: the shape of every answer, and the payment and invoice status enums. Must never:
//! hold logic (the manager fills these in).
//!
//! Amounts follow DESIGN.md: sat on chain and for capacities, msat for payments/invoices.

use serde::{Deserialize, Serialize};

/// Where a payment we sent stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The HTLC is out; no outcome yet.
    Pending,
    /// The payee released the preimage.
    Succeeded,
    /// The HTLC failed back; the invoice may be paid again.
    Failed,
}

impl PaymentStatus {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an invoice we issued stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Not paid yet and not expired.
    Unpaid,
    /// Paid (the preimage was released).
    Paid,
    /// Not paid before its expiry (a view: stored invoices stay `unpaid`).
    Expired,
}

impl std::fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvoiceStatus::Unpaid => "unpaid",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Expired => "expired",
        })
    }
}

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
    /// `HEIGHTxINDEXxVOUT` of the funding output, once it confirmed and was verified.
    #[serde(default)]
    pub short_channel_id: Option<String>,
    /// The transaction that closed it, once broadcast.
    pub closing_txid: Option<String>,
    /// Why it closed, if it did.
    pub close_reason: Option<String>,
    /// Once the funding output is spent on chain: the kind of close and every output.
    #[serde(default)]
    pub closing: Option<ClosingInfo>,
    /// Number of our current commitment (what `dev broadcast-revoked --commitment` counts).
    #[serde(default)]
    pub local_commitment_number: Option<u64>,
    /// Number of the peer's current commitment (as we signed it).
    #[serde(default)]
    pub remote_commitment_number: Option<u64>,
}

/// How a closed channel's funds stand on chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClosingInfo {
    /// `cooperative`, `local_commitment(N)`, `remote_commitment(N)`,
    /// `remote_next_commitment(N)`, `revoked_remote_commitment(N)` (a breach we punish),
    /// `our_revoked_commitment(N)` (dev: we cheated) or `unknown(...)`.
    pub kind: String,
    /// The transaction that spent the funding output.
    pub commitment_txid: String,
    /// Its height.
    pub height: u32,
    /// Every output of it (and of our second-stage HTLC transactions).
    pub outputs: Vec<ClosingOutput>,
    /// Fees paid by our confirmed claims, sat.
    pub claim_fees_sat: u64,
    /// True when every output is resolved.
    pub resolved: bool,
}

/// One output of a closing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClosingOutput {
    /// `txid:vout`.
    pub outpoint: String,
    /// Value, sat.
    pub amount_sat: u64,
    /// `to_local`, `to_remote`, `offered_htlc`, `received_htlc`, `second_stage`, `revoked`
    /// or `peer`.
    pub kind: String,
    /// `waiting`, `needs_preimage`, `claim_broadcast`, `swept`, `spent_by_peer`,
    /// `not_ours` or `uneconomical`.
    pub state: String,
    /// While waiting: the height from which our claim is valid, and the blocks left.
    pub spendable_at: Option<u32>,
    /// While waiting: blocks until `spendable_at`.
    pub blocks_left: Option<u32>,
    /// The claim or spending transaction.
    pub txid: Option<String>,
    /// Height of the spend.
    pub spent_height: Option<u32>,
}

/// `balance --detail`: every sat the node has, by where it is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BalanceDetailResult {
    /// On-chain wallet.
    pub onchain: OnchainBalance,
    /// Our balances in open channels, msat (HTLCs excluded).
    pub channels_local_msat: u64,
    /// HTLCs we offered in open channels, msat (in flight).
    pub in_flight_out_msat: u64,
    /// HTLCs offered to us in open channels, msat (in flight).
    pub in_flight_in_msat: u64,
    /// Openings not yet usable, sat.
    pub pending_open_sat: u64,
    /// Outputs of closings that are ours and not yet in the wallet, one per output.
    pub closing_outputs: Vec<LimboOutput>,
    /// Sum of `closing_outputs`, sat.
    pub in_limbo_sat: u64,
    /// Part of it our claims can take now (claim broadcast or valid at the next block).
    pub claimable_now_sat: u64,
    /// Fees our confirmed on-chain claims paid, sat.
    pub claim_fees_sat: u64,
    /// on chain total + channels + in flight out + pending open + in limbo, sat.
    pub total_sat: u64,
}

/// One output of a closing that is ours and not yet swept to the wallet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LimboOutput {
    /// Channel id, hex.
    pub channel_id: String,
    /// `txid:vout`.
    pub outpoint: String,
    /// Value, sat (before the claim's fee).
    pub amount_sat: u64,
    /// As in [`ClosingOutput::kind`].
    pub kind: String,
    /// As in [`ClosingOutput::state`].
    pub state: String,
    /// Height from which it can be claimed (`None`: now, or it needs a preimage).
    pub spendable_at: Option<u32>,
}

/// `dev broadcast-revoked` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevBroadcastResult {
    /// Channel id, hex.
    pub channel_id: String,
    /// The revoked commitment's number.
    pub commitment_number: u64,
    /// Its txid.
    pub txid: String,
    /// Our balance in it, sat.
    pub to_us_sat: u64,
}

/// `listchannels` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelsResult {
    /// All channels, open and closed.
    pub channels: Vec<ChannelInfo>,
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
    pub status: InvoiceStatus,
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
    pub status: PaymentStatus,
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
    /// Routes tried (parts of a split payment included).
    #[serde(default)]
    pub attempts: u32,
    /// The route of the part that succeeded, else of the last part tried: the node ids it
    /// reaches, first hop to payee (empty before any route was tried). Filled by
    /// `listpayments`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<String>,
    /// Index in `route` of the node that reported that part's failure, if it failed with a
    /// readable failure onion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<u32>,
}

/// `listpayments` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentsResult {
    /// Payments, oldest first.
    pub payments: Vec<PaymentInfo>,
}

/// `closechannel` result: returned once the closing transaction is broadcast.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseResult {
    /// Channel id, hex.
    pub channel_id: String,
    /// The closing transaction id.
    pub closing_txid: String,
}

/// One forwarded HTLC in `forwards`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardInfo {
    /// Incoming channel id, hex.
    pub in_channel: String,
    /// Outgoing channel id, hex.
    pub out_channel: String,
    /// Incoming HTLC amount, msat.
    pub in_msat: u64,
    /// Outgoing HTLC amount, msat.
    pub out_msat: u64,
    /// Our fee (earned once settled), msat.
    pub fee_msat: u64,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// `pending`, `settled` or `failed`.
    pub status: String,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// When it was offered downstream, UNIX seconds.
    pub created_at: u64,
    /// When it was resolved.
    pub resolved_at: Option<u64>,
}

/// `forwards` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardsResult {
    /// Forwards, oldest first.
    pub forwards: Vec<ForwardInfo>,
    /// Fees earned by settled forwards, msat.
    pub fees_earned_msat: u64,
}

/// `setfees` result: the channel's policy now.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeesResult {
    /// Channel id, hex.
    pub channel_id: String,
    /// Base fee, msat.
    pub fee_base_msat: u32,
    /// Proportional fee, millionths.
    pub fee_ppm: u32,
    /// CLTV delta.
    pub cltv_expiry_delta: u16,
}

/// One hop of a route in `route`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteHopInfo {
    /// The node reached, hex.
    pub node_id: String,
    /// The channel used (`HEIGHTxINDEXxVOUT`).
    pub short_channel_id: String,
    /// HTLC amount over it, msat.
    pub amount_msat: u64,
    /// Fee this node keeps for the next hop, msat.
    pub fee_msat: u64,
    /// HTLC expiry over it, blocks above the current height.
    pub expiry_delta: u32,
    /// The scorer's estimate that this channel has the liquidity.
    pub success_probability: f64,
}

/// `route` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteResult {
    /// Hops from our first channel to the destination.
    pub hops: Vec<RouteHopInfo>,
    /// What we would send (amount plus fees), msat.
    pub total_amount_msat: u64,
    /// Fees, msat.
    pub total_fee_msat: u64,
    /// The first HTLC's expiry above the current height.
    pub total_cltv_delta: u32,
    /// The scorer's estimate that the whole route has the liquidity.
    pub success_probability: f64,
}

/// One channel of the graph in `graph --json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GraphChannel {
    /// `HEIGHTxINDEXxVOUT`.
    pub short_channel_id: String,
    /// The lesser node id, hex.
    pub node_1: String,
    /// The greater node id, hex.
    pub node_2: String,
    /// Capacity, sat.
    pub capacity_sat: u64,
    /// Policy of node 1 toward node 2: (base msat, ppm, cltv delta, enabled).
    pub policy_1_to_2: Option<(u32, u32, u16, bool)>,
    /// Policy of node 2 toward node 1.
    pub policy_2_to_1: Option<(u32, u32, u16, bool)>,
}

/// `graph` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GraphResult {
    /// Nodes in the graph.
    pub num_nodes: usize,
    /// Channels in the graph.
    pub num_channels: usize,
    /// Every node id, hex, with its alias if announced (only with `--json`).
    pub nodes: Vec<(String, Option<String>)>,
    /// Every channel (only with `--json`).
    pub channels: Vec<GraphChannel>,
}

/// One tower we back up to, in `tower info` (and the `tower add` result).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TowerStatus {
    /// The tower's node id, hex.
    pub node_id: String,
    /// Where it listens (`host:port`).
    pub address: String,
    /// Connected right now.
    pub connected: bool,
    /// The tower acknowledged our session on the live connection.
    pub session: bool,
    /// Backups the session can still take, once the tower told us.
    pub quota_remaining: Option<u32>,
    /// Backups sent since the node started (resends included).
    pub sent: u64,
    /// Backups the tower acknowledged (durably stored), over the tower's life.
    pub acknowledged: u64,
    /// Backups queued and not yet acknowledged.
    pub pending: usize,
    /// Backups the tower refused.
    pub refused: u64,
}

/// What a tower node holds, in `tower info`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TowerServerInfo {
    /// Client sessions.
    pub clients: usize,
    /// Blobs stored, over all clients.
    pub stored_blobs: usize,
    /// Bytes of blob stored.
    pub stored_bytes: usize,
    /// Justice transactions broadcast (distinct client and commitment).
    pub justice_broadcasts: usize,
    /// Blobs that decrypted under a mined txid but did not spend it (not broadcast).
    pub rejected_justice: u64,
}

/// `tower info` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TowerInfoResult {
    /// Towers we back up to.
    pub towers: Vec<TowerStatus>,
    /// Backups acknowledged, over all towers.
    pub backups_acknowledged: u64,
    /// Backups not yet acknowledged, over all towers.
    pub backups_pending: usize,
    /// What we hold as a tower (`null` unless the node runs with `--tower`).
    pub server: Option<TowerServerInfo>,
}
