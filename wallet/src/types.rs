//! Plain data types the wallet API returns (all serde, for the node's JSON-RPC output).
//!
//! Owns: parameters, balances, UTXO / transaction listings and built transactions.
//! Must never hold secret material.

use bitcoin::{Amount, BlockHash, Network, OutPoint, ScriptBuf, SignedAmount, Transaction, Txid};
use serde::{Deserialize, Serialize};

/// Network parameters the wallet is bound to (checked again on every load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletParams {
    /// Network of addresses and keys (Fulmen: regtest).
    pub network: Network,
    /// Hash of block 0 of the chain the wallet follows.
    pub genesis_hash: BlockHash,
    /// How many unrevealed scripts past the last revealed one are watched (BIP44 gap).
    pub lookahead: u32,
}

impl WalletParams {
    /// Regtest with the standard regtest genesis block (the one `fulmen-chain` uses) and a
    /// lookahead of 25 scripts per keychain.
    pub fn regtest() -> WalletParams {
        WalletParams {
            network: Network::Regtest,
            genesis_hash: bitcoin::constants::genesis_block(Network::Regtest).block_hash(),
            lookahead: 25,
        }
    }
}

/// Which BIP84 keychain a script belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keychain {
    /// `m/84'/1'/0'/0/*`: addresses handed out (receive, sweeps).
    Receive,
    /// `m/84'/1'/0'/1/*`: change outputs of the wallet's own transactions.
    Change,
}

impl From<bdk_wallet::KeychainKind> for Keychain {
    fn from(k: bdk_wallet::KeychainKind) -> Keychain {
        match k {
            bdk_wallet::KeychainKind::External => Keychain::Receive,
            bdk_wallet::KeychainKind::Internal => Keychain::Change,
        }
    }
}

/// Wallet balance split by spendability. All four parts are disjoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WalletBalance {
    /// Confirmed and spendable now (mature).
    pub confirmed: Amount,
    /// Unconfirmed outputs of transactions the wallet itself funded (its change).
    pub trusted_pending: Amount,
    /// Unconfirmed outputs received from others.
    pub untrusted_pending: Amount,
    /// Coinbase outputs with fewer than 100 confirmations.
    pub immature: Amount,
}

impl WalletBalance {
    /// `trusted_pending + untrusted_pending`.
    pub fn unconfirmed(&self) -> Amount {
        self.trusted_pending + self.untrusted_pending
    }

    /// What coin selection may spend: `confirmed + trusted_pending`.
    pub fn spendable(&self) -> Amount {
        self.confirmed + self.trusted_pending
    }

    /// Everything, including immature and untrusted coins.
    pub fn total(&self) -> Amount {
        self.confirmed + self.trusted_pending + self.untrusted_pending + self.immature
    }
}

impl From<bdk_wallet::Balance> for WalletBalance {
    fn from(b: bdk_wallet::Balance) -> WalletBalance {
        WalletBalance {
            confirmed: b.confirmed,
            trusted_pending: b.trusted_pending,
            untrusted_pending: b.untrusted_pending,
            immature: b.immature,
        }
    }
}

/// Where a transaction (or an output) stands in the wallet's view of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Confirmation {
    /// In the best chain.
    Confirmed {
        /// Height of the block holding the transaction (or its confirmed descendant).
        height: u32,
        /// Hash of that block.
        block_hash: BlockHash,
        /// That block's header time.
        time: u64,
    },
    /// Only seen in the mempool.
    Unconfirmed {
        /// Last time (caller's clock) the caller reported it in the mempool.
        last_seen: Option<u64>,
    },
}

impl Confirmation {
    /// Confirmation height, if confirmed.
    pub fn height(&self) -> Option<u32> {
        match self {
            Confirmation::Confirmed { height, .. } => Some(*height),
            Confirmation::Unconfirmed { .. } => None,
        }
    }

    pub(crate) fn from_position(
        pos: &bdk_wallet::chain::ChainPosition<bdk_wallet::chain::ConfirmationBlockTime>,
    ) -> Confirmation {
        match pos {
            bdk_wallet::chain::ChainPosition::Confirmed { anchor, .. } => Confirmation::Confirmed {
                height: anchor.block_id.height,
                block_hash: anchor.block_id.hash,
                time: anchor.confirmation_time,
            },
            bdk_wallet::chain::ChainPosition::Unconfirmed { last_seen, .. } => {
                Confirmation::Unconfirmed {
                    last_seen: *last_seen,
                }
            }
        }
    }
}

/// An unspent output the wallet owns (in the best chain or the mempool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletUtxo {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount: Amount,
    /// Its script (P2WPKH of a wallet key).
    pub script_pubkey: ScriptBuf,
    /// Keychain of the key.
    pub keychain: Keychain,
    /// BIP32 child index of the key in that keychain.
    pub derivation_index: u32,
    /// Confirmation status.
    pub confirmation: Confirmation,
    /// Whether it is a coinbase output.
    pub is_coinbase: bool,
    /// False only for coinbase outputs with fewer than 100 confirmations.
    pub mature: bool,
}

/// A transaction that touches the wallet (in the best chain or the mempool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletTransaction {
    /// Its id.
    pub txid: Txid,
    /// Sum of the wallet's outputs in it.
    pub received: Amount,
    /// Sum of the wallet's coins it spends.
    pub sent: Amount,
    /// `received - sent` (negative for payments out), in sat.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub net: SignedAmount,
    /// Its fee, when every input's value is known to the wallet (always for its own txs).
    pub fee: Option<Amount>,
    /// Confirmation status.
    pub confirmation: Confirmation,
    /// Whether it is a coinbase transaction.
    pub is_coinbase: bool,
}

/// A signed transaction built by the wallet, ready to broadcast.
///
/// The wallet does not yet consider its inputs spent: after the chain accepted it, feed it back
/// with [`crate::Wallet::apply_mempool_txs`] (or wait for the block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltTx {
    /// The fully signed transaction.
    pub tx: Transaction,
    /// Its id.
    pub txid: Txid,
    /// Fee paid (inputs − outputs).
    pub fee: Amount,
    /// Virtual size in vbytes.
    pub vsize: u64,
    /// Index of the requested output (payment or funding output).
    pub output_index: u32,
    /// Index and value of the change output, if one was added.
    pub change: Option<(u32, Amount)>,
}
