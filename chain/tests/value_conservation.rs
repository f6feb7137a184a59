//! Property test: random chains of valid spends, funds, mining and reorgs keep the total
//! value of the UTXO set equal to the sum of block subsidies minus the value burned in
//! OP_RETURN outputs (every fee is claimed by a coinbase); every generated valid spend is
//! accepted; and replaying the blocks into a fresh chain gives the same UTXO set.
//! Deterministic: fixed proptest seed, no persistence files.

mod common;

use bitcoin::{Amount, Network, OutPoint, ScriptBuf, Sequence, TxOut};
use common::*;
use fulmen_chain::{subsidy, Chain, ChainParams, FundError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

#[derive(Debug, Clone)]
enum Op {
    Spend {
        pick: usize,
        outs: u8,
        fee: u64,
        burn: u64,
    },
    Mine(u8),
    Reorg(u8),
    Fund(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<usize>(), 1u8..4, 0u64..5_000, prop_oneof![Just(0u64), 1u64..100_000])
            .prop_map(|(pick, outs, fee, burn)| Op::Spend { pick, outs, fee, burn }),
        3 => (1u8..3).prop_map(Op::Mine),
        1 => (1u8..4).prop_map(Op::Reorg),
        1 => (1_000u64..200_000_000).prop_map(Op::Fund),
    ]
}

/// Faucet-key outputs spendable in the next block and unspent in the mempool.
fn candidates(c: &Chain, maturity: u32) -> Vec<(OutPoint, TxOut)> {
    let spk = p2wpkh(&faucet_key());
    let next = c.height() + 1;
    let mut v: Vec<(OutPoint, TxOut)> = c
        .utxo_set()
        .into_iter()
        .filter(|u| u.txout.script_pubkey == spk && c.spender(&u.outpoint).is_none())
        .filter(|u| !u.is_coinbase || next - u.height >= maturity)
        .map(|u| (u.outpoint, u.txout))
        .collect();
    for tx in c.mempool() {
        let txid = tx.compute_txid();
        for (i, o) in tx.output.iter().enumerate() {
            let op = OutPoint::new(txid, i as u32);
            if o.script_pubkey == spk && c.spender(&op).is_none() {
                v.push((op, o.clone()));
            }
        }
    }
    v
}

fn op_return() -> ScriptBuf {
    bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_RETURN)
        .push_slice(b"burn")
        .into_script()
}

/// Checks value conservation from the blocks themselves and the UTXO set.
fn check_conservation(c: &Chain) -> Result<(), TestCaseError> {
    let utxo_total: Amount = c.utxo_set().iter().map(|u| u.txout.value).sum();
    let mut subsidies = Amount::ZERO;
    let mut burned = Amount::ZERO;
    for h in 1..=c.height() {
        let block = c.block_at(h).unwrap();
        subsidies += subsidy(h);
        let mut fees = Amount::ZERO;
        for tx in block.txdata.iter().skip(1) {
            let inputs: Amount = tx
                .input
                .iter()
                .map(|i| {
                    let prev = c.transaction(&i.previous_output.txid).unwrap().tx;
                    prev.output[i.previous_output.vout as usize].value
                })
                .sum();
            fees += inputs - out_sum(tx);
        }
        for tx in &block.txdata {
            for o in &tx.output {
                if o.script_pubkey.is_op_return() {
                    burned += o.value;
                }
            }
        }
        prop_assert_eq!(
            out_sum(&block.txdata[0]),
            subsidy(h) + fees,
            "coinbase claims fees"
        );
    }
    prop_assert_eq!(utxo_total, subsidies - burned);
    Ok(())
}

fn config() -> Config {
    Config {
        cases: 40,
        rng_seed: RngSeed::Fixed(0x00f0_1e11),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn value_is_conserved(ops in proptest::collection::vec(op(), 1..30)) {
        let params = ChainParams { coinbase_maturity: 2, ..ChainParams::default() };
        let mut c = Chain::new(params, faucet_key());
        c.mine(3, None, T0);
        for op in ops {
            match op {
                Op::Spend { pick, outs, fee, burn } => {
                    let cands = candidates(&c, params.coinbase_maturity);
                    if cands.is_empty() {
                        continue;
                    }
                    let (outpoint, prev) = cands[pick % cands.len()].clone();
                    let fee = fee + 400;
                    let value = prev.value.to_sat();
                    if value < fee + burn + 294 * u64::from(outs) {
                        continue;
                    }
                    let share = (value - fee - burn) / u64::from(outs);
                    let mut outputs: Vec<TxOut> =
                        (0..outs).map(|_| out(share, &p2wpkh(&faucet_key()))).collect();
                    let rest = value - fee - burn - share * u64::from(outs);
                    outputs[0].value += Amount::from_sat(rest);
                    if burn > 0 {
                        outputs.push(out(burn, &op_return()));
                    }
                    let mut tx = unsigned(&[(outpoint, Sequence::MAX)], outputs, 0);
                    sign_p2wpkh(&mut tx, 0, &faucet_key(), prev.value);
                    let res = c.submit_transaction(tx);
                    prop_assert!(res.is_ok(), "valid spend refused: {:?}", res);
                }
                Op::Mine(n) => {
                    mine(&mut c, u32::from(n));
                    prop_assert!(c.mempool().is_empty());
                }
                Op::Reorg(n) => {
                    let n = u32::from(n).min(c.height());
                    let before = c.height();
                    prop_assert_eq!(c.reorg(n).unwrap().len() as u32, n);
                    prop_assert_eq!(c.height(), before - n);
                }
                Op::Fund(sats) => {
                    let addr = bitcoin::Address::p2wpkh(
                        &bitcoin::CompressedPublicKey(pubkey(&key(2))),
                        Network::Regtest,
                    );
                    let balance = c.faucet_balance();
                    match c.fund(&addr, Amount::from_sat(sats)) {
                        Ok(txid) => {
                            let tx = c.transaction(&txid).unwrap().tx;
                            prop_assert_eq!(tx.output[0].value, Amount::from_sat(sats));
                            prop_assert!(c.faucet_balance() < balance);
                        }
                        Err(FundError::InsufficientFaucetFunds { available, needed }) => {
                            prop_assert_eq!(available, balance);
                            prop_assert!(needed > available);
                        }
                        Err(e) => prop_assert!(false, "fund failed: {}", e),
                    }
                }
            }
            check_conservation(&c)?;
        }
        // Replay into a fresh chain: identical tip and UTXO set.
        let mut fresh = Chain::new(params, faucet_key());
        for h in 1..=c.height() {
            fresh.connect_block(c.block_at(h).unwrap().clone()).unwrap();
        }
        prop_assert_eq!(fresh.tip(), c.tip());
        prop_assert_eq!(fresh.utxo_set(), c.utxo_set());
    }
}
