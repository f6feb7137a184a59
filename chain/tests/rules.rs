//! One test per chain rule, accepted and rejected: scripts (libbitcoinconsensus), CSV, CLTV,
//! double spends, overspend, coinbase maturity, dust, fee, missing inputs, malformed txs.

mod common;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Txid, Witness};
use common::*;
use fulmen_chain::{Chain, TxRejection};

const BTC50: u64 = 5_000_000_000;

/// Chain at height 100: block 1's coinbase is exactly mature for the next block.
fn setup() -> (Chain, (OutPoint, bitcoin::TxOut)) {
    let c = chain_with_blocks(100);
    let coin = coinbase_out(&c, 1);
    (c, coin)
}

/// Confirms an output of `value` paying `spk` (funded from coinbase 1); returns its outpoint.
fn confirm_output(
    c: &mut Chain,
    coin: (OutPoint, bitcoin::TxOut),
    value: u64,
    spk: &ScriptBuf,
) -> OutPoint {
    let tx = spend_faucet_coin(coin, vec![out(value, spk)]);
    let txid = c.submit_transaction(tx).unwrap();
    mine(c, 1);
    assert_eq!(c.transaction(&txid).unwrap().confirmations, 1);
    OutPoint::new(txid, 0)
}

#[test]
fn bad_witness_signature_is_refused_naming_the_input() {
    let (mut c, coin) = setup();
    // Signed by the wrong key: the witness pubkey does not match the program.
    let mut tx = unsigned(
        &[(coin.0, Sequence::MAX)],
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
        0,
    );
    sign_p2wpkh(&mut tx, 0, &key(2), coin.1.value);
    let err = c.submit_transaction(tx).unwrap_err();
    assert!(matches!(err, TxRejection::Script { input: 0, .. }), "{err}");
    assert_eq!(err.code(), "script");
    assert!(
        err.to_string()
            .starts_with("input 0: script verification failed"),
        "{err}"
    );
    // Right key, but the outputs changed after signing.
    let mut tx = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);
    tx.output[0].value = Amount::from_sat(BTC50 - 20_000);
    assert!(matches!(
        c.submit_transaction(tx),
        Err(TxRejection::Script { input: 0, .. })
    ));
    // Signed for the wrong amount (BIP143 commits to it).
    let mut tx = unsigned(
        &[(coin.0, Sequence::MAX)],
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
        0,
    );
    sign_p2wpkh(&mut tx, 0, &faucet_key(), Amount::from_sat(BTC50 - 1));
    assert!(matches!(
        c.submit_transaction(tx),
        Err(TxRejection::Script { input: 0, .. })
    ));
    // Empty witness.
    let tx = unsigned(
        &[(coin.0, Sequence::MAX)],
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
        0,
    );
    assert!(matches!(
        c.submit_transaction(tx),
        Err(TxRejection::Script { input: 0, .. })
    ));
    assert!(c.mempool().is_empty());
    // Correctly signed: accepted.
    let tx = spend_faucet_coin(coin, vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);
    assert!(c.submit_transaction(tx).is_ok());
}

#[test]
fn bad_signature_on_second_input_names_input_1() {
    let mut c = chain_with_blocks(101);
    let a = coinbase_out(&c, 1);
    let b = coinbase_out(&c, 2);
    let mut tx = unsigned(
        &[(a.0, Sequence::MAX), (b.0, Sequence::MAX)],
        vec![out(2 * BTC50 - 10_000, &p2wpkh(&key(2)))],
        0,
    );
    sign_p2wpkh(&mut tx, 0, &faucet_key(), a.1.value);
    sign_p2wpkh(&mut tx, 1, &key(9), b.1.value);
    let err = c.submit_transaction(tx.clone()).unwrap_err();
    assert!(matches!(err, TxRejection::Script { input: 1, .. }), "{err}");
    assert_eq!(err.input_index(), Some(1));
    sign_p2wpkh(&mut tx, 1, &faucet_key(), b.1.value);
    assert!(c.submit_transaction(tx).is_ok());
}

