//! Proof on the simulated chain (`fulmen-chain`, libbitcoinconsensus per input) that every
//! BOLT 3 transaction `fulmen-channel` / `fulmen-htlc` build is valid and every spending path
//! works exactly as the scripts say: funding, commitment, cooperative close; `to_local` by
//! delay and by revocation; offered HTLC by timeout (HTLC-timeout), by preimage and by
//! revocation; received HTLC by preimage (HTLC-success), by timeout and by revocation;
//! second-stage outputs by delay and by revocation; `to_remote` by the static remote key.
//! Each timelocked path is refused one block early and accepted exactly on time; wrong keys
//! and wrong preimages are refused.
//!
//! Deterministic: fixed keys, the test mines every block. Never skips a path silently.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Address, Amount, CompressedPublicKey, Network, OutPoint, ScriptBuf, Transaction};
use fulmen_chain::{Chain, ChainParams, TxRejection};
use fulmen_channel::closing::{build_closing_tx, sign_closing, signed_closing_tx, ClosingOutput};
use fulmen_channel::commitment::{
    build_commitment_tx, obscuring_factor, CommitmentHtlc, CommitmentParams, CommitmentTx,
};
use fulmen_channel::funding::funding_script;
use fulmen_channel::justice::{
    build_justice_tx, commitment_justice_inputs, htlc_justice_inputs, second_stage_justice_input,
};
use fulmen_channel::keys::{
    derive_privkey, derive_revocation_privkey, per_commitment_point, ChannelBasepoints,
    CommitmentKeys,
};
use fulmen_channel::shachain::{generate_from_seed, MAX_INDEX};
use fulmen_channel::sweep::{build_sweep_tx, SpendPath, SweepInput};
use fulmen_htlc::second_stage::{
    build_second_stage_tx, finalize_second_stage, sign_second_stage, SecondStageParams,
};

const FEERATE: u32 = 1000; // sat per 1000 weight: 4 sat/vB, above the 1 sat/vB relay floor
const TO_SELF_DELAY: u16 = 20;
const FUNDING_SAT: u64 = 1_000_000;
const OFFERED_SAT: u64 = 50_000;
const RECEIVED_SAT: u64 = 60_000;
const OFFERED_PREIMAGE: [u8; 32] = [0x11; 32];
const RECEIVED_PREIMAGE: [u8; 32] = [0x22; 32];

fn key(tag: u8) -> SecretKey {
    SecretKey::from_slice(&[tag; 32]).unwrap()
}

/// One side's secrets and basepoints.
struct Side {
    funding: SecretKey,
    revocation_base: SecretKey,
    payment_base: SecretKey,
    delayed_base: SecretKey,
    htlc_base: SecretKey,
    seed: [u8; 32],
}

impl Side {
    fn new(tag: u8) -> Side {
        Side {
            funding: key(tag),
            revocation_base: key(tag + 1),
            payment_base: key(tag + 2),
            delayed_base: key(tag + 3),
            htlc_base: key(tag + 4),
            seed: [tag + 5; 32],
        }
    }
    fn basepoints(&self, secp: &Secp256k1<bitcoin::secp256k1::All>) -> ChannelBasepoints {
        let p = |k: &SecretKey| PublicKey::from_secret_key(secp, k);
        ChannelBasepoints {
            funding_pubkey: p(&self.funding),
            revocation_basepoint: p(&self.revocation_base),
            payment_basepoint: p(&self.payment_base),
            delayed_payment_basepoint: p(&self.delayed_base),
            htlc_basepoint: p(&self.htlc_base),
        }
    }
    fn per_commitment_secret(&self, commitment_number: u64) -> [u8; 32] {
        generate_from_seed(&self.seed, MAX_INDEX - commitment_number).unwrap()
    }
}

/// A chain with a confirmed channel funding output and A's signed commitment #n ready to
/// broadcast. A (the funder) offered one HTLC to B and received one from B.
struct World {
    secp: Secp256k1<bitcoin::secp256k1::All>,
    chain: Chain,
    time: u32,
    a: Side,
    b: Side,
    funding_outpoint: OutPoint,
    params: CommitmentParams,
    keys: CommitmentKeys,
    htlcs: Vec<CommitmentHtlc>,
    commitment: CommitmentTx,
    commitment_signed: Transaction,
    pcs: [u8; 32],
    offered_cltv: u32,
    received_cltv: u32,
}

