//! `fulmen-channel`: the BOLT 2/3 channel state machine — keys, shachain, commitments,
//! revocation, closing and the on-chain monitor.
//!
//! A sans-IO library other applications embed: no tokio, no database, no sockets, no clock,
//! no global RNG. State changes leave as update records the caller persists before it
//! releases the messages that depend on them.
//!
//! The BOLT 3 transaction layer (byte-exact with the spec's test vectors) lives in
//! [`keys`], [`shachain`], [`funding`], [`commitment`], [`closing`], [`sweep`] and
//! [`justice`]; the HTLC scripts and second-stage transactions are in `fulmen_htlc`.
#![warn(missing_docs)]

pub mod closing;
pub mod commitment;
mod envelope;
pub mod funding;
pub mod justice;
pub mod keys;
pub mod machine;
pub mod monitor;
pub mod parallel;
pub mod shachain;
pub mod sweep;