fn csv_spend(
    op: OutPoint,
    value: u64,
    ws: &ScriptBuf,
    sequence: u32,
    version: i32,
) -> bitcoin::Transaction {
    let mut tx = unsigned(
        &[(op, Sequence::from_consensus(sequence))],
        vec![out(value - 1_000, &p2wpkh(&key(6)))],
        0,
    );
    tx.version = bitcoin::transaction::Version(version);
    let sig = sign_p2wsh(&tx, 0, ws, Amount::from_sat(value), &key(5));
    tx.input[0].witness = Witness::from_slice(&[sig, ws.to_bytes()]);
    tx
}

#[test]
fn csv_locked_spend_one_block_early_and_exactly_on_time() {
    let (mut c, coin) = setup();
    let ws = csv_script(5, &key(5));
    let spk = ScriptBuf::new_p2wsh(&ws.wscript_hash());
    let value = BTC50 - 10_000;
    let op = confirm_output(&mut c, coin, value, &spk); // confirmed at height 101
    assert_eq!(c.utxo(&op).unwrap().height, 101);
    let tx = csv_spend(op, value, &ws, 5, 2);
    // Spendable from block 106; mine to tip 104 so the next block (105) is one early.
    mine(&mut c, 3);
    assert_eq!(c.height(), 104);
    let err = c.submit_transaction(tx.clone()).unwrap_err();
    assert_eq!(
        err,
        TxRejection::Bip68Immature {
            input: 0,
            blocks: 5,
            coin_height: 101,
            valid_from: 106,
            next_height: 105
        }
    );
    assert_eq!(err.code(), "bip68_immature");
    assert!(err.to_string().starts_with("input 0: BIP68"), "{err}");
    mine(&mut c, 1);
    // Script-level CSV: a sequence below the script's 5 fails OP_CSV even though BIP68 passes.
    let short = csv_spend(op, value, &ws, 4, 2);
    assert!(matches!(
        c.submit_transaction(short),
        Err(TxRejection::Script { input: 0, .. })
    ));
    // Version 1 disables BIP68 and makes OP_CSV fail.
    let v1 = csv_spend(op, value, &ws, 5, 1);
    assert!(matches!(
        c.submit_transaction(v1),
        Err(TxRejection::Script { input: 0, .. })
    ));
    // Exactly on time.
    let txid = c.submit_transaction(tx).unwrap();
    let blocks = mine(&mut c, 1);
    assert!(blocks[0].txdata.iter().any(|t| t.compute_txid() == txid));
}

#[test]
fn time_based_relative_lock_is_refused_clearly() {
    let (mut c, coin) = setup();
    let tx = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);
    let mut tx2 = tx.clone();
    tx2.input[0].sequence = Sequence::from_512_second_intervals(3);
    sign_p2wpkh(&mut tx2, 0, &faucet_key(), coin.1.value);
    let err = c.submit_transaction(tx2).unwrap_err();
    assert!(
        matches!(
            err,
            TxRejection::RelativeTimeLockUnsupported { input: 0, .. }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "bip68_time_based");
}

fn cltv_spend(
    op: OutPoint,
    value: u64,
    ws: &ScriptBuf,
    lock: u32,
    sequence: Sequence,
) -> bitcoin::Transaction {
    let mut tx = unsigned(
        &[(op, sequence)],
        vec![out(value - 1_000, &p2wpkh(&key(6)))],
        lock,
    );
    let sig = sign_p2wsh(&tx, 0, ws, Amount::from_sat(value), &key(5));
    tx.input[0].witness = Witness::from_slice(&[sig, ws.to_bytes()]);
    tx
}

