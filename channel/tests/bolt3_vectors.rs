//! BOLT 3 test vectors, byte for byte: Appendix B (funding transaction), Appendix C (all 16
//! commitment cases: transaction hex, both funding signatures, every HTLC-timeout /
//! HTLC-success transaction and its signatures), Appendix D (secret generation and the
//! 9 storage cases) and Appendix E (key derivation).
//!
//! Vectors are read at test time from `<workspace>/testdata/vectors`. Every vector checked
//! is counted and the total asserted, so none can be skipped silently. Never hard-code an
//! expected value here that the vectors file holds.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{ecdsa, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute::LockTime, transaction::Version, Amount, CompressedPublicKey, OutPoint, ScriptBuf,
    Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use fulmen_channel::commitment::{
    build_commitment_tx, commitment_number_of, obscuring_factor, CommitmentHtlc, CommitmentParams,
};
use fulmen_channel::funding::{funding_output, funding_script};
use fulmen_channel::keys::{
    derive_privkey, derive_pubkey, derive_revocation_privkey, derive_revocation_pubkey,
    per_commitment_point, ChannelBasepoints, CommitmentKeys,
};
use fulmen_channel::shachain::{generate_from_seed, SecretStore};
use fulmen_htlc::second_stage::{finalize_second_stage, sign_second_stage};
use serde_json::Value;
use std::str::FromStr;

fn load(name: &str) -> Value {
    let path = format!("{}/../testdata/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}
fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(s(v)).unwrap()
}
fn pk(v: &Value) -> PublicKey {
    PublicKey::from_slice(&bytes(v)).unwrap()
}
/// A BOLT 3 private key: 32 bytes, possibly followed by the `01` compressed marker.
fn sk(v: &Value) -> SecretKey {
    SecretKey::from_slice(&bytes(v)[..32]).unwrap()
}
fn b32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}
fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}
fn der(sig: &ecdsa::Signature) -> String {
    hex::encode(sig.serialize_der())
}

/// Appendix E: returns the number of vectors checked.
fn appendix_e() -> usize {
    let secp = Secp256k1::new();
    let d = load("bolt03-key-derivation.json");
    let mut n = 0;
    for case in d["cases"].as_array().unwrap() {
        let inp = &case["inputs"];
        let func = s(&case["function"]);
        let out = s(&case["output"]);
        let got = if func == "derive_pubkey" {
            derive_pubkey(
                &secp,
                &pk(&inp["basepoint"]),
                &pk(&inp["per_commitment_point"]),
            )
            .unwrap()
            .to_string()
        } else if func == "derive_privkey" {
            let secret = sk(&inp["basepoint_secret"]);
            assert_eq!(
                PublicKey::from_secret_key(&secp, &secret),
                pk(&inp["basepoint"])
            );
            hex::encode(
                derive_privkey(&secp, &secret, &pk(&inp["per_commitment_point"]))
                    .unwrap()
                    .secret_bytes(),
            )
        } else if func == "derive_revocation_pubkey" {
            derive_revocation_pubkey(
                &secp,
                &pk(&inp["revocation_basepoint"]),
                &pk(&inp["per_commitment_point"]),
            )
            .unwrap()
            .to_string()
        } else if func == "derive_revocation_privkey" {
            let pcs = sk(&inp["per_commitment_secret"]);
            assert_eq!(
                per_commitment_point(&secp, &pcs.secret_bytes()).unwrap(),
                pk(&inp["per_commitment_point"])
            );
            hex::encode(
                derive_revocation_privkey(&secp, &sk(&inp["revocation_basepoint_secret"]), &pcs)
                    .unwrap()
                    .secret_bytes(),
            )
        } else {
            panic!("unknown function {func}");
        };
        assert_eq!(got, out, "{}", s(&case["name"]));
        n += 1;
    }
    n
}

/// Appendix D generation: returns the number of vectors checked.
fn appendix_d_generation() -> usize {
    let d = load("bolt03-shachain.json");
    let mut n = 0;
    for g in d["generation"].as_array().unwrap() {
        let got = generate_from_seed(&b32(&g["seed"]), u(&g["index"])).unwrap();
        assert_eq!(hex::encode(got), s(&g["output"]), "{}", s(&g["name"]));
        n += 1;
    }
    n
}

