//! Catching the wallet up with a block source (reorg-aware), through a caller-implemented trait.
//!
//! Owns: the [`ChainSource`] trait and [`Wallet::sync`], which finds the fork point between
//! the wallet's chain and the source's best chain, disconnects what the source no longer has,
//! connects the missing blocks and replaces the mempool view. Must never do I/O itself: the
//! caller's `ChainSource` implementation does (or, in tests, reads an in-process chain).

use bitcoin::{Block, BlockHash, Transaction};

use crate::{Wallet, WalletError};

/// What the wallet needs from a chain backend (the in-process `fulmen_chain::Chain`, or the
/// node's client of the chain daemon). All answers must describe one consistent best chain.
pub trait ChainSource {
    /// Height of the best chain's tip.
    fn tip_height(&self) -> u32;
    /// Hash of the best-chain block at `height`, `None` above the tip.
    fn block_hash_at(&self, height: u32) -> Option<BlockHash>;
    /// The best-chain block at `height`, `None` above the tip.
    fn block_at(&self, height: u32) -> Option<Block>;
    /// The current mempool (all of it; the wallet keeps what is relevant).
    fn mempool(&self) -> Vec<Transaction>;
}

/// What a [`Wallet::sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SyncSummary {
    /// Blocks disconnected because the source's best chain no longer has them.
    pub disconnected: u32,
    /// Blocks connected.
    pub connected: u32,
}

impl Wallet {
    /// Bring the wallet to `source`'s tip: walk back from the wallet's tip to the last block the
    /// source agrees with, disconnect everything above it, connect the source's blocks from
    /// there, then [`Wallet::sync_mempool`] with the source's mempool at time `now`.
    pub fn sync(
        &mut self,
        source: &impl ChainSource,
        now: u64,
    ) -> Result<SyncSummary, WalletError> {
        let mut summary = SyncSummary::default();
        let source_tip = source.tip_height();
        let mut fork = self.tip().height.min(source_tip);
        while fork > 0 && self.block_hash_at(fork) != source.block_hash_at(fork) {
            fork -= 1;
        }
        let wallet_tip = self.tip().height;
        if fork < wallet_tip {
            // The lowest wallet block above the fork (heights may have gaps).
            let first_stale = self
                .inner
                .local_chain()
                .iter_checkpoints()
                .take_while(|cp| cp.height() > fork)
                .last()
                .map(|cp| cp.hash());
            if let Some(first_stale) = first_stale {
                self.disconnect_block(first_stale)?;
                summary.disconnected = wallet_tip - fork;
            }
        }
        for height in fork + 1..=source_tip {
            let Some(block) = source.block_at(height) else {
                // The source moved under us; the next sync continues from here.
                break;
            };
            self.apply_block(&block, height)?;
            summary.connected += 1;
        }
        self.sync_mempool(&source.mempool(), now);
        Ok(summary)
    }
}
