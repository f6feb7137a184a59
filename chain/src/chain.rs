//! The chain state machine: blocks, UTXO set, spent index, transaction index and mempool.
//!
//! Owns: [`Chain`] — connecting blocks (mined here or received for replay), disconnecting
//! them with exact undo data, mempool admission, mining, reorgs and every query. Must never do
//! I/O: block times come from the caller, and persistence is the caller's job (it stores the
//! blocks `mine` returns and replays them with `connect_block`).
//!
//! Invariants: `utxos` holds exactly the unspent, spendable outputs of the connected blocks
//! (genesis and OP_RETURN outputs excluded); `spent` holds every confirmed spend; `undo[h]`
//! lists the coins block `h` spent, in spending order; `faucet_coins` is the subset of
//! `utxos` paying the faucet script; every mempool entry is valid for block `height + 1`.

use std::collections::{BTreeSet, HashMap};

use bitcoin::secp256k1::{All, Secp256k1, SecretKey};
use bitcoin::{
    Amount, Block, BlockHash, CompressedPublicKey, FeeRate, Network, OutPoint, ScriptBuf,
    Transaction, Txid,
};

use crate::block::{assemble, check_structure, coinbase_height_ok};
use crate::error::{BlockRejection, ChainError, TxRejection};
use crate::mempool::Mempool;
use crate::params::{
    subsidy, ChainParams, COINBASE_WEIGHT_RESERVE, MAX_BLOCK_WEIGHT, MEDIAN_TIME_SPAN,
};
use crate::types::{Coin, Spend, Tip, TxStatus, Utxo};
use crate::validate::{check_inputs, check_output_values, check_sanity};

/// Outputs with scripts longer than this can never be spent (Bitcoin Core's rule); they are
/// not added to the UTXO set, like OP_RETURN outputs.
const MAX_SCRIPT_SIZE: usize = 10_000;

/// Outputs never added to the UTXO set: OP_RETURN and over-long scripts.
fn unspendable(spk: &bitcoin::Script) -> bool {
    spk.is_op_return() || spk.len() > MAX_SCRIPT_SIZE
}

/// The simulated regtest chain: blocks, UTXO set, mempool and faucet.
#[derive(Debug, Clone)]
pub struct Chain {
    pub(crate) params: ChainParams,
    pub(crate) secp: Secp256k1<All>,
    pub(crate) faucet_key: SecretKey,
    pub(crate) faucet_pubkey: CompressedPublicKey,
    pub(crate) faucet_spk: ScriptBuf,
    blocks: Vec<Block>,
    block_index: HashMap<BlockHash, u32>,
    undo: Vec<Vec<(OutPoint, Coin)>>,
    pub(crate) utxos: HashMap<OutPoint, Coin>,
    spent: HashMap<OutPoint, Spend>,
    tx_index: HashMap<Txid, (u32, u32)>,
    pub(crate) faucet_coins: BTreeSet<OutPoint>,
    pub(crate) mempool: Mempool,
}

impl Chain {
    /// A chain holding only the regtest genesis block. The faucet key is the chain's own:
    /// coinbases of `mine(.., None, ..)` pay P2WPKH to it.
    pub fn new(params: ChainParams, faucet_key: SecretKey) -> Chain {
        let secp = Secp256k1::new();
        let faucet_pubkey = CompressedPublicKey(faucet_key.public_key(&secp));
        let faucet_spk = ScriptBuf::new_p2wpkh(&faucet_pubkey.wpubkey_hash());
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let mut block_index = HashMap::new();
        block_index.insert(genesis.block_hash(), 0);
        let mut tx_index = HashMap::new();
        for (pos, tx) in genesis.txdata.iter().enumerate() {
            tx_index.insert(tx.compute_txid(), (0, pos as u32));
        }
        Chain {
            params,
            secp,
            faucet_key,
            faucet_pubkey,
            faucet_spk,
            blocks: vec![genesis],
            block_index,
            undo: vec![Vec::new()],
            utxos: HashMap::new(),
            spent: HashMap::new(),
            tx_index,
            faucet_coins: BTreeSet::new(),
            mempool: Mempool::default(),
        }
    }

    /// The rules this chain enforces.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The faucet's P2WPKH regtest address (`bcrt1q...`).
    pub fn faucet_address(&self) -> bitcoin::Address {
        bitcoin::Address::p2wpkh(&self.faucet_pubkey, Network::Regtest)
    }

    /// The faucet's output script (where `mine(.., None, ..)` pays).
    pub fn faucet_script(&self) -> &ScriptBuf {
        &self.faucet_spk
    }