fn p2wpkh(secp: &Secp256k1<bitcoin::secp256k1::All>, k: &SecretKey) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&CompressedPublicKey(PublicKey::from_secret_key(secp, k)).wpubkey_hash())
}

impl World {
    fn new(commitment_number: u64) -> World {
        let secp = Secp256k1::new();
        let mut chain = Chain::new(ChainParams::default(), key(0x01));
        let mut time = 1_700_000_000;
        chain.mine(101, None, time);
        time += 101 * 600;
        let a = Side::new(0x10);
        let b = Side::new(0x30);
        let abp = a.basepoints(&secp);
        let bbp = b.basepoints(&secp);

        let fscript = funding_script(&abp.funding_pubkey, &bbp.funding_pubkey);
        let addr = Address::p2wsh(&fscript, Network::Regtest);
        let funding_txid = chain.fund(&addr, Amount::from_sat(FUNDING_SAT)).unwrap();
        chain.mine(1, None, time);
        time += 600;
        let ftx = chain.transaction(&funding_txid).unwrap();
        assert_eq!(ftx.confirmations, 1);
        let vout = ftx
            .tx
            .output
            .iter()
            .position(|o| o.script_pubkey == fscript.to_p2wsh())
            .unwrap() as u32;
        let funding_outpoint = OutPoint {
            txid: funding_txid,
            vout,
        };

        let height = chain.height();
        let offered_cltv = height + 30;
        let received_cltv = height + 40;
        let htlcs = vec![
            CommitmentHtlc {
                offered: true,
                amount_msat: OFFERED_SAT * 1000,
                cltv_expiry: offered_cltv,
                payment_hash: sha256::Hash::hash(&OFFERED_PREIMAGE),
            },
            CommitmentHtlc {
                offered: false,
                amount_msat: RECEIVED_SAT * 1000,
                cltv_expiry: received_cltv,
                payment_hash: sha256::Hash::hash(&RECEIVED_PREIMAGE),
            },
        ];
        let pcs = a.per_commitment_secret(commitment_number);
        let point = per_commitment_point(&secp, &pcs).unwrap();
        let keys = CommitmentKeys::derive(&secp, &point, &abp, &bbp).unwrap();
        let params = CommitmentParams {
            funding_outpoint,
            funding_value: Amount::from_sat(FUNDING_SAT),
            commitment_number,
            obscuring_factor: obscuring_factor(&abp.payment_basepoint, &bbp.payment_basepoint),
            to_self_delay: TO_SELF_DELAY,
            dust_limit: Amount::from_sat(546),
            feerate_per_kw: FEERATE,
            broadcaster_is_funder: true,
        };
        let to_b_msat = 300_000_000;
        let to_a_msat = FUNDING_SAT * 1000 - to_b_msat - (OFFERED_SAT + RECEIVED_SAT) * 1000;
        let commitment = build_commitment_tx(&params, &keys, to_a_msat, to_b_msat, &htlcs).unwrap();
        assert_eq!(commitment.htlcs.len(), 2);
        assert!(commitment.to_local.is_some() && commitment.to_remote.is_some());
        let sa = commitment
            .sign(
                &secp,
                &params,
                &abp.funding_pubkey,
                &bbp.funding_pubkey,
                &a.funding,
            )
            .unwrap();
        let sb = commitment
            .sign(
                &secp,
                &params,
                &abp.funding_pubkey,
                &bbp.funding_pubkey,
                &b.funding,
            )
            .unwrap();
        let commitment_signed =
            commitment.signed_tx(&abp.funding_pubkey, &sa, &bbp.funding_pubkey, &sb);
        World {
            secp,
            chain,
            time,
            a,
            b,
            funding_outpoint,
            params,
            keys,
            htlcs,
            commitment,
            commitment_signed,
            pcs,
            offered_cltv,
            received_cltv,
        }
    }

    fn mine(&mut self, n: u32) {
        self.chain.mine(n, None, self.time);
        self.time += 600 * n;
    }

