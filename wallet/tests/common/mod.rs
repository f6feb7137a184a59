//! Shared harness of the wallet's integration tests: an in-process `fulmen_chain::Chain`, a
//! deterministic clock, and a `ChainSource` adapter. Never uses randomness or real time.
#![allow(dead_code)]

use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf, Transaction, Txid};
use fulmen_chain::{Chain, ChainParams};
use fulmen_wallet::{mnemonic_from_entropy, ChainSource, ChangeSet, Seed, Wallet, WalletParams};

/// `ChainSource` over the in-process chain.
pub struct Source<'a>(pub &'a Chain);

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

/// A chain, a wallet, a fake clock and every change set the wallet staged (the "database").
pub struct Harness {
    pub chain: Chain,
    pub seed: Seed,
    pub wallet: Wallet,
    pub time: u32,
    pub store: Vec<String>,
}

pub fn seed(byte: u8) -> Seed {
    mnemonic_from_entropy(&[byte; 32]).unwrap()
}

impl Harness {
    /// Chain with 101 faucet blocks (so the faucet has one mature coinbase) and an empty wallet.
    pub fn new() -> Harness {
        let faucet_key = SecretKey::from_slice(&[0x11; 32]).unwrap();
        let mut chain = Chain::new(ChainParams::default(), faucet_key);
        let time = 1_700_000_000;
        chain.mine(101, None, time);
        let seed = seed(0x42);
        let wallet = Wallet::create(&seed, WalletParams::regtest()).unwrap();
        let mut h = Harness {
            chain,
            seed,
            wallet,
            time: time + 101,
            store: Vec::new(),
        };
        h.sync();
        h
    }

    /// Persist what the wallet staged, as the node would (JSON round trip included).
    pub fn persist(&mut self) {
        if let Some(cs) = self.wallet.take_staged() {
            self.store.push(serde_json::to_string(&cs).unwrap());
        }
    }

    /// Rebuild a wallet from the stored change sets.
    pub fn reload(&mut self) -> Wallet {
        self.persist();
        let sets = self
            .store
            .iter()
            .map(|s| serde_json::from_str::<ChangeSet>(s).unwrap());
        Wallet::load(
            &self.seed,
            WalletParams::regtest(),
            fulmen_wallet::merge_changesets(sets),
        )
        .unwrap()
    }

    pub fn sync(&mut self) {
        self.wallet
            .sync(&Source(&self.chain), u64::from(self.time))
            .unwrap();
        self.persist();
    }

    /// Mine `n` blocks (coinbase to `to`, or the faucet), then sync the wallet.
    pub fn mine(&mut self, n: u32, to: Option<&ScriptBuf>) -> Vec<Block> {
        self.time += 1;
        let blocks = self.chain.mine(n, to, self.time);
        self.time += n;
        self.sync();
        blocks
    }

    /// Faucet pays `amount` to a fresh wallet address; the wallet sees it in the mempool.
    pub fn receive(&mut self, amount: Amount) -> Txid {
        let address = self.wallet.new_address();
        self.persist();
        let txid = self.chain.fund(&address, amount).unwrap();
        self.time += 1;
        self.sync();
        txid
    }

    /// Submit to the chain, then tell the wallet it is in the mempool.
    pub fn broadcast(&mut self, tx: &Transaction) -> Txid {
        let txid = self.chain.submit_transaction(tx.clone()).unwrap();
        self.time += 1;
        self.wallet
            .apply_mempool_txs([tx.clone()], u64::from(self.time));
        self.persist();
        txid
    }
}

/// Wallet views that must agree between two wallets holding the same state.
pub fn assert_same_view(a: &Wallet, b: &Wallet) {
    assert_eq!(a.balance(), b.balance(), "balance");
    assert_eq!(a.list_utxos(), b.list_utxos(), "utxos");
    assert_eq!(a.list_transactions(), b.list_transactions(), "transactions");
    assert_eq!(a.tip(), b.tip(), "tip");
}
