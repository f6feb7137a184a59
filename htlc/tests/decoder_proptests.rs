//! Property tests for every decoder of peer or user bytes in this crate: onion packets,
//! hop payloads, failure messages, error packets and invoice strings. Each must round-trip
//! what the crate encodes and never panic on arbitrary input.
//!
//! Deterministic: proptest's default seeded runner; no I/O.

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use fulmen_htlc::failure::FailureMessage;
use fulmen_htlc::invoice::{parse_invoice, payment_hash_unverified};
use fulmen_htlc::onion::{
    construct_onion, decode_error_packet, peel_onion, HopPayload, OnionHop, OnionPacket,
    PaymentData, ONION_PACKET_LEN,
};
use fulmen_htlc::{PaymentHash, PaymentPreimage, PaymentSecret};
use proptest::prelude::*;

fn arb_payload(is_final: bool) -> impl Strategy<Value = HopPayload> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        proptest::option::of((any::<[u8; 32]>(), any::<u64>())),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(move |(amt, cltv, scid, pd, meta, pre)| HopPayload {
            amt_to_forward: amt,
            outgoing_cltv_value: cltv,
            short_channel_id: if is_final { None } else { Some(scid) },
            payment_data: if is_final {
                pd.map(|(s, t)| PaymentData {
                    payment_secret: PaymentSecret(s),
                    total_msat: t,
                })
            } else {
                None
            },
            payment_metadata: meta,
            keysend_preimage: if is_final {
                pre.map(PaymentPreimage)
            } else {
                None
            },
        })
}

/// A valid secret key for any byte (first byte fixed to 1 keeps it below the curve order).
fn sk(b: u8) -> SecretKey {
    let mut a = [b; 32];
    a[0] = 1;
    SecretKey::from_slice(&a).unwrap()
}

proptest! {
    #[test]
    fn forward_payload_round_trips(p in arb_payload(false)) {
        prop_assert_eq!(HopPayload::decode(&p.encode(), false), Ok(p));
    }

    #[test]
    fn final_payload_round_trips(p in arb_payload(true)) {
        prop_assert_eq!(HopPayload::decode(&p.encode(), true), Ok(p));
    }

    #[test]
    fn payload_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), fin in any::<bool>()) {
        if let Ok(p) = HopPayload::decode(&bytes, fin) {
            // Anything accepted re-decodes to itself after re-encoding.
            prop_assert_eq!(HopPayload::decode(&p.encode(), fin), Ok(p));
        }
    }

    #[test]
    fn onion_packet_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), ONION_PACKET_LEN)) {
        let p = OnionPacket::from_bytes(&bytes).unwrap();
        prop_assert_eq!(p.to_bytes().to_vec(), bytes);
    }

    #[test]
    fn onion_packet_wrong_length_refused(len in 0usize..2000) {
        prop_assume!(len != ONION_PACKET_LEN);
        prop_assert!(OnionPacket::from_bytes(&vec![0u8; len]).is_err());
    }

    #[test]
    fn peeling_random_packets_fails_cleanly(bytes in proptest::collection::vec(any::<u8>(), ONION_PACKET_LEN), key in 1u8..=255) {
        let secp = Secp256k1::new();
        let sk = sk(key);
        let p = OnionPacket::from_bytes(&bytes).unwrap();
        // A random packet cannot carry a valid HMAC.
        prop_assert!(peel_onion(&secp, &sk, &p, &[0u8; 32]).is_err());
    }

    #[test]
    fn built_onions_peel_for_random_routes(n in 1usize..6, seed in any::<u8>(), amt in 1u64..1_000_000_000) {
        let secp = Secp256k1::new();
        let sks: Vec<SecretKey> = (0..n).map(|i| sk(seed.wrapping_add(i as u8))).collect();
        let hops: Vec<OnionHop> = sks.iter().enumerate().map(|(i, sk)| OnionHop {
            pubkey: PublicKey::from_secret_key(&secp, sk),
            payload: if i + 1 == n {
                HopPayload::final_hop(amt, 100, PaymentData { payment_secret: PaymentSecret([1; 32]), total_msat: amt })
            } else {
                HopPayload::forward(amt + i as u64, 100 + i as u32, i as u64)
            },
        }).collect();
        let session = sk(seed ^ 0x5a);
        let hash = PaymentHash([seed; 32]);
        let (mut pkt, _) = construct_onion(&secp, &session, &hops, &hash).unwrap();
        for (i, sk) in sks.iter().enumerate() {
            let peeled = peel_onion(&secp, sk, &pkt, &hash.0).unwrap();
            prop_assert_eq!(HopPayload::decode(&peeled.payload, peeled.next.is_none()).unwrap(), hops[i].payload.clone());
            match peeled.next {
                Some(next) => pkt = next,
                None => prop_assert_eq!(i + 1, n),
            }
        }
    }

    #[test]
    fn failure_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = FailureMessage::decode(&bytes) {
            let _ = f.code();
            let _ = f.encode();
        }
    }

    #[test]
    fn error_packet_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let secrets = [[1u8; 32], [2u8; 32], [3u8; 32]];
        let _ = decode_error_packet(&secrets, &bytes);
    }

    #[test]
    fn invoice_parser_never_panics(s in "lnbc[a-z0-9]{0,200}|\\PC{0,100}") {
        let _ = parse_invoice(&s);
        let _ = payment_hash_unverified(&s);
    }
}
