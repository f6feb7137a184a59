//! The node daemon (`fulmen node run`) and its client side.
//!
//! Owns: the daemon's lifecycle ([`daemon`]), its sqlite store ([`store`]), the RPC
//! interface ([`api`], [`rpc`]), the node task ([`state`] and its `impl` blocks in
//! `commands`, `channels`, `payments`, `chainsync`), and the CLI's client commands
//! ([`cli`]). The daemon drives the sans-IO libraries (wallet, channel, htlc) from one task
//! that owns all their state, and persists every update record before the messages that
//! depend on it leave the node.
//! Must never: implement protocol rules that belong to a library crate.

pub mod api;
mod chainsync;
pub mod channels;
pub mod cli;
pub mod client;
mod commands;
pub mod daemon;
pub mod keys;
pub mod payments;
pub mod rpc;
pub mod state;
pub mod store;
