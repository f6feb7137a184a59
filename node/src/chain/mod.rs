//! The chain daemon (`fulmen chain run`) and its client commands.
//!
//! Owns: serving a [`fulmen_chain::Chain`] over authenticated JSON-RPC, persisting it in
//! sqlite as increments, replaying it at startup, and the `fulmen chain …` client.
//! Must never: validate transactions or blocks itself (the chain crate does), or hold the
//! chain lock across anything but chain calls and the store write that follows them.

pub mod api;
pub mod cli;
pub mod daemon;
pub mod rpc;
pub mod service;
pub mod store;
