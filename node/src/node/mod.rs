//! The node daemon (`fulmen node run`) and its client side.
//!
//! Owns: the daemon's lifecycle ([`daemon`]), its sqlite store ([`store`]), the RPC
//! interface ([`api`], [`rpc`]), the node task ([`shell`]: the I/O shell around
//! `fulmen_manager::Manager`, which makes every decision), the chain follower ([`follow`]),
//! the UTXO lookups of gossip ([`utxo`]) and the CLI's client commands ([`cli`],
//! [`client`]). The shell persists every batch of the manager's writes before it acts on the
//! outputs that depend on them.
//! Must never: implement protocol rules or node decisions (they belong to `fulmen-manager`
//! and the library crates below it).

pub mod api;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod follow;
pub mod keys;
pub mod rpc;
pub mod shell;
pub mod store;
pub mod utxo;