#[test]
fn cltv_locked_spend_early_and_on_time() {
    let (mut c, coin) = setup();
    let ws = cltv_script(110, &key(5));
    let spk = ScriptBuf::new_p2wsh(&ws.wscript_hash());
    let value = BTC50 - 10_000;
    let op = confirm_output(&mut c, coin, value, &spk);
    let nonfinal = Sequence::ENABLE_LOCKTIME_NO_RBF;
    let tx = cltv_spend(op, value, &ws, 110, nonfinal);
    // Locktime 110 is valid in block 111; at tip 109 the next block is 110: one early.
    let n = 109 - c.height();
    mine(&mut c, n);
    let err = c.submit_transaction(tx.clone()).unwrap_err();
    assert_eq!(
        err,
        TxRejection::LockTimeNotReached {
            locktime: 110,
            next_height: 110,
            valid_from: 111
        }
    );
    assert_eq!(err.code(), "locktime");
    mine(&mut c, 1);
    // Script-level CLTV: nLockTime below the script's 110 fails, as does a final input.
    let low = cltv_spend(op, value, &ws, 109, nonfinal);
    assert!(matches!(
        c.submit_transaction(low),
        Err(TxRejection::Script { input: 0, .. })
    ));
    let fin = cltv_spend(op, value, &ws, 110, Sequence::MAX);
    assert!(matches!(
        c.submit_transaction(fin),
        Err(TxRejection::Script { input: 0, .. })
    ));
    // On time.
    assert!(c.submit_transaction(tx).is_ok());
    assert_eq!(mine(&mut c, 1)[0].txdata.len(), 2);
}

#[test]
fn absolute_locktime_without_script_and_time_based_refusal() {
    let (mut c, coin) = setup();
    let build = |lock: u32, seq: Sequence| {
        let mut tx = unsigned(
            &[(coin.0, seq)],
            vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
            lock,
        );
        sign_p2wpkh(&mut tx, 0, &faucet_key(), coin.1.value);
        tx
    };
    let nonfinal = Sequence::ENABLE_LOCKTIME_NO_RBF;
    let err = c
        .submit_transaction(build(4_000_000_000, nonfinal))
        .unwrap_err();
    assert_eq!(
        err,
        TxRejection::TimeLockUnsupported {
            locktime: 4_000_000_000
        }
    );
    // A time-based locktime below the median time past is final (BIP113), as BOLT 3
    // commitment transactions need (their locktime is 0x20xxxxxx).
    assert!(c.submit_transaction(build(0x2000_0001, nonfinal)).is_ok());
    let mut c = setup().0;
    assert_eq!(err.code(), "locktime_time_based");
    assert!(matches!(
        c.submit_transaction(build(101, nonfinal)),
        Err(TxRejection::LockTimeNotReached { .. })
    ));
    // All inputs final: the locktime is ignored, even a time-based one.
    assert!(c
        .submit_transaction(build(500_000_001, Sequence::MAX))
        .is_ok());
    let mut c2 = chain_with_blocks(100);
    assert!(c2.submit_transaction(build(100, nonfinal)).is_ok());
}

#[test]
fn double_spend_in_mempool_and_after_confirmation() {
    let (mut c, coin) = setup();
    let tx1 = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);
    let tx2 = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 20_000, &p2wpkh(&key(3)))]);
    let t1 = c.submit_transaction(tx1.clone()).unwrap();
    let spend = c.spender(&coin.0).unwrap();
    assert_eq!((spend.txid, spend.input_index, spend.height), (t1, 0, None));
    let err = c.submit_transaction(tx2.clone()).unwrap_err();
    assert_eq!(
        err,
        TxRejection::MempoolConflict {
            input: 0,
            outpoint: coin.0,
            by: t1
        }
    );
    assert_eq!(err.code(), "mempool_conflict");
    assert_eq!(
        c.submit_transaction(tx1.clone()).unwrap_err(),
        TxRejection::AlreadyKnown {
            txid: t1,
            confirmed: false
        }
    );
    mine(&mut c, 1);
    let spend = c.spender(&coin.0).unwrap();
    assert_eq!((spend.txid, spend.height), (t1, Some(101)));
    let err = c.submit_transaction(tx2).unwrap_err();
    assert_eq!(
        err,
        TxRejection::AlreadySpent {
            input: 0,
            outpoint: coin.0,
            by: t1,
            height: 101
        }
    );
    assert_eq!(err.code(), "already_spent");
    assert_eq!(
        c.submit_transaction(tx1).unwrap_err(),
        TxRejection::AlreadyKnown {
            txid: t1,
            confirmed: true
        }
    );
}

