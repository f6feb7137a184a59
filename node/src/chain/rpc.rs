//! The chain daemon's JSON-RPC 2.0 methods (served over HTTP by jsonrpsee behind
//! [`crate::rpc_auth::CookieAuthLayer`]).
//!
//! Owns: the method table below, parameter parsing and the mapping of failures to JSON-RPC
//! errors. Must never: touch the chain or the store directly (it calls [`ChainService`]).
//!
//! Params may be given by name (an object, as shown) or by position (an array in the order
//! shown). Amounts are in sats, hashes and transactions in hex.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `getinfo` | – | `{height, tip, time, mempool_size, faucet_balance, faucet_address, fee_estimate_sat_per_vb}` |
//! | `mine` | `{n, to?}` | `{blocks: [hash…], height}`; coinbases pay `to` or the faucet |
//! | `fund` | `{address, sats}` | `{txid}`; faucet payment, in the mempool |
//! | `sendrawtransaction` | `{hex}` | `{txid}` |
//! | `gettransaction` | `{txid}` | `{txid, hex, confirmations, block_height, block_hash}` |
//! | `getutxo` | `{outpoint: "txid:vout"}` | `{outpoint, value, script_pubkey, address, height, confirmations, coinbase}` or `null` |
//! | `getspender` | `{outpoint}` | `{txid, input_index, height}` (`height` null = mempool) or `null` |
//! | `getblock` | `{height}` or `{hash}` | `{height, hash, prev, time, txids, hex}` |
//! | `getmempool` | – | `{size, txs: [{txid, vsize}]}` |
//! | `reorg` | `{n, drop_mempool?}` | `{disconnected: [hash…], height, tip, mempool_size}`; `drop_mempool` (default false) then empties the mempool |
//! | `estimatefee` | – | `{sat_per_vb, sat_per_kwu}` |
//! | `waitforblock` | `{after_height, after_hash?, timeout_ms?}` | `{height, hash, timed_out}` |
//! | `stop` | – | `"fulmen chain daemon stopping"` |
//!
//! `waitforblock` is a stateless long poll: it returns as soon as the tip height exceeds
//! `after_height` (or the block at `after_height` is no longer `after_hash`: a reorg), else
//! after `timeout_ms` (default 30000, at most 60000) with `timed_out: true` and the current
//! tip. A follower loops on it with its last seen height and hash; after a daemon restart it
//! simply calls again.
//!
//! Errors (bitcoind-style codes; `data.rule` is the stable snake_case rule name):
//!
//! | code | when | `data` |
//! | --- | --- | --- |
//! | -32602 | params missing or of the wrong type | – |
//! | -8 | invalid parameter (address, outpoint, txid, count, reorg depth) | `{rule}` for reorg |
//! | -22 | hex or consensus decoding failed | – |
//! | -26 | transaction refused by a chain rule; message names the input and rule | `{rule, input?}` |
//! | -6 | the faucet cannot pay | `{rule}` |
//! | -5 | not found (transaction, block) | – |
//! | -1 | internal error (store failure; the daemon stops) | – |

use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::json;

use crate::chain::api::{
    FundParams, GetBlockParams, MineParams, OutpointParams, ReorgParams, SendParams, TxidParams,
    TxidResult, WaitForBlockParams,
};
use crate::chain::service::{ChainService, ServiceError};

/// JSON-RPC error code for an invalid parameter (bitcoind's RPC_INVALID_PARAMETER).
pub const INVALID_PARAMETER: i32 = -8;
/// Decoding failed (RPC_DESERIALIZATION_ERROR).
pub const DESERIALIZATION_ERROR: i32 = -22;
/// A transaction was refused (RPC_VERIFY_REJECTED).
pub const VERIFY_REJECTED: i32 = -26;
/// The faucet cannot pay (RPC_WALLET_INSUFFICIENT_FUNDS).
pub const INSUFFICIENT_FUNDS: i32 = -6;
/// Not found (RPC_INVALID_ADDRESS_OR_KEY, as bitcoind uses it for unknown txids).
pub const NOT_FOUND: i32 = -5;
/// Internal error (RPC_MISC_ERROR).
pub const MISC_ERROR: i32 = -1;

