//! The node daemon's JSON-RPC interface: method names, parameter and result types, and the
//! typed client [`NodeClient`] used by the CLI, `fulmen net` and the load generator.
//!
//! Owns: the wire shape of every node RPC's parameters (serde types, snake_case JSON); the
//! result types are `fulmen_manager::api`'s, re-exported here. Must never: hold logic; the
//! daemon implements these methods, clients only call them.
//!
//! Amounts follow DESIGN.md: sat on chain and for capacities, msat for payments/invoices.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rpc_client::{RpcClient, RpcClientError};

pub use fulmen_manager::api::*;

/// File name of the node daemon's endpoint file inside its data directory.
pub const NODE_INFO_FILE: &str = "node.json";

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

/// `pay` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PayParams {
    /// The BOLT 11 invoice.
    pub invoice: String,
    /// Give up waiting after this many seconds (default 60); the payment itself stays
    /// pending and resolves later (see `listpayments`).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Most fees to pay, msat (default: the manager's, 1 % + 50 sat).
    #[serde(default)]
    pub max_fee_msat: Option<u64>,
}

/// `keysend` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeysendParams {
    /// The payee's node id, hex.
    pub node_id: String,
    /// Amount delivered, msat.
    pub amount_msat: u64,
    /// Most fees to pay, msat (default: the manager's).
    #[serde(default)]
    pub max_fee_msat: Option<u64>,
    /// Give up waiting after this many seconds (default 60), as for `pay`.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// `setfees` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetFeesParams {
    /// Channel id, hex.
    pub channel_id: String,
    /// Base fee, msat.
    pub base_msat: u32,
    /// Proportional fee, millionths.
    pub ppm: u32,
    /// CLTV expiry delta (unchanged if absent).
    #[serde(default)]
    pub cltv_delta: Option<u16>,
}

/// `route` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteParams {
    /// The destination's node id, hex.
    pub node_id: String,
    /// Amount to deliver, msat.
    pub amount_msat: u64,
}

/// `graph` params.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GraphParams {
    /// List every node and channel (default: counts only).
    #[serde(default)]
    pub full: bool,
}

/// `listpayments` params.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListPaymentsParams {
    /// Only the newest N payments (default: all).
    #[serde(default)]
    pub last: Option<usize>,
}

/// `closechannel` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CloseParams {
    /// Channel id, hex.
    pub channel_id: String,
    /// Broadcast our latest commitment now instead of negotiating a mutual close
    /// (default false).
    #[serde(default)]
    pub force: bool,
}

/// `dev-broadcastrevoked` params (dev only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevBroadcastRevokedParams {
    /// Channel id, hex.
    pub channel_id: String,
    /// Which of our revoked commitments (default: the oldest where our balance was highest).
    #[serde(default)]
    pub number: Option<u64>,
}

/// `dev-holdhtlcs` params (dev only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevHoldHtlcsParams {
    /// Hold incoming HTLCs unsettled (`true`), or release every held one now (`false`).
    pub on: bool,
}

