//! connect_block: replaying mined blocks into a fresh chain gives the same tip and UTXO set;
//! hand-built bad blocks are refused with the right rule and leave the chain untouched.

mod common;

use bitcoin::{Amount, Network, OutPoint, ScriptBuf, Sequence, Witness};
use common::*;
use fulmen_chain::{subsidy, BlockRejection, Chain};

const BTC50: u64 = 5_000_000_000;

/// A chain with varied history: funds, CSV spends, chains of txs, a reorg.
fn busy_chain() -> Chain {
    let mut c = chain_with_blocks(101);
    let addr = |k| {
        bitcoin::Address::p2wpkh(
            &bitcoin::CompressedPublicKey(pubkey(&key(k))),
            Network::Regtest,
        )
    };
    for k in 2..6 {
        c.fund(&addr(k), Amount::from_sat(1_000_000 * u64::from(k)))
            .unwrap();
    }
    mine(&mut c, 1);
    let ws = csv_script(2, &key(5));
    let spk = ScriptBuf::new_p2wsh(&ws.wscript_hash());
    let t = c
        .submit_transaction(spend_faucet_coin(
            coinbase_out(&c, 3),
            vec![out(BTC50 - 10_000, &spk)],
        ))
        .unwrap();
    mine(&mut c, 2);
    let mut spend = unsigned(
        &[(OutPoint::new(t, 0), Sequence::from_height(2))],
        vec![out(BTC50 - 20_000, &p2wpkh(&key(7)))],
        0,
    );
    let sig = sign_p2wsh(&spend, 0, &ws, Amount::from_sat(BTC50 - 10_000), &key(5));
    spend.input[0].witness = Witness::from_slice(&[sig, ws.to_bytes()]);
    c.submit_transaction(spend).unwrap();
    c.fund(&addr(8), Amount::from_sat(777_777)).unwrap();
    mine(&mut c, 1);
    c.reorg(1).unwrap();
    mine(&mut c, 3);
    assert!(c.mempool().is_empty());
    c
}

#[test]
fn replay_into_fresh_chain_gives_identical_state() {
    let a = busy_chain();
    let mut b = new_chain();
    for h in 1..=a.height() {
        b.connect_block(a.block_at(h).unwrap().clone()).unwrap();
    }
    assert_eq!(b.tip(), a.tip());
    assert_eq!(b.utxo_set(), a.utxo_set());
    assert_eq!(b.faucet_balance(), a.faucet_balance());
    let last = a.block_at(a.height()).unwrap();
    for tx in &last.txdata {
        let txid = tx.compute_txid();
        assert_eq!(b.transaction(&txid), a.transaction(&txid));
        for input in &tx.input {
            assert_eq!(
                b.spender(&input.previous_output),
                a.spender(&input.previous_output)
            );
        }
    }
    // Replaying a block twice is refused (it no longer builds on the tip).
    let err = b.connect_block(last.clone()).unwrap_err();
    assert_eq!(err.code(), "bad_prev_block");
}

#[test]
fn hand_built_valid_block_connects_and_pays_fees() {
    let mut c = chain_with_blocks(100);
    let tx = spend_faucet_coin(
        coinbase_out(&c, 1),
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
    );
    let txid = tx.compute_txid();
    let block = build_block(&c, vec![tx], subsidy(101) + Amount::from_sat(10_000), true);
    c.connect_block(block).unwrap();
    assert_eq!(c.transaction(&txid).unwrap().confirmations, 1);
}

fn assert_refused(c: &mut Chain, block: bitcoin::Block, code: &str) -> BlockRejection {
    let before = (c.tip(), c.utxo_set(), c.mempool());
    let err = c.connect_block(block).unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(
        (c.tip(), c.utxo_set(), c.mempool()),
        before,
        "state untouched"
    );
    err
}

