//! Criterion benchmark: build and sign a BOLT 3 commitment transaction with 0, 10 and 483
//! HTLCs — the commitment signature plus one signature per HTLC-timeout / HTLC-success
//! transaction (what one `commitment_signed` costs the sender).
//!
//! Never asserts timings; numbers go to BENCHMARKS.md.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, OutPoint, Txid};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use fulmen_channel::commitment::{
    build_commitment_tx, obscuring_factor, CommitmentHtlc, CommitmentParams,
};
use fulmen_channel::keys::{ChannelBasepoints, CommitmentKeys};
use fulmen_htlc::second_stage::sign_second_stage;

fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).expect("valid constant key")
}

fn bench_commitment(c: &mut Criterion) {
    let secp = Secp256k1::new();
    let pk = |n| PublicKey::from_secret_key(&secp, &key(n));
    let local = ChannelBasepoints {
        funding_pubkey: pk(1),
        revocation_basepoint: pk(2),
        payment_basepoint: pk(3),
        delayed_payment_basepoint: pk(4),
        htlc_basepoint: pk(5),
    };
    let remote = ChannelBasepoints {
        funding_pubkey: pk(11),
        revocation_basepoint: pk(12),
        payment_basepoint: pk(13),
        delayed_payment_basepoint: pk(14),
        htlc_basepoint: pk(15),
    };
    let funding_secret = key(1);
    let htlc_secret = key(5);
    let mut group = c.benchmark_group("commitment_build_and_sign");
    group.sample_size(10);
    for n in [0usize, 10, 483] {
        let htlcs: Vec<CommitmentHtlc> = (0..n)
            .map(|i| CommitmentHtlc {
                offered: i % 2 == 0,
                amount_msat: 10_000_000 + i as u64 * 1000,
                cltv_expiry: 500 + i as u32,
                payment_hash: sha256::Hash::hash(&(i as u64).to_be_bytes()),
            })
            .collect();
        let params = CommitmentParams {
            funding_outpoint: OutPoint {
                txid: Txid::all_zeros(),
                vout: 0,
            },
            funding_value: Amount::from_sat(100_000_000),
            commitment_number: 42,
            obscuring_factor: obscuring_factor(&local.payment_basepoint, &remote.payment_basepoint),
            to_self_delay: 144,
            dust_limit: Amount::from_sat(546),
            feerate_per_kw: 2500,
            broadcaster_is_funder: true,
        };
        let htlc_total: u64 = htlcs.iter().map(|h| h.amount_msat).sum();
        let to_local = 60_000_000_000 - htlc_total;
        let to_remote = 40_000_000_000;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                // Key derivation for the new per-commitment point is part of the work.
                let keys =
                    CommitmentKeys::derive(&secp, &pk(21), &remote, &local).expect("derive keys");
                let ctx = build_commitment_tx(&params, &keys, to_local, to_remote, &htlcs)
                    .expect("build commitment");
                let sig = ctx
                    .sign(
                        &secp,
                        &params,
                        &local.funding_pubkey,
                        &remote.funding_pubkey,
                        &funding_secret,
                    )
                    .expect("sign commitment");
                let txs = ctx.htlc_txs(&params, &keys, &htlcs).expect("htlc txs");
                let htlc_sigs: Vec<_> = ctx
                    .htlcs
                    .iter()
                    .zip(&txs)
                    .map(|(o, tx)| {
                        sign_second_stage(&secp, tx, &o.witness_script, o.amount, &htlc_secret)
                            .expect("sign htlc tx")
                    })
                    .collect();
                black_box((sig, htlc_sigs))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_commitment);
criterion_main!(benches);
