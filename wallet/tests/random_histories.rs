//! Seeded random histories against the real chain: receives, coinbases, payments, channel
//! fundings, reorgs of 1-3 blocks, mempool evictions. After every step the wallet must agree
//! with the chain and with a copy rebuilt from its stored change sets; at the end a wallet
//! restored from the mnemonic and rescanned must agree too. Every transaction the wallet
//! builds must be accepted by the chain. Deterministic (ChaCha seeded per history).

mod common;

use bitcoin::{Amount, ScriptBuf};
use common::{assert_same_view, Harness, Source};
use fulmen_wallet::{Confirmation, Seed, Wallet, WalletError, WalletParams};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn pick(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

fn check_against_chain(h: &mut Harness) {
    let balance = h.wallet.balance();
    let utxos = h.wallet.list_utxos();
    let sum: Amount = utxos.iter().map(|u| u.amount).sum();
    assert_eq!(sum, balance.total(), "utxos sum to the balance");
    let mempool: Vec<_> = h.chain.mempool().iter().map(|t| t.compute_txid()).collect();
    for u in &utxos {
        match u.confirmation {
            Confirmation::Confirmed {
                height, block_hash, ..
            } => {
                let on_chain = h
                    .chain
                    .utxo(&u.outpoint)
                    .expect("confirmed utxo is on chain");
                assert_eq!(on_chain.txout.value, u.amount);
                assert_eq!(on_chain.height, height);
                assert_eq!(h.chain.block_at(height).unwrap().block_hash(), block_hash);
                assert!(
                    h.chain.spender(&u.outpoint).is_none(),
                    "not spent in mempool"
                );
            }
            Confirmation::Unconfirmed { .. } => {
                assert!(
                    mempool.contains(&u.outpoint.txid),
                    "unconfirmed utxo's tx in mempool"
                );
            }
        }
    }
    assert_eq!(h.wallet.tip().hash, h.chain.tip().hash);
    let rebuilt = h.reload();
    assert_same_view(&rebuilt, &h.wallet);
    assert_eq!(
        rebuilt.next_address_indices(),
        h.wallet.next_address_indices()
    );
}

fn run_history(seed: u64, steps: usize) -> (u32, u32) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut h = Harness::new();
    // Enough mature faucet coins for many receives.
    h.mine(20, None);
    let funding_spk = ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51]).wscript_hash());
    let faucet = h.chain.faucet_address().to_string();
    let (mut built_ok, mut reorgs) = (0u32, 0u32);
    for _ in 0..steps {
        let mut aux = [0u8; 32];
        rng.fill_bytes(&mut aux);
        match pick(&mut rng, 10) {
            0 | 1 => {
                let amount = Amount::from_sat(100_000 + pick(&mut rng, 200_000_000));
                if h.chain.faucet_balance() > amount + Amount::from_sat(100_000) {
                    h.receive(amount);
                }
            }
            2 | 3 => {
                h.mine(1 + pick(&mut rng, 3) as u32, None);
            }
            4 => {
                let script = h.wallet.new_address().script_pubkey();
                h.mine(1, Some(&script));
            }
            5 | 6 => {
                let amount = Amount::from_sat(1_000 + pick(&mut rng, 150_000_000));
                let feerate = 1 + pick(&mut rng, 20);
                let kind = pick(&mut rng, 7);
                let result = match kind {
                    0..=2 => h.wallet.pay_to_address(&faucet, amount, feerate, aux),
                    3..=5 => h
                        .wallet
                        .fund_script(funding_spk.clone(), amount, feerate, aux),
                    _ => h.wallet.drain_to_address(&faucet, feerate, aux),
                };
                match result {
                    Ok(built) => {
                        let before = h.wallet.balance().total();
                        let sent = built.tx.output[built.output_index as usize].value;
                        if kind < 6 {
                            assert_eq!(sent, amount);
                        }
                        assert!(built.fee.to_sat() >= feerate * built.vsize);
                        h.broadcast(&built.tx); // panics if the chain refuses it
                        assert_eq!(h.wallet.balance().total(), before - sent - built.fee);
                        built_ok += 1;
                    }
                    Err(WalletError::InsufficientFunds {
                        needed,
                        available,
                        missing,
                    }) => {
                        assert!(missing > Amount::ZERO);
                        assert_eq!(missing, needed - available);
                    }
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            7 | 8 => {
                let depth = 1 + pick(&mut rng, 3) as u32;
                if h.chain.height() > 130 {
                    h.chain.reorg(depth).unwrap();
                    reorgs += 1;
                    if pick(&mut rng, 2) == 0 {
                        h.mine(depth + 1, None);
                    } else {
                        h.sync();
                    }
                }
            }
            _ => {
                // The caller reports an empty mempool, then the real one again.
                h.time += 1;
                h.wallet.sync_mempool(&[], u64::from(h.time));
                h.persist();
                h.time += 1;
                h.sync();
            }
        }
        check_against_chain(&mut h);
    }

    let seed_words = Seed::from_phrase(&h.wallet.seed().phrase()).unwrap();
    let mut restored = Wallet::create(&seed_words, WalletParams::regtest()).unwrap();
    restored.sync(&Source(&h.chain), u64::from(h.time)).unwrap();
    assert_eq!(restored.balance(), h.wallet.balance());
    assert_eq!(restored.list_utxos(), h.wallet.list_utxos());
    (built_ok, reorgs)
}

#[test]
fn random_histories_stay_consistent() {
    let mut totals = (0, 0);
    for seed in 0..4 {
        let (built, reorgs) = run_history(seed, 40);
        totals.0 += built;
        totals.1 += reorgs;
    }
    eprintln!("built and accepted: {}, reorgs: {}", totals.0, totals.1);
    // The histories really exercised spending and reorgs.
    assert!(totals.0 >= 10, "built {}", totals.0);
    assert!(totals.1 >= 5, "reorgs {}", totals.1);
}