    /// Mine until the tip is at `height`.
    fn mine_to(&mut self, height: u32) {
        let h = self.chain.height();
        assert!(height >= h, "cannot mine back to {height} from {h}");
        if height > h {
            self.mine(height - h);
        }
    }

    fn submit(&mut self, tx: &Transaction) {
        let txid = self
            .chain
            .submit_transaction(tx.clone())
            .unwrap_or_else(|e| panic!("tx {} refused: {e}", tx.compute_txid()));
        assert_eq!(txid, tx.compute_txid());
    }

    /// Submit, expecting refusal by rule `code` ("locktime", "bip68_immature", "script").
    fn refuse(&mut self, tx: &Transaction, code: &str) {
        match self.chain.submit_transaction(tx.clone()) {
            Ok(txid) => panic!("tx {txid} accepted, expected refusal by {code}"),
            Err(e) => assert_eq!(rule(&e), code, "refused for another reason: {e}"),
        }
    }

    /// Broadcast A's commitment and confirm it; returns its confirmation height.
    fn confirm_commitment(&mut self) -> u32 {
        let tx = self.commitment_signed.clone();
        self.submit(&tx);
        self.mine(1);
        self.chain.height()
    }

    fn a_delayed_secret(&self) -> SecretKey {
        derive_privkey(
            &self.secp,
            &self.a.delayed_base,
            &self.keys.per_commitment_point,
        )
        .unwrap()
    }
    fn a_htlc_secret(&self) -> SecretKey {
        derive_privkey(
            &self.secp,
            &self.a.htlc_base,
            &self.keys.per_commitment_point,
        )
        .unwrap()
    }
    fn b_htlc_secret(&self) -> SecretKey {
        derive_privkey(
            &self.secp,
            &self.b.htlc_base,
            &self.keys.per_commitment_point,
        )
        .unwrap()
    }
    fn revocation_secret(&self) -> SecretKey {
        derive_revocation_privkey(
            &self.secp,
            &self.b.revocation_base,
            &SecretKey::from_slice(&self.pcs).unwrap(),
        )
        .unwrap()
    }
    fn dest_a(&self) -> ScriptBuf {
        p2wpkh(&self.secp, &key(0x70))
    }
    fn dest_b(&self) -> ScriptBuf {
        p2wpkh(&self.secp, &key(0x71))
    }

    fn to_local_input(&self, path: SpendPath, k: SecretKey) -> SweepInput {
        let (vout, ws) = self.commitment.to_local.clone().unwrap();
        SweepInput {
            outpoint: OutPoint {
                txid: self.commitment.txid(),
                vout,
            },
            value: self.commitment.tx.output[vout as usize].value,
            witness_script: ws,
            path,
            key: k,
        }
    }

    /// The commitment's HTLC output for HTLC `i` (0 = offered by A, 1 = received by A).
    fn htlc_input(&self, i: usize, path: SpendPath, k: SecretKey) -> SweepInput {
        let o = self
            .commitment
            .htlcs
            .iter()
            .find(|o| o.htlc_index == i)
            .unwrap();
        SweepInput {
            outpoint: OutPoint {
                txid: self.commitment.txid(),
                vout: o.vout,
            },
            value: o.amount,
            witness_script: o.witness_script.clone(),
            path,
            key: k,
        }
    }

    /// A's signed HTLC-timeout (i = 0) or HTLC-success (i = 1) transaction.
    fn second_stage(
        &self,
        i: usize,
        preimage: Option<&[u8; 32]>,
        b_key: &SecretKey,
    ) -> Transaction {
        let o = self
            .commitment
            .htlcs
            .iter()
            .find(|o| o.htlc_index == i)
            .unwrap();
        let p: SecondStageParams = self
            .commitment
            .second_stage_params(&self.params, &self.keys, &self.htlcs, o)
            .unwrap();
        let mut tx = build_second_stage_tx(&p).unwrap();
        let bs = sign_second_stage(&self.secp, &tx, &o.witness_script, o.amount, b_key).unwrap();
        let as_ = sign_second_stage(
            &self.secp,
            &tx,
            &o.witness_script,
            o.amount,
            &self.a_htlc_secret(),
        )
        .unwrap();
        finalize_second_stage(&mut tx, &o.witness_script, &bs, &as_, preimage).unwrap();
        tx
    }

