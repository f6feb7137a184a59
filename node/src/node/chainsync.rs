//! Following the chain daemon: blocks in order (reorgs included) into the wallet and the
//! channels, and re-broadcast of our own unconfirmed transactions.
//!
//! Owns: the fork search against the daemon's best chain, feeding connected and
//! disconnected blocks to the wallet, funding confirmations and heights to channels, and
//! noticing when closing transactions confirm. Must never: skip a height, or tell a channel
//! about a block the wallet has not seen.

use anyhow::Context as _;
use std::collections::{HashMap, HashSet};

use bitcoin::{Block, BlockHash, OutPoint, Transaction, Txid};

use super::state::Node;

impl Node {
    /// Brings wallet and channels to the chain daemon's tip.
    pub async fn sync_chain(&mut self) -> anyhow::Result<()> {
        let info = self.chain.get_info().await.context("chain getinfo")?;
        let tip: u32 = info.height;
        // Walk back to the last block the daemon agrees with.
        let mut fork = self.wallet.tip().height.min(tip);
        while fork > 0 {
            let theirs = self
                .chain
                .get_block_at(fork)
                .await
                .context("chain getblock")?;
            let ours = self.wallet.block_hash_at(fork).map(|h| h.to_string());
            if ours.as_deref() == Some(theirs.hash.as_str()) {
                break;
            }
            fork -= 1;
        }
        if fork < self.wallet.tip().height {
            let stale: Vec<BlockHash> = ((fork + 1)..=self.wallet.tip().height)
                .filter_map(|h| self.wallet.block_hash_at(h))
                .collect();
            tracing::warn!(fork, disconnected = stale.len(), "chain reorganisation");
            self.wallet
                .disconnect_blocks(stale)
                .context("disconnecting reorganised blocks")?;
            self.height = fork;
        }
        for height in (fork + 1)..=tip {
            let b = self
                .chain
                .get_block_at(height)
                .await
                .context("chain getblock")?;
            let raw = hex::decode(&b.hex).context("block hex")?;
            let block: Block = bitcoin::consensus::deserialize(&raw).context("block bytes")?;
            self.wallet
                .apply_block(&block, height)
                .with_context(|| format!("wallet: block {height}"))?;
            self.on_block(&block, height);
            self.height = height;
            self.tip_hash = b.hash;
        }
        if tip == 0 {
            self.tip_hash = info.tip;
        }
        Ok(())
    }

    fn on_block(&mut self, block: &Block, height: u32) {
        // Every transaction by txid, with its index in the block (for the short channel id).
        let by_txid: HashMap<Txid, (u32, &Transaction)> = block
            .txdata
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                (
                    tx.compute_txid(),
                    (u32::try_from(i).unwrap_or(u32::MAX), tx),
                )
            })
            .collect();
        let txids: HashSet<Txid> = by_txid.keys().copied().collect();
        for txid in &txids {
            self.unconfirmed.remove(txid);
        }
        // Outpoint spent in this block → the spending transaction.
        let spends: HashMap<OutPoint, &Transaction> = block
            .txdata
            .iter()
            .flat_map(|tx| tx.input.iter().map(move |i| (i.previous_output, tx)))
            .collect();
        for e in &mut self.channels {
            let Some(op) = e.ch.state().funding_outpoint else {
                continue;
            };
            if e.ch.state().funding_confirmed_height.is_none() {
                if let Some((index, tx)) = by_txid.get(&op.txid) {
                    // The channel checks the funding output and derives its scid.
                    if let Err(err) = e.ch.handle_funding_confirmed(height, *index, tx) {
                        tracing::warn!(error = %err, "funding confirmation");
                    }
                }
            }
            // The funding spent: our closing transaction, or one we did not broadcast.
            if e.closing_height.is_none() {
                if let Some(tx) = spends.get(&op) {
                    e.closing_height = Some(height);
                    if e.closing_tx.is_none() {
                        e.closing_tx = Some((*tx).clone());
                    }
                }
            }
        }
        for e in &mut self.channels {
            if e.ch.state().phase == fulmen_channel::machine::Phase::Closed {
                continue;
            }
            if let Err(err) = e.ch.handle_block(height) {
                tracing::warn!(error = %err, "channel block");
            }
        }
    }

    /// Sends our unconfirmed transactions again (after a restart or a reorg).
    pub async fn rebroadcast(&mut self) {
        let txs: Vec<_> = self.unconfirmed.values().cloned().collect();
        for tx in txs {
            let hex = bitcoin::consensus::encode::serialize_hex(&tx);
            if let Err(e) = self.chain.send_raw_transaction(&hex).await {
                tracing::debug!(txid = %tx.compute_txid(), error = %e, "rebroadcast");
            }
        }
    }
}
