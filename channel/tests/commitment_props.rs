//! Property tests of commitment construction: for any balances, HTLC set and feerate, value is
//! conserved (outputs + fee + trimmed HTLCs + msat remainders = funding), no output is below
//! the dust limit, outputs are in BIP69 + CLTV order, and every untrimmed HTLC maps to an
//! output paying its P2WSH script with its amount. Deterministic (proptest's fixed seed per
//! failure file); never asserts anything the construction does not guarantee.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, OutPoint};
use fulmen_channel::commitment::{build_commitment_tx, CommitmentHtlc, CommitmentParams};
use fulmen_channel::keys::CommitmentKeys;
use proptest::prelude::*;

fn keys() -> CommitmentKeys {
    let secp = Secp256k1::new();
    let pk = |n: u8| PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[n; 32]).unwrap());
    CommitmentKeys {
        per_commitment_point: pk(1),
        revocation_key: pk(2),
        broadcaster_htlc_key: pk(3),
        countersignatory_htlc_key: pk(4),
        broadcaster_delayed_key: pk(5),
        countersignatory_payment_key: pk(6),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn commitment_conserves_value_and_orders_outputs(
        funder in any::<bool>(),
        feerate in 0u32..20_000,
        local_share in 0u64..=1000,
        htlc_specs in proptest::collection::vec((any::<bool>(), 1u64..5_000_000, 0u32..1000, 0u8..4), 0..20),
    ) {
        let funding_sat = 10_000_000u64;
        let htlcs: Vec<CommitmentHtlc> = htlc_specs
            .iter()
            .map(|(offered, msat, cltv, hash_tag)| CommitmentHtlc {
                offered: *offered,
                amount_msat: *msat,
                cltv_expiry: *cltv,
                payment_hash: sha256::Hash::hash(&[*hash_tag]),
            })
            .collect();
        let htlc_msat: u64 = htlcs.iter().map(|h| h.amount_msat).sum();
        let rest = funding_sat * 1000 - htlc_msat;
        let to_local = rest / 1000 * local_share;
        let to_remote = rest - to_local;
        let params = CommitmentParams {
            funding_outpoint: OutPoint::null(),
            funding_value: Amount::from_sat(funding_sat),
            commitment_number: 7,
            obscuring_factor: 0x1234_5678_9abc,
            to_self_delay: 144,
            dust_limit: Amount::from_sat(546),
            feerate_per_kw: feerate,
            broadcaster_is_funder: funder,
        };
        let k = keys();
        let c = build_commitment_tx(&params, &k, to_local, to_remote, &htlcs).unwrap();
        let out_sum: u64 = c.tx.output.iter().map(|o| o.value.to_sat()).sum();
        prop_assert!(out_sum <= funding_sat);
        for o in &c.tx.output {
            prop_assert!(o.value >= params.dust_limit);
        }
        // BIP69 order: (value, script) non-decreasing; ties broken by CLTV.
        for w in c.tx.output.windows(2) {
            prop_assert!((w[0].value, w[0].script_pubkey.as_bytes()) <= (w[1].value, w[1].script_pubkey.as_bytes()));
        }
        for w in c.htlcs.windows(2) {
            let (a, b) = (&c.tx.output[w[0].vout as usize], &c.tx.output[w[1].vout as usize]);
            if a == b {
                prop_assert!(htlcs[w[0].htlc_index].cltv_expiry <= htlcs[w[1].htlc_index].cltv_expiry);
            }
        }
        // Each untrimmed HTLC is exactly one output with its script and amount.
        let untrimmed = htlcs
            .iter()
            .filter(|h| !h.is_trimmed(params.dust_limit, feerate))
            .count();
        prop_assert_eq!(c.htlcs.len(), untrimmed);
        for o in &c.htlcs {
            let h = &htlcs[o.htlc_index];
            prop_assert_eq!(o.amount, h.amount());
            prop_assert_eq!(&c.tx.output[o.vout as usize].script_pubkey, &h.witness_script(&k).to_p2wsh());
        }
        // Value is conserved: what the outputs do not carry is the fee, trimmed HTLCs,
        // sub-satoshi remainders, and balances trimmed as dust.
        prop_assert_eq!(c.tx.output.len(), c.htlcs.len() + usize::from(c.to_local.is_some()) + usize::from(c.to_remote.is_some()));
        let (mut l, mut r) = (to_local / 1000, to_remote / 1000);
        if funder { l = l.saturating_sub(c.fee.to_sat()) } else { r = r.saturating_sub(c.fee.to_sat()) }
        let keep = |v: u64| if v >= params.dust_limit.to_sat() { v } else { 0 };
        let htlc_out: u64 = c.htlcs.iter().map(|o| o.amount.to_sat()).sum();
        prop_assert_eq!(out_sum, keep(l) + keep(r) + htlc_out);
        prop_assert_eq!(c.fee.to_sat(), u64::from(feerate) * (724 + 172 * untrimmed as u64) / 1000);
        // The HTLC txs exist for every untrimmed HTLC and never go negative.
        let txs = c.htlc_txs(&params, &k, &htlcs).unwrap();
        prop_assert_eq!(txs.len(), c.htlcs.len());
        for tx in &txs {
            prop_assert!(tx.output[0].value >= params.dust_limit);
        }
    }
}
