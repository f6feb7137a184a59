//! The chain daemon's JSON-RPC request and response types, shared by the server
//! ([`crate::chain::rpc`]) and the typed client ([`ChainClient`]).
//!
//! Owns: the wire shape of every chain RPC (field names, amounts in sats, hashes as hex).
//! Must never: carry library types with unstable serde forms; everything here is plain
//! strings and integers so other tools can drive the daemon.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rpc_client::{RpcClient, RpcClientError};

/// Name of the endpoint file the chain daemon writes into its data directory.
pub const CHAIN_INFO_FILE: &str = "chain.json";

/// `getinfo` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainInfo {
    /// Height of the tip (0 = only genesis).
    pub height: u32,
    /// Tip block hash.
    pub tip: String,
    /// Tip header time.
    pub time: u32,
    /// Number of transactions in the mempool.
    pub mempool_size: usize,
    /// Spendable faucet balance in sats.
    pub faucet_balance: u64,
    /// The faucet's regtest address (coinbases of `mine` without `to` pay it).
    pub faucet_address: String,
    /// Current fee estimate in sat/vB.
    pub fee_estimate_sat_per_vb: u64,
}

/// `mine` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MineParams {
    /// Number of blocks.
    pub n: u32,
    /// Address receiving the coinbases (default: the faucet).
    #[serde(default)]
    pub to: Option<String>,
}

/// `mine` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MineResult {
    /// Hashes of the new blocks, in order.
    pub blocks: Vec<String>,
    /// New tip height.
    pub height: u32,
}

/// `fund` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FundParams {
    /// Regtest address to pay.
    pub address: String,
    /// Amount in sats.
    pub sats: u64,
}

/// Result of `fund` and `sendrawtransaction`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxidResult {
    /// The transaction id.
    pub txid: String,
}

/// `sendrawtransaction` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SendParams {
    /// Consensus-encoded transaction, hex.
    pub hex: String,
}

/// `gettransaction` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxidParams {
    /// Transaction id, hex.
    pub txid: String,
}

/// `gettransaction` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxInfo {
    /// Transaction id.
    pub txid: String,
    /// Consensus-encoded transaction, hex.
    pub hex: String,
    /// Confirmations (0 = in the mempool).
    pub confirmations: u32,
    /// Height of the confirming block, if confirmed.
    pub block_height: Option<u32>,
    /// Hash of the confirming block, if confirmed.
    pub block_hash: Option<String>,
}

/// `getutxo` / `getspender` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutpointParams {
    /// `txid:vout`.
    pub outpoint: String,
}

/// `getutxo` result (`null` when the outpoint is not in the confirmed UTXO set).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UtxoInfo {
    /// `txid:vout`.
    pub outpoint: String,
    /// Value in sats.
    pub value: u64,
    /// scriptPubKey, hex.
    pub script_pubkey: String,
    /// The regtest address of the script, when it has one.
    pub address: Option<String>,
    /// Height of the block that created it.
    pub height: u32,
    /// Confirmations (>= 1).
    pub confirmations: u32,
    /// Whether it is a coinbase output.
    pub coinbase: bool,
}

/// `getspender` result (`null` when nothing spends the outpoint).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpendInfo {
    /// The spending transaction.
    pub txid: String,
    /// Which of its inputs spends the outpoint.
    pub input_index: u32,
    /// Height of the block confirming the spend (`null` = in the mempool).
    pub height: Option<u32>,
}

/// `getblock` params: exactly one of `height` or `hash`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GetBlockParams {
    /// Block height.
    #[serde(default)]
    pub height: Option<u32>,
    /// Block hash, hex.
    #[serde(default)]
    pub hash: Option<String>,
}

/// `getblock` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockInfo {
    /// Height.
    pub height: u32,
    /// Block hash.
    pub hash: String,
    /// Previous block hash.
    pub prev: String,
    /// Header time.
    pub time: u32,
    /// Transaction ids in block order (coinbase first).
    pub txids: Vec<String>,
    /// Consensus-encoded block, hex.
    pub hex: String,
}

/// One mempool entry in `getmempool`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MempoolEntry {
    /// Transaction id.
    pub txid: String,
    /// Virtual size in vbytes.
    pub vsize: u64,
}

/// `getmempool` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: usize,
    /// Entries in insertion (topological) order.
    pub txs: Vec<MempoolEntry>,
}

/// `reorg` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReorgParams {
    /// Number of blocks to disconnect.
    pub n: u32,
    /// Then forget every unconfirmed transaction, as a network whose nodes all restarted
    /// without their mempools (tests: whoever needs a transaction must broadcast it again).
    #[serde(default)]
    pub drop_mempool: bool,
}

/// `reorg` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReorgResult {
    /// Hashes of the disconnected blocks, highest first.
    pub disconnected: Vec<String>,
    /// New tip height.
    pub height: u32,
    /// New tip hash.
    pub tip: String,
    /// Mempool size afterwards.
    pub mempool_size: usize,
}

/// `estimatefee` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeeEstimate {
    /// sat per virtual byte (rounded up).
    pub sat_per_vb: u64,
    /// sat per 1000 weight units.
    pub sat_per_kwu: u64,
}

