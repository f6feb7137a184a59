//! `fulmen-wire`: BOLT 1/2/7 message types, their codec (BigSize, TLV) and the Noise
//! transport state machine.
//!
//! Owns: bytes in, typed messages out, and back. Must never do I/O and never panic or
//! allocate without bound on bytes from a peer. Depends on no other workspace crate.
//! Entropy (Noise ephemeral keys) is supplied by the caller.
#![warn(missing_docs)]

pub mod codec;
pub mod features;
pub mod key_cache;
pub mod msgs;
pub mod scid;
pub mod tlv;
pub mod transport;

pub use codec::DecodeError;
pub use features::Features;
pub use msgs::Message;
pub use scid::ShortChannelId;
