//! Building and signing our own gossip: the `channel_announcement` of a channel of ours
//! (from our half and the peer's `announcement_signatures`), our `channel_update`s and our
//! `node_announcement`.
//!
//! Owns: field order and flags of what we sign. Must never decide *when* to announce (the
//! manager does: after the announcement depth, 6 blocks by default, 1 in test networks),
//! never hold secrets beyond a call, and never use randomness (RFC 6979 signatures are
//! deterministic).

use bitcoin::secp256k1::{
    ecdsa::Signature, Message, PublicKey, Secp256k1, SecretKey, Signing, Verification,
};
use fulmen_wire::codec::{Field, LenBytes};
use fulmen_wire::msgs::{
    gossip_hash, AnnouncementSignatures, ChannelAnnouncement, ChannelId, ChannelUpdate,
    NodeAnnouncement,
};
use fulmen_wire::scid::ShortChannelId;
use fulmen_wire::Features;

use super::checks::{verify, GossipError, SignatureRole};
use crate::change::{ChannelDirection, DirectedPolicy};

/// The signed part of a `channel_announcement`, ends already ordered (node 1 is the lesser
/// node id; bitcoin key 1 belongs to node 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedChannelAnnouncement {
    /// Channel features.
    pub features: Features,
    /// Chain hash.
    pub chain_hash: [u8; 32],
    /// The channel.
    pub short_channel_id: ShortChannelId,
    /// The lesser node id.
    pub node_id_1: PublicKey,
    /// The greater node id.
    pub node_id_2: PublicKey,
    /// Node 1's funding key.
    pub bitcoin_key_1: PublicKey,
    /// Node 2's funding key.
    pub bitcoin_key_2: PublicKey,
}

/// Orders our and the peer's keys into the announcement both sides sign.
pub fn announcement_unsigned(
    chain_hash: [u8; 32],
    short_channel_id: ShortChannelId,
    features: Features,
    our_node_id: PublicKey,
    their_node_id: PublicKey,
    our_bitcoin_key: PublicKey,
    their_bitcoin_key: PublicKey,
) -> UnsignedChannelAnnouncement {
    let we_are_1 = our_node_id.serialize() < their_node_id.serialize();
    let (node_id_1, node_id_2, bitcoin_key_1, bitcoin_key_2) = if we_are_1 {
        (
            our_node_id,
            their_node_id,
            our_bitcoin_key,
            their_bitcoin_key,
        )
    } else {
        (
            their_node_id,
            our_node_id,
            their_bitcoin_key,
            our_bitcoin_key,
        )
    };
    UnsignedChannelAnnouncement {
        features,
        chain_hash,
        short_channel_id,
        node_id_1,
        node_id_2,
        bitcoin_key_1,
        bitcoin_key_2,
    }
}

impl UnsignedChannelAnnouncement {
    /// The bytes the four signatures cover (as [`ChannelAnnouncement::signed_bytes`]).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(200);
        self.features.write(&mut w);
        self.chain_hash.write(&mut w);
        self.short_channel_id.to_u64().write(&mut w);
        for k in [
            &self.node_id_1,
            &self.node_id_2,
            &self.bitcoin_key_1,
            &self.bitcoin_key_2,
        ] {
            k.write(&mut w);
        }
        w
    }

    /// The double SHA-256 every signature of the announcement signs.
    pub fn signature_hash(&self) -> [u8; 32] {
        gossip_hash(&self.signed_bytes())
    }

    /// The full announcement with its four signatures (node 1, node 2, bitcoin 1,
    /// bitcoin 2).
    pub fn with_signatures(&self, sigs: [Signature; 4]) -> ChannelAnnouncement {
        let [node_signature_1, node_signature_2, bitcoin_signature_1, bitcoin_signature_2] = sigs;
        ChannelAnnouncement {
            node_signature_1,
            node_signature_2,
            bitcoin_signature_1,
            bitcoin_signature_2,
            features: self.features.clone(),
            chain_hash: self.chain_hash,
            short_channel_id: self.short_channel_id.to_u64(),
            node_id_1: self.node_id_1,
            node_id_2: self.node_id_2,
            bitcoin_key_1: self.bitcoin_key_1,
            bitcoin_key_2: self.bitcoin_key_2,
            excess: Vec::new(),
        }
    }
}

fn sign<C: Signing>(secp: &Secp256k1<C>, hash: [u8; 32], key: &SecretKey) -> Signature {
    secp.sign_ecdsa(&Message::from_digest(hash), key)
}

/// Our `announcement_signatures` for `unsigned`: node key and funding key signatures.
pub fn announcement_signatures<C: Signing>(
    secp: &Secp256k1<C>,
    unsigned: &UnsignedChannelAnnouncement,
    channel_id: ChannelId,
    node_secret: &SecretKey,
    funding_secret: &SecretKey,
) -> AnnouncementSignatures {
    let hash = unsigned.signature_hash();
    AnnouncementSignatures {
        channel_id,
        short_channel_id: unsigned.short_channel_id.to_u64(),
        node_signature: sign(secp, hash, node_secret),
        bitcoin_signature: sign(secp, hash, funding_secret),
        extra_tlvs: Default::default(),
    }
}