#[test]
fn overspend_is_refused() {
    let (mut c, coin) = setup();
    let tx = spend_faucet_coin(coin.clone(), vec![out(BTC50 + 1, &p2wpkh(&key(2)))]);
    let err = c.submit_transaction(tx).unwrap_err();
    assert_eq!(
        err,
        TxRejection::Overspend {
            inputs: Amount::from_sat(BTC50),
            outputs: Amount::from_sat(BTC50 + 1)
        }
    );
    assert_eq!(err.code(), "overspend");
    let tx = spend_faucet_coin(
        coin,
        vec![
            out(BTC50 / 2, &p2wpkh(&key(2))),
            out(BTC50 / 2, &p2wpkh(&key(3))),
        ],
    );
    // Zero fee: no value created, but below the relay fee.
    assert!(matches!(
        c.submit_transaction(tx),
        Err(TxRejection::FeeTooLow { .. })
    ));
}

#[test]
fn output_value_out_of_range_is_refused() {
    let (mut c, coin) = setup();
    let tx = spend_faucet_coin(
        coin,
        vec![out(21_000_000 * 100_000_000 + 1, &p2wpkh(&key(2)))],
    );
    assert_eq!(
        c.submit_transaction(tx).unwrap_err(),
        TxRejection::OutputValueOutOfRange { output: 0 }
    );
}

#[test]
fn immature_coinbase_99_vs_100_confirmations() {
    let mut c = chain_with_blocks(99);
    let coin = coinbase_out(&c, 1);
    assert_eq!(c.utxo(&coin.0).unwrap().confirmations, 99);
    let tx = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);
    let err = c.submit_transaction(tx.clone()).unwrap_err();
    assert_eq!(
        err,
        TxRejection::ImmatureCoinbase {
            input: 0,
            outpoint: coin.0,
            confirmations: 99,
            required: 100
        }
    );
    assert_eq!(err.code(), "coinbase_immature");
    assert_eq!(c.faucet_balance(), Amount::ZERO);
    mine(&mut c, 1);
    assert_eq!(c.utxo(&coin.0).unwrap().confirmations, 100);
    assert_eq!(c.faucet_balance(), Amount::from_sat(BTC50));
    assert!(c.submit_transaction(tx).is_ok());
}

#[test]
fn dust_outputs_are_refused_except_op_return() {
    let (mut c, coin) = setup();
    let wsh = ScriptBuf::new_p2wsh(&csv_script(1, &key(5)).wscript_hash());
    let cases = [
        (293, p2wpkh(&key(2)), false),
        (294, p2wpkh(&key(2)), true),
        (329, wsh.clone(), false),
        (330, wsh, true),
    ];
    for (value, spk, ok) in cases {
        let tx = spend_faucet_coin(
            coin.clone(),
            vec![
                out(BTC50 - 10_000 - value, &p2wpkh(&key(3))),
                out(value, &spk),
            ],
        );
        match c.submit_transaction(tx) {
            Ok(txid) => {
                assert!(ok, "{value} accepted");
                // Take it out again by reorging nothing: use a fresh chain instead.
                assert!(c.transaction(&txid).is_some());
                c = chain_with_blocks(100);
            }
            Err(e) => {
                assert!(!ok, "{value} refused: {e}");
                assert_eq!(
                    e,
                    TxRejection::Dust {
                        output: 1,
                        value: Amount::from_sat(value),
                        minimum: Amount::from_sat(value + 1)
                    }
                );
                assert_eq!(e.code(), "dust");
            }
        }
    }
    let op_return = bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_RETURN)
        .push_slice(b"fulmen")
        .into_script();
    let tx = spend_faucet_coin(
        coin,
        vec![out(BTC50 - 10_000, &p2wpkh(&key(3))), out(0, &op_return)],
    );
    assert!(c.submit_transaction(tx).is_ok());
}

