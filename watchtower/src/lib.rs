//! `fulmen-watchtower`: lnd-style encrypted justice backups — the client half that seals a
//! justice transaction for each revoked counterparty commitment and queues it for a tower,
//! and the tower half that stores the blobs under hints and, when a revoked commitment is
//! mined, decrypts and hands out the justice transaction to broadcast.
//!
//! - [`blob`]: key, nonce and hint derivation; the blob layout; seal and open.
//! - [`client`]: [`TowerClient`], one session's send queue, and the pre-send check.
//! - [`tower`]: [`Tower`], sessions, acceptance rules, block scan, persistence records.
//! - [`wire`]: the client ↔ tower messages (custom odd types ≥ 32768) and their codec.
//!
//! A tower learns nothing about a channel before a breach: it sees 16 bytes of a txid that
//! has not been published, and a blob whose length is padded to 1 KiB steps.
//!
//! Must never do I/O: no clock, file system, sockets or global RNG (nothing here needs
//! entropy: sealing is deterministic). Blocks, messages and records come in as arguments;
//! replies, transactions to broadcast and records to persist go out as return values; the
//! node does the sending, broadcasting and writing. Never panics on bytes from a peer.
//! Works on plain `bitcoin` types and depends on no other workspace crate.
#![warn(missing_docs)]

pub mod blob;
pub mod client;
mod codec;
pub mod tower;
pub mod wire;

#[cfg(test)]
mod testutil;

pub use blob::{BlobError, Hint};
pub use client::{Backup, ClientError, TowerClient};
pub use codec::DecodeError;
pub use tower::{Broadcast, StoreAck, StoreError, Tower, TowerConfig, TowerInfo, TowerRecord};
pub use wire::TowerMessage;
