//! `fulmen-channel`: the BOLT 2/3 channel state machine — keys, shachain, commitments,
//! revocation, closing and the on-chain monitor.
//!
//! A sans-IO library other applications embed: no tokio, no database, no sockets, no clock,
//! no global RNG. State changes leave as update records the caller persists before it
//! releases the messages that depend on them. (Not built yet: see the tx and channel issues.)
