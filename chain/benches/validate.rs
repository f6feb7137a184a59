//! Criterion benchmarks of fulmen-chain hot paths: mempool admission of 1-in-2-out P2WPKH
//! transactions (full validation incl. libbitcoinconsensus) and connecting a block of 1,000
//! such transactions (`connect_block`, full validation). Deterministic inputs; no I/O.

use std::hint::black_box;

use bitcoin::ecdsa;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, Block, CompressedPublicKey, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Witness,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fulmen_chain::{Chain, ChainParams};

const N: usize = 1_000;
const T0: u32 = 1_700_000_000;

fn spk(sk: &SecretKey) -> (ScriptBuf, CompressedPublicKey) {
    let pk = CompressedPublicKey(sk.public_key(&Secp256k1::new()));
    (ScriptBuf::new_p2wpkh(&pk.wpubkey_hash()), pk)
}

fn sign(tx: &mut Transaction, index: usize, sk: &SecretKey, value: Amount) {
    let secp = Secp256k1::new();
    let (script, pk) = spk(sk);
    let sighash = SighashCache::new(&*tx)
        .p2wpkh_signature_hash(index, &script, value, EcdsaSighashType::All)
        .unwrap();
    let sig = ecdsa::Signature {
        signature: secp.sign_ecdsa(&Message::from(sighash), sk),
        sighash_type: EcdsaSighashType::All,
    };
    tx.input[index].witness = Witness::p2wpkh(&sig, &pk.0);
}

fn tx(inputs: Vec<OutPoint>, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .into_iter()
            .map(|op| TxIn {
                previous_output: op,
                sequence: Sequence::MAX,
                ..TxIn::default()
            })
            .collect(),
        output: outputs,
    }
}

/// A chain holding N confirmed P2WPKH outputs of `key`, and N signed 1-in-2-out spends.
fn setup() -> (Chain, Vec<Transaction>) {
    let faucet = SecretKey::from_slice(&[0x11; 32]).unwrap();
    let key = SecretKey::from_slice(&[0x22; 32]).unwrap();
    let (script, _) = spk(&key);
    let mut chain = Chain::new(ChainParams::default(), faucet);
    chain.mine(101, None, T0);
    let cb = chain.block_at(1).unwrap().txdata[0].clone();
    let each = 1_000_000u64;
    let mut outs: Vec<TxOut> = (0..N)
        .map(|_| TxOut {
            value: Amount::from_sat(each),
            script_pubkey: script.clone(),
        })
        .collect();
    let change = cb.output[0].value - Amount::from_sat(each * N as u64 + 50_000);
    outs.push(TxOut {
        value: change,
        script_pubkey: cb.output[0].script_pubkey.clone(),
    });
    let mut fanout = tx(vec![OutPoint::new(cb.compute_txid(), 0)], outs);
    sign(&mut fanout, 0, &faucet, cb.output[0].value);
    let fan_id = chain.submit_transaction(fanout).unwrap();
    chain.mine(1, None, T0 + 200);
    let spends = (0..N)
        .map(|i| {
            let mut t = tx(
                vec![OutPoint::new(fan_id, i as u32)],
                vec![
                    TxOut {
                        value: Amount::from_sat(600_000),
                        script_pubkey: script.clone(),
                    },
                    TxOut {
                        value: Amount::from_sat(each - 600_000 - 1_000),
                        script_pubkey: script.clone(),
                    },
                ],
            );
            sign(&mut t, 0, &key, Amount::from_sat(each));
            t
        })
        .collect();
    (chain, spends)
}

fn bench(c: &mut Criterion) {
    let (base, spends) = setup();
    let mut with_block = base.clone();
    for t in &spends {
        with_block.submit_transaction(t.clone()).unwrap();
    }
    let block: Block = with_block.mine(1, None, T0 + 300).remove(0);
    assert_eq!(block.txdata.len(), N + 1);

    let mut g = c.benchmark_group("chain");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("submit_transaction_1in2out_p2wpkh_x1000", |b| {
        b.iter_batched(
            || (base.clone(), spends.clone()),
            |(mut chain, txs)| {
                for t in txs {
                    black_box(chain.submit_transaction(t).unwrap());
                }
                chain
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("connect_block_1000_txs", |b| {
        b.iter_batched(
            || (base.clone(), block.clone()),
            |(mut chain, blk)| {
                chain.connect_block(blk).unwrap();
                chain
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
