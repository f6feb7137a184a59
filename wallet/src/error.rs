//! Typed errors of `fulmen-wallet`.
//!
//! Owns: the one error enum every public wallet operation returns. Must never carry secret
//! material (mnemonic words, private keys) in a message.

use bitcoin::{Amount, BlockHash, Network};

/// Everything that can go wrong in a wallet operation.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The caller-provided seed entropy has a length BIP39 does not allow.
    #[error("invalid seed entropy: {len} bytes (BIP39 needs 16, 20, 24, 28 or 32)")]
    InvalidEntropy {
        /// Length that was given.
        len: usize,
    },
    /// The mnemonic phrase could not be parsed (bad word, checksum, word count).
    #[error("invalid mnemonic: {0}")]
    InvalidMnemonic(String),
    /// Deriving the master key or the BIP84 descriptors failed.
    #[error("key derivation failed: {0}")]
    KeyDerivation(String),
    /// Stored wallet data does not match this mnemonic / network / genesis, or is corrupt.
    #[error("stored wallet data cannot be loaded: {0}")]
    Load(String),
    /// `load` was given an empty change set (nothing was ever persisted).
    #[error("stored wallet data is empty: create or restore the wallet instead")]
    NoWalletData,
    /// Spendable coins do not cover amount + fee.
    #[error(
        "insufficient funds: need {needed} (amount + fee), {available} spendable, {missing} missing"
    )]
    InsufficientFunds {
        /// Amount the transaction needs including its fee.
        needed: Amount,
        /// Spendable amount the coin selection could use.
        available: Amount,
        /// `needed - available`.
        missing: Amount,
    },
    /// An output would be below the dust limit of its script (3 sat/vB dust relay feerate).
    #[error("output of {amount} is dust: the minimum for this script is {minimum}")]
    DustOutput {
        /// Requested output amount.
        amount: Amount,
        /// Smallest non-dust amount for the output script.
        minimum: Amount,
    },
    /// The address string is not a valid Bitcoin address.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The string given.
        address: String,
        /// Parser's explanation.
        reason: String,
    },
    /// The address is valid, but for another network than the wallet's.
    #[error("address {address} is for {found}, but this wallet is on {expected}")]
    WrongNetwork {
        /// The string given.
        address: String,
        /// The wallet's network.
        expected: Network,
        /// A network the address is valid for (best guess; `None` if unknown).
        found: String,
    },
    /// The feerate is zero or too large to represent.
    #[error("invalid feerate {sat_per_vb} sat/vB (must be at least 1)")]
    InvalidFeeRate {
        /// The value given.
        sat_per_vb: u64,
    },
    /// The amount to send is zero.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// The block does not connect to the wallet's view of the chain.
    #[error("block {hash} at height {height} does not connect to the wallet's chain (tip {tip_height} {tip_hash})")]
    BlockDoesNotConnect {
        /// Height the caller claimed for the block.
        height: u32,
        /// Hash of the block.
        hash: BlockHash,
        /// Wallet tip height.
        tip_height: u32,
        /// Wallet tip hash.
        tip_hash: BlockHash,
    },
    /// A block to disconnect is not in the wallet's chain.
    #[error("block {hash} is not in the wallet's chain, cannot disconnect it")]
    UnknownBlock {
        /// Hash of the block.
        hash: BlockHash,
    },
    /// The genesis block can never be disconnected.
    #[error("cannot disconnect the genesis block")]
    DisconnectGenesis,
    /// BDK refused to build the transaction for another reason.
    #[error("cannot build transaction: {0}")]
    Build(#[source] bdk_wallet::error::CreateTxError),
    /// Signing failed.
    #[error("cannot sign transaction: {0}")]
    Sign(#[source] bdk_wallet::signer::SignerError),
    /// Signing returned, but not every input got a final witness.
    #[error("signing did not finalize every input")]
    NotFinalized,
    /// The signed PSBT could not be turned into a transaction.
    #[error("cannot extract signed transaction: {0}")]
    Extract(String),
}
