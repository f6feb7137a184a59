//! The wallet against the real in-process simulated chain (`fulmen-chain`): receiving,
//! coinbase maturity, spending, channel funding, reorgs, restore from mnemonic, persistence.
//! Deterministic: fixed keys, fixed entropy, a fake clock.

mod common;

use bitcoin::blockdata::opcodes::all::{OP_CHECKMULTISIG, OP_PUSHNUM_2};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, ScriptBuf};
use common::{assert_same_view, Harness, Source};
use fulmen_wallet::{Confirmation, Wallet, WalletError, WalletParams};

/// Fixed coin-selection entropy: tests are deterministic.
const AUX: [u8; 32] = [7; 32];

fn btc(n: u64) -> Amount {
    Amount::from_int_btc(n)
}

/// A BOLT 3 style 2-of-2 multisig witness script (keys sorted).
fn two_of_two() -> ScriptBuf {
    let secp = Secp256k1::new();
    let mut keys: Vec<PublicKey> = [[0x21u8; 32], [0x22u8; 32]]
        .iter()
        .map(|k| SecretKey::from_slice(k).unwrap().public_key(&secp))
        .collect();
    keys.sort_by_key(|k| k.serialize());
    bitcoin::script::Builder::new()
        .push_opcode(OP_PUSHNUM_2)
        .push_slice(keys[0].serialize())
        .push_slice(keys[1].serialize())
        .push_opcode(OP_PUSHNUM_2)
        .push_opcode(OP_CHECKMULTISIG)
        .into_script()
}

#[test]
fn receive_from_faucet_then_confirm() {
    let mut h = Harness::new();
    assert_eq!(h.wallet.balance().total(), Amount::ZERO);
    let txid = h.receive(btc(2));
    let b = h.wallet.balance();
    assert_eq!(b.untrusted_pending, btc(2));
    assert_eq!(b.confirmed, Amount::ZERO);
    let txs = h.wallet.list_transactions();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].txid, txid);
    assert!(matches!(
        txs[0].confirmation,
        Confirmation::Unconfirmed { .. }
    ));

    h.mine(1, None);
    let b = h.wallet.balance();
    assert_eq!(b.confirmed, btc(2));
    assert_eq!(b.unconfirmed(), Amount::ZERO);
    let utxos = h.wallet.list_utxos();
    assert_eq!(utxos.len(), 1);
    assert_eq!(utxos[0].amount, btc(2));
    assert_eq!(utxos[0].confirmation.height(), Some(h.chain.height()));
    assert!(!utxos[0].is_coinbase && utxos[0].mature);
    // The chain agrees the output exists and is what the wallet thinks it is.
    let on_chain = h.chain.utxo(&utxos[0].outpoint).unwrap();
    assert_eq!(on_chain.txout.value, btc(2));
    assert_eq!(on_chain.txout.script_pubkey, utxos[0].script_pubkey);
    let txs = h.wallet.list_transactions();
    assert_eq!(txs[0].received, btc(2));
    assert_eq!(txs[0].net.to_sat(), btc(2).to_sat() as i64);
}

#[test]
fn coinbase_is_immature_until_100_confirmations() {
    let mut h = Harness::new();
    let script = h.wallet.new_address().script_pubkey();
    h.mine(1, Some(&script));
    let cb_height = h.chain.height();
    let subsidy = fulmen_chain::subsidy(cb_height);
    assert_eq!(h.wallet.balance().immature, subsidy);
    assert_eq!(h.wallet.balance().confirmed, Amount::ZERO);
    let utxo = h.wallet.list_utxos()[0].clone();
    assert!(utxo.is_coinbase && !utxo.mature);

    // 99 confirmations: still immature, and coin selection refuses it.
    h.mine(98, None);
    assert_eq!(h.chain.height() - cb_height + 1, 99);
    assert_eq!(h.wallet.balance().immature, subsidy);
    let faucet = h.chain.faucet_address().to_string();
    match h.wallet.pay_to_address(&faucet, btc(1), 2, AUX) {
        Err(WalletError::InsufficientFunds { available, .. }) => {
            assert_eq!(available, Amount::ZERO)
        }
        other => panic!("expected insufficient funds, got {other:?}"),
    }

    // 100 confirmations: mature for the wallet and for the chain.
    h.mine(1, None);
    assert_eq!(h.wallet.balance().immature, Amount::ZERO);
    assert_eq!(h.wallet.balance().confirmed, subsidy);
    assert!(h.wallet.list_utxos()[0].mature);
    let built = h.wallet.pay_to_address(&faucet, btc(1), 2, AUX).unwrap();
    h.broadcast(&built.tx);
    assert_eq!(
        h.wallet.balance().trusted_pending,
        subsidy - btc(1) - built.fee
    );
}

