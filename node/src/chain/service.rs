//! The chain daemon's core: one [`Chain`] behind a tokio mutex, persisted after every change.
//!
//! Owns: loading the chain from the store at startup (faucet key, block replay through
//! `Chain::connect_block`, mempool re-submission), every operation the RPC methods perform,
//! turning each change into a [`StoreUpdate`] increment written *before* the caller gets an
//! answer, the tip watch channel that `waitforblock` long-polls, and the stop signal.
//! Must never: answer a mutating call before its store write committed; keep running after a
//! store write failed (memory and disk would diverge, so it requests a stop instead).

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use bitcoin::consensus::encode;
use bitcoin::{Address, Amount, BlockHash, Network, OutPoint, Transaction, Txid};
use fulmen_chain::{Chain, ChainError, ChainParams, FundError, Tip, TxRejection};
use tokio::sync::{watch, Mutex};

use crate::chain::api::{
    BlockInfo, ChainInfo, FeeEstimate, MempoolEntry, MempoolInfo, MineResult, ReorgResult,
    SpendInfo, TxInfo, UtxoInfo, WaitForBlockResult,
};
use crate::chain::store::{ChainStore, StoreUpdate};

/// Most blocks one `mine` call may ask for (keeps the lock hold bounded).
pub const MAX_MINE: u32 = 10_000;

