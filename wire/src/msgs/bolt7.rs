//! BOLT 7 gossip messages: `channel_announcement` (256), `node_announcement` (257),
//! `channel_update` (258), `announcement_signatures` (259) and `gossip_timestamp_filter`
//! (265).
//!
//! Owns: their layouts, and the exact byte ranges that signatures cover
//! ([`ChannelAnnouncement::signed_bytes`], [`NodeAnnouncement::signed_bytes`],
//! [`ChannelUpdate::signed_bytes`] and their `signature_hash`: the double SHA-256 that is
//! signed). Must never do I/O or panic on peer bytes; signature and chain checks belong to
//! `fulmen-routing`.

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};

use crate::codec::LenBytes;
use crate::features::Features;
use crate::msgs::bolt1::ChannelId;

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

wire_message! {
    /// `announcement_signatures` (259): one side's two signatures over the channel's
    /// `channel_announcement` hash, sent to the channel peer once the funding is deep enough.
    AnnouncementSignatures = 259 {
        /// The channel.
        channel_id: ChannelId,
        /// Short channel id (block << 40 | tx << 16 | output).
        short_channel_id: u64,
        /// Signature by the sender's node key.
        node_signature: Signature,
        /// Signature by the sender's funding (bitcoin) key.
        bitcoin_signature: Signature,
    }
    tlvs {}
}

wire_message! {
    /// `gossip_timestamp_filter` (265): the sender wants gossip whose timestamp is in
    /// `[first_timestamp, first_timestamp + timestamp_range)`.
    GossipTimestampFilter = 265 {
        /// Chain hash.
        chain_hash: [u8; 32],
        /// First timestamp wanted (unix seconds).
        first_timestamp: u32,
        /// Width of the window, seconds.
        timestamp_range: u32,
    }
    tlvs {}
}

/// Double SHA-256 of `bytes`: what BOLT 7 gossip signatures sign.
pub fn gossip_hash(bytes: &[u8]) -> [u8; 32] {
    sha256d::Hash::hash(bytes).to_byte_array()
}

impl ChannelAnnouncement {
    /// The bytes the four signatures cover: the encoding after the type and the four
    /// signatures (features through `bitcoin_key_2`, then the excess bytes).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(256);
        self.encode_payload(&mut w);
        w.split_off((CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET - 2).min(w.len()))
    }

    /// The double SHA-256 of [`Self::signed_bytes`], which all four signatures sign.
    pub fn signature_hash(&self) -> [u8; 32] {
        gossip_hash(&self.signed_bytes())
    }
}

impl NodeAnnouncement {
    /// The bytes the signature covers: the encoding after the type and the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(160);
        self.encode_payload(&mut w);
        w.split_off((SINGLE_SIG_SIGNED_OFFSET - 2).min(w.len()))
    }

    /// The double SHA-256 of [`Self::signed_bytes`], which `signature` signs.
    pub fn signature_hash(&self) -> [u8; 32] {
        gossip_hash(&self.signed_bytes())
    }
}

impl ChannelUpdate {
    /// The bytes the signature covers: the encoding after the type and the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(136);
        self.encode_payload(&mut w);
        w.split_off((SINGLE_SIG_SIGNED_OFFSET - 2).min(w.len()))
    }

    /// The double SHA-256 of [`Self::signed_bytes`], which `signature` signs.
    pub fn signature_hash(&self) -> [u8; 32] {
        gossip_hash(&self.signed_bytes())
    }
}

/// Offset in an encoded message (including its 2-byte type) where the data signed by a
/// `channel_announcement` starts: after the type and the four signatures.
pub const CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET: usize = 2 + 4 * 64;
/// Signed-data offset for `node_announcement` and `channel_update`: after type + signature.
pub const SINGLE_SIG_SIGNED_OFFSET: usize = 2 + 64;