/// Maps a service failure to a JSON-RPC error object.
pub fn to_rpc_error(e: ServiceError) -> ErrorObjectOwned {
    let message = e.to_string();
    match &e {
        ServiceError::InvalidParams(_) => {
            ErrorObjectOwned::owned::<()>(INVALID_PARAMETER, message, None)
        }
        ServiceError::Decode(_) => {
            ErrorObjectOwned::owned::<()>(DESERIALIZATION_ERROR, message, None)
        }
        ServiceError::Rejected(r) => ErrorObjectOwned::owned(
            VERIFY_REJECTED,
            message,
            Some(json!({ "rule": r.code(), "input": r.input_index() })),
        ),
        ServiceError::Fund(f) => ErrorObjectOwned::owned(
            INSUFFICIENT_FUNDS,
            message,
            Some(json!({ "rule": f.code() })),
        ),
        ServiceError::Chain(c) => ErrorObjectOwned::owned(
            INVALID_PARAMETER,
            message,
            Some(json!({ "rule": c.code() })),
        ),
        ServiceError::NotFound(_) => ErrorObjectOwned::owned::<()>(NOT_FOUND, message, None),
        ServiceError::Internal(_) => ErrorObjectOwned::owned::<()>(MISC_ERROR, message, None),
    }
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// Builds the RPC module serving `service`.
pub fn module(service: Arc<ChainService>) -> anyhow::Result<RpcModule<ChainService>> {
    let mut m = RpcModule::from_arc(service);

    m.register_async_method("getinfo", |_p, svc, _| async move {
        RpcResult::Ok(svc.info().await)
    })?;
    m.register_async_method("mine", |p, svc, _| async move {
        let MineParams { n, to } = p.parse()?;
        svc.mine(n, to.as_deref()).await.map_err(to_rpc_error)
    })?;
    m.register_async_method("fund", |p, svc, _| async move {
        let FundParams { address, sats } = p.parse()?;
        let txid = svc.fund(&address, sats).await.map_err(to_rpc_error)?;
        RpcResult::Ok(TxidResult {
            txid: txid.to_string(),
        })
    })?;
    m.register_async_method("sendrawtransaction", |p, svc, _| async move {
        let SendParams { hex } = p.parse()?;
        let txid = svc.send(&hex).await.map_err(to_rpc_error)?;
        RpcResult::Ok(TxidResult {
            txid: txid.to_string(),
        })
    })?;
    m.register_async_method("gettransaction", |p, svc, _| async move {
        let TxidParams { txid } = p.parse()?;
        svc.transaction(&txid).await.map_err(to_rpc_error)
    })?;
    m.register_async_method("getutxo", |p, svc, _| async move {
        let OutpointParams { outpoint } = p.parse()?;
        svc.utxo(&outpoint).await.map_err(to_rpc_error)
    })?;
    m.register_async_method("getspender", |p, svc, _| async move {
        let OutpointParams { outpoint } = p.parse()?;
        svc.spender(&outpoint).await.map_err(to_rpc_error)
    })?;
    m.register_async_method("getblock", |p, svc, _| async move {
        let GetBlockParams { height, hash } = p.parse()?;
        svc.block(height, hash.as_deref())
            .await
            .map_err(to_rpc_error)
    })?;
    m.register_async_method("getmempool", |_p, svc, _| async move {
        RpcResult::Ok(svc.mempool().await)
    })?;
    m.register_async_method("reorg", |p, svc, _| async move {
        let ReorgParams { n, drop_mempool } = p.parse()?;
        svc.reorg(n, drop_mempool).await.map_err(to_rpc_error)
    })?;
    m.register_async_method("estimatefee", |_p, svc, _| async move {
        RpcResult::Ok(svc.estimate_fee().await)
    })?;
    m.register_async_method("waitforblock", |p, svc, _| async move {
        let WaitForBlockParams {
            after_height,
            after_hash,
            timeout_ms,
        } = p.parse()?;
        svc.wait_for_block(
            after_height,
            after_hash.as_deref(),
            Duration::from_millis(timeout_ms),
        )
        .await
        .map_err(to_rpc_error)
    })?;
    m.register_method("stop", |_p, svc, _| {
        svc.request_stop("rpc stop");
        "fulmen chain daemon stopping"
    })?;
    Ok(m)
}
