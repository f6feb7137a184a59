//! Basic path of fulmen-chain: genesis, mining, faucet funding, submission and queries.

mod common;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Network, OutPoint};
use common::*;
use fulmen_chain::{subsidy, FundError, REGTEST_BITS};

#[test]
fn new_chain_holds_only_regtest_genesis() {
    let c = new_chain();
    let genesis = bitcoin::constants::genesis_block(Network::Regtest);
    assert_eq!(c.height(), 0);
    assert_eq!(c.tip().hash, genesis.block_hash());
    assert_eq!(c.tip().time, genesis.header.time);
    assert_eq!(c.block_at(0).unwrap(), &genesis);
    assert!(c.faucet_address().to_string().starts_with("bcrt1q"));
    assert_eq!(c.utxo_count(), 0);
    assert_eq!(c.faucet_balance(), Amount::ZERO);
}

#[test]
fn mined_blocks_have_real_pow_bip34_and_subsidy() {
    let mut c = new_chain();
    let blocks = c.mine(3, None, T0);
    assert_eq!(blocks.len(), 3);
    assert_eq!(c.height(), 3);
    let target =
        bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(REGTEST_BITS));
    for (i, b) in blocks.iter().enumerate() {
        let h = i as u32 + 1;
        assert_eq!(b.header.bits.to_consensus(), 0x207f_ffff);
        assert!(b.header.validate_pow(target).is_ok());
        assert!(b.check_merkle_root());
        assert_eq!(b.header.time, T0 + i as u32);
        assert_eq!(b.txdata[0].output[0].value, subsidy(h));
        assert_eq!(b.txdata[0].output[0].script_pubkey, p2wpkh(&faucet_key()));
        assert_eq!(c.block(&b.block_hash()).unwrap().0, h);
        if h > 16 {
            assert_eq!(b.bip34_block_height().unwrap(), u64::from(h));
        }
    }
    assert_eq!(
        blocks[0].header.prev_blockhash,
        c.block_at(0).unwrap().block_hash()
    );
    // A time in the past still gives strictly increasing times.
    let more = c.mine(1, None, 5);
    assert_eq!(more[0].header.time, T0 + 3);
    assert_eq!(c.tip().time, T0 + 3);
}

#[test]
fn subsidy_halves_at_150() {
    let c = chain_with_blocks(151);
    assert_eq!(
        c.block_at(149).unwrap().txdata[0].output[0].value,
        Amount::from_int_btc(50)
    );
    assert_eq!(
        c.block_at(150).unwrap().txdata[0].output[0].value,
        Amount::from_int_btc(25)
    );
}

#[test]
fn fund_mine_and_query() {
    let mut c = chain_with_blocks(100);
    // Only block 1's coinbase is mature for block 101 (100 confirmations).
    assert_eq!(c.faucet_balance(), Amount::from_int_btc(50));
    let addr = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(pubkey(&key(2))),
        Network::Regtest,
    );
    let txid = c.fund(&addr, Amount::from_sat(100_000)).unwrap();
    let status = c.transaction(&txid).unwrap();
    assert_eq!(status.confirmations, 0);
    assert_eq!(status.block, None);
    assert_eq!(c.mempool().len(), 1);
    let fee = Amount::from_int_btc(50) - status.tx.output.iter().map(|o| o.value).sum::<Amount>();
    assert!(fee.to_sat() >= status.tx.vsize() as u64);
    // Unconfirmed change stays spendable.
    assert_eq!(
        c.faucet_balance(),
        Amount::from_int_btc(50) - Amount::from_sat(100_000) - fee
    );
    let vout = status
        .tx
        .output
        .iter()
        .position(|o| o.script_pubkey == addr.script_pubkey())
        .unwrap() as u32;
    let op = OutPoint::new(txid, vout);
    assert_eq!(c.utxo(&op), None);
    let blocks = mine(&mut c, 1);
    assert!(blocks[0].txdata.iter().any(|t| t.compute_txid() == txid));
    assert!(blocks[0].check_witness_commitment());
    let utxo = c.utxo(&op).unwrap();
    assert_eq!(utxo.txout.value, Amount::from_sat(100_000));
    assert_eq!(utxo.confirmations, 1);
    assert_eq!(utxo.height, 101);
    assert!(!utxo.is_coinbase);
    let status = c.transaction(&txid).unwrap();
    assert_eq!(status.confirmations, 1);
    assert_eq!(status.block, Some((101, c.tip().hash)));
    assert!(c.mempool().is_empty());
    // Coinbase claimed the fee.
    assert_eq!(blocks[0].txdata[0].output[0].value, subsidy(101) + fee);
    // The faucet coin is confirmed-spent by the funding tx.
    let (cb_op, _) = coinbase_out(&c, 1);
    let spend = c.spender(&cb_op).unwrap();
    assert_eq!(
        (spend.txid, spend.input_index, spend.height),
        (txid, 0, Some(101))
    );
    mine(&mut c, 2);
    assert_eq!(c.utxo(&op).unwrap().confirmations, 3);
    assert_eq!(c.transaction(&txid).unwrap().confirmations, 3);
}

