//! Coins chosen by a built funding transaction are locked until it is applied or cancelled
//! ([harden] defect 4): five fundings built in a row (five concurrent channel opens) never
//! share a coin, all five are accepted by the chain, and a cancelled build frees its coins.
//! Deterministic: fixed keys, fixed entropy, a fake clock.

mod common;

use std::collections::HashSet;

use bitcoin::{Amount, OutPoint, ScriptBuf, WScriptHash};
use common::Harness;
use fulmen_wallet::WalletError;

fn funding_spk(n: u8) -> ScriptBuf {
    ScriptBuf::new_p2wsh(&WScriptHash::from_raw_hash(
        bitcoin::hashes::Hash::from_byte_array([n; 32]),
    ))
}

#[test]
fn five_concurrent_fundings_use_disjoint_coins_and_all_confirm() {
    let mut h = Harness::new();
    for _ in 0..5 {
        h.receive(Amount::from_sat(2_000_000));
    }
    h.mine(1, None);
    let mut seen: HashSet<OutPoint> = HashSet::new();
    let mut built = Vec::new();
    for n in 0..5u8 {
        // Same entropy each time: without locks the same coin would be chosen again.
        let b = h
            .wallet
            .fund_script(funding_spk(n), Amount::from_sat(1_000_000), 2, [9; 32])
            .unwrap();
        for i in &b.tx.input {
            assert!(seen.insert(i.previous_output), "coin chosen twice");
        }
        built.push(b);
    }
    // Every coin is promised: a sixth build finds nothing to spend.
    let sixth = h
        .wallet
        .fund_script(funding_spk(6), Amount::from_sat(1_000_000), 2, [9; 32]);
    assert!(
        matches!(sixth, Err(WalletError::InsufficientFunds { .. })),
        "{sixth:?}"
    );
    for b in &built {
        h.chain.submit_transaction(b.tx.clone()).unwrap();
        h.wallet.apply_mempool_txs([b.tx.clone()], 0);
    }
    h.mine(1, None);
    for b in &built {
        assert!(h
            .chain
            .utxo(&OutPoint::new(b.txid, b.output_index))
            .is_some());
    }
}

#[test]
fn a_cancelled_funding_frees_its_coins() {
    let mut h = Harness::new();
    h.receive(Amount::from_sat(2_000_000));
    h.mine(1, None);
    let a = h
        .wallet
        .fund_script(funding_spk(1), Amount::from_sat(1_000_000), 2, [9; 32])
        .unwrap();
    assert!(h
        .wallet
        .fund_script(funding_spk(2), Amount::from_sat(1_000_000), 2, [9; 32])
        .is_err());
    h.wallet.cancel_tx(&a.tx);
    let b = h
        .wallet
        .fund_script(funding_spk(2), Amount::from_sat(1_000_000), 2, [9; 32])
        .unwrap();
    assert_eq!(a.tx.input[0].previous_output, b.tx.input[0].previous_output);
}
