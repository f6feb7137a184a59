//! `fulmen-wallet`: the on-chain wallet of a Fulmen node, built on BDK (`bdk_wallet`).
//!
//! Owns: the BIP39 seed (from caller entropy), BIP84 P2WPKH keys on regtest (`bcrt1q…`), the
//! wallet's view of the chain and its UTXOs, coin selection, and signing of on-chain
//! transactions (payments, channel funding), plus fresh scripts for sweeping channel outputs
//! back into the wallet.
//!
//! Must never do I/O: no files, sockets, clock or global RNG. The caller feeds it connected
//! blocks ([`Wallet::apply_block`]), disconnected blocks ([`Wallet::disconnect_block`]) and
//! mempool transactions ([`Wallet::apply_mempool_txs`], [`Wallet::sync_mempool`]); the wallet
//! hands back serde change sets ([`Wallet::take_staged`]) for the caller to persist, and signed
//! transactions ([`BuiltTx`]) for the caller to broadcast.
//!
//! ```
//! use fulmen_wallet::{mnemonic_from_entropy, Wallet, WalletParams};
//! let seed = mnemonic_from_entropy(&[42u8; 32]).unwrap(); // the node passes OS randomness
//! let mut wallet = Wallet::create(&seed, WalletParams::regtest()).unwrap();
//! let address = wallet.new_address();
//! assert!(address.to_string().starts_with("bcrt1q"));
//! let to_persist = wallet.take_staged().unwrap();
//! let reloaded = Wallet::load(&seed, WalletParams::regtest(), to_persist).unwrap();
//! assert_eq!(reloaded.next_address_indices(), wallet.next_address_indices());
//! ```
#![warn(missing_docs)]

pub mod error;
pub mod keys;
pub mod spend;
pub mod sync;
pub mod types;
pub mod wallet;

pub use error::WalletError;
pub use keys::{mnemonic_from_entropy, Seed};
pub use spend::{feerate_from_sat_per_vb, parse_address};
pub use sync::{ChainSource, SyncSummary};
pub use types::{
    BuiltTx, Confirmation, Keychain, WalletBalance, WalletParams, WalletTransaction, WalletUtxo,
};
pub use wallet::{merge_changesets, AddressIndices, Wallet, COINBASE_MATURITY};

/// A block reference (height + hash).
pub use bdk_wallet::chain::BlockId;
/// Trait to merge change sets (`a.merge(b)`), re-exported from BDK.
pub use bdk_wallet::chain::Merge;
/// The serde change set the wallet stages and the node persists (BDK's wallet change set).
pub use bdk_wallet::ChangeSet;