#[test]
fn spend_to_address_pays_exact_fee() {
    let mut h = Harness::new();
    h.receive(btc(3));
    h.mine(1, None);
    let start = h.wallet.balance().confirmed;
    let faucet = h.chain.faucet_address().to_string();
    let built = h.wallet.pay_to_address(&faucet, btc(1), 5, AUX).unwrap();
    // Fee is what the transaction really pays, at >= the requested feerate.
    assert!(
        built.fee.to_sat() >= 5 * built.vsize,
        "fee {} vsize {}",
        built.fee,
        built.vsize
    );
    assert!(
        built.fee.to_sat() <= 6 * built.vsize,
        "fee {} vsize {}",
        built.fee,
        built.vsize
    );
    let (change_index, change_value) = built.change.unwrap();
    assert_ne!(change_index, built.output_index);
    assert_eq!(change_value, start - btc(1) - built.fee);

    h.broadcast(&built.tx);
    let b = h.wallet.balance();
    assert_eq!(b.confirmed, Amount::ZERO);
    assert_eq!(b.trusted_pending, start - btc(1) - built.fee);
    h.mine(1, None);
    assert_eq!(h.wallet.balance().confirmed, start - btc(1) - built.fee);
    let sent = h
        .wallet
        .list_transactions()
        .into_iter()
        .find(|t| t.txid == built.txid)
        .unwrap();
    assert_eq!(sent.fee, Some(built.fee));
    assert_eq!(sent.net.to_sat(), -((btc(1) + built.fee).to_sat() as i64));
    assert!(h.chain.transaction(&built.txid).unwrap().block.is_some());
}

/// "Done when": a channel funding transaction to a 2-of-2 P2WSH output is accepted by the
/// chain, and the balance is exactly start − amount − fee.
#[test]
fn fund_two_of_two_p2wsh_channel_output() {
    let mut h = Harness::new();
    h.receive(btc(1));
    h.receive(Amount::from_sat(30_000_000));
    h.mine(1, None);
    let start = h.wallet.balance().confirmed;
    assert_eq!(start, Amount::from_sat(130_000_000));

    let witness_script = two_of_two();
    let funding_spk = ScriptBuf::new_p2wsh(&witness_script.wscript_hash());
    let amount = Amount::from_sat(120_000_000); // needs both coins
    let built = h
        .wallet
        .fund_script(funding_spk.clone(), amount, 3, AUX)
        .unwrap();
    assert_eq!(built.tx.input.len(), 2);
    let funding_out = &built.tx.output[built.output_index as usize];
    assert_eq!(funding_out.script_pubkey, funding_spk);
    assert_eq!(funding_out.value, amount);

    let txid = h.chain.submit_transaction(built.tx.clone()).unwrap();
    assert_eq!(txid, built.txid);
    h.sync();
    assert_eq!(h.wallet.balance().total(), start - amount - built.fee);
    h.mine(1, None);
    assert_eq!(h.wallet.balance().confirmed, start - amount - built.fee);
    assert_eq!(h.wallet.balance().total(), start - amount - built.fee);
    let outpoint = bitcoin::OutPoint::new(txid, built.output_index);
    let on_chain = h.chain.utxo(&outpoint).unwrap();
    assert_eq!(on_chain.txout.value, amount);
    assert_eq!(on_chain.txout.script_pubkey, funding_spk);
    // The funding output is not the wallet's; only the change is.
    assert_eq!(h.wallet.list_utxos().len(), 1);
}

