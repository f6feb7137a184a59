//! Reorgs: disconnected transactions return to the mempool, UTXOs are restored exactly,
//! now-invalid transactions are dropped, and the chain can be re-mined.

mod common;

use bitcoin::{Amount, Network, OutPoint};
use common::*;
use fulmen_chain::{ChainError, TxRejection};

const BTC50: u64 = 5_000_000_000;

#[test]
fn reorg_returns_transactions_to_mempool_and_restores_utxos() {
    let mut c = chain_with_blocks(100);
    let coin = coinbase_out(&c, 1);
    let before = c.utxo_set();
    let tip_before = c.tip();
    let tx = spend_faucet_coin(coin.clone(), vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))]);
    let txid = c.submit_transaction(tx).unwrap();
    let mined = mine(&mut c, 2);
    assert!(c.utxo(&coin.0).is_none());
    assert!(c.utxo(&OutPoint::new(txid, 0)).is_some());

    let back = c.reorg(2).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0], mined[1], "highest first");
    assert_eq!(back[1], mined[0]);
    assert_eq!(c.tip(), tip_before);
    assert_eq!(c.utxo_set(), before, "UTXO set restored exactly");
    assert_eq!(c.utxo(&coin.0).unwrap().confirmations, 100);
    assert!(c.utxo(&OutPoint::new(txid, 0)).is_none());
    assert_eq!(
        c.mempool()
            .iter()
            .map(|t| t.compute_txid())
            .collect::<Vec<_>>(),
        vec![txid]
    );
    let status = c.transaction(&txid).unwrap();
    assert_eq!((status.block, status.confirmations), (None, 0));
    assert_eq!(c.spender(&coin.0).unwrap().height, None);
    // The disconnected coinbases are gone.
    assert!(c.transaction(&mined[0].txdata[0].compute_txid()).is_none());
    assert!(c.block(&mined[0].block_hash()).is_none());

    // Re-mine on a different time: a different branch, the tx confirms again.
    let remined = c.mine(1, None, tip_before.time + 1000);
    assert_ne!(remined[0].block_hash(), mined[0].block_hash());
    assert_eq!(
        c.transaction(&txid).unwrap().block,
        Some((101, remined[0].block_hash()))
    );
    assert_eq!(c.spender(&coin.0).unwrap().height, Some(101));
    assert!(c.mempool().is_empty());
}

#[test]
fn reorg_drops_spends_of_now_immature_coinbases_and_vanished_outputs() {
    let mut c = chain_with_blocks(100);
    // Coinbase 1 is exactly mature for block 101.
    let coin = coinbase_out(&c, 1);
    let t1 = c
        .submit_transaction(spend_faucet_coin(
            coin,
            vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
        ))
        .unwrap();
    mine(&mut c, 1);
    // Spend the coinbase of block 101 at tip 200 (exactly mature), then reorg it away.
    let n = 200 - c.height();
    mine(&mut c, n);
    let young = coinbase_out(&c, 101);
    let t2 = c
        .submit_transaction(spend_faucet_coin(
            young,
            vec![out(BTC50 - 10_000, &p2wpkh(&key(3)))],
        ))
        .unwrap();
    // An unconfirmed child of t2 sits in the mempool.
    let mut child = unsigned(
        &[(OutPoint::new(t2, 0), bitcoin::Sequence::MAX)],
        vec![out(BTC50 - 20_000, &p2wpkh(&key(4)))],
        0,
    );
    sign_p2wpkh(&mut child, 0, &key(3), Amount::from_sat(BTC50 - 10_000));
    let t3 = c.submit_transaction(child).unwrap();
    mine(&mut c, 1); // t2 and t3 confirmed at 201; 101's coinbase had 100 confirmations.
    assert_eq!(c.transaction(&t3).unwrap().confirmations, 1);
    // Disconnect 201 and 200: the next block is 200, where coinbase 101 has only 99.
    c.reorg(2).unwrap();
    assert!(
        c.mempool().is_empty(),
        "immature spend and its child dropped"
    );
    assert!(c.transaction(&t2).is_none());
    assert!(c.transaction(&t3).is_none());
    assert_eq!(c.transaction(&t1).unwrap().confirmations, 99);
    // Disconnecting block 101 makes t1's coin... t1 spends coinbase 1, still mature: t1 returns.
    c.reorg(99).unwrap();
    assert_eq!(c.height(), 100);
    assert_eq!(c.mempool().len(), 1);
    assert_eq!(c.transaction(&t1).unwrap().confirmations, 0);
}