#[test]
fn fee_below_min_relay_is_refused_and_exactly_min_accepted() {
    let (mut c, coin) = setup();
    let build =
        |fee: u64| spend_faucet_coin(coin.clone(), vec![out(BTC50 - fee, &p2wpkh(&key(2)))]);
    let err = c.submit_transaction(build(0)).unwrap_err();
    assert!(
        matches!(err, TxRejection::FeeTooLow { fee, .. } if fee == Amount::ZERO),
        "{err}"
    );
    assert_eq!(err.code(), "fee_too_low");
    // Walk up to the boundary: every fee below vsize is refused, the first fee >= vsize accepted.
    let mut fee = 90;
    loop {
        let tx = build(fee);
        let vsize = tx.vsize() as u64;
        if fee < vsize {
            let err = c.submit_transaction(tx).unwrap_err();
            assert_eq!(
                err,
                TxRejection::FeeTooLow {
                    fee: Amount::from_sat(fee),
                    required: Amount::from_sat(vsize),
                    vsize
                }
            );
            fee += 1;
        } else {
            assert_eq!(fee, vsize, "first accepted fee is exactly 1 sat/vB");
            assert!(c.submit_transaction(tx).is_ok());
            break;
        }
    }
}

#[test]
fn missing_input_is_refused() {
    let (mut c, coin) = setup();
    let fake = OutPoint::new(Txid::from_byte_array([7; 32]), 0);
    let tx = spend_faucet_coin(
        (fake, coin.1.clone()),
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
    );
    let err = c.submit_transaction(tx).unwrap_err();
    assert_eq!(
        err,
        TxRejection::MissingOrSpent {
            input: 0,
            outpoint: fake
        }
    );
    assert_eq!(err.code(), "missing_or_spent");
    assert!(err.to_string().starts_with("input 0:"));
    // An existing transaction, but a vout it does not have.
    let bad_vout = OutPoint::new(coin.0.txid, 5);
    let tx = spend_faucet_coin(
        (bad_vout, coin.1),
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
    );
    assert_eq!(
        c.submit_transaction(tx).unwrap_err().code(),
        "missing_or_spent"
    );
}

#[test]
fn malformed_transactions_are_refused() {
    let (mut c, coin) = setup();
    let no_in = unsigned(&[], vec![out(1000, &p2wpkh(&key(2)))], 0);
    assert_eq!(
        c.submit_transaction(no_in).unwrap_err(),
        TxRejection::NoInputs
    );
    let no_out = spend_faucet_coin(coin.clone(), vec![]);
    assert_eq!(
        c.submit_transaction(no_out).unwrap_err(),
        TxRejection::NoOutputs
    );
    let mut dup = unsigned(
        &[(coin.0, Sequence::MAX), (coin.0, Sequence::MAX)],
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
        0,
    );
    sign_p2wpkh(&mut dup, 0, &faucet_key(), coin.1.value);
    sign_p2wpkh(&mut dup, 1, &faucet_key(), coin.1.value);
    assert_eq!(
        c.submit_transaction(dup).unwrap_err(),
        TxRejection::DuplicateInput {
            input: 1,
            first: 0,
            outpoint: coin.0
        }
    );
    let cb = c.block_at(5).unwrap().txdata[0].clone();
    assert_eq!(c.submit_transaction(cb).unwrap_err(), TxRejection::Coinbase);
    let huge = spend_faucet_coin(
        coin,
        (0..3300).map(|_| out(1000, &p2wpkh(&key(2)))).collect(),
    );
    assert_eq!(c.submit_transaction(huge).unwrap_err().code(), "too_heavy");
}

