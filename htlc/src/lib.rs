//! `fulmen-htlc`: payment hashes, preimages and secrets; HTLC scripts and second-stage
//! transactions; the BOLT 4 Sphinx onion; BOLT 11 invoices; forwarding rules.
//!
//! Must never do I/O; entropy and time come in as arguments. Depends only on `fulmen-wire`.
#![warn(missing_docs)]

pub mod failure;
pub mod forward;
pub mod invoice;
pub mod mpp;
pub mod onion;
pub mod payment;
pub mod route;
pub mod scripts;
pub mod second_stage;

pub use failure::FailureMessage;
pub use payment::{PaymentHash, PaymentPreimage, PaymentSecret};
