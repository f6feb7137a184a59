//! Following the chain daemon: finds where our chain and the daemon's best chain part, and
//! fetches every new block in order — outside the node task, which only receives
//! [`ChainStep`]s (as inputs) and never waits on the chain daemon inside a turn.
//!
//! Owns: the hashes of the blocks already handed to the node (to detect reorgs) and the long
//! poll on the daemon's `waitforblock`. Must never: skip a height or hand over a block twice
//! without a disconnection in between.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bitcoin::Block;
use tokio::sync::mpsc;

use super::shell::Input;
use crate::chain::api::ChainClient;

/// One step of following the chain.
#[derive(Debug)]
pub enum ChainStep {
    /// Blocks above this height left the best chain.
    Disconnect(u32),
    /// The block at this height joined it.
    Connect(u32, Box<Block>),
}

/// Our view of the chain: height → block hash of every block handed to the node.
#[derive(Debug, Default, Clone)]
pub struct Followed {
    hashes: BTreeMap<u32, String>,
}

impl Followed {
    /// Starts from the node's known blocks.
    pub fn new(hashes: impl IntoIterator<Item = (u32, String)>) -> Followed {
        Followed {
            hashes: hashes.into_iter().collect(),
        }
    }

    /// Our tip (height, hash).
    pub fn tip(&self) -> (u32, String) {
        self.hashes
            .last_key_value()
            .map(|(h, s)| (*h, s.clone()))
            .unwrap_or_default()
    }

    /// Brings this view to the daemon's tip; returns the steps to apply, in order.
    pub async fn catch_up(&mut self, chain: &ChainClient) -> anyhow::Result<Vec<ChainStep>> {
        let info = chain.get_info().await.context("chain getinfo")?;
        let (ours, _) = self.tip();
        // Work on a copy: a failure half way leaves our view as the node's.
        let mut hashes = self.hashes.clone();
        let mut steps = Vec::new();
        let mut fork = ours.min(info.height);
        while fork > 0 {
            let theirs = chain.get_block_at(fork).await.context("chain getblock")?;
            if hashes.get(&fork) == Some(&theirs.hash) {
                break;
            }
            fork -= 1;
        }
        if fork < ours {
            hashes.split_off(&(fork + 1));
            steps.push(ChainStep::Disconnect(fork));
        }
        for height in (fork + 1)..=info.height {
            let b = chain.get_block_at(height).await.context("chain getblock")?;
            let raw = hex::decode(&b.hex).context("block hex")?;
            let block: Block = bitcoin::consensus::deserialize(&raw).context("block bytes")?;
            hashes.insert(height, b.hash);
            steps.push(ChainStep::Connect(height, Box::new(block)));
        }
        self.hashes = hashes;
        Ok(steps)
    }
}

/// Spawns the follower: waits for new blocks and sends them to the node task as inputs.
pub fn spawn_follower(
    chain: Arc<ChainClient>,
    inputs: mpsc::UnboundedSender<Input>,
    mut view: Followed,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (height, hash) = view.tip();
            let res = chain.wait_for_block(height, Some(&hash), 30_000).await;
            let changed = match res {
                Ok(r) => r.height != height || r.hash != hash,
                Err(e) => {
                    tracing::warn!(error = %e, "chain daemon unreachable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if !changed {
                continue;
            }
            match view.catch_up(&chain).await {
                Ok(steps) => {
                    for s in steps {
                        let input = match s {
                            ChainStep::Disconnect(fork) => Input::Reorg(fork),
                            ChainStep::Connect(h, b) => Input::Block(h, b),
                        };
                        if inputs.send(input).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "following the chain; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}
