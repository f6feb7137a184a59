//! End-to-end onion tests: a 20-hop onion built by the crate is peeled hop by hop back to
//! the final payload; any single flipped bit is detected at the hop where it matters; an
//! error created at any hop is attributed to that hop at the origin.
//!
//! Deterministic (seeded RNG); no I/O.

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use fulmen_htlc::failure::FailureMessage;
use fulmen_htlc::onion::{
    construct_onion, create_error_packet, decode_error_packet, peel_onion, process_onion,
    wrap_error_packet, HopPayload, OnionError, OnionHop, OnionPacket, OnionReject, PaymentData,
    ProcessedOnion, ONION_PACKET_LEN,
};
use fulmen_htlc::{PaymentHash, PaymentSecret};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

struct Route {
    secrets: Vec<SecretKey>,
    hops: Vec<OnionHop>,
    session: SecretKey,
    hash: PaymentHash,
}

fn route(n: usize, seed: u64) -> Route {
    let secp = Secp256k1::new();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let secrets: Vec<SecretKey> = (0..n).map(|_| SecretKey::new(&mut rng)).collect();
    let hops = secrets
        .iter()
        .enumerate()
        .map(|(i, sk)| {
            let payload = if i == n - 1 {
                HopPayload::final_hop(
                    50_000,
                    800,
                    PaymentData {
                        payment_secret: PaymentSecret([0x33; 32]),
                        total_msat: 50_000,
                    },
                )
            } else {
                HopPayload::forward(
                    50_000 + (n - 1 - i) as u64 * 7,
                    800 + (n - 1 - i) as u32 * 40,
                    i as u64 + 100,
                )
            };
            OnionHop {
                pubkey: PublicKey::from_secret_key(&secp, sk),
                payload,
            }
        })
        .collect();
    Route {
        secrets,
        hops,
        session: SecretKey::new(&mut rng),
        hash: PaymentHash(rng.gen()),
    }
}

#[test]
fn twenty_hops_peel_back_to_final_payload() {
    let secp = Secp256k1::new();
    let r = route(20, 1);
    let (packet, secrets) = construct_onion(&secp, &r.session, &r.hops, &r.hash).unwrap();
    let mut bytes = packet.to_bytes().to_vec();
    for (i, sk) in r.secrets.iter().enumerate() {
        match process_onion(&secp, sk, &bytes, &r.hash).unwrap() {
            ProcessedOnion::Forward {
                payload,
                next,
                shared_secret,
            } => {
                assert!(i < 19);
                assert_eq!(payload, r.hops[i].payload);
                assert_eq!(shared_secret, secrets[i]);
                bytes = next.to_bytes().to_vec();
            }
            ProcessedOnion::Receive {
                payload,
                shared_secret,
            } => {
                assert_eq!(i, 19);
                assert_eq!(payload, r.hops[19].payload);
                assert_eq!(shared_secret, secrets[19]);
            }
        }
    }
}

#[test]
fn routes_too_large_or_empty_are_refused() {
    let secp = Secp256k1::new();
    let r = route(27, 2);
    let err = construct_onion(&secp, &r.session, &r.hops, &r.hash).unwrap_err();
    assert!(matches!(err, OnionError::PayloadsTooLarge(_)));
    assert_eq!(
        construct_onion(&secp, &r.session, &[], &r.hash).unwrap_err(),
        OnionError::RouteShape
    );
}

#[test]
fn every_flipped_bit_of_the_first_packet_is_caught_at_hop_0() {
    let secp = Secp256k1::new();
    let r = route(20, 3);
    let (packet, _) = construct_onion(&secp, &r.session, &r.hops, &r.hash).unwrap();
    let good = packet.to_bytes();
    for bit in 0..ONION_PACKET_LEN * 8 {
        let mut b = good;
        b[bit / 8] ^= 1 << (bit % 8);
        let res = process_onion(&secp, &r.secrets[0], &b, &r.hash);
        match res {
            Err(OnionReject::Malformed(f)) => {
                assert!(f.is_bad_onion());
                let expected = match bit / 8 {
                    0 => 0xc004,
                    1..=33 => {
                        // A flipped key byte is either unparsable or yields a wrong HMAC.
                        assert!(f.code() == 0xc006 || f.code() == 0xc005, "bit {bit}");
                        f.code()
                    }
                    _ => 0xc005,
                };
                assert_eq!(f.code(), expected, "bit {bit}");
            }
            other => panic!("bit {bit} not detected: {other:?}"),
        }
    }
    // The associated data (payment hash) is authenticated too.
    let mut other_hash = r.hash;
    other_hash.0[31] ^= 1;
    assert!(peel_onion(&secp, &r.secrets[0], &packet, &other_hash.0).is_err());
}

