//! Plain data returned by the chain's queries.
//!
//! Owns: [`Tip`], [`TxStatus`], [`Utxo`], [`Spend`] and the crate-internal [`Coin`] stored in
//! the UTXO set. Must never hold references into the chain or do I/O.

use bitcoin::{BlockHash, OutPoint, Transaction, TxOut, Txid};
use serde::{Deserialize, Serialize};

/// The chain tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tip {
    /// Height of the tip (genesis is 0).
    pub height: u32,
    /// Hash of the tip block.
    pub hash: BlockHash,
    /// Header time of the tip block.
    pub time: u32,
}

/// A transaction known to the chain, in the mempool or confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatus {
    /// The transaction.
    pub tx: Transaction,
    /// Height and hash of the block holding it; `None` while in the mempool.
    pub block: Option<(u32, BlockHash)>,
    /// Confirmations (1 when in the tip block); 0 in the mempool.
    pub confirmations: u32,
}

/// An unspent confirmed output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Value and script.
    pub txout: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it is a coinbase output (subject to maturity).
    pub is_coinbase: bool,
    /// Confirmations (1 when created in the tip block).
    pub confirmations: u32,
}

/// Which transaction spent an outpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spend {
    /// The spending transaction.
    pub txid: Txid,
    /// Index of the spending input.
    pub input_index: u32,
    /// Height of the block holding the spend; `None` = in the mempool.
    pub height: Option<u32>,
}

/// An entry of the UTXO set (crate-internal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coin {
    pub(crate) txout: TxOut,
    pub(crate) height: u32,
    pub(crate) is_coinbase: bool,
}
