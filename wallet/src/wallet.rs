//! The wallet state machine: keys, chain view, UTXO set, change sets.
//!
//! Owns: a BDK [`bdk_wallet::Wallet`] (BIP84 P2WPKH, two keychains) fed by the caller with
//! connected blocks, disconnected blocks and mempool snapshots, and the staged change set
//! that the caller persists. Must never do I/O, read a clock or create randomness: heights,
//! "seen at" times and entropy are arguments.
//!
//! # Persistence contract
//! Every mutating call stages a [`ChangeSet`]. The caller takes it with
//! [`Wallet::take_staged`] and appends it to its store (it is serde). On start the caller
//! merges the stored change sets in order ([`merge_changesets`]) and calls [`Wallet::load`]
//! with the same seed and params; the result equals the wallet that produced them (balance,
//! UTXOs, transactions, tip, next address indices). [`Wallet::full_changeset`] gives one
//! change set equivalent to the whole history, for compaction.

use std::fmt;

use bdk_wallet::chain::local_chain;
use bdk_wallet::chain::{BlockId, Indexer, Merge};
use bdk_wallet::{KeychainKind, LoadParams, Wallet as BdkWallet};
use bitcoin::{Address, Block, BlockHash, ScriptBuf, Transaction, Txid};

use crate::keys::{descriptors, Seed};
use crate::types::{Confirmation, WalletBalance, WalletParams, WalletTransaction, WalletUtxo};
use crate::{ChangeSet, WalletError};

/// Merge change sets in the order they were taken from [`Wallet::take_staged`].
pub fn merge_changesets(changesets: impl IntoIterator<Item = ChangeSet>) -> ChangeSet {
    let mut all = ChangeSet::default();
    for cs in changesets {
        all.merge(cs);
    }
    all
}

/// Next unused derivation indices of both keychains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddressIndices {
    /// Next index [`Wallet::new_address`] will reveal.
    pub receive: u32,
    /// Next change index that would be revealed.
    pub change: u32,
}

/// The Fulmen on-chain wallet. See the module docs for the feeding and persistence contract.
pub struct Wallet {
    pub(crate) inner: BdkWallet,
    seed: Seed,
    params: WalletParams,
    /// Changes not yet taken by the caller (BDK's own stage is drained into this after every
    /// mutation, so rebuilding `inner` never loses them).
    stage: ChangeSet,
    /// Coins chosen by a built transaction that is neither broadcast (applied) nor
    /// cancelled yet: never chosen again meanwhile (in memory only — a restart abandons
    /// such builds).
    pub(crate) locked: std::collections::BTreeSet<bitcoin::OutPoint>,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tip = self.tip();
        f.debug_struct("Wallet")
            .field("network", &self.params.network)
            .field("tip_height", &tip.height)
            .field("tip_hash", &tip.hash)
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// Create a new wallet (or restore one: the same seed gives the same keys) whose chain
    /// view holds only the genesis block. To restore, feed every block from height 1 with
    /// [`Wallet::apply_block`]; BDK's lookahead discovers used addresses as it goes.
    ///
    /// The staged change set holds the public descriptors, network, genesis and the derived
    /// script cache (so loading skips key derivation): take it and persist it before handing
    /// out addresses.
    pub fn create(seed: &Seed, params: WalletParams) -> Result<Wallet, WalletError> {
        let master = seed.master_key(params.network)?;
        let (receive, change) = descriptors(master);
        let inner = BdkWallet::create(receive, change)
            .network(params.network)
            .genesis_hash(params.genesis_hash)
            .lookahead(params.lookahead)
            .use_spk_cache(true)
            .create_wallet_no_persist()
            .map_err(|e| WalletError::KeyDerivation(e.to_string()))?;
        let mut wallet = Wallet {
            inner,
            seed: seed.clone(),
            params,
            stage: ChangeSet::default(),
            locked: Default::default(),
        };
        wallet.absorb();
        Ok(wallet)
    }