#[test]
fn flipped_bits_in_a_forwarded_packet_are_caught_at_the_next_hop() {
    let secp = Secp256k1::new();
    let r = route(20, 4);
    let (packet, _) = construct_onion(&secp, &r.session, &r.hops, &r.hash).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(44);
    let mut current = packet;
    for k in 0..19 {
        let peeled = peel_onion(&secp, &r.secrets[k], &current, &r.hash.0).unwrap();
        let next = peeled.next.unwrap();
        // Tampering between hop k and k+1 (e.g. by hop k) is caught by hop k+1.
        for _ in 0..64 {
            let bit = rng.gen_range(0..ONION_PACKET_LEN * 8);
            let mut b = next.to_bytes();
            b[bit / 8] ^= 1 << (bit % 8);
            let tampered = OnionPacket::from_bytes(&b).unwrap();
            assert!(
                peel_onion(&secp, &r.secrets[k + 1], &tampered, &r.hash.0).is_err(),
                "hop {} bit {bit}",
                k + 1
            );
        }
        current = next;
    }
}

#[test]
fn error_from_any_hop_is_attributed_to_it() {
    let secp = Secp256k1::new();
    let r = route(20, 5);
    let (_, secrets) = construct_onion(&secp, &r.session, &r.hops, &r.hash).unwrap();
    for failing in 0..20 {
        let f = FailureMessage::IncorrectOrUnknownPaymentDetails {
            htlc_msat: failing as u64,
            height: 7,
        };
        let mut pkt = create_error_packet(&secrets[failing], &f);
        for ss in secrets[..failing].iter().rev() {
            wrap_error_packet(ss, &mut pkt);
        }
        let got = decode_error_packet(&secrets, &pkt).unwrap();
        assert_eq!((got.hop_index, got.failure), (failing, f));
    }
}

#[test]
fn bad_payload_after_good_hmac_gets_invalid_onion_payload() {
    let secp = Secp256k1::new();
    let r = route(3, 6);
    // Hop 1 gets a payload with an unknown even TLV type 42.
    let mut payloads: Vec<Vec<u8>> = r
        .hops
        .iter()
        .map(|h| h.payload.encode_with_length())
        .collect();
    let mut body = r.hops[1].payload.encode();
    body.extend_from_slice(&[42, 1, 0]);
    let mut p1 = vec![body.len() as u8];
    p1.extend_from_slice(&body);
    payloads[1] = p1;
    let keys: Vec<PublicKey> = r.hops.iter().map(|h| h.pubkey).collect();
    let (packet, secrets) =
        fulmen_htlc::onion::construct_onion_raw(&secp, &r.session, &keys, &payloads, &r.hash.0)
            .unwrap();
    let ProcessedOnion::Forward { next, .. } =
        process_onion(&secp, &r.secrets[0], &packet.to_bytes(), &r.hash).unwrap()
    else {
        panic!("hop 0 forwards")
    };
    match process_onion(&secp, &r.secrets[1], &next.to_bytes(), &r.hash) {
        Err(OnionReject::Fail {
            failure,
            mut error_packet,
        }) => {
            let offset = body.len() as u16 - 3;
            assert_eq!(
                failure,
                FailureMessage::InvalidOnionPayload { typ: 42, offset }
            );
            wrap_error_packet(&secrets[0], &mut error_packet);
            let got = decode_error_packet(&secrets, &error_packet).unwrap();
            assert_eq!(got.hop_index, 1);
            assert_eq!(got.failure, failure);
        }
        other => panic!("expected invalid_onion_payload, got {other:?}"),
    }
}
