//! The chain as the node sees it: blocks connected in order and disconnected on a reorg, fed
//! to the wallet and the channels; funding confirmations, spends of funding outputs, and
//! re-broadcast of our own unconfirmed transactions.
//!
//! Owns: the node's height and its set of unconfirmed own transactions. Must never: skip a
//! height, or tell a channel about a block the wallet has not seen.

use std::collections::HashMap;

use bitcoin::{Block, BlockHash, OutPoint, Transaction, Txid};

use crate::api::CloseResult;
use crate::manager::{After, Manager};
use crate::types::{ManagerError, Response};

impl Manager {
    /// The block at `height` (which must be our height + 1) joined the best chain.
    pub fn handle_block_connected(
        &mut self,
        now: u64,
        block: &Block,
        height: u32,
    ) -> Result<(), ManagerError> {
        self.now = now;
        if height != self.height.saturating_add(1) {
            return Err(ManagerError::NotNext {
                got: height,
                tip: self.height,
            });
        }
        self.wallet.apply_block(block, height)?;
        self.height = height;
        // Every transaction by txid, with its index in the block (for the short channel id;
        // an index beyond u32 is refused by the channel).
        let by_txid: HashMap<Txid, (u32, &Transaction)> = block
            .txdata
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                (tx.compute_txid(), (index, tx))
            })
            .collect();
        for txid in by_txid.keys() {
            self.unconfirmed.remove(txid);
        }
        // Outpoint spent in this block → the spending transaction.
        let spends: HashMap<OutPoint, &Transaction> = block
            .txdata
            .iter()
            .flat_map(|tx| tx.input.iter().map(move |i| (i.previous_output, tx)))
            .collect();
        let mut answers = Vec::new();
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
            // The funding spent: our closing transaction, or one we did not broadcast (a
            // channel still open here closes; whoever waits on a close is answered).
            if e.closing_height.is_none() {
                if let Some(tx) = spends.get(&op) {
                    let txid = tx.compute_txid();
                    e.closing_height = Some(height);
                    self.pending.closing_heights.push((e.id, height));
                    if e.closing_tx.is_none() {
                        e.closing_tx = Some((*tx).clone());
                        self.pending.closing_txs.push((e.id, (*tx).clone()));
                    }
                    e.ch.handle_funding_spent(txid);
                    let res = CloseResult {
                        channel_id: hex::encode(e.ch.channel_id()),
                        closing_txid: txid.to_string(),
                    };
                    for w in std::mem::take(&mut e.close_waiters) {
                        answers.push((w, res.clone()));
                    }
                }
            }
        }
        for (w, res) in answers {
            self.reply(w, Ok(Response::Closed(res)));
        }
        self.monitors_block_connected(block, height);
        self.tower_block_connected(block, height);
        self.gossip_block(block);
        for e in &mut self.channels {
            if e.is_closed() {
                continue;
            }
            if let Err(err) = e.ch.handle_block(height) {
                tracing::warn!(error = %err, "channel block");
            }
        }
        Ok(())
    }

    /// Every block above `fork_height` left the best chain (a reorg): the wallet forgets
    /// them; the blocks of the new branch follow with [`Manager::handle_block_connected`].
    pub fn handle_blocks_disconnected(&mut self, fork_height: u32) -> Result<(), ManagerError> {
        let tip = self.wallet.tip().height;
        if fork_height >= tip {
            return Ok(());
        }
        let stale: Vec<BlockHash> = ((fork_height + 1)..=tip)
            .filter_map(|h| self.wallet.block_hash_at(h))
            .collect();
        tracing::warn!(
            fork = fork_height,
            disconnected = stale.len(),
            "chain reorganisation"
        );
        self.wallet.disconnect_blocks(stale)?;
        self.height = fork_height;
        self.monitors_blocks_disconnected(fork_height);
        Ok(())
    }

    /// The chain refused a transaction we broadcast, for a reason other than knowing it
    /// already (its inputs are spent, it is invalid): the wallet stops counting it and it
    /// is not broadcast again. An opening whose funding it was times out later (2016
    /// blocks) like any funding that never confirms.
    pub fn handle_broadcast_refused(&mut self, now: u64, txid: Txid, reason: &str) {
        self.now = now;
        if self.unconfirmed.remove(&txid).is_none() {
            return;
        }
        tracing::warn!(%txid, %reason, "broadcast refused: the wallet forgets it");
        self.wallet.evict_tx(txid, now);
    }

    /// Broadcasts our unconfirmed transactions again (after a restart or a reorg).
    pub fn rebroadcast(&mut self) {
        let mut txs: Vec<(Txid, Transaction)> = self
            .unconfirmed
            .iter()
            .map(|(id, tx)| (*id, tx.clone()))
            .collect();
        txs.sort_by_key(|(id, _)| *id);
        for (_, tx) in txs {
            self.after
                .push(After::Out(crate::types::Output::Broadcast(tx)));
        }
    }

    /// Time passes: invoices expire (a view); incomplete multi-part payments time out.
    pub fn handle_tick(&mut self, now: u64) {
        self.now = now;
        self.expire_mpp_sets();
        self.gossip_tick();
    }
}