    /// Rebuild a wallet from its merged stored change sets (see [`merge_changesets`]).
    ///
    /// Fails with [`WalletError::Load`] if the data belongs to another seed, network or genesis.
    pub fn load(
        seed: &Seed,
        params: WalletParams,
        changeset: ChangeSet,
    ) -> Result<Wallet, WalletError> {
        let inner = Self::load_inner(seed, &params, changeset)?;
        Ok(Wallet {
            inner,
            seed: seed.clone(),
            params,
            stage: ChangeSet::default(),
            locked: Default::default(),
        })
    }

    fn load_inner(
        seed: &Seed,
        params: &WalletParams,
        changeset: ChangeSet,
    ) -> Result<BdkWallet, WalletError> {
        let master = seed.master_key(params.network)?;
        let (receive, change) = descriptors(master);
        LoadParams::new()
            .descriptor(KeychainKind::External, Some(receive))
            .descriptor(KeychainKind::Internal, Some(change))
            .extract_keys()
            .check_network(params.network)
            .check_genesis_hash(params.genesis_hash)
            .lookahead(params.lookahead)
            .use_spk_cache(true)
            .load_wallet_no_persist(changeset)
            .map_err(|e| WalletError::Load(e.to_string()))?
            .ok_or(WalletError::NoWalletData)
    }

    /// Move BDK's staged changes into ours.
    pub(crate) fn absorb(&mut self) {
        if let Some(cs) = self.inner.take_staged() {
            self.stage.merge(cs);
        }
    }