    /// Sweep input for the output of a second-stage tx.
    fn second_stage_output(&self, tx: &Transaction, path: SpendPath, k: SecretKey) -> SweepInput {
        let ws = fulmen_htlc::scripts::revocable_delayed_script(
            &self.keys.revocation_key,
            TO_SELF_DELAY,
            &self.keys.broadcaster_delayed_key,
        );
        assert_eq!(tx.output[0].script_pubkey, ws.to_p2wsh());
        SweepInput {
            outpoint: OutPoint {
                txid: tx.compute_txid(),
                vout: 0,
            },
            value: tx.output[0].value,
            witness_script: ws,
            path,
            key: k,
        }
    }

    fn sweep(&self, inputs: &[SweepInput], dest: ScriptBuf) -> Transaction {
        let tx = build_sweep_tx(&self.secp, inputs, dest, FEERATE).unwrap();
        // The fee is at least feerate × actual weight.
        let ins: u64 = inputs.iter().map(|i| i.value.to_sat()).sum();
        let fee = ins - tx.output[0].value.to_sat();
        assert!(fee >= u64::from(FEERATE) * tx.weight().to_wu() / 1000);
        tx
    }
}

fn rule(e: &TxRejection) -> &'static str {
    e.code()
}

#[test]
fn cooperative_close_confirms() {
    let mut w = World::new(5);
    let abp = w.a.basepoints(&w.secp);
    let bbp = w.b.basepoints(&w.secp);
    let a_out = ClosingOutput {
        script_pubkey: w.dest_a(),
        amount: Amount::from_sat(640_000),
        is_funder: true,
    };
    let b_out = ClosingOutput {
        script_pubkey: w.dest_b(),
        amount: Amount::from_sat(360_000),
        is_funder: false,
    };
    let fee = Amount::from_sat(1_000);
    let tx = build_closing_tx(
        w.funding_outpoint,
        Amount::from_sat(FUNDING_SAT),
        &a_out,
        &b_out,
        fee,
        Amount::from_sat(546),
    )
    .unwrap();
    let sa = sign_closing(
        &w.secp,
        &tx,
        &abp.funding_pubkey,
        &bbp.funding_pubkey,
        Amount::from_sat(FUNDING_SAT),
        &w.a.funding,
    )
    .unwrap();
    let sb = sign_closing(
        &w.secp,
        &tx,
        &abp.funding_pubkey,
        &bbp.funding_pubkey,
        Amount::from_sat(FUNDING_SAT),
        &w.b.funding,
    )
    .unwrap();
    // A signature by a wrong key is refused by script verification.
    let wrong = sign_closing(
        &w.secp,
        &tx,
        &abp.funding_pubkey,
        &bbp.funding_pubkey,
        Amount::from_sat(FUNDING_SAT),
        &key(0x66),
    )
    .unwrap();
    let bad = signed_closing_tx(&tx, &abp.funding_pubkey, &sa, &bbp.funding_pubkey, &wrong);
    w.refuse(&bad, "script");
    let signed = signed_closing_tx(&tx, &abp.funding_pubkey, &sa, &bbp.funding_pubkey, &sb);
    w.submit(&signed);
    w.mine(1);
    let st = w.chain.transaction(&signed.compute_txid()).unwrap();
    assert_eq!(st.confirmations, 1);
    // Funder paid the fee, smaller output first (BIP69).
    assert_eq!(signed.output[0].value, Amount::from_sat(360_000));
    assert_eq!(signed.output[1].value, Amount::from_sat(639_000));
}