#[test]
fn witness_v1_outputs_cannot_be_spent_unverified() {
    let (mut c, coin) = setup();
    let v1 = bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_1)
        .push_slice([3u8; 32])
        .into_script();
    let op = confirm_output(&mut c, coin, BTC50 - 10_000, &v1);
    let tx = unsigned(
        &[(op, Sequence::MAX)],
        vec![out(BTC50 - 20_000, &p2wpkh(&key(2)))],
        0,
    );
    let err = c.submit_transaction(tx).unwrap_err();
    assert_eq!(
        err,
        TxRejection::UnsupportedWitnessVersion {
            input: 0,
            version: 1
        }
    );
}

#[test]
fn chains_of_mempool_transactions_and_cpfp_ordering() {
    let mut c = chain_with_blocks(101);
    let a = coinbase_out(&c, 1);
    let b = coinbase_out(&c, 2);
    // Low-fee parent (about 1 sat/vB) and a high-fee child; an independent middle-fee tx.
    let parent = spend_faucet_coin(a.clone(), vec![out(BTC50 - 200, &p2wpkh(&faucet_key()))]);
    let p = c.submit_transaction(parent).unwrap();
    let middle = spend_faucet_coin(b, vec![out(BTC50 - 5_000, &p2wpkh(&key(2)))]);
    let m = c.submit_transaction(middle).unwrap();
    let child = spend_faucet_coin(
        (
            OutPoint::new(p, 0),
            out(BTC50 - 200, &p2wpkh(&faucet_key())),
        ),
        vec![out(BTC50 - 50_200, &p2wpkh(&key(3)))],
    );
    let ch = c.submit_transaction(child).unwrap();
    assert_eq!(c.spender(&OutPoint::new(p, 0)).unwrap().txid, ch);
    // A relative lock on an unconfirmed parent cannot be met in the next block.
    let mut locked = unsigned(
        &[(OutPoint::new(ch, 0), Sequence::from_height(1))],
        vec![out(BTC50 - 60_000, &p2wpkh(&key(3)))],
        0,
    );
    sign_p2wpkh(&mut locked, 0, &key(3), Amount::from_sat(BTC50 - 50_200));
    assert!(matches!(
        c.submit_transaction(locked.clone()),
        Err(TxRejection::Bip68Immature {
            input: 0,
            blocks: 1,
            ..
        })
    ));
    let block = &mine(&mut c, 1)[0];
    let ids: Vec<_> = block
        .txdata
        .iter()
        .skip(1)
        .map(|t| t.compute_txid())
        .collect();
    assert_eq!(
        ids,
        vec![p, ch, m],
        "package (parent, child) outbids the middle tx"
    );
    // Now confirmed: the 1-block relative lock is met.
    assert!(c.submit_transaction(locked).is_ok());
}

#[test]
fn higher_feerate_is_mined_first() {
    let mut c = chain_with_blocks(101);
    let low = spend_faucet_coin(
        coinbase_out(&c, 1),
        vec![out(BTC50 - 300, &p2wpkh(&key(2)))],
    );
    let high = spend_faucet_coin(
        coinbase_out(&c, 2),
        vec![out(BTC50 - 3_000, &p2wpkh(&key(2)))],
    );
    let l = c.submit_transaction(low).unwrap();
    let h = c.submit_transaction(high).unwrap();
    assert_eq!(
        c.mempool()
            .iter()
            .map(|t| t.compute_txid())
            .collect::<Vec<_>>(),
        vec![l, h]
    );
    let block = &mine(&mut c, 1)[0];
    let ids: Vec<_> = block
        .txdata
        .iter()
        .skip(1)
        .map(|t| t.compute_txid())
        .collect();
    assert_eq!(ids, vec![h, l]);
    assert_eq!(
        block.txdata[0].output[0].value,
        fulmen_chain::subsidy(102) + Amount::from_sat(3_300)
    );
}