/// The complete `channel_announcement` from our signatures and the peer's. The peer's pair
/// is verified against its keys (a wrong peer signature is the peer's fault:
/// [`GossipError::warn_peer`]); ours, just made by [`announcement_signatures`], is not;
/// `our_node_id` says which end we are.
pub fn combine<C: Verification>(
    secp: &Secp256k1<C>,
    unsigned: &UnsignedChannelAnnouncement,
    our_node_id: &PublicKey,
    ours: &AnnouncementSignatures,
    theirs: &AnnouncementSignatures,
) -> Result<ChannelAnnouncement, GossipError> {
    let scid = unsigned.short_channel_id.to_u64();
    if ours.short_channel_id != scid || theirs.short_channel_id != scid {
        return Err(GossipError::ShortChannelIdMismatch);
    }
    // Which pair is the peer's, and the keys and roles it must match.
    let (one, two, their_keys) = if *our_node_id == unsigned.node_id_1 {
        let keys = [
            (&unsigned.node_id_2, SignatureRole::Node2),
            (&unsigned.bitcoin_key_2, SignatureRole::Bitcoin2),
        ];
        (ours, theirs, keys)
    } else if *our_node_id == unsigned.node_id_2 {
        let keys = [
            (&unsigned.node_id_1, SignatureRole::Node1),
            (&unsigned.bitcoin_key_1, SignatureRole::Bitcoin1),
        ];
        (theirs, ours, keys)
    } else {
        return Err(GossipError::NotOurChannel);
    };
    // Only the peer's signatures: ours were made by us just now, and the store takes the
    // combined announcement without checking them again (`GossipStore::handle_own_message`).
    let hash = unsigned.signature_hash();
    let their_sigs = [&theirs.node_signature, &theirs.bitcoin_signature];
    for (sig, (key, role)) in their_sigs.into_iter().zip(their_keys) {
        if !verify(secp, hash, sig, key) {
            return Err(GossipError::InvalidSignature(role));
        }
    }
    Ok(unsigned.with_signatures([
        one.node_signature,
        two.node_signature,
        one.bitcoin_signature,
        two.bitcoin_signature,
    ]))
}

/// Our signed `channel_update` for `direction` of a channel (the direction whose source
/// we are: `FromNode1` when our node id is the lesser). `policy.timestamp` is the update's
/// timestamp (it must grow with every update we send); `policy.enabled == false` sets the
/// disable bit. `message_flags` is 1 (`htlc_maximum_msat` present).
pub fn sign_channel_update<C: Signing>(
    secp: &Secp256k1<C>,
    chain_hash: [u8; 32],
    short_channel_id: ShortChannelId,
    direction: ChannelDirection,
    policy: &DirectedPolicy,
    node_secret: &SecretKey,
) -> ChannelUpdate {
    let dir_bit = match direction {
        ChannelDirection::FromNode1 => 0,
        ChannelDirection::FromNode2 => 1,
    };
    let disable_bit = if policy.enabled { 0 } else { 2 };
    let mut u = ChannelUpdate {
        // Not covered by the signed bytes; replaced below.
        signature: sign(secp, [0; 32], node_secret),
        chain_hash,
        short_channel_id: short_channel_id.to_u64(),
        timestamp: policy.timestamp,
        message_flags: 1,
        channel_flags: dir_bit | disable_bit,
        cltv_expiry_delta: policy.cltv_expiry_delta,
        htlc_minimum_msat: policy.htlc_minimum_msat,
        fee_base_msat: policy.fee_base_msat,
        fee_proportional_millionths: policy.fee_proportional_millionths,
        htlc_maximum_msat: policy.htlc_maximum_msat,
        excess: Vec::new(),
    };
    u.signature = sign(secp, u.signature_hash(), node_secret);
    u
}

/// Our signed `node_announcement`. `addresses` are BOLT 7 address descriptors (at most
/// [`super::MAX_ADDRESSES_LEN`] bytes for other nodes to accept it); `timestamp` must grow
/// with every announcement we send.
#[allow(clippy::too_many_arguments)]
pub fn sign_node_announcement<C: Signing>(
    secp: &Secp256k1<C>,
    node_secret: &SecretKey,
    features: Features,
    timestamp: u32,
    rgb_color: [u8; 3],
    alias: [u8; 32],
    addresses: Vec<u8>,
) -> NodeAnnouncement {
    let mut a = NodeAnnouncement {
        // Not covered by the signed bytes; replaced below.
        signature: sign(secp, [0; 32], node_secret),
        features,
        timestamp,
        node_id: PublicKey::from_secret_key(secp, node_secret),
        rgb_color,
        alias,
        addresses: LenBytes(addresses),
        excess: Vec::new(),
    };
    a.signature = sign(secp, a.signature_hash(), node_secret);
    a
}