#[test]
fn to_local_by_delay_refused_one_block_early() {
    let mut w = World::new(7);
    // A commitment signed by a wrong funding key is refused.
    let abp = w.a.basepoints(&w.secp);
    let bbp = w.b.basepoints(&w.secp);
    let sign = |k: &SecretKey| {
        w.commitment
            .sign(
                &w.secp,
                &w.params,
                &abp.funding_pubkey,
                &bbp.funding_pubkey,
                k,
            )
            .unwrap()
    };
    let (sa, wrong) = (sign(&w.a.funding), sign(&key(0x66)));
    let bad = w
        .commitment
        .signed_tx(&abp.funding_pubkey, &sa, &bbp.funding_pubkey, &wrong);
    w.refuse(&bad, "script");

    let hc = w.confirm_commitment();
    let sweep = w.sweep(
        &[w.to_local_input(
            SpendPath::Delayed {
                to_self_delay: TO_SELF_DELAY,
            },
            w.a_delayed_secret(),
        )],
        w.dest_a(),
    );
    // Valid in the block at height hc + delay, i.e. once the tip is hc + delay - 1.
    w.mine_to(hc + u32::from(TO_SELF_DELAY) - 2);
    w.refuse(&sweep, "bip68_immature");
    // Wrong key: refused by the script even when the delay has passed.
    w.mine(1);
    let wrong = w.sweep(
        &[w.to_local_input(
            SpendPath::Delayed {
                to_self_delay: TO_SELF_DELAY,
            },
            w.a_htlc_secret(),
        )],
        w.dest_a(),
    );
    w.refuse(&wrong, "script");
    w.submit(&sweep);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&sweep.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
}

#[test]
fn offered_htlc_by_timeout_then_second_stage_by_delay() {
    let mut w = World::new(8);
    let hc = w.confirm_commitment();
    assert!(hc < w.offered_cltv);
    // HTLC-timeout with a wrong countersignatory signature is refused.
    let bad = w.second_stage(0, None, &key(0x66));
    let tx = w.second_stage(0, None, &w.b_htlc_secret());
    assert_eq!(tx.lock_time.to_consensus_u32(), w.offered_cltv);
    // nLockTime = cltv: valid in block cltv + 1, i.e. once the tip is cltv.
    w.mine_to(w.offered_cltv - 1);
    w.refuse(&tx, "locktime");
    w.mine(1);
    w.refuse(&bad, "script");
    w.submit(&tx);
    w.mine(1);
    let hs = w.chain.height();
    // Second-stage output by the delayed key after to_self_delay.
    let sweep = w.sweep(
        &[w.second_stage_output(
            &tx,
            SpendPath::Delayed {
                to_self_delay: TO_SELF_DELAY,
            },
            w.a_delayed_secret(),
        )],
        w.dest_a(),
    );
    w.mine_to(hs + u32::from(TO_SELF_DELAY) - 2);
    w.refuse(&sweep, "bip68_immature");
    w.mine(1);
    w.submit(&sweep);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&sweep.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
}

#[test]
fn received_htlc_by_preimage_then_second_stage_by_delay() {
    let mut w = World::new(9);
    w.confirm_commitment();
    // HTLC-success with a wrong preimage, or a wrong countersignatory key, is refused.
    let wrong_preimage = w.second_stage(1, Some(&[0x99; 32]), &w.b_htlc_secret());
    w.refuse(&wrong_preimage, "script");
    let wrong_key = w.second_stage(1, Some(&RECEIVED_PREIMAGE), &key(0x66));
    w.refuse(&wrong_key, "script");
    let tx = w.second_stage(1, Some(&RECEIVED_PREIMAGE), &w.b_htlc_secret());
    assert_eq!(tx.lock_time.to_consensus_u32(), 0);
    w.submit(&tx);
    w.mine(1);
    let hs = w.chain.height();
    let sweep = w.sweep(
        &[w.second_stage_output(
            &tx,
            SpendPath::Delayed {
                to_self_delay: TO_SELF_DELAY,
            },
            w.a_delayed_secret(),
        )],
        w.dest_a(),
    );
    w.mine_to(hs + u32::from(TO_SELF_DELAY) - 2);
    w.refuse(&sweep, "bip68_immature");
    w.mine(1);
    w.submit(&sweep);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&sweep.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
}

