//! Criterion benchmarks for the Sphinx onion: build a 20-hop onion, peel one hop.
//!
//! Deterministic keys (no RNG); measures only CPU work, never I/O.

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fulmen_htlc::onion::{construct_onion, peel_onion, HopPayload, OnionHop, PaymentData};
use fulmen_htlc::{PaymentHash, PaymentSecret};

fn route(secp: &Secp256k1<bitcoin::secp256k1::All>) -> (Vec<SecretKey>, Vec<OnionHop>) {
    let secrets: Vec<SecretKey> = (1u8..=20)
        .map(|i| SecretKey::from_slice(&[i; 32]).expect("valid key"))
        .collect();
    let hops = secrets
        .iter()
        .enumerate()
        .map(|(i, sk)| {
            let payload = if i == 19 {
                HopPayload::final_hop(
                    1_000,
                    500,
                    PaymentData {
                        payment_secret: PaymentSecret([0x11; 32]),
                        total_msat: 1_000,
                    },
                )
            } else {
                HopPayload::forward(
                    1_000 + (19 - i as u64) * 10,
                    500 + (19 - i as u32) * 40,
                    i as u64 + 1,
                )
            };
            OnionHop {
                pubkey: PublicKey::from_secret_key(secp, sk),
                payload,
            }
        })
        .collect();
    (secrets, hops)
}

fn bench_onion(c: &mut Criterion) {
    let secp = Secp256k1::new();
    let (secrets, hops) = route(&secp);
    let session = SecretKey::from_slice(&[0x41; 32]).expect("valid key");
    let hash = PaymentHash([0x42; 32]);
    c.bench_function("onion_build_20_hops", |b| {
        b.iter(|| {
            construct_onion(&secp, black_box(&session), black_box(&hops), &hash).expect("build")
        })
    });
    let (packet, _) = construct_onion(&secp, &session, &hops, &hash).expect("build");
    c.bench_function("onion_peel_one_hop", |b| {
        b.iter(|| {
            peel_onion(&secp, black_box(&secrets[0]), black_box(&packet), &hash.0).expect("peel")
        })
    });
}

criterion_group!(benches, bench_onion);
criterion_main!(benches);
