//! BOLT 2 channel establishment, normal operation, closing and reestablish messages.
//!
//! Owns: their layouts (v1 channel establishment). Must never do I/O or panic on peer
//! bytes. Semantic checks (reserve vs. funding, limits) belong to `fulmen-channel`.

use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};

use crate::codec::{DecodeError, Field, LenBytes, Reader};
use crate::features::Features;
use crate::msgs::bolt1::ChannelId;
use crate::tlv::TlvValue;

/// Size of a BOLT 4 onion routing packet.
pub const ONION_PACKET_LEN: usize = 1366;

/// The fixed 1366-byte onion packet carried by `update_add_htlc`.
#[derive(Clone, PartialEq, Eq)]
pub struct OnionPacket(pub Box<[u8; ONION_PACKET_LEN]>);

impl std::fmt::Debug for OnionPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OnionPacket(version={}, ..)", self.0[0])
    }
}

impl Field for OnionPacket {
    fn write(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.0[..]);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut b = Box::new([0u8; ONION_PACKET_LEN]);
        b.copy_from_slice(r.take(ONION_PACKET_LEN)?);
        Ok(OnionPacket(b))
    }
}

/// `closing_signed`'s `fee_range` TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRange {
    /// Minimum acceptable fee.
    pub min_fee_satoshis: u64,
    /// Maximum acceptable fee.
    pub max_fee_satoshis: u64,
}

impl TlvValue for FeeRange {
    fn to_value(&self) -> Vec<u8> {
        let mut v = self.min_fee_satoshis.to_be_bytes().to_vec();
        v.extend_from_slice(&self.max_fee_satoshis.to_be_bytes());
        v
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let out = FeeRange {
            min_fee_satoshis: r.u64()?,
            max_fee_satoshis: r.u64()?,
        };
        r.finish()?;
        Ok(out)
    }
}

wire_message! {
    /// `open_channel` (32).
    OpenChannel = 32 {
        /// Chain the channel is on.
        chain_hash: [u8; 32],
        /// Temporary id until the funding outpoint is known.
        temporary_channel_id: ChannelId,
        /// Channel capacity.
        funding_satoshis: u64,
        /// Amount pushed to the acceptor.
        push_msat: u64,
        /// Dust limit for the opener's commitment.
        dust_limit_satoshis: u64,
        /// Cap on HTLC value in flight towards the opener.
        max_htlc_value_in_flight_msat: u64,
        /// Reserve the acceptor must keep.
        channel_reserve_satoshis: u64,
        /// Smallest HTLC the opener accepts.
        htlc_minimum_msat: u64,
        /// Initial commitment feerate.
        feerate_per_kw: u32,
        /// CSV delay the acceptor's to_self outputs get.
        to_self_delay: u16,
        /// Maximum HTLCs the opener accepts.
        max_accepted_htlcs: u16,
        /// 2-of-2 funding key.
        funding_pubkey: PublicKey,
        /// Revocation basepoint.
        revocation_basepoint: PublicKey,
        /// Payment basepoint.
        payment_basepoint: PublicKey,
        /// Delayed payment basepoint.
        delayed_payment_basepoint: PublicKey,
        /// HTLC basepoint.
        htlc_basepoint: PublicKey,
        /// First per-commitment point.
        first_per_commitment_point: PublicKey,
        /// Bit 0: announce the channel.
        channel_flags: u8,
    }
    tlvs {
        /// `upfront_shutdown_script`.
        0 => upfront_shutdown_script: Vec<u8>,
        /// `channel_type`.
        1 => channel_type: Features,
    }
}

wire_message! {
    /// `accept_channel` (33).
    AcceptChannel = 33 {
        /// Echo of the opener's temporary id.
        temporary_channel_id: ChannelId,
        /// Dust limit for the acceptor's commitment.
        dust_limit_satoshis: u64,
        /// Cap on HTLC value in flight towards the acceptor.
        max_htlc_value_in_flight_msat: u64,
        /// Reserve the opener must keep.
        channel_reserve_satoshis: u64,
        /// Smallest HTLC the acceptor accepts.
        htlc_minimum_msat: u64,
        /// Confirmations required before `channel_ready`.
        minimum_depth: u32,
        /// CSV delay the opener's to_self outputs get.
        to_self_delay: u16,
        /// Maximum HTLCs the acceptor accepts.
        max_accepted_htlcs: u16,
        /// 2-of-2 funding key.
        funding_pubkey: PublicKey,
        /// Revocation basepoint.
        revocation_basepoint: PublicKey,
        /// Payment basepoint.
        payment_basepoint: PublicKey,
        /// Delayed payment basepoint.
        delayed_payment_basepoint: PublicKey,
        /// HTLC basepoint.
        htlc_basepoint: PublicKey,
        /// First per-commitment point.
        first_per_commitment_point: PublicKey,
    }
    tlvs {
        /// `upfront_shutdown_script`.
        0 => upfront_shutdown_script: Vec<u8>,
        /// `channel_type`.
        1 => channel_type: Features,
    }
}