/// `dev-holdhtlcs` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HoldHtlcsResult {
    /// Whether incoming HTLCs are now held.
    pub hold_htlcs: bool,
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

    /// `balancedetail` (`balance --detail`): closing outputs not yet swept included.
    pub async fn balance_detail(&self) -> Result<BalanceDetailResult, RpcClientError> {
        self.rpc.call("balancedetail", Value::Null).await
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
        self.pay_with_limits(invoice, None, timeout_secs).await
    }

    /// `pay` with a fee limit; `timeout_secs` is both how long to wait for the outcome and
    /// how long the node keeps retrying.
    pub async fn pay_with_limits(
        &self,
        invoice: &str,
        max_fee_msat: Option<u64>,
        timeout_secs: Option<u64>,
    ) -> Result<PaymentInfo, RpcClientError> {
        let params = json!({
            "invoice": invoice,
            "timeout_secs": timeout_secs,
            "max_fee_msat": max_fee_msat,
        });
        self.rpc.call("pay", params).await
    }

    /// `keysend`: a spontaneous payment (waits up to `timeout_secs` for the outcome).
    pub async fn keysend(
        &self,
        node_id: &str,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
        timeout_secs: Option<u64>,
    ) -> Result<PaymentInfo, RpcClientError> {
        let params = json!({
            "node_id": node_id,
            "amount_msat": amount_msat,
            "max_fee_msat": max_fee_msat,
            "timeout_secs": timeout_secs,
        });
        self.rpc.call("keysend", params).await
    }

    /// `listforwards`.
    pub async fn list_forwards(&self) -> Result<ForwardsResult, RpcClientError> {
        self.rpc.call("listforwards", Value::Null).await
    }

    /// `setfees`: our forwarding policy for one channel.
    pub async fn set_fees(
        &self,
        channel_id: &str,
        base_msat: u32,
        ppm: u32,
        cltv_delta: Option<u16>,
    ) -> Result<FeesResult, RpcClientError> {
        let params = json!({
            "channel_id": channel_id,
            "base_msat": base_msat,
            "ppm": ppm,
            "cltv_delta": cltv_delta,
        });
        self.rpc.call("setfees", params).await
    }

    /// `getroute`: the route `pay` would take now.
    pub async fn route(
        &self,
        node_id: &str,
        amount_msat: u64,
    ) -> Result<RouteResult, RpcClientError> {
        let params = json!({ "node_id": node_id, "amount_msat": amount_msat });
        self.rpc.call("getroute", params).await
    }

    /// `graph`: the routing graph (`full`: every node and channel).
    pub async fn graph(&self, full: bool) -> Result<GraphResult, RpcClientError> {
        self.rpc.call("graph", json!({ "full": full })).await
    }

    /// `listpayments`.
    pub async fn list_payments(&self) -> Result<PaymentsResult, RpcClientError> {
        self.rpc.call("listpayments", Value::Null).await
    }

    /// `listpayments {"last": N}`: the newest `last` payments, oldest first.
    pub async fn list_last_payments(&self, last: usize) -> Result<PaymentsResult, RpcClientError> {
        self.rpc.call("listpayments", json!({ "last": last })).await
    }

    /// `closechannel` (cooperative).
    pub async fn close_channel(&self, channel_id: &str) -> Result<CloseResult, RpcClientError> {
        self.close_channel_with(channel_id, false).await
    }

    /// `closechannel`: cooperative, or with `force` our latest commitment broadcast now.
    pub async fn close_channel_with(
        &self,
        channel_id: &str,
        force: bool,
    ) -> Result<CloseResult, RpcClientError> {
        self.rpc
            .call(
                "closechannel",
                json!({ "channel_id": channel_id, "force": force }),
            )
            .await
    }

    /// `dev-broadcastrevoked` (dev only): broadcast one of our own revoked commitments.
    pub async fn dev_broadcast_revoked(
        &self,
        channel_id: &str,
        number: Option<u64>,
    ) -> Result<DevBroadcastResult, RpcClientError> {
        self.rpc
            .call(
                "dev-broadcastrevoked",
                json!({ "channel_id": channel_id, "number": number }),
            )
            .await
    }

    /// `dev-holdhtlcs` (dev only): hold incoming HTLCs, or release them.
    pub async fn dev_hold_htlcs(&self, on: bool) -> Result<HoldHtlcsResult, RpcClientError> {
        self.rpc.call("dev-holdhtlcs", json!({ "on": on })).await
    }

    /// `toweradd` (`tower add`): back up justice transactions to the tower
    /// `NODE_ID@HOST:PORT`.
    pub async fn tower_add(&self, tower: &str) -> Result<TowerStatus, RpcClientError> {
        self.rpc.call("toweradd", json!({ "peer": tower })).await
    }

    /// `towerinfo` (`tower info`).
    pub async fn tower_info(&self) -> Result<TowerInfoResult, RpcClientError> {
        self.rpc.call("towerinfo", Value::Null).await
    }

    /// `stop`.
    pub async fn stop(&self) -> Result<Value, RpcClientError> {
        self.rpc.call("stop", Value::Null).await
    }
}