/// Longest `waitforblock` wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Why an operation failed; [`crate::chain::rpc`] maps these to JSON-RPC errors.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A parameter is malformed (bad address, outpoint, txid, count).
    #[error("{0}")]
    InvalidParams(String),
    /// Bytes that do not decode (hex or consensus encoding).
    #[error("{0}")]
    Decode(String),
    /// The chain refused the transaction.
    #[error("transaction rejected ({code}): {0}", code = .0.code())]
    Rejected(#[from] TxRejection),
    /// The faucet could not pay.
    #[error("fund failed ({code}): {0}", code = .0.code())]
    Fund(#[from] FundError),
    /// A chain operation failed (e.g. a reorg deeper than the chain).
    #[error("refused ({code}): {0}", code = .0.code())]
    Chain(#[from] ChainError),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The daemon is broken (e.g. the store failed); it is stopping.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

struct State {
    chain: Chain,
    store: ChainStore,
    /// Txids currently persisted in the store's mempool table.
    persisted_mempool: HashSet<Txid>,
}

/// The chain daemon's shared state. Use through `Arc<ChainService>`.
pub struct ChainService {
    state: Mutex<State>,
    tip: watch::Sender<Tip>,
    stop: watch::Sender<Option<String>>,
}

impl std::fmt::Debug for ChainService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainService")
            .field("tip", &*self.tip.borrow())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn parse_txid(s: &str) -> Result<Txid, ServiceError> {
    Txid::from_str(s.trim())
        .map_err(|e| ServiceError::InvalidParams(format!("invalid txid {s:?}: {e}")))
}

/// Parses `txid:vout`.
pub fn parse_outpoint(s: &str) -> Result<OutPoint, ServiceError> {
    OutPoint::from_str(s.trim()).map_err(|e| {
        ServiceError::InvalidParams(format!("invalid outpoint {s:?} (want txid:vout): {e}"))
    })
}

/// Parses a regtest address.
pub fn parse_address(s: &str) -> Result<Address, ServiceError> {
    let unchecked = Address::from_str(s.trim())
        .map_err(|e| ServiceError::InvalidParams(format!("invalid address {s:?}: {e}")))?;
    unchecked.require_network(Network::Regtest).map_err(|e| {
        ServiceError::InvalidParams(format!("address {s:?} is not a regtest address: {e}"))
    })
}

/// Decodes a hex transaction with a clear error for bad hex and bad encodings.
pub fn decode_tx_hex(hex_str: &str) -> Result<Transaction, ServiceError> {
    let bytes = hex::decode(hex_str.trim())
        .map_err(|e| ServiceError::Decode(format!("transaction hex is not valid hex: {e}")))?;
    encode::deserialize::<Transaction>(&bytes).map_err(|e| {
        let reason = match e {
            encode::Error::Io(_) => "the data ends early (truncated)".to_owned(),
            other => other.to_string(),
        };
        ServiceError::Decode(format!(
            "transaction hex ({} bytes) does not decode as a transaction: {reason}",
            bytes.len()
        ))
    })
}

fn internal(e: anyhow::Error) -> ServiceError {
    ServiceError::Internal(e)
}

impl ChainService {
    /// Loads the chain from `store`: creates the faucet key on first start, replays every
    /// stored block with `connect_block`, re-submits the stored mempool (dropping rows that
    /// are no longer valid).
    pub async fn load(store: ChainStore) -> anyhow::Result<ChainService> {
        let key = match store.faucet_key().await? {
            Some(bytes) => bitcoin::secp256k1::SecretKey::from_slice(&bytes)
                .context("stored faucet key is not a valid secret key")?,
            None => {
                let key = loop {
                    let mut bytes = [0u8; 32];
                    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                    if let Ok(k) = bitcoin::secp256k1::SecretKey::from_slice(&bytes) {
                        break k;
                    }
                };
                store.set_faucet_key(&key.secret_bytes()).await?;
                key
            }
        };
        let mut chain = Chain::new(ChainParams::default(), key);

        let blocks = store.load_blocks().await?;
        let count = blocks.len();
        for (height, hash, raw) in blocks {
            anyhow::ensure!(
                height == chain.height() + 1,
                "store is corrupt: block at height {height} follows height {}",
                chain.height()
            );
            let block: bitcoin::Block = encode::deserialize(&raw)
                .with_context(|| format!("stored block {height} does not decode"))?;
            anyhow::ensure!(
                block.block_hash().to_string() == hash,
                "store is corrupt: block {height} hash mismatch"
            );
            chain
                .connect_block(block)
                .with_context(|| format!("replaying stored block {height} ({hash})"))?;
        }

        // Mempool rows in insertion order; a child may precede a parent that a reorg put
        // back, so retry in passes until no progress.
        let mut pending: Vec<(String, Transaction)> = Vec::new();
        let mut dropped: Vec<String> = Vec::new();
        for (txid, raw) in store.load_mempool().await? {
            match encode::deserialize::<Transaction>(&raw) {
                Ok(tx) => pending.push((txid, tx)),
                Err(e) => {
                    tracing::warn!(%txid, error = %e, "dropping undecodable mempool row");
                    dropped.push(txid);
                }
            }
        }
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            let mut last_errors = Vec::new();
            for (txid, tx) in pending {
                match chain.submit_transaction(tx.clone()) {
                    Ok(_) => {}
                    Err(e) => {
                        last_errors.push((txid.clone(), e.to_string()));
                        still.push((txid, tx));
                    }
                }
            }
            pending = still;
            if pending.is_empty() || pending.len() == before {
                for (txid, error) in last_errors {
                    tracing::warn!(%txid, %error, "dropping stored mempool transaction");
                    dropped.push(txid);
                }
                break;
            }
        }
        if !dropped.is_empty() {
            store
                .apply(&StoreUpdate {
                    mempool_remove: dropped,
                    ..StoreUpdate::default()
                })
                .await?;
        }
        let persisted_mempool = chain.mempool().iter().map(|tx| tx.compute_txid()).collect();
        tracing::info!(
            blocks = count,
            height = chain.height(),
            mempool = chain.mempool().len(),
            "chain loaded from store"
        );
        let (tip, _) = watch::channel(chain.tip());
        let (stop, _) = watch::channel(None);
        Ok(ChainService {
            state: Mutex::new(State {
                chain,
                store,
                persisted_mempool,
            }),
            tip,
            stop,
        })
    }

    /// Asks the daemon to stop (RPC `stop`, a signal, or a fatal error).
    pub fn request_stop(&self, reason: &str) {
        self.stop.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason.to_owned());
                true
            } else {
                false
            }
        });
    }

    /// Resolves once a stop was requested, with the reason.
    pub async fn stopped(&self) -> String {
        let mut rx = self.stop.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "stop channel closed".into();
            }
        }
    }

    /// The current tip (no lock).
    pub fn tip(&self) -> Tip {
        *self.tip.borrow()
    }

    /// Persists the difference between the chain and the store, then publishes the tip.
    /// On a store failure the daemon is told to stop: the in-memory chain is ahead of disk.
    async fn persist(
        &self,
        state: &mut State,
        truncate_above: Option<u32>,
        new_blocks: &[(u32, &bitcoin::Block)],
    ) -> Result<(), ServiceError> {
        let mempool = state.chain.mempool();
        let current: Vec<(Txid, &Transaction)> =
            mempool.iter().map(|tx| (tx.compute_txid(), tx)).collect();
        let current_ids: HashSet<Txid> = current.iter().map(|(id, _)| *id).collect();
        let update = StoreUpdate {
            truncate_above,
            new_blocks: new_blocks
                .iter()
                .map(|(h, b)| (*h, b.block_hash().to_string(), encode::serialize(*b)))
                .collect(),
            mempool_remove: state
                .persisted_mempool
                .iter()
                .filter(|id| !current_ids.contains(*id))
                .map(|id| id.to_string())
                .collect(),
            mempool_add: current
                .iter()
                .filter(|(id, _)| !state.persisted_mempool.contains(id))
                .map(|(id, tx)| (id.to_string(), encode::serialize(*tx)))
                .collect(),
        };
        if let Err(e) = state.store.apply(&update).await {
            tracing::error!(error = %format!("{e:#}"), "store write failed; stopping");
            self.request_stop("store write failed");
            return Err(internal(e));
        }
        state.persisted_mempool = current_ids;
        let tip = state.chain.tip();
        self.tip.send_if_modified(|t| {
            if *t != tip {
                *t = tip;
                true
            } else {
                false
            }
        });
        Ok(())
    }

    /// `getinfo`.
    pub async fn info(&self) -> ChainInfo {
        let state = self.state.lock().await;
        let tip = state.chain.tip();
        ChainInfo {
            height: tip.height,
            tip: tip.hash.to_string(),
            time: tip.time,
            mempool_size: state.chain.mempool().len(),
            faucet_balance: state.chain.faucet_balance().to_sat(),
            faucet_address: state.chain.faucet_address().to_string(),
            fee_estimate_sat_per_vb: state.chain.fee_estimate().to_sat_per_vb_ceil(),
        }
    }

    /// `mine`: `n` blocks paying `to` (or the faucet).
    pub async fn mine(&self, n: u32, to: Option<&str>) -> Result<MineResult, ServiceError> {
        if n == 0 || n > MAX_MINE {
            return Err(ServiceError::InvalidParams(format!(
                "n must be between 1 and {MAX_MINE}, got {n}"
            )));
        }
        let script = to
            .map(|a| parse_address(a).map(|a| a.script_pubkey()))
            .transpose()?;
        let mut state = self.state.lock().await;
        let start = state.chain.height();
        let blocks = state.chain.mine(n, script.as_ref(), now_secs());
        let numbered: Vec<(u32, &bitcoin::Block)> = blocks
            .iter()
            .zip(start + 1..)
            .map(|(b, h)| (h, b))
            .collect();
        self.persist(&mut state, None, &numbered).await?;
        Ok(MineResult {
            blocks: blocks.iter().map(|b| b.block_hash().to_string()).collect(),
            height: state.chain.height(),
        })
    }

    /// `fund`: the faucet pays `sats` to `address`.
    pub async fn fund(&self, address: &str, sats: u64) -> Result<Txid, ServiceError> {
        let address = parse_address(address)?;
        let mut state = self.state.lock().await;
        let txid = state.chain.fund(&address, Amount::from_sat(sats))?;
        self.persist(&mut state, None, &[]).await?;
        Ok(txid)
    }

    /// `sendrawtransaction`.
    pub async fn send(&self, hex_str: &str) -> Result<Txid, ServiceError> {
        let tx = decode_tx_hex(hex_str)?;
        let mut state = self.state.lock().await;
        let txid = state.chain.submit_transaction(tx)?;
        self.persist(&mut state, None, &[]).await?;
        Ok(txid)
    }

    /// `gettransaction`.
    pub async fn transaction(&self, txid: &str) -> Result<TxInfo, ServiceError> {
        let id = parse_txid(txid)?;
        let state = self.state.lock().await;
        let status = state
            .chain
            .transaction(&id)
            .ok_or_else(|| ServiceError::NotFound(format!("transaction {id} is not known")))?;
        Ok(TxInfo {
            txid: id.to_string(),
            hex: encode::serialize_hex(&status.tx),
            confirmations: status.confirmations,
            block_height: status.block.map(|(h, _)| h),
            block_hash: status.block.map(|(_, b)| b.to_string()),
        })
    }

    /// `getutxo`: `None` when the outpoint is not in the confirmed UTXO set.
    pub async fn utxo(&self, outpoint: &str) -> Result<Option<UtxoInfo>, ServiceError> {
        let op = parse_outpoint(outpoint)?;
        let state = self.state.lock().await;
        Ok(state.chain.utxo(&op).map(|u| UtxoInfo {
            outpoint: u.outpoint.to_string(),
            value: u.txout.value.to_sat(),
            script_pubkey: hex::encode(u.txout.script_pubkey.as_bytes()),
            address: Address::from_script(&u.txout.script_pubkey, Network::Regtest)
                .ok()
                .map(|a| a.to_string()),
            height: u.height,
            confirmations: u.confirmations,
            coinbase: u.is_coinbase,
        }))
    }

    /// `getspender`: `None` when nothing (confirmed or in the mempool) spends the outpoint.
    pub async fn spender(&self, outpoint: &str) -> Result<Option<SpendInfo>, ServiceError> {
        let op = parse_outpoint(outpoint)?;
        let state = self.state.lock().await;
        Ok(state.chain.spender(&op).map(|s| SpendInfo {
            txid: s.txid.to_string(),
            input_index: s.input_index,
            height: s.height,
        }))
    }

    /// `getblock` by height or hash.
    pub async fn block(
        &self,
        height: Option<u32>,
        hash: Option<&str>,
    ) -> Result<BlockInfo, ServiceError> {
        let state = self.state.lock().await;
        let (height, block) = match (height, hash) {
            (Some(h), None) => {
                let b = state.chain.block_at(h).ok_or_else(|| {
                    ServiceError::NotFound(format!(
                        "no block at height {h} (tip is {})",
                        state.chain.height()
                    ))
                })?;
                (h, b)
            }
            (None, Some(s)) => {
                let hash = BlockHash::from_str(s.trim()).map_err(|e| {
                    ServiceError::InvalidParams(format!("invalid block hash {s:?}: {e}"))
                })?;
                state
                    .chain
                    .block(&hash)
                    .ok_or_else(|| ServiceError::NotFound(format!("block {hash} is not known")))?
            }
            _ => {
                return Err(ServiceError::InvalidParams(
                    "give exactly one of height or hash".into(),
                ))
            }
        };
        Ok(BlockInfo {
            height,
            hash: block.block_hash().to_string(),
            prev: block.header.prev_blockhash.to_string(),
            time: block.header.time,
            txids: block
                .txdata
                .iter()
                .map(|tx| tx.compute_txid().to_string())
                .collect(),
            hex: encode::serialize_hex(block),
        })
    }

    /// `getmempool`.
    pub async fn mempool(&self) -> MempoolInfo {
        let state = self.state.lock().await;
        let txs: Vec<MempoolEntry> = state
            .chain
            .mempool()
            .iter()
            .map(|tx| MempoolEntry {
                txid: tx.compute_txid().to_string(),
                vsize: tx.vsize() as u64,
            })
            .collect();
        MempoolInfo {
            size: txs.len(),
            txs,
        }
    }

    /// `reorg`: disconnect the top `n` blocks; with `drop_mempool`, then forget every
    /// unconfirmed transaction (their own and the disconnected blocks').
    pub async fn reorg(&self, n: u32, drop_mempool: bool) -> Result<ReorgResult, ServiceError> {
        let mut state = self.state.lock().await;
        let blocks = state.chain.reorg(n)?;
        if drop_mempool {
            let dropped = state.chain.clear_mempool();
            tracing::info!(count = dropped.len(), "reorg: mempool dropped");
        }
        let height = state.chain.height();
        self.persist(&mut state, Some(height), &[]).await?;
        Ok(ReorgResult {
            disconnected: blocks.iter().map(|b| b.block_hash().to_string()).collect(),
            height,
            tip: state.chain.tip().hash.to_string(),
            mempool_size: state.chain.mempool().len(),
        })
    }

    /// `estimatefee`.
    pub async fn estimate_fee(&self) -> FeeEstimate {
        let state = self.state.lock().await;
        let rate = state.chain.fee_estimate();
        FeeEstimate {
            sat_per_vb: rate.to_sat_per_vb_ceil(),
            sat_per_kwu: rate.to_sat_per_kwu(),
        }
    }

    /// `waitforblock`: returns when the tip is above `after_height`, when the block at
    /// `after_height` is not `after_hash` any more (reorg), on timeout, or on stop.
    pub async fn wait_for_block(
        &self,
        after_height: u32,
        after_hash: Option<&str>,
        timeout: Duration,
    ) -> Result<WaitForBlockResult, ServiceError> {
        let after_hash = after_hash
            .map(|s| {
                BlockHash::from_str(s.trim()).map_err(|e| {
                    ServiceError::InvalidParams(format!("invalid after_hash {s:?}: {e}"))
                })
            })
            .transpose()?;
        let timeout = timeout.min(MAX_WAIT);
        let mut rx = self.tip.subscribe();
        let mut stop = self.stop.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let tip = *rx.borrow_and_update();
            if tip.height > after_height || self.reorged(after_height, after_hash).await {
                return Ok(WaitForBlockResult {
                    height: tip.height,
                    hash: tip.hash.to_string(),
                    timed_out: false,
                });
            }
            let stopping = stop.borrow_and_update().is_some();
            if stopping {
                return Ok(timed_out(tip));
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Ok(timed_out(self.tip()));
                    }
                }
                _ = stop.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(timed_out(self.tip())),
            }
        }
    }

    async fn reorged(&self, height: u32, hash: Option<BlockHash>) -> bool {
        let Some(hash) = hash else { return false };
        let state = self.state.lock().await;
        match state.chain.block_at(height) {
            Some(b) => b.block_hash() != hash,
            None => true,
        }
    }

    /// Closes the store (call after the server stopped).
    pub async fn close(&self) {
        let state = self.state.lock().await;
        state.store.close().await;
    }
}

fn timed_out(tip: Tip) -> WaitForBlockResult {
    WaitForBlockResult {
        height: tip.height,
        hash: tip.hash.to_string(),
        timed_out: true,
    }
}
