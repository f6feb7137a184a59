//! Fuzz target: error onions at the origin (BOLT 4 "Returning Errors", legacy format).
//!
//! Three paths, so the fuzzer reaches past the HMAC: (1) the input as a raw error packet
//! (length and HMAC checks); (2) the input as the *plaintext payload* of an error packet
//! that a hop on a fixed 5-hop route (fixed shared secrets) authenticates with its `um` key
//! and every hop back to the origin wraps with `ammag`, so the length/padding parsing and
//! the failure-message decoder see hostile plaintext; (3) the input as a failure message
//! framed with correct lengths, so `FailureMessage::decode` runs behind a valid HMAC.
//!
//! Oracles: a packet authenticated by hop `i` is attributed to hop `i` (never another hop,
//! never "unattributable"), and in path (3) the result equals decoding the message
//! directly. Must never panic; owns nothing else.
#![no_main]

use fulmen_htlc::failure::FailureMessage;
use fulmen_htlc::onion::crypto::{generate_key, hmac_sha256};
use fulmen_htlc::onion::error::{
    decode_error_packet, wrap_error_packet, ErrorOnionError, MIN_ERROR_PACKET_LEN,
};
use libfuzzer_sys::fuzz_target;

const HOPS: usize = 5;

/// Builds the packet hop `failing` would send, wrapped by every hop back to the origin.
fn authenticated_packet(secrets: &[[u8; 32]], failing: usize, payload: &[u8]) -> Vec<u8> {
    let um = generate_key(b"um", &secrets[failing]);
    let mut packet = hmac_sha256(&um, &[payload]).to_vec();
    packet.extend_from_slice(payload);
    for ss in secrets[..=failing].iter().rev() {
        wrap_error_packet(ss, &mut packet);
    }
    packet
}

/// Asserts the packet is attributed to `failing`, whatever the payload says.
fn check_attribution(
    secrets: &[[u8; 32]],
    failing: usize,
    packet: &[u8],
) -> Result<FailureMessage, ErrorOnionError> {
    let res = decode_error_packet(secrets, packet);
    match &res {
        Ok(a) => assert_eq!(a.hop_index, failing, "attributed to the wrong hop"),
        Err(ErrorOnionError::MalformedPayload { hop })
        | Err(ErrorOnionError::BadFailureMessage { hop, .. }) => {
            assert_eq!(*hop, failing, "blamed the wrong hop")
        }
        // Only a packet shorter than the minimum may fail before attribution.
        Err(ErrorOnionError::TooShort(n)) => {
            assert!(*n < MIN_ERROR_PACKET_LEN, "{n}-byte packet too short?")
        }
        Err(ErrorOnionError::Unattributable) => panic!("authenticated packet unattributable"),
    }
    res.map(|a| a.failure)
}

fuzz_target!(|data: &[u8]| {
    let secrets: Vec<[u8; 32]> = (1u8..=HOPS as u8).map(|i| [i; 32]).collect();

    // (1) Raw bytes: almost always stops at the HMAC.
    let _ = decode_error_packet(&secrets, data);

    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let failing = usize::from(sel) % HOPS;

    // (2) Hostile plaintext payload (lengths and padding included) behind a valid HMAC.
    let packet = authenticated_packet(&secrets, failing, rest);
    if let Ok(f) = check_attribution(&secrets, failing, &packet) {
        // Whatever was accepted re-encodes and decodes to itself.
        assert_eq!(FailureMessage::decode(&f.encode()).as_ref(), Ok(&f));
    }

    // (3) The input as the failure message itself, correctly framed and padded.
    let msg = &rest[..rest.len().min(usize::from(u16::MAX))];
    let pad = usize::from(sel >> 3);
    let mut payload = Vec::with_capacity(4 + msg.len() + pad);
    payload.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    payload.extend_from_slice(msg);
    payload.extend_from_slice(&(pad as u16).to_be_bytes());
    payload.resize(payload.len() + pad, 0);
    let packet = authenticated_packet(&secrets, failing, &payload);
    let got = check_attribution(&secrets, failing, &packet);
    if packet.len() < MIN_ERROR_PACKET_LEN {
        return;
    }
    match (got, FailureMessage::decode(msg)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(ErrorOnionError::BadFailureMessage { source, .. }), Err(e)) => assert_eq!(source, e),
        (a, b) => panic!("framed decode {a:?} disagrees with direct decode {b:?}"),
    }
});