wire_message! {
    /// `funding_created` (34).
    FundingCreated = 34 {
        /// Temporary id.
        temporary_channel_id: ChannelId,
        /// Funding transaction id (internal byte order).
        funding_txid: [u8; 32],
        /// Funding output index.
        funding_output_index: u16,
        /// Signature for the acceptor's first commitment.
        signature: Signature,
    }
    tlvs {}
}

wire_message! {
    /// `funding_signed` (35).
    FundingSigned = 35 {
        /// The real channel id.
        channel_id: ChannelId,
        /// Signature for the opener's first commitment.
        signature: Signature,
    }
    tlvs {}
}

wire_message! {
    /// `channel_ready` (36).
    ChannelReady = 36 {
        /// Channel id.
        channel_id: ChannelId,
        /// Second per-commitment point.
        second_per_commitment_point: PublicKey,
    }
    tlvs {
        /// `short_channel_id` (BOLT 2 names it an alias; Fulmen sends the real one, derived
        /// from the verified funding output, once the funding confirmed).
        1 => short_channel_id: crate::scid::ShortChannelId,
    }
}

wire_message! {
    /// `shutdown` (38).
    Shutdown = 38 {
        /// Channel id.
        channel_id: ChannelId,
        /// Where the sender wants its funds paid.
        scriptpubkey: LenBytes,
    }
    tlvs {}
}

wire_message! {
    /// `closing_signed` (39).
    ClosingSigned = 39 {
        /// Channel id.
        channel_id: ChannelId,
        /// Proposed closing fee.
        fee_satoshis: u64,
        /// Signature for the closing transaction.
        signature: Signature,
    }
    tlvs {
        /// `fee_range`.
        1 => fee_range: FeeRange,
    }
}

wire_message! {
    /// `update_add_htlc` (128).
    UpdateAddHtlc = 128 {
        /// Channel id.
        channel_id: ChannelId,
        /// HTLC id (incrementing per direction).
        id: u64,
        /// Amount.
        amount_msat: u64,
        /// Payment hash.
        payment_hash: [u8; 32],
        /// Absolute expiry height.
        cltv_expiry: u32,
        /// Onion packet.
        onion_routing_packet: OnionPacket,
    }
    tlvs {
        /// `blinded_path` / `path_key` point for route blinding.
        0 => path_key: PublicKey,
    }
}

wire_message! {
    /// `update_fulfill_htlc` (130).
    UpdateFulfillHtlc = 130 {
        /// Channel id.
        channel_id: ChannelId,
        /// HTLC id.
        id: u64,
        /// Preimage of the payment hash.
        payment_preimage: [u8; 32],
    }
    tlvs {}
}

wire_message! {
    /// `update_fail_htlc` (131).
    UpdateFailHtlc = 131 {
        /// Channel id.
        channel_id: ChannelId,
        /// HTLC id.
        id: u64,
        /// Encrypted error onion.
        reason: LenBytes,
    }
    tlvs {}
}

wire_message! {
    /// `update_fail_malformed_htlc` (135).
    UpdateFailMalformedHtlc = 135 {
        /// Channel id.
        channel_id: ChannelId,
        /// HTLC id.
        id: u64,
        /// SHA256 of the onion we could not parse.
        sha256_of_onion: [u8; 32],
        /// Failure code (BADONION bit set).
        failure_code: u16,
    }
    tlvs {}
}

wire_message! {
    /// `commitment_signed` (132).
    CommitmentSigned = 132 {
        /// Channel id.
        channel_id: ChannelId,
        /// Signature for the receiver's new commitment.
        signature: Signature,
        /// One signature per HTLC output, in commitment output order.
        htlc_signatures: Vec<Signature>,
    }
    tlvs {}
}

wire_message! {
    /// `revoke_and_ack` (133).
    RevokeAndAck = 133 {
        /// Channel id.
        channel_id: ChannelId,
        /// Secret of the commitment being revoked.
        per_commitment_secret: [u8; 32],
        /// Point for the commitment after next.
        next_per_commitment_point: PublicKey,
    }
    tlvs {}
}

wire_message! {
    /// `update_fee` (134).
    UpdateFee = 134 {
        /// Channel id.
        channel_id: ChannelId,
        /// New feerate.
        feerate_per_kw: u32,
    }
    tlvs {}
}

wire_message! {
    /// `channel_reestablish` (136).
    ChannelReestablish = 136 {
        /// Channel id.
        channel_id: ChannelId,
        /// Commitment number the sender expects to receive next.
        next_commitment_number: u64,
        /// Revocation number the sender expects to receive next.
        next_revocation_number: u64,
        /// Last per-commitment secret received from the receiver.
        your_last_per_commitment_secret: [u8; 32],
        /// Sender's current per-commitment point.
        my_current_per_commitment_point: PublicKey,
    }
    tlvs {}
}