#[test]
fn offered_htlc_by_preimage_to_countersignatory() {
    let mut w = World::new(10);
    w.confirm_commitment();
    let wrong_preimage = w.sweep(
        &[w.htlc_input(
            0,
            SpendPath::OfferedHtlcPreimage {
                preimage: [0x99; 32],
            },
            w.b_htlc_secret(),
        )],
        w.dest_b(),
    );
    w.refuse(&wrong_preimage, "script");
    let wrong_key = w.sweep(
        &[w.htlc_input(
            0,
            SpendPath::OfferedHtlcPreimage {
                preimage: OFFERED_PREIMAGE,
            },
            w.a_htlc_secret(),
        )],
        w.dest_b(),
    );
    w.refuse(&wrong_key, "script");
    let claim = w.sweep(
        &[w.htlc_input(
            0,
            SpendPath::OfferedHtlcPreimage {
                preimage: OFFERED_PREIMAGE,
            },
            w.b_htlc_secret(),
        )],
        w.dest_b(),
    );
    w.submit(&claim);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&claim.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
}

#[test]
fn received_htlc_by_timeout_to_countersignatory() {
    let mut w = World::new(11);
    w.confirm_commitment();
    let path = SpendPath::ReceivedHtlcTimeout {
        cltv_expiry: w.received_cltv,
    };
    let claim = w.sweep(&[w.htlc_input(1, path, w.b_htlc_secret())], w.dest_b());
    assert_eq!(claim.lock_time.to_consensus_u32(), w.received_cltv);
    let wrong_key = w.sweep(&[w.htlc_input(1, path, w.a_htlc_secret())], w.dest_b());
    w.mine_to(w.received_cltv - 1);
    w.refuse(&claim, "locktime");
    w.mine(1);
    w.refuse(&wrong_key, "script");
    // A locktime below the script's CLTV is refused by OP_CHECKLOCKTIMEVERIFY itself.
    let early = w.sweep(
        &[w.htlc_input(
            1,
            SpendPath::ReceivedHtlcTimeout {
                cltv_expiry: w.received_cltv - 1,
            },
            w.b_htlc_secret(),
        )],
        w.dest_b(),
    );
    w.refuse(&early, "script");
    w.submit(&claim);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&claim.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
}

#[test]
fn revoked_commitment_every_output_by_revocation() {
    let mut w = World::new(12);
    w.confirm_commitment();
    let rev = w.revocation_secret();
    // A wrong revocation secret (from the next, unrevealed per-commitment secret) is refused.
    let wrong_rev = derive_revocation_privkey(
        &w.secp,
        &w.b.revocation_base,
        &SecretKey::from_slice(&w.a.per_commitment_secret(13)).unwrap(),
    )
    .unwrap();
    let bad_inputs = commitment_justice_inputs(&w.commitment, &w.keys, &wrong_rev);
    let bad = build_justice_tx(&w.secp, &bad_inputs, w.dest_b(), FEERATE).unwrap();
    w.refuse(&bad, "script");
    // Each revocable output alone, then all together.
    let inputs = commitment_justice_inputs(&w.commitment, &w.keys, &rev);
    assert_eq!(inputs.len(), 3, "to_local + 2 HTLC outputs");
    // The same inputs found from the published transaction alone (+ the kept HTLC list).
    let mut found =
        vec![
            second_stage_justice_input(&w.commitment_signed, TO_SELF_DELAY, &w.keys, &rev).unwrap(),
        ];
    found.extend(htlc_justice_inputs(
        &w.commitment_signed,
        &w.keys,
        &w.htlcs,
        &rev,
    ));
    let key_of = |i: &SweepInput| i.outpoint;
    let mut a: Vec<_> = inputs.iter().map(key_of).collect();
    let mut b: Vec<_> = found.iter().map(key_of).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for one in &inputs {
        let tx = build_justice_tx(&w.secp, std::slice::from_ref(one), w.dest_b(), FEERATE).unwrap();
        // Valid at once (no delay for the revocation path): accepted, then removed by
        // spending all together in a fresh world below.
        let mut probe = World::new(12);
        probe.confirm_commitment();
        probe.submit(&tx);
        probe.mine(1);
        assert_eq!(
            probe
                .chain
                .transaction(&tx.compute_txid())
                .unwrap()
                .confirmations,
            1
        );
    }
    let justice = build_justice_tx(&w.secp, &inputs, w.dest_b(), FEERATE).unwrap();
    w.submit(&justice);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&justice.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
    let total: u64 = justice.output.iter().map(|o| o.value.to_sat()).sum();
    assert!(total > 590_000 + OFFERED_SAT + RECEIVED_SAT - 10_000);
}