/// Appendix D storage: every insert behaves as the vector says; failing cases fail exactly
/// at the named insert. Returns the number of cases checked.
fn appendix_d_storage() -> usize {
    let d = load("bolt03-shachain.json");
    let mut n = 0;
    for case in d["storage"]["cases"].as_array().unwrap() {
        let name = s(&case["name"]);
        let mut store = SecretStore::new();
        let mut failed_at = None;
        for (pos, ins) in case["inserts"].as_array().unwrap().iter().enumerate() {
            let index = u(&ins["index"]);
            let res = store.insert(index, b32(&ins["secret"]));
            match s(&ins["expected"]) {
                "OK" => {
                    res.unwrap_or_else(|e| panic!("{name}: insert {pos} refused: {e}"));
                    // Every secret inserted so far is still retrievable.
                    assert_eq!(store.get(index), Some(b32(&ins["secret"])), "{name}");
                }
                "ERROR" => {
                    assert!(res.is_err(), "{name}: insert {pos} accepted");
                    failed_at = Some(pos as u64);
                }
                other => panic!("{name}: unknown expectation {other}"),
            }
        }
        assert_eq!(
            failed_at,
            case["failing_insert_position"].as_u64(),
            "{name}: failure position"
        );
        assert_eq!(
            failed_at.is_some(),
            case["expect_failure"].as_bool().unwrap()
        );
        assert!(store.entries().count() <= 49);
        n += 1;
    }
    n
}

/// Appendix B: the funding output script and the whole funding transaction (its P2PKH input
/// is signed here with the vector's coinbase key, RFC 6979). Returns 1.
fn appendix_b() -> usize {
    let secp = Secp256k1::new();
    let d = load("bolt03-commitment.json");
    let f = &d["funding_tx"];
    let local = pk(&f["local_funding_pubkey"]);
    let remote = pk(&f["remote_funding_pubkey"]);
    assert_eq!(
        funding_script(&local, &remote).to_hex_string(),
        s(&f["values_from_spec_comment_lines"]["funding_witness_script"])
    );
    // Key order must not depend on argument order.
    assert_eq!(
        funding_script(&remote, &local),
        funding_script(&local, &remote)
    );

    let coinbase: Transaction =
        bitcoin::consensus::encode::deserialize(&bytes(&f["block1_coinbase_tx_hex"])).unwrap();
    assert_eq!(coinbase.compute_txid().to_string(), s(&f["input_txid"]));
    let key = sk(&f["block1_coinbase_privkey"]);
    let cpk = CompressedPublicKey(PublicKey::from_secret_key(&secp, &key));
    let input_index = u(&f["input_index"]) as usize;
    let prev_spk = coinbase.output[input_index].script_pubkey.clone();
    assert_eq!(prev_spk, ScriptBuf::new_p2pkh(&cpk.pubkey_hash()));
    assert_eq!(
        coinbase.output[input_index].value.to_sat(),
        u(&f["input_satoshis"])
    );

    let funding_out = funding_output(&local, &remote, Amount::from_sat(u(&f["funding_satoshis"])));
    let change = TxOut {
        value: Amount::from_sat(u(&f["change_satoshis"])),
        script_pubkey: ScriptBuf::new_p2wpkh(&cpk.wpubkey_hash()),
    };
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: coinbase.compute_txid(),
                vout: input_index as u32,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![funding_out, change],
    };
    let sighash = SighashCache::new(&tx)
        .legacy_signature_hash(0, &prev_spk, EcdsaSighashType::All.to_u32())
        .unwrap();
    let sig = secp.sign_ecdsa(
        &bitcoin::secp256k1::Message::from_digest(sighash.to_byte_array()),
        &key,
    );
    let sig = bitcoin::ecdsa::Signature::sighash_all(sig);
    tx.input[0].script_sig = bitcoin::script::Builder::new()
        .push_slice(sig.serialize())
        .push_key(&bitcoin::PublicKey::new(cpk.0))
        .into_script();
    assert_eq!(u(&f["funding_output_index"]), 0);
    assert_eq!(serialize_hex(&tx), s(&f["funding_tx_hex"]));
    assert_eq!(
        tx.compute_txid().to_string(),
        s(&f["values_from_spec_comment_lines"]["funding_txid"])
    );
    1
}

#[derive(Default, Debug, PartialEq)]
struct CCounts {
    commitments: usize,
    remote_sigs: usize,
    htlc_txs: usize,
}

