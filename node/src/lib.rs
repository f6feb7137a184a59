//! `fulmen-node`: everything of the `fulmen` binary that does I/O.
//!
//! Owns: the chain daemon (`fulmen chain run`) and its JSON-RPC server, the sqlite stores,
//! the RPC client used by the CLI and by daemons following each other, logging setup and
//! the command line. Must never: put protocol or consensus logic here that belongs in a
//! sans-IO library crate (chain, wallet, wire, htlc, channel, routing); it only drives them,
//! persists their update records and talks to the outside world.
#![warn(missing_docs)]

pub mod chain;
pub mod cli;
pub mod logging;
pub mod net;
pub mod node;
pub mod peer;
pub mod rpc_auth;
pub mod rpc_client;
pub mod rpc_server;
pub mod signals;
pub mod sqlite;
pub mod web;