    /// Take the changes made since the last call (`None` if nothing changed). The caller must
    /// persist them, in order, before acting on the result of the call that produced them
    /// (e.g. before showing a new address or broadcasting).
    pub fn take_staged(&mut self) -> Option<ChangeSet> {
        self.absorb();
        if self.stage.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.stage))
        }
    }

    /// One change set equivalent to the whole wallet state (for compacting the store).
    /// Loading it alone yields this wallet.
    pub fn full_changeset(&self) -> ChangeSet {
        let mut local_chain = self.inner.local_chain().initial_changeset();
        // A compacted set need not carry removals.
        local_chain.blocks.retain(|_, hash| hash.is_some());
        ChangeSet {
            descriptor: Some(self.inner.public_descriptor(KeychainKind::External).clone()),
            change_descriptor: Some(self.inner.public_descriptor(KeychainKind::Internal).clone()),
            network: Some(self.params.network),
            local_chain,
            tx_graph: self.inner.tx_graph().initial_changeset(),
            indexer: self.inner.spk_index().initial_changeset(),
        }
    }

    /// The parameters the wallet was created with.
    pub fn params(&self) -> &WalletParams {
        &self.params
    }

    /// The seed (for showing the backup words once; never log it).
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// Highest block the wallet has been fed.
    pub fn tip(&self) -> BlockId {
        self.inner.latest_checkpoint().block_id()
    }

    /// Hash of the wallet's block at `height`, if it has one.
    pub fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.inner.local_chain().get(height).map(|cp| cp.hash())
    }

    // ---------------------------------------------------------------- chain feeding

    /// Feed a block of the best chain at `height`. Blocks should come in height order; a block
    /// whose parent the wallet lacks is accepted only above the tip (a gap, e.g. a wallet
    /// created after the chain already had blocks it cannot care about). A block at an already
    /// known height with another hash replaces that block and everything above it (reorg).
    /// Feeding the same block twice is harmless.
    pub fn apply_block(&mut self, block: &Block, height: u32) -> Result<(), WalletError> {
        let tip = self.tip();
        let hash = block.block_hash();
        let connect_err = || WalletError::BlockDoesNotConnect {
            height,
            hash,
            tip_height: tip.height,
            tip_hash: tip.hash,
        };
        if height == 0 {
            return if hash == self.params.genesis_hash {
                Ok(())
            } else {
                Err(connect_err())
            };
        }
        let has_parent_height = self.inner.local_chain().get(height - 1).is_some();
        let result = if has_parent_height {
            self.inner
                .apply_block(block, height)
                .map_err(|_| connect_err())
        } else if tip.height < height {
            self.inner
                .apply_block_connected_to(block, height, tip)
                .map_err(|_| connect_err())
        } else {
            Err(connect_err())
        };
        self.absorb();
        result
    }

    /// Disconnect the block `hash` and every block above it (a reorg that is not, or not yet,
    /// replaced by new blocks). Transactions confirmed only in those blocks stop counting as
    /// confirmed; those the caller reports in the mempool again (with
    /// [`Wallet::apply_mempool_txs`] or [`Wallet::sync_mempool`]) count as unconfirmed.
    ///
    /// Returns the new tip height. Cost: one rebuild of the wallet from its state.
    pub fn disconnect_block(&mut self, hash: BlockHash) -> Result<u32, WalletError> {
        self.disconnect_blocks([hash])
    }

    /// [`Wallet::disconnect_block`] for several blocks at once (e.g. what
    /// `fulmen_chain::Chain::reorg` returns): everything from the lowest of them up goes.
    pub fn disconnect_blocks(
        &mut self,
        hashes: impl IntoIterator<Item = BlockHash>,
    ) -> Result<u32, WalletError> {
        let mut lowest: Option<u32> = None;
        for hash in hashes {
            let height = self
                .inner
                .local_chain()
                .iter_checkpoints()
                .find(|cp| cp.hash() == hash)
                .map(|cp| cp.height())
                .ok_or(WalletError::UnknownBlock { hash })?;
            if height == 0 {
                return Err(WalletError::DisconnectGenesis);
            }
            lowest = Some(lowest.map_or(height, |l| l.min(height)));
        }
        let Some(from) = lowest else {
            return Ok(self.tip().height);
        };
        self.absorb();
        let mut removal = local_chain::ChangeSet::default();
        for cp in self.inner.local_chain().iter_checkpoints() {
            if cp.height() < from {
                break;
            }
            removal.blocks.insert(cp.height(), None);
        }
        let mut full = self.full_changeset();
        full.local_chain.merge(removal.clone());
        self.inner = Self::load_inner(&self.seed, &self.params, full)?;
        // Loading stages nothing, but make sure no stray change is lost.
        self.absorb();
        self.stage.merge(ChangeSet {
            local_chain: removal,
            ..ChangeSet::default()
        });
        Ok(self.tip().height)
    }

    /// Feed transactions seen in the mempool at `seen_at` (caller's clock, e.g. unix seconds).
    /// Irrelevant transactions are ignored. Among conflicting unconfirmed transactions the one
    /// seen last wins.
    pub fn apply_mempool_txs(&mut self, txs: impl IntoIterator<Item = Transaction>, seen_at: u64) {
        let txs: Vec<Transaction> = txs.into_iter().collect();
        for tx in &txs {
            for i in &tx.input {
                self.locked.remove(&i.previous_output);
            }
        }
        self.inner
            .apply_unconfirmed_txs(txs.into_iter().map(|tx| (tx, seen_at)));
        self.absorb();
    }

    /// The chain refused (or dropped) the unconfirmed transaction `txid` we applied: it no
    /// longer counts, its inputs are spendable again.
    pub fn evict_tx(&mut self, txid: Txid, now: u64) {
        self.inner.apply_evicted_txs([(txid, now)]);
        self.absorb();
    }

    /// Feed the complete mempool at time `now`: its relevant transactions are (re)marked as seen,
    /// and every unconfirmed wallet transaction missing from it is marked evicted (it no longer
    /// counts). Use after reorgs and restarts, or periodically. The snapshot must be taken after
    /// any transaction the caller broadcast and fed back, or that one is marked evicted too
    /// (until the next report that includes it).
    pub fn sync_mempool(&mut self, mempool: &[Transaction], now: u64) {
        let present: std::collections::HashSet<Txid> =
            mempool.iter().map(|tx| tx.compute_txid()).collect();
        let missing: Vec<(Txid, u64)> = self
            .inner
            .transactions()
            .filter(|wtx| !wtx.chain_position.is_confirmed())
            .map(|wtx| wtx.tx_node.txid)
            .filter(|txid| !present.contains(txid))
            .map(|txid| (txid, now))
            .collect();
        self.inner
            .apply_unconfirmed_txs(mempool.iter().cloned().map(|tx| (tx, now)));
        self.inner.apply_evicted_txs(missing);
        self.absorb();
    }

    // ---------------------------------------------------------------- addresses

    /// Reveal and return the next receive address (`bcrt1q…` on regtest). Never returns the
    /// same address twice. Persist the staged change before showing it.
    pub fn new_address(&mut self) -> Address {
        let info = self.inner.reveal_next_address(KeychainKind::External);
        self.absorb();
        info.address
    }

    /// A fresh wallet script (P2WPKH, receive keychain) for the channel crate to sweep
    /// channel outputs back into the wallet (closing `scriptpubkey`, to_remote, penalty and
    /// HTLC sweeps). Like [`Wallet::new_address`], it is never reused.
    pub fn sweep_script(&mut self) -> ScriptBuf {
        self.new_address().script_pubkey()
    }

    /// Whether `script` is one of the wallet's (revealed or within lookahead).
    pub fn is_mine(&self, script: &bitcoin::Script) -> bool {
        self.inner.is_mine(script.to_owned())
    }

    /// Next derivation indices of both keychains.
    pub fn next_address_indices(&self) -> AddressIndices {
        AddressIndices {
            receive: self.inner.next_derivation_index(KeychainKind::External),
            change: self.inner.next_derivation_index(KeychainKind::Internal),
        }
    }

    // ---------------------------------------------------------------- queries

    /// Balance at the wallet's tip.
    pub fn balance(&self) -> WalletBalance {
        self.inner.balance().into()
    }

    /// Unspent wallet outputs, sorted by outpoint.
    pub fn list_utxos(&self) -> Vec<WalletUtxo> {
        let tip = self.tip().height;
        let mut utxos: Vec<WalletUtxo> = self
            .inner
            .list_unspent()
            .map(|lo| {
                let is_coinbase = self
                    .inner
                    .tx_graph()
                    .get_tx(lo.outpoint.txid)
                    .is_some_and(|tx| tx.is_coinbase());
                let confirmation = Confirmation::from_position(&lo.chain_position);
                // Same rule as BDK's balance and coin selection (and Bitcoin Core): a coinbase
                // output needs 100 confirmations.
                let mature = !is_coinbase
                    || confirmation
                        .height()
                        .is_some_and(|h| tip.saturating_sub(h) + 1 >= COINBASE_MATURITY);
                WalletUtxo {
                    outpoint: lo.outpoint,
                    amount: lo.txout.value,
                    script_pubkey: lo.txout.script_pubkey,
                    keychain: lo.keychain.into(),
                    derivation_index: lo.derivation_index,
                    confirmation,
                    is_coinbase,
                    mature,
                }
            })
            .collect();
        utxos.sort_by_key(|u| u.outpoint);
        utxos
    }

    /// Wallet transactions: confirmed ones by height, then unconfirmed ones; ties by txid.
    pub fn list_transactions(&self) -> Vec<WalletTransaction> {
        let mut txs: Vec<WalletTransaction> = self
            .inner
            .transactions()
            .map(|wtx| {
                let tx = &wtx.tx_node.tx;
                let (sent, received) = self.inner.sent_and_received(tx);
                let fee = if tx.is_coinbase() {
                    None
                } else {
                    self.inner.calculate_fee(tx).ok()
                };
                WalletTransaction {
                    txid: wtx.tx_node.txid,
                    received,
                    sent,
                    net: signed_diff(received, sent),
                    fee,
                    confirmation: Confirmation::from_position(&wtx.chain_position),
                    is_coinbase: tx.is_coinbase(),
                }
            })
            .collect();
        txs.sort_by_key(|t| (t.confirmation.height().unwrap_or(u32::MAX), t.txid));
        txs
    }

    /// A transaction the wallet knows (relevant, in any state).
    pub fn get_transaction(&self, txid: Txid) -> Option<Transaction> {
        self.inner.tx_graph().get_tx(txid).map(|tx| (*tx).clone())
    }
}

/// Confirmations a coinbase output needs before it can be spent (consensus).
pub const COINBASE_MATURITY: u32 = 100;

/// `a - b` as a signed amount, saturating (amounts come from validated transactions, so this
/// never saturates in practice).
fn signed_diff(a: bitcoin::Amount, b: bitcoin::Amount) -> bitcoin::SignedAmount {
    let a = i64::try_from(a.to_sat()).unwrap_or(i64::MAX);
    let b = i64::try_from(b.to_sat()).unwrap_or(i64::MAX);
    bitcoin::SignedAmount::from_sat(a.saturating_sub(b))
}