#[test]
fn fund_twice_before_mining_uses_unconfirmed_change() {
    let mut c = chain_with_blocks(100);
    let a = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(pubkey(&key(3))),
        Network::Regtest,
    );
    let t1 = c.fund(&a, Amount::from_sat(1_000_000)).unwrap();
    let t2 = c.fund(&a, Amount::from_sat(2_000_000)).unwrap();
    assert_eq!(c.mempool().len(), 2);
    let tx2 = c.transaction(&t2).unwrap().tx;
    assert_eq!(tx2.input[0].previous_output.txid, t1);
    let blocks = mine(&mut c, 1);
    let ids: Vec<_> = blocks[0].txdata.iter().map(|t| t.compute_txid()).collect();
    let p1 = ids.iter().position(|t| *t == t1).unwrap();
    let p2 = ids.iter().position(|t| *t == t2).unwrap();
    assert!(p1 < p2, "parent before child");
}

#[test]
fn fund_errors() {
    let mut c = new_chain();
    let a = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(pubkey(&key(4))),
        Network::Regtest,
    );
    match c.fund(&a, Amount::from_sat(10_000)) {
        Err(FundError::InsufficientFaucetFunds { available, .. }) => {
            assert_eq!(available, Amount::ZERO)
        }
        other => panic!("unexpected {other:?}"),
    }
    c.mine(100, None, T0);
    assert_eq!(c.faucet_balance(), Amount::from_int_btc(50));
    c.mine(1, None, T0 + 100);
    assert_eq!(c.faucet_balance(), Amount::from_int_btc(100));
    assert!(matches!(
        c.fund(&a, Amount::from_sat(293)),
        Err(FundError::Dust { .. })
    ));
    let err = c.fund(&a, Amount::from_int_btc(100)).unwrap_err();
    assert_eq!(err.code(), "insufficient_faucet_funds");
    assert!(c.fund(&a, Amount::from_sat(294)).is_ok());
}

#[test]
fn unknown_things_are_none() {
    let c = chain_with_blocks(1);
    let zero = bitcoin::Txid::all_zeros();
    assert!(c.transaction(&zero).is_none());
    assert!(c.utxo(&OutPoint::new(zero, 0)).is_none());
    assert!(c.spender(&OutPoint::new(zero, 0)).is_none());
    assert!(c.block(&bitcoin::BlockHash::all_zeros()).is_none());
    assert!(c.block_at(2).is_none());
}

#[test]
fn long_unconfirmed_fund_chain_is_mined_in_one_block() {
    let mut c = chain_with_blocks(100); // a single mature faucet coin
    let a = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(pubkey(&key(5))),
        Network::Regtest,
    );
    let mut ids = Vec::new();
    for i in 0..200u64 {
        ids.push(c.fund(&a, Amount::from_sat(10_000 + i)).unwrap());
    }
    assert_eq!(c.mempool().len(), 200);
    assert_eq!(c.fee_estimate(), c.params().min_relay_feerate);
    let block = &mine(&mut c, 1)[0];
    let mined: Vec<_> = block
        .txdata
        .iter()
        .skip(1)
        .map(|t| t.compute_txid())
        .collect();
    assert_eq!(mined, ids, "a chain is mined parents first");
    assert!(c.mempool().is_empty());
}