/// Appendix C: every case's commitment tx, remote signature and HTLC txs.
fn appendix_c() -> CCounts {
    let secp = Secp256k1::new();
    let d = load("bolt03-commitment.json");
    let common = &d["commitment_common"];
    let p = &common["parameters"];
    let int = &common["internal_values_from_html_comment"];

    let local_funding_secret = sk(&p["local_funding_privkey"]);
    let remote_funding_secret = sk(&int["remote_funding_privkey"]);
    let local_funding = pk(&p["local_funding_pubkey"]);
    let remote_funding = pk(&p["remote_funding_pubkey"]);
    assert_eq!(
        PublicKey::from_secret_key(&secp, &local_funding_secret),
        local_funding
    );
    assert_eq!(
        PublicKey::from_secret_key(&secp, &remote_funding_secret),
        remote_funding
    );
    assert_eq!(
        funding_script(&local_funding, &remote_funding).to_hex_string(),
        s(&common["values_from_spec_comment_lines"]["funding_wscript"])
    );

    // The keys the spec gives, and the same keys derived from the basepoints.
    let keys = CommitmentKeys {
        per_commitment_point: pk(&int["local_per_commitment_point"]),
        revocation_key: pk(&p["local_revocation_pubkey"]),
        broadcaster_htlc_key: pk(&p["local_htlcpubkey"]),
        countersignatory_htlc_key: pk(&p["remote_htlcpubkey"]),
        broadcaster_delayed_key: pk(&p["local_delayedpubkey"]),
        countersignatory_payment_key: pk(&p["remote_payment_basepoint"]),
    };
    let local_bp = ChannelBasepoints {
        funding_pubkey: local_funding,
        revocation_basepoint: local_funding, // unused for the local commitment
        payment_basepoint: pk(&p["local_payment_basepoint"]),
        delayed_payment_basepoint: pk(&int["local_delayed_payment_basepoint"]),
        htlc_basepoint: pk(&p["local_htlc_basepoint"]),
    };
    let remote_bp = ChannelBasepoints {
        funding_pubkey: remote_funding,
        revocation_basepoint: pk(&int["remote_revocation_basepoint"]),
        payment_basepoint: pk(&p["remote_payment_basepoint"]),
        delayed_payment_basepoint: remote_funding, // unused for the local commitment
        htlc_basepoint: pk(&p["remote_htlc_basepoint"]),
    };
    let pcs = sk(&int["x_local_per_commitment_secret"]);
    assert_eq!(
        per_commitment_point(&secp, &pcs.secret_bytes()).unwrap(),
        keys.per_commitment_point
    );
    let derived =
        CommitmentKeys::derive(&secp, &keys.per_commitment_point, &local_bp, &remote_bp).unwrap();
    assert_eq!(derived, keys, "keys derived from basepoints");
    let local_htlc_secret = sk(&p["local_privkey"]);
    let remote_htlc_secret = sk(&int["remote_privkey"]);
    assert_eq!(
        PublicKey::from_secret_key(&secp, &local_htlc_secret),
        keys.broadcaster_htlc_key
    );
    assert_eq!(
        PublicKey::from_secret_key(&secp, &remote_htlc_secret),
        keys.countersignatory_htlc_key
    );
    // The delayed and revocation private keys derive as the spec's comment says.
    assert_eq!(
        derive_privkey(
            &secp,
            &sk(&int["local_delayed_payment_basepoint_secret"]),
            &keys.per_commitment_point
        )
        .unwrap(),
        sk(&int["local_delayed_privkey"])
    );
    let rev_secret =
        derive_revocation_privkey(&secp, &sk(&int["remote_revocation_basepoint_secret"]), &pcs)
            .unwrap();
    assert_eq!(
        PublicKey::from_secret_key(&secp, &rev_secret),
        keys.revocation_key
    );

    let factor = obscuring_factor(&local_bp.payment_basepoint, &remote_bp.payment_basepoint);
    let written = s(&common["values_from_spec_comment_lines"]["obscured_commitment_number"]);
    let factor_hex = written
        .trim_start_matches("0x")
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(factor, u64::from_str_radix(factor_hex, 16).unwrap());

    let funding_outpoint = OutPoint {
        txid: Txid::from_str(s(&p["funding_tx_id"])).unwrap(),
        vout: u(&p["funding_output_index"]) as u32,
    };
    let mut counts = CCounts::default();
    for case in d["appendix_c_cases"].as_array().unwrap() {
        let name = s(&case["name"]);
        let params = CommitmentParams {
            funding_outpoint,
            funding_value: Amount::from_sat(u(&p["funding_amount_satoshi"])),
            commitment_number: u(&p["commitment_number"]),
            obscuring_factor: factor,
            to_self_delay: u(&p["local_delay"]) as u16,
            dust_limit: Amount::from_sat(u(&p["local_dust_limit_satoshi"])),
            feerate_per_kw: u(&case["local_feerate_per_kw"]) as u32,
            broadcaster_is_funder: true,
        };
        let htlcs: Vec<CommitmentHtlc> = case["htlcs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| CommitmentHtlc {
                offered: match s(&h["direction"]) {
                    "local->remote" => true,
                    "remote->local" => false,
                    other => panic!("direction {other}"),
                },
                amount_msat: u(&h["amount_msat"]),
                cltv_expiry: u(&h["expiry"]) as u32,
                payment_hash: sha256::Hash::hash(&bytes(&h["payment_preimage"])),
            })
            .collect();
        let ctx = build_commitment_tx(
            &params,
            &keys,
            u(&case["to_local_msat"]),
            u(&case["to_remote_msat"]),
            &htlcs,
        )
        .unwrap();
        if let Some(fee) = case["actual_fee_sat"].as_u64() {
            let out_sum: u64 = ctx.tx.output.iter().map(|o| o.value.to_sat()).sum();
            assert_eq!(
                params.funding_value.to_sat() - out_sum,
                fee,
                "{name}: actual fee"
            );
        }
        assert_eq!(
            commitment_number_of(&ctx.tx, factor),
            Some(params.commitment_number)
        );
        let remote_sig = ctx
            .sign(
                &secp,
                &params,
                &local_funding,
                &remote_funding,
                &remote_funding_secret,
            )
            .unwrap();
        let local_sig = ctx
            .sign(
                &secp,
                &params,
                &local_funding,
                &remote_funding,
                &local_funding_secret,
            )
            .unwrap();
        assert_eq!(
            der(&remote_sig),
            s(&case["remote_signature"]),
            "{name}: remote sig"
        );
        counts.remote_sigs += 1;
        assert_eq!(
            der(&local_sig),
            s(&case["local_signature"]),
            "{name}: local sig"
        );
        let signed = ctx.signed_tx(&local_funding, &local_sig, &remote_funding, &remote_sig);
        assert_eq!(
            serialize_hex(&signed),
            s(&case["commit_tx_hex"]),
            "{name}: commit tx"
        );
        counts.commitments += 1;

        // HTLC transactions, in commitment output order.
        let expected = case["htlc_txs"].as_array().unwrap();
        assert_eq!(
            ctx.htlcs.len(),
            expected.len(),
            "{name}: untrimmed HTLC count"
        );
        assert_eq!(u(&case["num_htlcs"]) as usize, expected.len());
        let unsigned = ctx.htlc_txs(&params, &keys, &htlcs).unwrap();
        for ((out, mut tx), want) in ctx.htlcs.iter().zip(unsigned).zip(expected) {
            let h = &htlcs[out.htlc_index];
            assert_eq!(
                u64::from(out.vout),
                u(&want["commitment_output_index"]),
                "{name}"
            );
            assert_eq!(
                case["htlcs"][out.htlc_index]["index"].as_u64(),
                want["htlc_index"].as_u64(),
                "{name}: HTLC of output {}",
                out.vout
            );
            assert_eq!(
                s(&want["type"]),
                if h.offered {
                    "htlc-timeout"
                } else {
                    "htlc-success"
                }
            );
            let rsig = sign_second_stage(
                &secp,
                &tx,
                &out.witness_script,
                out.amount,
                &remote_htlc_secret,
            )
            .unwrap();
            let lsig = sign_second_stage(
                &secp,
                &tx,
                &out.witness_script,
                out.amount,
                &local_htlc_secret,
            )
            .unwrap();
            assert_eq!(
                der(&rsig),
                s(&want["remote_htlc_signature"]),
                "{name}: remote htlc sig"
            );
            assert_eq!(
                der(&lsig),
                s(&want["local_htlc_signature"]),
                "{name}: local htlc sig"
            );
            let preimage = b32(&case["htlcs"][out.htlc_index]["payment_preimage"]);
            finalize_second_stage(
                &mut tx,
                &out.witness_script,
                &rsig,
                &lsig,
                if h.offered { None } else { Some(&preimage) },
            )
            .unwrap();
            assert_eq!(serialize_hex(&tx), s(&want["tx_hex"]), "{name}: HTLC tx");
            counts.htlc_txs += 1;
        }
    }
    counts
}

/// Runs every Appendix B, C, D and E vector and asserts how many ran.
#[test]
fn all_bolt3_vectors_pass_and_none_are_skipped() {
    let e = appendix_e();
    let dg = appendix_d_generation();
    let ds = appendix_d_storage();
    let b = appendix_b();
    let c = appendix_c();
    assert_eq!(e, 4, "Appendix E cases");
    assert_eq!(dg, 5, "Appendix D generation cases");
    assert_eq!(ds, 9, "Appendix D storage cases");
    assert_eq!(b, 1, "Appendix B funding tx");
    assert_eq!(
        c,
        CCounts {
            commitments: 16,
            remote_sigs: 16,
            htlc_txs: 33
        },
        "Appendix C"
    );
    let total = e + dg + ds + b + c.commitments + c.remote_sigs + c.htlc_txs;
    assert_eq!(total, 84);
}