#[test]
fn bad_blocks_are_refused_and_leave_state_untouched() {
    let mut c = chain_with_blocks(100);
    let coin = coinbase_out(&c, 1);
    let good_tx = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);

    // Wrong previous block.
    let mut b = build_block(&c, vec![], subsidy(101), true);
    b.header.prev_blockhash = c.block_at(50).unwrap().block_hash();
    regrind(&mut b.header);
    assert_refused(&mut c, b, "bad_prev_block");

    // Proof of work not met.
    let mut b = build_block(&c, vec![], subsidy(101), true);
    let target = b.header.target();
    while b.header.validate_pow(target).is_ok() {
        b.header.nonce += 1;
    }
    assert_refused(&mut c, b, "bad_pow");

    // Easier bits.
    let mut b = build_block(&c, vec![], subsidy(101), true);
    b.header.bits = bitcoin::CompactTarget::from_consensus(0x2100_ffff);
    assert_refused(&mut c, b, "bad_bits");

    // Merkle root not matching.
    let mut b = build_block(&c, vec![good_tx.clone()], subsidy(101), true);
    b.txdata[1].output[0].value = Amount::from_sat(BTC50 - 20_000);
    regrind(&mut b.header);
    assert_refused(&mut c, b, "bad_merkle_root");

    // Segwit tx without witness commitment.
    let b = build_block(&c, vec![good_tx.clone()], subsidy(101), false);
    assert_refused(&mut c, b, "bad_witness_commitment");

    // Coinbase paying more than subsidy + fees.
    let b = build_block(
        &c,
        vec![good_tx.clone()],
        subsidy(101) + Amount::from_sat(10_001),
        true,
    );
    let err = assert_refused(&mut c, b, "bad_coinbase_value");
    assert_eq!(
        err,
        BlockRejection::BadCoinbaseValue {
            paid: subsidy(101) + Amount::from_sat(10_001),
            allowed: subsidy(101) + Amount::from_sat(10_000)
        }
    );

    // BIP34 height wrong.
    let mut b = build_block(&c, vec![], subsidy(101), true);
    b.txdata[0].input[0].script_sig = fulmen_chain::coinbase_script_sig(100);
    b.header.merkle_root = b.compute_merkle_root().unwrap();
    regrind(&mut b.header);
    assert_refused(&mut c, b, "bad_coinbase_height");

    // Time not after the median time past.
    let mut b = build_block(&c, vec![], subsidy(101), true);
    b.header.time = c.median_time_past();
    regrind(&mut b.header);
    assert_refused(&mut c, b, "time_too_old");

    // A transaction with a bad signature, after a valid one (which must be rolled back).
    let mut bad = unsigned(
        &[(coinbase_out(&c, 2).0, Sequence::MAX)],
        vec![out(BTC50 - 10_000, &p2wpkh(&key(3)))],
        0,
    );
    sign_p2wpkh(&mut bad, 0, &key(3), Amount::from_sat(BTC50));
    let mut c101 = chain_with_blocks(101);
    let good = spend_faucet_coin(
        coinbase_out(&c101, 1),
        vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
    );
    let b = build_block(&c101, vec![good, bad], subsidy(102), true);
    let err = assert_refused(&mut c101, b, "script");
    assert!(
        matches!(err, BlockRejection::Transaction { index: 2, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("input 0: script verification failed"),
        "{err}"
    );

    // Double spend inside one block.
    let other = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 20_000, &p2wpkh(&key(3)))]);
    let b = build_block(&c, vec![good_tx.clone(), other], subsidy(101), true);
    let err = assert_refused(&mut c, b, "already_spent");
    assert!(matches!(err, BlockRejection::Transaction { index: 2, .. }));

    // Spending an immature coinbase (block 2's, 99 confirmations in block 101).
    let young = spend_faucet_coin(
        coinbase_out(&c, 2),
        vec![out(BTC50 - 10_000, &p2wpkh(&key(3)))],
    );
    let b = build_block(&c, vec![young], subsidy(101), true);
    assert_refused(&mut c, b, "coinbase_immature");

    // Spending the same block's coinbase.
    let b0 = build_block(&c, vec![], subsidy(101), true);
    let cb = &b0.txdata[0];
    let own = spend_faucet_coin(
        (OutPoint::new(cb.compute_txid(), 0), cb.output[0].clone()),
        vec![out(BTC50 - 10_000, &p2wpkh(&key(3)))],
    );
    let b = build_block(&c, vec![own], subsidy(101), true);
    assert_refused(&mut c, b, "missing_or_spent");

    // A second coinbase.
    let mut b = build_block(&c, vec![], subsidy(101), true);
    let cb2 = b.txdata[0].clone();
    b.txdata.push(cb2);
    b.header.merkle_root = b.compute_merkle_root().unwrap();
    regrind(&mut b.header);
    assert_refused(&mut c, b, "extra_coinbase");

    // And after all that, the valid block still connects.
    let b = build_block(
        &c,
        vec![good_tx],
        subsidy(101) + Amount::from_sat(10_000),
        true,
    );
    c.connect_block(b).unwrap();
    assert_eq!(c.height(), 101);
}

#[test]
fn connected_block_evicts_conflicting_mempool_txs_with_descendants() {
    let mut c = chain_with_blocks(100);
    let coin = coinbase_out(&c, 1);
    let mem = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);
    let m = c.submit_transaction(mem).unwrap();
    let mut child = unsigned(
        &[(OutPoint::new(m, 0), Sequence::MAX)],
        vec![out(BTC50 - 20_000, &p2wpkh(&key(3)))],
        0,
    );
    sign_p2wpkh(&mut child, 0, &key(2), Amount::from_sat(BTC50 - 10_000));
    c.submit_transaction(child).unwrap();
    assert_eq!(c.mempool().len(), 2);
    let rival = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 30_000, &p2wpkh(&key(4)))]);
    let r = rival.compute_txid();
    let b = build_block(&c, vec![rival], subsidy(101), true);
    c.connect_block(b).unwrap();
    assert!(c.mempool().is_empty());
    assert_eq!(c.spender(&coin.0).unwrap().txid, r);
    assert!(c.transaction(&m).is_none());
}