#[test]
fn typed_errors() {
    let mut h = Harness::new();
    h.receive(btc(1));
    h.mine(1, None);
    let faucet = h.chain.faucet_address().to_string();

    match h.wallet.pay_to_address(&faucet, btc(2), 1, AUX) {
        Err(WalletError::InsufficientFunds {
            needed,
            available,
            missing,
        }) => {
            assert_eq!(available, btc(1));
            assert!(needed > btc(2));
            assert_eq!(missing, needed - available);
            assert!(missing > btc(1));
        }
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    match h
        .wallet
        .pay_to_address(&faucet, Amount::from_sat(293), 1, AUX)
    {
        Err(WalletError::DustOutput { amount, minimum }) => {
            assert_eq!((amount.to_sat(), minimum.to_sat()), (293, 294))
        }
        other => panic!("expected dust, got {other:?}"),
    }
    // 294 sat is exactly the P2WPKH dust limit: allowed, and the chain agrees.
    let ok = h
        .wallet
        .pay_to_address(&faucet, Amount::from_sat(294), 1, AUX)
        .unwrap();
    h.chain.submit_transaction(ok.tx).unwrap();
    let p2wsh = ScriptBuf::new_p2wsh(&two_of_two().wscript_hash());
    assert!(matches!(
        h.wallet.fund_script(p2wsh, Amount::from_sat(329), 1, AUX),
        Err(WalletError::DustOutput { minimum, .. }) if minimum.to_sat() == 330
    ));
    assert!(matches!(
        h.wallet.pay_to_address("not-an-address", btc(1), 1, AUX),
        Err(WalletError::InvalidAddress { .. })
    ));
    // A mainnet address (BIP173 example) on a regtest wallet.
    match h
        .wallet
        .pay_to_address("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", btc(1), 1, AUX)
    {
        Err(WalletError::WrongNetwork { found, .. }) => assert_eq!(found, "bitcoin"),
        other => panic!("expected wrong network, got {other:?}"),
    }
    assert!(matches!(
        h.wallet.pay_to_address(&faucet, btc(1), 0, AUX),
        Err(WalletError::InvalidFeeRate { sat_per_vb: 0 })
    ));
    assert!(matches!(
        h.wallet.pay_to_address(&faucet, Amount::ZERO, 1, AUX),
        Err(WalletError::ZeroAmount)
    ));
    // The error text says how much is missing.
    let err = h
        .wallet
        .pay_to_address(&faucet, btc(5), 1, AUX)
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn reorg_receiving_block_away_and_back() {
    let mut h = Harness::new();
    h.receive(btc(2));
    let blocks = h.mine(1, None);
    let receiving = blocks[0].clone();
    assert_eq!(h.wallet.balance().confirmed, btc(2));
    let before_utxos = h.wallet.list_utxos();

    // Away: the chain drops the block, the tx returns to its mempool.
    let disconnected = h.chain.reorg(1).unwrap();
    assert_eq!(disconnected[0].block_hash(), receiving.block_hash());
    let new_tip = h
        .wallet
        .disconnect_blocks(disconnected.iter().map(|b| b.block_hash()))
        .unwrap();
    assert_eq!(new_tip, h.chain.height());
    // Before the mempool is reported, the tx was only known from the block: it does not count.
    // (It was seen in the mempool earlier, so it is unconfirmed now.)
    h.time += 1;
    h.wallet.sync_mempool(&h.chain.mempool(), u64::from(h.time));
    h.persist();
    let b = h.wallet.balance();
    assert_eq!(b.confirmed, Amount::ZERO);
    assert_eq!(b.untrusted_pending, btc(2));
    assert!(matches!(
        h.wallet.list_utxos()[0].confirmation,
        Confirmation::Unconfirmed { .. }
    ));
    let reloaded = h.reload();
    assert_same_view(&reloaded, &h.wallet);

    // Back: the very same block is reconnected.
    h.chain.connect_block(receiving.clone()).unwrap();
    h.sync();
    assert_eq!(h.wallet.balance().confirmed, btc(2));
    assert_eq!(h.wallet.list_utxos(), before_utxos);
    assert_eq!(h.wallet.tip().hash, receiving.block_hash());
    let reloaded = h.reload();
    assert_same_view(&reloaded, &h.wallet);
}

#[test]
fn reorg_to_a_different_block_via_sync() {
    let mut h = Harness::new();
    h.receive(btc(2));
    let old = h.mine(2, None);
    let conf_height = h.chain.height() - 1;
    assert_eq!(
        h.wallet.list_utxos()[0].confirmation.height(),
        Some(conf_height)
    );
    // Two blocks away, three new ones: the wallet notices through `sync` alone.
    h.chain.reorg(2).unwrap();
    h.time += 10;
    let new = h.chain.mine(3, None, h.time);
    let summary = h.wallet.sync(&Source(&h.chain), u64::from(h.time)).unwrap();
    h.persist();
    assert_eq!(summary.disconnected, 2);
    assert_eq!(summary.connected, 3);
    assert_ne!(old[0].block_hash(), new[0].block_hash());
    let utxo = &h.wallet.list_utxos()[0];
    assert_eq!(utxo.confirmation.height(), Some(conf_height));
    match utxo.confirmation {
        Confirmation::Confirmed { block_hash, .. } => assert_eq!(block_hash, new[0].block_hash()),
        _ => panic!("should be confirmed"),
    }
    assert_eq!(h.wallet.balance().confirmed, btc(2));
    assert_same_view(&h.reload(), &h.wallet);
}

#[test]
fn reorged_coinbase_disappears() {
    let mut h = Harness::new();
    let script = h.wallet.new_address().script_pubkey();
    h.mine(1, Some(&script));
    assert!(h.wallet.balance().immature > Amount::ZERO);
    let gone = h.chain.reorg(1).unwrap();
    h.wallet.disconnect_block(gone[0].block_hash()).unwrap();
    h.persist();
    assert_eq!(h.wallet.balance().total(), Amount::ZERO);
    assert!(h.wallet.list_utxos().is_empty());
    assert!(h.wallet.list_transactions().is_empty());
    assert_same_view(&h.reload(), &h.wallet);
}

#[test]
fn mempool_eviction_stops_counting_a_tx() {
    let mut h = Harness::new();
    h.receive(btc(1));
    assert_eq!(h.wallet.balance().untrusted_pending, btc(1));
    // The caller reports a mempool that no longer has it (e.g. after a restart of the chain).
    h.time += 1;
    h.wallet.sync_mempool(&[], u64::from(h.time));
    assert_eq!(h.wallet.balance().total(), Amount::ZERO);
    // Seen again later: counts again.
    h.time += 1;
    h.wallet.sync_mempool(&h.chain.mempool(), u64::from(h.time));
    assert_eq!(h.wallet.balance().untrusted_pending, btc(1));
}

/// Restore from the mnemonic and rescan every block: same balance, UTXOs and transactions,
/// including coins on addresses far apart (found through the lookahead gap).
#[test]
fn restore_from_mnemonic_and_rescan() {
    let mut h = Harness::new();
    h.receive(btc(1));
    h.mine(1, None);
    // Skip 20 addresses, then receive on a far one.
    for _ in 0..20 {
        h.wallet.new_address();
    }
    h.receive(btc(2));
    let cb = h.wallet.new_address().script_pubkey();
    h.mine(1, Some(&cb));
    let faucet = h.chain.faucet_address().to_string();
    let spend = h
        .wallet
        .pay_to_address(&faucet, Amount::from_sat(50_000_000), 4, AUX)
        .unwrap();
    h.broadcast(&spend.tx);
    h.mine(1, None);
    h.receive(Amount::from_sat(700_000)); // left unconfirmed
    let original = h.wallet.balance();
    assert!(original.confirmed > Amount::ZERO);
    assert!(original.immature > Amount::ZERO);
    assert_eq!(original.untrusted_pending, Amount::from_sat(700_000));

    let phrase = h.wallet.seed().phrase();
    let seed = fulmen_wallet::Seed::from_phrase(&phrase).unwrap();
    let mut restored = Wallet::create(&seed, WalletParams::regtest()).unwrap();
    let summary = restored.sync(&Source(&h.chain), u64::from(h.time)).unwrap();
    assert_eq!(summary.connected, h.chain.height());
    assert_same_view(&restored, &h.wallet);
    // A restored wallet never hands out an address the original already used.
    let used: Vec<_> = h
        .wallet
        .list_utxos()
        .into_iter()
        .map(|u| u.script_pubkey)
        .collect();
    let fresh = restored.new_address().script_pubkey();
    assert!(!used.contains(&fresh));
}

/// The wallet rebuilt from its stored change sets (JSON) equals the original, at every step
/// of a history with receives, coinbase, spends, a reorg and mempool evictions.
#[test]
fn rebuilt_from_change_sets_equals_original() {
    let mut h = Harness::new();
    let check = |h: &mut Harness| {
        let rebuilt = h.reload();
        assert_same_view(&rebuilt, &h.wallet);
        assert_eq!(
            rebuilt.next_address_indices(),
            h.wallet.next_address_indices()
        );
    };
    check(&mut h);
    h.receive(btc(1));
    check(&mut h);
    h.mine(1, None);
    check(&mut h);
    let cb = h.wallet.new_address().script_pubkey();
    h.mine(1, Some(&cb));
    check(&mut h);
    for _ in 0..5 {
        h.wallet.new_address(); // revealed but unused: must survive the rebuild too
    }
    check(&mut h);
    let faucet = h.chain.faucet_address().to_string();
    let spend = h.wallet.pay_to_address(&faucet, btc(0), 1, AUX);
    assert!(spend.is_err());
    let spend = h
        .wallet
        .pay_to_address(&faucet, Amount::from_sat(10_000_000), 2, AUX)
        .unwrap();
    h.broadcast(&spend.tx);
    check(&mut h);
    h.mine(1, None);
    check(&mut h);
    let gone = h.chain.reorg(2).unwrap();
    h.wallet
        .disconnect_blocks(gone.iter().map(|b| b.block_hash()))
        .unwrap();
    h.persist();
    check(&mut h);
    h.time += 1;
    let _ = h.chain.mine(3, None, h.time);
    h.sync();
    check(&mut h);
    let indices = h.wallet.next_address_indices();
    assert_eq!(indices.receive, 1 + 1 + 5);
    assert!(indices.change >= 1);

    // A compacted snapshot loads to the same wallet too.
    let snapshot = serde_json::to_string(&h.wallet.full_changeset()).unwrap();
    let compacted = Wallet::load(
        &h.seed,
        WalletParams::regtest(),
        serde_json::from_str(&snapshot).unwrap(),
    )
    .unwrap();
    assert_same_view(&compacted, &h.wallet);
    assert_eq!(
        compacted.next_address_indices(),
        h.wallet.next_address_indices()
    );
}

#[test]
fn load_refuses_another_seed() {
    let mut h = Harness::new();
    h.persist();
    let all =
        fulmen_wallet::merge_changesets(h.store.iter().map(|s| serde_json::from_str(s).unwrap()));
    let other = common::seed(0x43);
    assert!(matches!(
        Wallet::load(&other, WalletParams::regtest(), all),
        Err(WalletError::Load(_))
    ));
    assert!(matches!(
        Wallet::load(&h.seed, WalletParams::regtest(), Default::default()),
        Err(WalletError::NoWalletData)
    ));
}

#[test]
fn drain_sends_everything_spendable_but_not_immature_coins() {
    let mut h = Harness::new();
    let faucet = h.chain.faucet_address().to_string();
    let empty = h.wallet.drain_to_address(&faucet, 2, AUX).unwrap_err();
    assert!(
        matches!(empty, WalletError::InsufficientFunds { .. }),
        "{empty:?}"
    );
    h.receive(btc(1));
    h.mine(1, None);
    h.receive(Amount::from_sat(40_000_000)); // unconfirmed receive is spendable too
    let cb = h.wallet.new_address().script_pubkey();
    h.mine(1, Some(&cb));
    h.receive(Amount::from_sat(5_000_000));
    let before = h.wallet.balance();
    assert!(before.immature > Amount::ZERO);
    let built = h.wallet.drain_to_address(&faucet, 3, AUX).unwrap();
    assert_eq!(built.tx.output.len(), 1);
    assert_eq!(built.tx.input.len(), 3);
    assert!(built.fee.to_sat() >= 3 * built.vsize);
    assert_eq!(
        built.tx.output[0].value,
        before.confirmed + before.unconfirmed() - built.fee
    );
    h.broadcast(&built.tx);
    let after = h.wallet.balance();
    assert_eq!(after.total(), before.immature);
    assert_eq!(after.immature, before.immature);
}
