//! BOLT 4 Sphinx onion: construction by the sender, peeling by each hop, typed hop payloads
//! and error onions.
//!
//! Owns the whole onion path from `(route, payloads, session key)` to bytes and back. Must
//! never generate entropy (session keys come in), never panic on peer bytes, and always
//! check version, key and HMAC before trusting a payload.

pub(crate) mod codec;
pub mod crypto;
pub mod error;
pub mod packet;
pub mod payload;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey, Signing, Verification};
use thiserror::Error;

pub use codec::CodecError;
pub use error::{
    create_error_packet, decode_error_packet, wrap_error_packet, AttributedFailure, ErrorOnionError,
};
pub use packet::{construct_onion_raw, peel_onion, OnionPacket, PeeledHop, ONION_PACKET_LEN};
pub use payload::{HopPayload, PayloadError, PaymentData};

use crate::failure::FailureMessage;
use crate::payment::PaymentHash;
use crypto::SharedSecretBytes;

/// Onion construction or peeling failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OnionError {
    /// Serialized packet is not 1366 bytes.
    #[error("onion packet has wrong length {0}")]
    WrongLength(usize),
    /// Version byte is not 0 (`invalid_onion_version`).
    #[error("unknown onion version {0}")]
    BadVersion(u8),
    /// Ephemeral key unparsable or a derived key invalid (`invalid_onion_key`).
    #[error("invalid onion ephemeral key")]
    InvalidKey,
    /// HMAC mismatch (`invalid_onion_hmac`).
    #[error("onion HMAC mismatch")]
    BadHmac,
    /// The decrypted payload length is zero (legacy), non-canonical or overruns the packet.
    #[error("bad hop payload length")]
    BadPayloadLength,
    /// Route empty or hops/payloads of different lengths.
    #[error("route must have at least one hop and one payload per hop")]
    RouteShape,
    /// Payloads (plus one HMAC each) exceed 1300 bytes.
    #[error("hop payloads take {0} bytes, more than 1300")]
    PayloadsTooLarge(usize),
}

/// One hop of a route, as the sender describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnionHop {
    /// The hop's node id.
    pub pubkey: PublicKey,
    /// What the hop must do.
    pub payload: HopPayload,
}

/// Builds the onion for `hops` with the payment hash as associated data.
///
/// Returns the packet and the shared secrets (keep them to decode an error coming back).
pub fn construct_onion<C: Signing>(
    secp: &Secp256k1<C>,
    session_key: &SecretKey,
    hops: &[OnionHop],
    payment_hash: &PaymentHash,
) -> Result<(OnionPacket, Vec<SharedSecretBytes>), OnionError> {
    let keys: Vec<PublicKey> = hops.iter().map(|h| h.pubkey).collect();
    let payloads: Vec<Vec<u8>> = hops
        .iter()
        .map(|h| h.payload.encode_with_length())
        .collect();
    construct_onion_raw(secp, session_key, &keys, &payloads, &payment_hash.0)
}

/// What an incoming HTLC's onion tells this node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessedOnion {
    /// Forward to the next hop.
    Forward {
        /// Decoded payload (has `short_channel_id`).
        payload: HopPayload,
        /// The packet to put in the outgoing `update_add_htlc` (boxed: 1366 bytes).
        next: Box<OnionPacket>,
        /// Shared secret, to wrap errors coming back.
        shared_secret: SharedSecretBytes,
    },
    /// We are the final recipient.
    Receive {
        /// Decoded final payload.
        payload: HopPayload,
        /// Shared secret, to create an error if we reject.
        shared_secret: SharedSecretBytes,
    },
}

/// Why an incoming onion is rejected, with exactly what to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnionReject {
    /// Unreadable onion: send `update_fail_malformed_htlc` with this BADONION failure
    /// (its `sha256_of_onion` and code).
    Malformed(FailureMessage),
    /// Readable onion but bad payload: send `update_fail_htlc` with this error packet
    /// (already created and obfuscated with our shared secret).
    Fail {
        /// The failure (for logs).
        failure: FailureMessage,
        /// The `reason` bytes for `update_fail_htlc`.
        error_packet: Vec<u8>,
    },
}

/// Peels and decodes an incoming onion; every rejection is the BOLT 4 failure to return.
pub fn process_onion<C: Signing + Verification>(
    secp: &Secp256k1<C>,
    node_secret: &SecretKey,
    packet_bytes: &[u8],
    payment_hash: &PaymentHash,
) -> Result<ProcessedOnion, OnionReject> {
    let sha = bitcoin::hashes::sha256::Hash::hash(packet_bytes).to_byte_array();
    let packet = OnionPacket::from_bytes(packet_bytes).map_err(|_| {
        OnionReject::Malformed(FailureMessage::InvalidOnionVersion {
            sha256_of_onion: sha,
        })
    })?;
    let peeled = match peel_onion(secp, node_secret, &packet, &payment_hash.0) {
        Ok(p) => p,
        Err(OnionError::BadVersion(_)) => {
            return Err(OnionReject::Malformed(
                FailureMessage::InvalidOnionVersion {
                    sha256_of_onion: sha,
                },
            ))
        }
        Err(OnionError::InvalidKey) => {
            return Err(OnionReject::Malformed(FailureMessage::InvalidOnionKey {
                sha256_of_onion: sha,
            }))
        }
        Err(OnionError::BadHmac) => {
            return Err(OnionReject::Malformed(FailureMessage::InvalidOnionHmac {
                sha256_of_onion: sha,
            }))
        }
        Err(_) => {
            // HMAC was fine but the length is unusable: we can still encrypt an error.
            let eph = PublicKey::from_slice(&packet.public_key).map_err(|_| {
                OnionReject::Malformed(FailureMessage::InvalidOnionKey {
                    sha256_of_onion: sha,
                })
            })?;
            let ss = crypto::shared_secret(&eph, node_secret);
            let failure = FailureMessage::InvalidOnionPayload { typ: 0, offset: 0 };
            let error_packet = create_error_packet(&ss, &failure);
            return Err(OnionReject::Fail {
                failure,
                error_packet,
            });
        }
    };
    let is_final = peeled.next.is_none();
    let payload = HopPayload::decode(&peeled.payload, is_final).map_err(|e| {
        let failure = FailureMessage::InvalidOnionPayload {
            typ: e.typ,
            offset: e.offset,
        };
        let error_packet = create_error_packet(&peeled.shared_secret, &failure);
        OnionReject::Fail {
            failure,
            error_packet,
        }
    })?;
    Ok(match peeled.next {
        Some(next) => ProcessedOnion::Forward {
            payload,
            next: Box::new(next),
            shared_secret: peeled.shared_secret,
        },
        None => ProcessedOnion::Receive {
            payload,
            shared_secret: peeled.shared_secret,
        },
    })
}

use bitcoin::hashes::Hash as _;