#[test]
fn revoked_second_stage_outputs_by_revocation() {
    let mut w = World::new(14);
    w.confirm_commitment();
    // The cheater publishes HTLC-success at once and HTLC-timeout after the expiry.
    let success = w.second_stage(1, Some(&RECEIVED_PREIMAGE), &w.b_htlc_secret());
    w.submit(&success);
    w.mine_to(w.offered_cltv);
    let timeout = w.second_stage(0, None, &w.b_htlc_secret());
    w.submit(&timeout);
    w.mine(1);
    let rev = w.revocation_secret();
    let mut inputs = vec![w.to_local_input(SpendPath::RevokedDelayed, rev)];
    for tx in [&success, &timeout] {
        inputs.push(second_stage_justice_input(tx, TO_SELF_DELAY, &w.keys, &rev).unwrap());
    }
    // With the delayed key instead of the revocation key on the revocation branch: refused.
    let wrong =
        vec![w.second_stage_output(&success, SpendPath::RevokedDelayed, w.a_delayed_secret())];
    let bad = build_justice_tx(&w.secp, &wrong, w.dest_b(), FEERATE).unwrap();
    w.refuse(&bad, "script");
    let justice = build_justice_tx(&w.secp, &inputs, w.dest_b(), FEERATE).unwrap();
    w.submit(&justice);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&justice.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
}

#[test]
fn to_remote_swept_at_once_by_static_remote_key() {
    let mut w = World::new(15);
    w.confirm_commitment();
    let vout = w.commitment.to_remote.unwrap();
    let (txid, value) = (
        w.commitment.txid(),
        w.commitment.tx.output[vout as usize].value,
    );
    let input = |k: SecretKey| SweepInput {
        outpoint: OutPoint { txid, vout },
        value,
        witness_script: ScriptBuf::new(),
        path: SpendPath::StaticRemote,
        key: k,
    };
    // B's payment basepoint secret is the key (option_static_remotekey); any other is refused.
    let wrong = w.sweep(&[input(w.b.htlc_base)], w.dest_b());
    w.refuse(&wrong, "script");
    let sweep = w.sweep(&[input(w.b.payment_base)], w.dest_b());
    w.submit(&sweep);
    w.mine(1);
    assert_eq!(
        w.chain
            .transaction(&sweep.compute_txid())
            .unwrap()
            .confirmations,
        1
    );
}

/// [harden] 8: the `to_self_delay` of `to_local` is enforced by the script's
/// `OP_CHECKSEQUENCEVERIFY`, not only by the chain's BIP68 rule: a sweep whose nSequence is
/// delay − 1, submitted once the output is old enough for that, is refused by the script.
#[test]
fn to_local_with_a_shorter_sequence_is_refused_by_the_script() {
    let mut w = World::new(9);
    let hc = w.confirm_commitment();
    let short = w.sweep(
        &[w.to_local_input(
            SpendPath::Delayed {
                to_self_delay: TO_SELF_DELAY - 1,
            },
            w.a_delayed_secret(),
        )],
        w.dest_a(),
    );
    // Old enough for delay − 1 (BIP68 is satisfied), so only the script can refuse it.
    w.mine_to(hc + u32::from(TO_SELF_DELAY) - 2);
    w.refuse(&short, "script");
    w.mine(10);
    w.refuse(&short, "script");
}

/// [harden] 8: the CLTV of an offered HTLC is enforced by the counter-signed HTLC-timeout's
/// nLockTime: lowering it breaks the signatures, even once the lowered locktime is final.
#[test]
fn htlc_timeout_with_a_lowered_locktime_breaks_the_signatures() {
    let mut w = World::new(10);
    w.confirm_commitment();
    let mut tx = w.second_stage(0, None, &w.b_htlc_secret());
    tx.lock_time = bitcoin::absolute::LockTime::from_consensus(w.offered_cltv - 1);
    // Final by its lowered locktime in the next block, so only the signatures refuse it.
    w.mine_to(w.offered_cltv - 1);
    w.refuse(&tx, "script");
}
