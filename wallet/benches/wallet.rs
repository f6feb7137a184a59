//! Criterion benchmarks of the wallet's hot paths against an in-process chain: full rescan,
//! building + signing a funding transaction, disconnecting a block (wallet rebuild), loading
//! from change sets. Setup (mining, funding) is outside the timed sections.

use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf, Transaction};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fulmen_chain::{Chain, ChainParams};
use fulmen_wallet::{
    merge_changesets, mnemonic_from_entropy, ChainSource, ChangeSet, Seed, Wallet, WalletParams,
};

struct Source<'a>(&'a Chain);

impl ChainSource for Source<'_> {
    fn tip_height(&self) -> u32 {
        self.0.height()
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.0.block_at(height).map(|b| b.block_hash())
    }
    fn block_at(&self, height: u32) -> Option<Block> {
        self.0.block_at(height).cloned()
    }
    fn mempool(&self) -> Vec<Transaction> {
        self.0.mempool()
    }
}

const NOW: u64 = 1_700_001_000;

/// A chain of ~200 blocks where the wallet received `payments` confirmed coins.
fn history(payments: u32) -> (Chain, Seed, Vec<ChangeSet>) {
    let mut chain = Chain::new(
        ChainParams::default(),
        SecretKey::from_slice(&[0x11; 32]).unwrap(),
    );
    let mut time = 1_700_000_000;
    chain.mine(110, None, time);
    time += 111;
    let seed = mnemonic_from_entropy(&[0x42; 32]).unwrap();
    let mut wallet = Wallet::create(&seed, WalletParams::regtest()).unwrap();
    let mut store = Vec::new();
    for _ in 0..payments {
        let address = wallet.new_address();
        chain.fund(&address, Amount::from_sat(1_000_000)).unwrap();
        chain.mine(1, None, time);
        time += 2;
    }
    chain.mine(200u32.saturating_sub(chain.height()), None, time);
    wallet.sync(&Source(&chain), NOW).unwrap();
    store.extend(wallet.take_staged());
    (chain, seed, store)
}

fn benches(c: &mut Criterion) {
    let (chain, seed, store) = history(40);
    let params = WalletParams::regtest();
    let mut group = c.benchmark_group("wallet");
    group.sample_size(10);

    group.bench_function("rescan_200_blocks_40_payments", |b| {
        b.iter(|| {
            let mut w = Wallet::create(&seed, params).unwrap();
            w.sync(&Source(&chain), NOW).unwrap();
            assert_eq!(w.list_utxos().len(), 40);
        })
    });

    group.bench_function("load_from_change_sets_40_payments", |b| {
        b.iter(|| Wallet::load(&seed, params, merge_changesets(store.iter().cloned())).unwrap())
    });

    let spk = ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51]).wscript_hash());
    group.bench_function("fund_script_needing_10_of_40_utxos", |b| {
        b.iter_batched(
            || Wallet::load(&seed, params, merge_changesets(store.iter().cloned())).unwrap(),
            |mut w| {
                w.fund_script(spk.clone(), Amount::from_sat(9_500_000), 2, [9; 32])
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("disconnect_tip_block_40_payments", |b| {
        b.iter_batched(
            || Wallet::load(&seed, params, merge_changesets(store.iter().cloned())).unwrap(),
            |mut w| {
                let tip = w.tip().hash;
                w.disconnect_block(tip).unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(wallet_benches, benches);
criterion_main!(wallet_benches);