    /// The tip of the chain.
    pub fn tip(&self) -> Tip {
        let height = self.height();
        let header = self.blocks.last().map(|b| b.header);
        Tip {
            height,
            hash: header.map(|h| h.block_hash()).unwrap_or_else(|| {
                bitcoin::constants::genesis_block(Network::Regtest).block_hash()
            }),
            time: header.map(|h| h.time).unwrap_or(0),
        }
    }

    /// Height of the tip (genesis = 0).
    pub fn height(&self) -> u32 {
        u32::try_from(self.blocks.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Median header time of the last 11 blocks; a new block's time must exceed it.
    pub fn median_time_past(&self) -> u32 {
        let start = self.blocks.len().saturating_sub(MEDIAN_TIME_SPAN);
        let mut times: Vec<u32> = self.blocks[start..].iter().map(|b| b.header.time).collect();
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    /// Validate and add to the mempool: every rule of DESIGN.md plus libbitcoinconsensus per
    /// input, for inclusion in the next block. A transaction spending mempool outputs is
    /// allowed (CPFP / chains); those outputs count as created in the next block.
    pub fn submit_transaction(&mut self, tx: Transaction) -> Result<Txid, TxRejection> {
        check_sanity(&tx, &self.params)?;
        let txid = tx.compute_txid();
        if self.mempool.contains(&txid) {
            return Err(TxRejection::AlreadyKnown {
                txid,
                confirmed: false,
            });
        }
        if self.tx_index.contains_key(&txid) {
            return Err(TxRejection::AlreadyKnown {
                txid,
                confirmed: true,
            });
        }
        let next_height = self.height() + 1;
        let mut coins = Vec::with_capacity(tx.input.len());
        for (i, input) in tx.input.iter().enumerate() {
            let outpoint = input.previous_output;
            let input = i as u32;
            if let Some((by, _)) = self.mempool.spender(&outpoint) {
                return Err(TxRejection::MempoolConflict {
                    input,
                    outpoint,
                    by,
                });
            }
            if let Some(coin) = self.utxos.get(&outpoint) {
                coins.push(coin.clone());
            } else if let Some(txout) = self
                .mempool
                .output(&outpoint)
                .filter(|o| !unspendable(&o.script_pubkey))
            {
                coins.push(Coin {
                    txout: txout.clone(),
                    height: next_height,
                    is_coinbase: false,
                });
            } else {
                return Err(self.missing_input(input, outpoint));
            }
        }
        let fee = check_inputs(
            &tx,
            &coins,
            next_height,
            self.median_time_past(),
            &self.params,
            true,
        )?;
        self.mempool.insert(txid, tx, fee);
        Ok(txid)
    }

    fn missing_input(&self, input: u32, outpoint: OutPoint) -> TxRejection {
        match self.spent.get(&outpoint) {
            Some(s) => TxRejection::AlreadySpent {
                input,
                outpoint,
                by: s.txid,
                height: s.height.unwrap_or(0),
            },
            None => TxRejection::MissingOrSpent { input, outpoint },
        }
    }

    /// Mine `n` blocks with header time `time` (each block gets max(time, prev + 1), and
    /// always more than the median time past), coinbase to `to` (or the faucet), mempool
    /// transactions by ancestor-package feerate (ancestors first). Real proof of work at
    /// regtest difficulty. Returns the new blocks in order (for persistence).
    pub fn mine(&mut self, n: u32, to: Option<&ScriptBuf>, time: u32) -> Vec<Block> {
        let to = to.cloned().unwrap_or_else(|| self.faucet_spk.clone());
        let mut mined = Vec::with_capacity(n.min(1_000) as usize);
        for _ in 0..n {
            let tip = self.tip();
            let height = tip.height + 1;
            let block_time = time
                .max(tip.time.saturating_add(1))
                .max(self.median_time_past().saturating_add(1));
            // Mempool entries are valid for this block by invariant; should one not be (a
            // bug), it is evicted with its descendants and the template rebuilt. Each retry
            // shrinks the mempool, so the loop ends.
            loop {
                let ids = self
                    .mempool
                    .select(MAX_BLOCK_WEIGHT - COINBASE_WEIGHT_RESERVE);
                let mut fees = Amount::ZERO;
                let mut txs = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(e) = self.mempool.get(id) {
                        fees = fees.checked_add(e.fee).unwrap_or(fees);
                        txs.push(e.tx.clone());
                    }
                }
                let value = subsidy(height)
                    .checked_add(fees)
                    .unwrap_or(Amount::MAX_MONEY);
                let block = assemble(tip.hash, height, block_time, &to, value, txs);
                let copy = block.clone();
                match self.connect_inner(block, false) {
                    Ok(()) => {
                        mined.push(copy);
                        break;
                    }
                    Err(BlockRejection::Transaction { txid, .. })
                    | Err(BlockRejection::DuplicateTransaction { txid, .. })
                        if self.mempool.contains(&txid) =>
                    {
                        self.mempool.remove_with_descendants(&txid);
                    }
                    Err(_) => {
                        if self.mempool.len() == 0 {
                            return mined;
                        }
                        self.mempool.drain();
                    }
                }
            }
        }
        mined
    }

    /// Validate and connect a block built elsewhere (restart replay). Checks the previous
    /// hash, bits, proof of work, time, merkle root, witness commitment, weight, BIP34 height,
    /// coinbase value <= subsidy + fees, and every transaction by the mempool rules (scripts
    /// by libbitcoinconsensus) for this block's height.
    pub fn connect_block(&mut self, block: Block) -> Result<(), BlockRejection> {
        self.connect_inner(block, true)
    }

    fn connect_inner(&mut self, block: Block, verify_scripts: bool) -> Result<(), BlockRejection> {
        let tip = self.tip();
        if block.header.prev_blockhash != tip.hash {
            return Err(BlockRejection::BadPrevBlock {
                hash: block.block_hash(),
                prev: block.header.prev_blockhash,
                tip: tip.hash,
            });
        }
        check_structure(&block)?;
        let median_time_past = self.median_time_past();
        if block.header.time <= median_time_past {
            return Err(BlockRejection::TimeTooOld {
                time: block.header.time,
                median_time_past,
            });
        }
        let height = tip.height + 1;
        let coinbase = &block.txdata[0];
        if !coinbase_height_ok(coinbase, height) {
            return Err(BlockRejection::BadCoinbaseHeight { height });
        }
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        let paid =
            check_output_values(coinbase).map_err(|rejection| BlockRejection::Transaction {
                index: 0,
                txid: txids[0],
                rejection,
            })?;
        if self.tx_index.contains_key(&txids[0]) {
            return Err(BlockRejection::DuplicateTransaction {
                index: 0,
                txid: txids[0],
            });
        }
        let mut undo: Vec<(OutPoint, Coin)> = Vec::new();
        let mut fees = Amount::ZERO;
        for (index, tx) in block.txdata.iter().enumerate().skip(1) {
            match self.apply_tx(tx, txids[index], height, index, verify_scripts, &mut undo) {
                Ok(fee) => fees = fees.checked_add(fee).unwrap_or(Amount::MAX_MONEY),
                Err(e) => {
                    self.unapply_txs(&block.txdata[1..index], &txids[1..index], &mut undo);
                    return Err(e);
                }
            }
        }
        let allowed = subsidy(height)
            .checked_add(fees)
            .unwrap_or(Amount::MAX_MONEY);
        if paid > allowed {
            let n = block.txdata.len();
            self.unapply_txs(&block.txdata[1..n], &txids[1..n], &mut undo);
            return Err(BlockRejection::BadCoinbaseValue { paid, allowed });
        }
        self.add_outputs(coinbase, txids[0], height, 0, true);
        self.mempool.remove_for_block(&block.txdata);
        self.block_index.insert(block.block_hash(), height);
        self.blocks.push(block);
        self.undo.push(undo);
        Ok(())
    }

    /// Validates one non-coinbase transaction of a block being connected at `height` and
    /// applies it to the UTXO set, recording the coins it spends in `undo`.
    fn apply_tx(
        &mut self,
        tx: &Transaction,
        txid: Txid,
        height: u32,
        index: usize,
        verify_scripts: bool,
        undo: &mut Vec<(OutPoint, Coin)>,
    ) -> Result<Amount, BlockRejection> {
        let reject = |rejection| BlockRejection::Transaction {
            index,
            txid,
            rejection,
        };
        check_sanity(tx, &self.params).map_err(reject)?;
        if self.tx_index.contains_key(&txid) {
            return Err(BlockRejection::DuplicateTransaction { index, txid });
        }
        let mut coins = Vec::with_capacity(tx.input.len());
        for (i, input) in tx.input.iter().enumerate() {
            match self.utxos.get(&input.previous_output) {
                Some(coin) => coins.push(coin.clone()),
                None => return Err(reject(self.missing_input(i as u32, input.previous_output))),
            }
        }
        let fee = check_inputs(
            tx,
            &coins,
            height,
            self.median_time_past(),
            &self.params,
            verify_scripts,
        )
        .map_err(reject)?;
        for ((i, input), coin) in tx.input.iter().enumerate().zip(coins) {
            let outpoint = input.previous_output;
            self.utxos.remove(&outpoint);
            self.faucet_coins.remove(&outpoint);
            self.spent.insert(
                outpoint,
                Spend {
                    txid,
                    input_index: i as u32,
                    height: Some(height),
                },
            );
            undo.push((outpoint, coin));
        }
        self.add_outputs(tx, txid, height, index, false);
        Ok(fee)
    }

    fn add_outputs(
        &mut self,
        tx: &Transaction,
        txid: Txid,
        height: u32,
        pos: usize,
        coinbase: bool,
    ) {
        for (vout, txout) in tx.output.iter().enumerate() {
            let spk = &txout.script_pubkey;
            if unspendable(spk) {
                continue;
            }
            let outpoint = OutPoint::new(txid, vout as u32);
            if *spk == self.faucet_spk {
                self.faucet_coins.insert(outpoint);
            }
            self.utxos.insert(
                outpoint,
                Coin {
                    txout: txout.clone(),
                    height,
                    is_coinbase: coinbase,
                },
            );
        }
        self.tx_index.insert(txid, (height, pos as u32));
    }

    /// Reverses `txs` (applied in order, coinbase excluded), restoring spent coins from the
    /// tail of `undo`.
    fn unapply_txs(
        &mut self,
        txs: &[Transaction],
        txids: &[Txid],
        undo: &mut Vec<(OutPoint, Coin)>,
    ) {
        for (tx, txid) in txs.iter().zip(txids).rev() {
            self.remove_outputs(tx, *txid);
            for _ in 0..tx.input.len() {
                if let Some((outpoint, coin)) = undo.pop() {
                    self.spent.remove(&outpoint);
                    if coin.txout.script_pubkey == self.faucet_spk {
                        self.faucet_coins.insert(outpoint);
                    }
                    self.utxos.insert(outpoint, coin);
                }
            }
        }
    }

    fn remove_outputs(&mut self, tx: &Transaction, txid: Txid) {
        for vout in 0..tx.output.len() {
            let outpoint = OutPoint::new(txid, vout as u32);
            self.utxos.remove(&outpoint);
            self.faucet_coins.remove(&outpoint);
        }
        self.tx_index.remove(&txid);
    }

    /// Disconnects the tip block, restoring the UTXO set exactly. Genesis stays.
    fn disconnect_tip(&mut self) -> Option<Block> {
        if self.blocks.len() <= 1 {
            return None;
        }
        let block = self.blocks.pop()?;
        let mut undo = self.undo.pop().unwrap_or_default();
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        if block.txdata.len() > 1 {
            self.unapply_txs(&block.txdata[1..], &txids[1..], &mut undo);
        }
        if let (Some(cb), Some(cb_txid)) = (block.txdata.first(), txids.first()) {
            self.remove_outputs(cb, *cb_txid);
        }
        self.block_index.remove(&block.block_hash());
        Some(block)
    }

    /// Disconnect the top `n` blocks (n <= height). Their non-coinbase transactions, oldest
    /// block first, then the old mempool go back to the mempool where still valid (spends of
    /// now-immature or vanished coinbases are dropped). Returns the disconnected blocks,
    /// highest first.
    pub fn reorg(&mut self, n: u32) -> Result<Vec<Block>, ChainError> {
        let height = self.height();
        if n > height {
            return Err(ChainError::ReorgTooDeep {
                requested: n,
                height,
            });
        }
        let old_mempool = self.mempool.drain();
        let mut disconnected = Vec::with_capacity(n as usize);
        for _ in 0..n {
            if let Some(b) = self.disconnect_tip() {
                disconnected.push(b);
            }
        }
        for block in disconnected.iter().rev() {
            for tx in block.txdata.iter().skip(1) {
                // Dropping what is no longer valid is the point of re-admission.
                let _ = self.submit_transaction(tx.clone());
            }
        }
        for tx in old_mempool {
            let _ = self.submit_transaction(tx);
        }
        Ok(disconnected)
    }

    /// The block at `height`, if connected.
    pub fn block_at(&self, height: u32) -> Option<&Block> {
        self.blocks.get(height as usize)
    }

    /// A connected block by hash, with its height.
    pub fn block(&self, hash: &BlockHash) -> Option<(u32, &Block)> {
        let h = *self.block_index.get(hash)?;
        Some((h, self.blocks.get(h as usize)?))
    }

    /// A transaction in the mempool or in a connected block, with its confirmations.
    pub fn transaction(&self, txid: &Txid) -> Option<TxStatus> {
        if let Some(e) = self.mempool.get(txid) {
            return Some(TxStatus {
                tx: e.tx.clone(),
                block: None,
                confirmations: 0,
            });
        }
        let (h, pos) = *self.tx_index.get(txid)?;
        let block = self.blocks.get(h as usize)?;
        Some(TxStatus {
            tx: block.txdata.get(pos as usize)?.clone(),
            block: Some((h, block.block_hash())),
            confirmations: self.height() - h + 1,
        })
    }

    /// A confirmed unspent output (mempool spends do not hide it; see [`Chain::spender`]).
    pub fn utxo(&self, outpoint: &OutPoint) -> Option<Utxo> {
        let coin = self.utxos.get(outpoint)?;
        Some(Utxo {
            outpoint: *outpoint,
            txout: coin.txout.clone(),
            height: coin.height,
            is_coinbase: coin.is_coinbase,
            confirmations: self.height() - coin.height + 1,
        })
    }

    /// Number of outputs in the confirmed UTXO set.
    pub fn utxo_count(&self) -> usize {
        self.utxos.len()
    }

    /// Every confirmed UTXO, sorted by outpoint (O(n log n); for tests and audits).
    pub fn utxo_set(&self) -> Vec<Utxo> {
        let mut ops: Vec<&OutPoint> = self.utxos.keys().collect();
        ops.sort_unstable();
        ops.into_iter().filter_map(|op| self.utxo(op)).collect()
    }

    /// Which transaction spent this outpoint (confirmed, or in the mempool).
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Spend> {
        if let Some((txid, input_index)) = self.mempool.spender(outpoint) {
            return Some(Spend {
                txid,
                input_index,
                height: None,
            });
        }
        self.spent.get(outpoint).copied()
    }

    /// Forget every unconfirmed transaction (as a chain whose nodes all restarted without
    /// their mempools): tests use it after a reorg to check that whoever needs a
    /// transaction broadcasts it again. Returns what was dropped.
    pub fn clear_mempool(&mut self) -> Vec<Transaction> {
        self.mempool.drain()
    }

    /// Mempool transactions in insertion (topological) order.
    pub fn mempool(&self) -> Vec<Transaction> {
        self.mempool.transactions()
    }

    /// Feerate a transaction should pay to be mined in the next block: the minimum relay
    /// feerate while the mempool fits in one block, else just above the feerate of the best
    /// transaction that would be left out.
    pub fn fee_estimate(&self) -> FeeRate {
        let min = self.params.min_relay_feerate;
        let limit = MAX_BLOCK_WEIGHT - COINBASE_WEIGHT_RESERVE;
        let mut rates: Vec<(u64, u64)> = self
            .mempool
            .entries()
            .map(|(_, e)| {
                (
                    e.fee.to_sat().saturating_mul(1000) / e.weight.max(1),
                    e.weight,
                )
            })
            .collect();
        if rates.iter().map(|r| r.1).sum::<u64>() <= limit {
            return min;
        }
        rates.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let mut used = 0u64;
        for (rate_kwu, weight) in rates {
            used += weight;
            if used > limit {
                let above = FeeRate::from_sat_per_kwu(rate_kwu.saturating_add(250));
                return above.max(min);
            }
        }
        min
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, Sequence, TxIn, TxOut};

    #[test]
    fn fee_estimate_rises_when_the_mempool_exceeds_a_block() {
        let key = SecretKey::from_slice(&[0x11; 32]).unwrap();
        let mut c = Chain::new(ChainParams::default(), key);
        assert_eq!(c.fee_estimate(), c.params.min_relay_feerate);
        // Eleven unvalidated ~396k-weight entries at 2..=12 sat/vB (only for the estimator).
        for i in 0..11u32 {
            let t = Transaction {
                version: transaction::Version::TWO,
                lock_time: absolute::LockTime::from_consensus(i),
                input: vec![TxIn {
                    previous_output: OutPoint::new(Txid::from_byte_array([1; 32]), i),
                    sequence: Sequence::MAX,
                    ..TxIn::default()
                }],
                output: vec![TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(vec![0x51; 98_900]),
                }],
            };
            let vsize = t.vsize() as u64;
            let fee = Amount::from_sat(vsize * u64::from(i + 2));
            c.mempool.insert(t.compute_txid(), t, fee);
        }
        // Ten fit in a block; the best one left out pays 2 sat/vB (500 sat/kwu).
        let est = c.fee_estimate();
        assert!(est > FeeRate::from_sat_per_kwu(500), "{est:?}");
        assert!(est <= FeeRate::from_sat_per_kwu(760), "{est:?}");
    }
}
