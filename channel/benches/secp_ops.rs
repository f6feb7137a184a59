//! Criterion benchmark: the cost of each libsecp256k1 operation a payment needs — ECDSA
//! sign and verify, the BOLT 3 key derivations (`basepoint + SHA256(..)·G`, the revocation
//! key with one known secret), a per-commitment point, ECDH and public-key recovery.
//!
//! Multiplied by the number of calls a payment makes (counted with uprobes, BENCHMARKS.md
//! "What bounds a payment"), these give the floor of a payment's CPU that BOLT 3 sets
//! whatever the rest of the code does. Never asserts timings; numbers go to BENCHMARKS.md.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::ecdsa::RecoverableSignature;
use bitcoin::secp256k1::{ecdh::SharedSecret, Message, PublicKey, Secp256k1, SecretKey};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fulmen_channel::keys::{
    derive_pubkey, derive_revocation_pubkey_with_secret, per_commitment_point,
    KnownRevocationSecret,
};

fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).expect("valid constant key")
}

fn bench_secp_ops(c: &mut Criterion) {
    let secp = Secp256k1::new();
    let sk = key(3);
    let pk = PublicKey::from_secret_key(&secp, &sk);
    let basepoint = PublicKey::from_secret_key(&secp, &key(4));
    let point = PublicKey::from_secret_key(&secp, &key(5));
    let msg = Message::from_digest(sha256::Hash::hash(b"sighash").to_byte_array());
    let sig = secp.sign_ecdsa(&msg, &sk);
    let recoverable: RecoverableSignature = secp.sign_ecdsa_recoverable(&msg, &sk);

    let mut g = c.benchmark_group("secp_ops");
    g.sample_size(30);
    g.bench_function("ecdsa_sign", |b| {
        b.iter(|| black_box(secp.sign_ecdsa(black_box(&msg), &sk)))
    });
    g.bench_function("ecdsa_verify", |b| {
        b.iter(|| black_box(secp.verify_ecdsa(black_box(&msg), &sig, &pk).is_ok()))
    });
    g.bench_function("derive_pubkey (tweak_add)", |b| {
        b.iter(|| black_box(derive_pubkey(&secp, black_box(&basepoint), &point)))
    });
    g.bench_function("revocation_pubkey (one secret known)", |b| {
        b.iter(|| {
            black_box(derive_revocation_pubkey_with_secret(
                &secp,
                black_box(&basepoint),
                &point,
                KnownRevocationSecret::PerCommitmentPoint(&key(5)),
            ))
        })
    });
    g.bench_function("per_commitment_point (pubkey_create)", |b| {
        b.iter(|| black_box(per_commitment_point(&secp, black_box(&[7u8; 32]))))
    });
    g.bench_function("ecdh", |b| {
        b.iter(|| black_box(SharedSecret::new(black_box(&point), &sk)))
    });
    g.bench_function("recover_pubkey", |b| {
        b.iter(|| black_box(secp.recover_ecdsa(black_box(&msg), &recoverable)))
    });
    g.finish();
}

criterion_group!(benches, bench_secp_ops);
criterion_main!(benches);