#[test]
fn reorg_readmits_old_mempool_after_disconnected_blocks() {
    let mut c = chain_with_blocks(101);
    let a = c
        .submit_transaction(spend_faucet_coin(
            coinbase_out(&c, 1),
            vec![out(BTC50 - 10_000, &p2wpkh(&key(2)))],
        ))
        .unwrap();
    mine(&mut c, 1);
    // Mempool child of the confirmed tx, plus an independent tx.
    let mut child = unsigned(
        &[(OutPoint::new(a, 0), bitcoin::Sequence::MAX)],
        vec![out(BTC50 - 20_000, &p2wpkh(&key(4)))],
        0,
    );
    sign_p2wpkh(&mut child, 0, &key(2), Amount::from_sat(BTC50 - 10_000));
    let b = c.submit_transaction(child).unwrap();
    let d = c
        .submit_transaction(spend_faucet_coin(
            coinbase_out(&c, 2),
            vec![out(BTC50 - 10_000, &p2wpkh(&key(5)))],
        ))
        .unwrap();
    c.reorg(1).unwrap();
    let ids: Vec<_> = c.mempool().iter().map(|t| t.compute_txid()).collect();
    assert_eq!(
        ids,
        vec![a, b, d],
        "disconnected first, then the old mempool"
    );
    let block = &mine(&mut c, 1)[0];
    assert_eq!(block.txdata.len(), 4);
}

#[test]
fn reorg_limits() {
    let mut c = chain_with_blocks(3);
    assert_eq!(
        c.reorg(4).unwrap_err(),
        ChainError::ReorgTooDeep {
            requested: 4,
            height: 3
        }
    );
    assert_eq!(c.reorg(4).unwrap_err().code(), "reorg_too_deep");
    assert!(c.reorg(0).unwrap().is_empty());
    assert_eq!(c.height(), 3);
    assert_eq!(c.reorg(3).unwrap().len(), 3);
    assert_eq!(c.height(), 0);
    assert_eq!(
        c.tip().hash,
        bitcoin::constants::genesis_block(Network::Regtest).block_hash()
    );
    assert_eq!(c.utxo_count(), 0);
}

#[test]
fn reorg_faucet_balance_follows() {
    let mut c = chain_with_blocks(101);
    assert_eq!(c.faucet_balance(), Amount::from_sat(2 * BTC50));
    c.reorg(1).unwrap();
    assert_eq!(c.faucet_balance(), Amount::from_sat(BTC50));
    mine(&mut c, 1);
    assert_eq!(c.faucet_balance(), Amount::from_sat(2 * BTC50));
    // A fund spend that reorgs out comes back and keeps the faucet coin spent.
    let addr = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(pubkey(&key(2))),
        Network::Regtest,
    );
    let t = c.fund(&addr, Amount::from_sat(100_000)).unwrap();
    mine(&mut c, 1);
    c.reorg(1).unwrap();
    assert_eq!(c.transaction(&t).unwrap().confirmations, 0);
    let spent_coin = c.transaction(&t).unwrap().tx.input[0].previous_output;
    assert_eq!(c.spender(&spent_coin).unwrap().txid, t);
    let again = spend_faucet_coin(
        (spent_coin, c.utxo(&spent_coin).unwrap().txout),
        vec![out(1_000_000, &p2wpkh(&key(3)))],
    );
    assert!(matches!(
        c.submit_transaction(again),
        Err(TxRejection::MempoolConflict { .. })
    ));
}
