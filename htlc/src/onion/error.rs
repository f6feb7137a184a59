//! Error onions (BOLT 4 "Returning Errors", legacy format without attribution data):
//! creation at the failing hop, one obfuscation layer per hop on the way back, and
//! attribution plus decryption at the origin.
//!
//! Must never panic on a hostile error packet; HMACs are compared in constant time.

use subtle::ConstantTimeEq;
use thiserror::Error;

use super::crypto::{generate_key, hmac_sha256, xor_stream, SharedSecretBytes};
use crate::failure::{FailureDecodeError, FailureMessage};

/// `failure_len + pad_len` is padded up to at least this many bytes.
pub const ERROR_PAD_TO: usize = 256;
/// Smallest valid error packet: HMAC + failure_len + 2-byte code + pad_len.
pub const MIN_ERROR_PACKET_LEN: usize = 32 + 2 + 2 + 2;

/// Why an error packet could not be attributed or read at the origin.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorOnionError {
    /// Too short to hold an HMAC and lengths.
    #[error("error packet too short ({0} bytes)")]
    TooShort(usize),
    /// No hop's HMAC matched: the packet was corrupted somewhere on the path.
    #[error("error packet not attributable to any hop")]
    Unattributable,
    /// A hop authenticated the packet but its lengths are inconsistent.
    #[error("hop {hop} sent a malformed error payload")]
    MalformedPayload {
        /// Index (0 = first hop) of the node that authenticated the packet.
        hop: usize,
    },
    /// A hop authenticated the packet but its failure message is unreadable.
    #[error("hop {hop} sent an undecodable failure message: {source}")]
    BadFailureMessage {
        /// Index of the node that authenticated the packet.
        hop: usize,
        /// Why decoding failed.
        source: FailureDecodeError,
    },
}

/// A failure attributed to the hop that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributedFailure {
    /// Index in the route of the failing node (0 = first hop after the sender).
    pub hop_index: usize,
    /// The decoded failure message.
    pub failure: FailureMessage,
}

/// The unobfuscated error payload: `failure_len || failuremsg || pad_len || pad` (zeros).
pub fn error_payload(failure: &FailureMessage) -> Vec<u8> {
    let msg = failure.encode();
    let msg = &msg[..msg.len().min(usize::from(u16::MAX))];
    let pad_len = ERROR_PAD_TO.saturating_sub(msg.len());
    let mut out = Vec::with_capacity(4 + msg.len() + pad_len);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out.extend_from_slice(&(pad_len as u16).to_be_bytes());
    out.resize(out.len() + pad_len, 0);
    out
}

/// At the failing hop: builds the error packet (`HMAC(um) || payload`) and applies this
/// hop's obfuscation layer. The result goes in `update_fail_htlc.reason`.
pub fn create_error_packet(shared_secret: &SharedSecretBytes, failure: &FailureMessage) -> Vec<u8> {
    let payload = error_payload(failure);
    let um = generate_key(b"um", shared_secret);
    let mac = hmac_sha256(&um, &[&payload]);
    let mut packet = Vec::with_capacity(32 + payload.len());
    packet.extend_from_slice(&mac);
    packet.extend_from_slice(&payload);
    wrap_error_packet(shared_secret, &mut packet);
    packet
}

/// At every hop on the way back (including the failing one, which
/// [`create_error_packet`] already did): XOR with the `ammag` stream.
pub fn wrap_error_packet(shared_secret: &SharedSecretBytes, packet: &mut [u8]) {
    let ammag = generate_key(b"ammag", shared_secret);
    xor_stream(&ammag, packet);
}

/// At the origin: peels layers hop by hop until one HMAC verifies, then decodes that hop's
/// failure. `shared_secrets` are the ones returned when the onion was built.
pub fn decode_error_packet(
    shared_secrets: &[SharedSecretBytes],
    packet: &[u8],
) -> Result<AttributedFailure, ErrorOnionError> {
    if packet.len() < MIN_ERROR_PACKET_LEN {
        return Err(ErrorOnionError::TooShort(packet.len()));
    }
    let mut buf = packet.to_vec();
    for (hop, ss) in shared_secrets.iter().enumerate() {
        wrap_error_packet(ss, &mut buf);
        let um = generate_key(b"um", ss);
        let (mac, payload) = buf.split_at(32);
        let expected = hmac_sha256(&um, &[payload]);
        if bool::from(expected.ct_eq(mac)) {
            let failure = parse_error_payload(payload).map_err(|e| match e {
                None => ErrorOnionError::MalformedPayload { hop },
                Some(source) => ErrorOnionError::BadFailureMessage { hop, source },
            })?;
            return Ok(AttributedFailure {
                hop_index: hop,
                failure,
            });
        }
    }
    Err(ErrorOnionError::Unattributable)
}

fn parse_error_payload(payload: &[u8]) -> Result<FailureMessage, Option<FailureDecodeError>> {
    let len_bytes = payload.get(..2).ok_or(None)?;
    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    let msg = payload.get(2..2 + len).ok_or(None)?;
    let pad_bytes = payload.get(2 + len..4 + len).ok_or(None)?;
    let pad_len = usize::from(u16::from_be_bytes([pad_bytes[0], pad_bytes[1]]));
    if payload.len() != 4 + len + pad_len {
        return Err(None);
    }
    FailureMessage::decode(msg).map_err(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_wrap_decode_round_trip() {
        let secrets: Vec<[u8; 32]> = (0u8..4).map(|i| [i + 1; 32]).collect();
        let f = FailureMessage::FeeInsufficient {
            htlc_msat: 42,
            channel_update: vec![7; 10],
        };
        let mut pkt = create_error_packet(&secrets[2], &f);
        wrap_error_packet(&secrets[1], &mut pkt);
        wrap_error_packet(&secrets[0], &mut pkt);
        let got = decode_error_packet(&secrets, &pkt).unwrap();
        assert_eq!(
            got,
            AttributedFailure {
                hop_index: 2,
                failure: f
            }
        );
        // Any flipped bit makes it unattributable to hop 2.
        pkt[100] ^= 1;
        assert!(decode_error_packet(&secrets, &pkt).is_err());
        assert_eq!(
            decode_error_packet(&secrets, &[0; 10]),
            Err(ErrorOnionError::TooShort(10))
        );
    }
}
