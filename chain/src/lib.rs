//! `fulmen-chain`: the simulated Bitcoin chain every Fulmen network runs on.
//!
//! Owns: blocks with real regtest-difficulty headers, the UTXO set, the mempool, consensus
//! checks (libbitcoinconsensus on every input plus the chain rules of DESIGN.md) and the
//! faucet. Must never do I/O: no sockets, no files, no clock, no global RNG. Time and
//! entropy come in as arguments; the node crate persists and serves it.
//!
//! Entry point: [`Chain`]. Persistence contract: store every block [`Chain::mine`] returns
//! and replay them with [`Chain::connect_block`] into a fresh [`Chain`] on restart; the tip,
//! UTXO set and spent index come out identical (the mempool is not persisted).
//!
//! ```
//! use fulmen_chain::bitcoin::{secp256k1::SecretKey, Amount};
//! use fulmen_chain::{Chain, ChainParams};
//!
//! let faucet = SecretKey::from_slice(&[0x11; 32]).unwrap();
//! let mut chain = Chain::new(ChainParams::default(), faucet);
//! chain.mine(101, None, 1_700_000_000); // block 1's coinbase matures
//! let to = chain.faucet_address();
//! let txid = chain.fund(&to, Amount::from_sat(100_000)).unwrap();
//! chain.mine(1, None, 1_700_000_200);
//! assert_eq!(chain.transaction(&txid).unwrap().confirmations, 1);
//! ```
#![warn(missing_docs)]

pub use bitcoin;

mod block;
mod chain;
mod error;
mod faucet;
mod mempool;
mod params;
mod types;
mod validate;

pub use block::{coinbase_script_sig, BLOCK_VERSION};
pub use chain::Chain;
pub use error::{BlockRejection, ChainError, FundError, TxRejection};
pub use params::{
    fee_for_vsize, subsidy, ChainParams, HALVING_INTERVAL, LOCKTIME_THRESHOLD, MAX_BLOCK_WEIGHT,
    MAX_STANDARD_TX_WEIGHT, REGTEST_BITS,
};
pub use types::{Spend, Tip, TxStatus, Utxo};
pub use validate::SCRIPT_VERIFY_FLAGS;
