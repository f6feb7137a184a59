//! BOLT 7 gossip messages: `channel_announcement`, `node_announcement`, `channel_update`.
//!
//! Owns: their layouts, and the exact byte ranges that signatures cover. Must never do
//! I/O or panic on peer bytes; signature and chain checks belong to `fulmen-routing`.

use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};

use crate::codec::LenBytes;
use crate::features::Features;

wire_message! {
    /// `channel_announcement` (256).
    ChannelAnnouncement = 256 {
        /// Signature by `node_id_1`.
        node_signature_1: Signature,
        /// Signature by `node_id_2`.
        node_signature_2: Signature,
        /// Signature by `bitcoin_key_1`.
        bitcoin_signature_1: Signature,
        /// Signature by `bitcoin_key_2`.
        bitcoin_signature_2: Signature,
        /// Channel features.
        features: Features,
        /// Chain hash.
        chain_hash: [u8; 32],
        /// Short channel id (block << 40 | tx << 16 | output).
        short_channel_id: u64,
        /// Lexicographically lesser node id.
        node_id_1: PublicKey,
        /// Greater node id.
        node_id_2: PublicKey,
        /// Funding key of node 1.
        bitcoin_key_1: PublicKey,
        /// Funding key of node 2.
        bitcoin_key_2: PublicKey,
    }
    excess
}

wire_message! {
    /// `node_announcement` (257).
    NodeAnnouncement = 257 {
        /// Signature by `node_id`.
        signature: Signature,
        /// Node features.
        features: Features,
        /// Unix time (monotonic per node).
        timestamp: u32,
        /// Node id.
        node_id: PublicKey,
        /// Colour.
        rgb_color: [u8; 3],
        /// Alias (UTF-8, zero padded).
        alias: [u8; 32],
        /// Address descriptors (raw).
        addresses: LenBytes,
    }
    excess
}

wire_message! {
    /// `channel_update` (258).
    ChannelUpdate = 258 {
        /// Signature by the originating node.
        signature: Signature,
        /// Chain hash.
        chain_hash: [u8; 32],
        /// Short channel id.
        short_channel_id: u64,
        /// Unix time.
        timestamp: u32,
        /// Bit 0: `htlc_maximum_msat` present (must be set).
        message_flags: u8,
        /// Bit 0: direction, bit 1: disabled.
        channel_flags: u8,
        /// CLTV delta.
        cltv_expiry_delta: u16,
        /// Minimum HTLC.
        htlc_minimum_msat: u64,
        /// Base fee.
        fee_base_msat: u32,
        /// Proportional fee.
        fee_proportional_millionths: u32,
        /// Maximum HTLC.
        htlc_maximum_msat: u64,
    }
    excess
}

/// Offset in an encoded message (including its 2-byte type) where the data signed by a
/// `channel_announcement` starts: after the type and the four signatures.
pub const CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET: usize = 2 + 4 * 64;
/// Signed-data offset for `node_announcement` and `channel_update`: after type + signature.
pub const SINGLE_SIG_SIGNED_OFFSET: usize = 2 + 64;