/// `waitforblock` params.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WaitForBlockParams {
    /// Return as soon as the tip height is above this.
    pub after_height: u32,
    /// Optional: the hash the caller knows at `after_height`; if the block there differs
    /// (a reorg happened), return at once.
    #[serde(default)]
    pub after_hash: Option<String>,
    /// Give up after this many milliseconds (capped at 60000) and return the current tip.
    #[serde(default = "default_wait_ms")]
    pub timeout_ms: u64,
}

fn default_wait_ms() -> u64 {
    30_000
}

/// `waitforblock` result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WaitForBlockResult {
    /// Tip height when the call returned.
    pub height: u32,
    /// Tip hash when the call returned.
    pub hash: String,
    /// True when the call returned because the timeout expired.
    pub timed_out: bool,
}

/// Typed client for the chain daemon's RPC (used by the CLI and by node daemons).
#[derive(Debug)]
pub struct ChainClient {
    /// The underlying JSON-RPC client.
    pub rpc: RpcClient,
}

impl ChainClient {
    /// Wraps an RPC client.
    pub fn new(rpc: RpcClient) -> ChainClient {
        ChainClient { rpc }
    }

    /// A client for the chain daemon whose data directory is `dir`.
    pub fn from_datadir(dir: impl Into<std::path::PathBuf>) -> ChainClient {
        ChainClient::new(RpcClient::from_datadir(dir, CHAIN_INFO_FILE))
    }

    /// `getinfo`.
    pub async fn get_info(&self) -> Result<ChainInfo, RpcClientError> {
        self.rpc.call("getinfo", Value::Null).await
    }

    /// `mine`.
    pub async fn mine(&self, n: u32, to: Option<&str>) -> Result<MineResult, RpcClientError> {
        self.rpc.call("mine", json!({ "n": n, "to": to })).await
    }

    /// `fund`.
    pub async fn fund(&self, address: &str, sats: u64) -> Result<TxidResult, RpcClientError> {
        let params = json!({ "address": address, "sats": sats });
        self.rpc.call("fund", params).await
    }

    /// `sendrawtransaction`.
    pub async fn send_raw_transaction(&self, hex: &str) -> Result<TxidResult, RpcClientError> {
        self.rpc
            .call("sendrawtransaction", json!({ "hex": hex }))
            .await
    }

    /// `gettransaction`.
    pub async fn get_transaction(&self, txid: &str) -> Result<TxInfo, RpcClientError> {
        self.rpc
            .call("gettransaction", json!({ "txid": txid }))
            .await
    }

    /// `getutxo` (`None` when unspent output does not exist in the confirmed set).
    pub async fn get_utxo(&self, outpoint: &str) -> Result<Option<UtxoInfo>, RpcClientError> {
        let params = json!({ "outpoint": outpoint });
        self.rpc.call("getutxo", params).await
    }

    /// `getspender` (`None` when nothing spends the outpoint).
    pub async fn get_spender(&self, outpoint: &str) -> Result<Option<SpendInfo>, RpcClientError> {
        let params = json!({ "outpoint": outpoint });
        self.rpc.call("getspender", params).await
    }

    /// `getblock` by height.
    pub async fn get_block_at(&self, height: u32) -> Result<BlockInfo, RpcClientError> {
        self.rpc.call("getblock", json!({ "height": height })).await
    }

    /// `getblock` by hash.
    pub async fn get_block(&self, hash: &str) -> Result<BlockInfo, RpcClientError> {
        self.rpc.call("getblock", json!({ "hash": hash })).await
    }

    /// `getmempool`.
    pub async fn get_mempool(&self) -> Result<MempoolInfo, RpcClientError> {
        self.rpc.call("getmempool", Value::Null).await
    }

    /// `reorg`.
    pub async fn reorg(&self, n: u32) -> Result<ReorgResult, RpcClientError> {
        self.reorg_with(n, false).await
    }

    /// `reorg`, with `drop_mempool`: the mempool is emptied afterwards.
    pub async fn reorg_with(
        &self,
        n: u32,
        drop_mempool: bool,
    ) -> Result<ReorgResult, RpcClientError> {
        let params = json!({ "n": n, "drop_mempool": drop_mempool });
        self.rpc.call("reorg", params).await
    }

    /// `estimatefee`.
    pub async fn estimate_fee(&self) -> Result<FeeEstimate, RpcClientError> {
        self.rpc.call("estimatefee", Value::Null).await
    }

    /// `waitforblock`: long-poll until the tip is above `after_height` (or the block at
    /// `after_height` is no longer `after_hash`), or `timeout_ms` passes.
    pub async fn wait_for_block(
        &self,
        after_height: u32,
        after_hash: Option<&str>,
        timeout_ms: u64,
    ) -> Result<WaitForBlockResult, RpcClientError> {
        let params = json!({
            "after_height": after_height,
            "after_hash": after_hash,
            "timeout_ms": timeout_ms,
        });
        self.rpc.call("waitforblock", params).await
    }

    /// `stop`.
    pub async fn stop(&self) -> Result<Value, RpcClientError> {
        self.rpc.call("stop", Value::Null).await
    }
}
