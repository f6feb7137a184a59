//! UTXO lookups for gossip: a peer announced a channel at a short channel id, and the
//! manager asks ([`fulmen_manager::Output::LookupUtxo`]) what output is there.
//!
//! Owns: [`BlockTxids`], the txids of the recent blocks the node task was handed (so a
//! lookup in one of them needs no `getblock`), and [`resolve`], the lookup itself, which runs
//! in its own task (the node task never waits on it; the answer comes back as an input).
//! Must never: hold more than [`MAX_CACHED_TXIDS`] txids, or keep a txid of a block that
//! left the best chain (the node task drops them on every reorg).

use std::collections::BTreeMap;

use bitcoin::{Block, OutPoint, Txid};
use fulmen_manager::{UtxoAnswer, UtxoResult};
use fulmen_wire::ShortChannelId;

use crate::chain::api::ChainClient;
use crate::rpc_client::RpcClientError;

/// Calls `call` until it returns anything but a transport failure (unreachable, timed
/// out), or [`LOOKUP_TRIES`] of those.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, RpcClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RpcClientError>>,
{
    let mut pause = RETRY_PAUSE;
    let mut tries = 1;
    loop {
        match call().await {
            Err(e @ (RpcClientError::Unreachable { .. } | RpcClientError::Timeout))
                if tries < LOOKUP_TRIES =>
            {
                tracing::debug!(error = %e, "utxo lookup: chain daemon unreachable; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Most txids [`BlockTxids`] keeps (32 bytes each); the oldest blocks go first.
pub const MAX_CACHED_TXIDS: usize = 50_000;
/// Most blocks [`BlockTxids`] keeps.
pub const MAX_CACHED_BLOCKS: usize = 1_008;
/// Most lookups in flight at once (each is one or two chain RPCs): one, as when the node
/// task made them itself, so a network of many nodes does not crowd the chain daemon's
/// connection slots (a refused lookup drops the announcement until the peer's next sync).
pub const MAX_LOOKUPS_IN_FLIGHT: usize = 1;
/// Tries of a chain RPC of a lookup that failed in transport (not answered), with a pause
/// doubling from [`RETRY_PAUSE`] between them.
pub const LOOKUP_TRIES: u32 = 4;
/// The first pause between two tries.
pub const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// The txids of the most recent blocks of the best chain, by height.
#[derive(Debug, Default)]
pub struct BlockTxids {
    blocks: BTreeMap<u32, Vec<Txid>>,
    txids: usize,
}

/// What [`BlockTxids`] knows about a short channel id's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The block is not kept: ask the chain daemon.
    Unknown,
    /// The block is kept and has no transaction at that index.
    NoSuchTx,
    /// The transaction's id.
    Txid(Txid),
}

impl BlockTxids {
    /// The block at `height` joined the best chain (replacing one kept at that height).
    pub fn connected(&mut self, height: u32, block: &Block) {
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        self.txids += txids.len();
        if let Some(old) = self.blocks.insert(height, txids) {
            self.txids -= old.len();
        }
        while self.txids > MAX_CACHED_TXIDS || self.blocks.len() > MAX_CACHED_BLOCKS {
            match self.blocks.pop_first() {
                Some((_, old)) => self.txids -= old.len(),
                None => break,
            }
        }
    }

    /// Every block above `fork` left the best chain.
    pub fn disconnected_above(&mut self, fork: u32) {
        let gone = self.blocks.split_off(&fork.saturating_add(1));
        self.txids -= gone.values().map(Vec::len).sum::<usize>();
    }

    /// What is known about the transaction `scid` names.
    pub fn lookup(&self, scid: ShortChannelId) -> Known {
        match self.blocks.get(&scid.block_height()) {
            None => Known::Unknown,
            Some(txids) => match txids.get(scid.tx_index() as usize) {
                Some(t) => Known::Txid(*t),
                None => Known::NoSuchTx,
            },
        }
    }

    /// Number of txids kept.
    pub fn len(&self) -> usize {
        self.txids
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.txids == 0
    }
}

/// The answer for a short channel id that names nothing.
pub fn missing() -> UtxoAnswer {
    UtxoAnswer {
        result: UtxoResult::Missing,
        outpoint: None,
    }
}

/// What the chain daemon says about the output `scid` names, given what [`BlockTxids`]
/// knew (`Known::Unknown`: the block is fetched). A chain that cannot be asked answers
/// `Missing`: the announcement is dropped, and the peer's next sync brings it again.
pub async fn resolve(chain: &ChainClient, scid: ShortChannelId, known: Known) -> UtxoAnswer {
    let vout = u32::from(scid.output_index());
    let txid = match known {
        Known::NoSuchTx => return missing(),
        Known::Txid(t) => t,
        Known::Unknown => {
            let Ok(block) = with_retries(|| chain.get_block_at(scid.block_height())).await else {
                return missing();
            };
            let Ok(block) = bitcoin::consensus::encode::deserialize_hex::<Block>(&block.hex) else {
                return missing();
            };
            let Some(tx) = block.txdata.get(scid.tx_index() as usize) else {
                return missing();
            };
            if tx.output.get(vout as usize).is_none() {
                return missing();
            }
            tx.compute_txid()
        }
    };
    let op = OutPoint { txid, vout };
    let outpoint = op.to_string();
    match with_retries(|| chain.get_utxo(&outpoint)).await {
        Ok(Some(u)) => match hex::decode(&u.script_pubkey) {
            Ok(script) => UtxoAnswer {
                result: UtxoResult::Found {
                    script_pubkey: bitcoin::ScriptBuf::from_bytes(script),
                    value: bitcoin::Amount::from_sat(u.value),
                },
                outpoint: Some(op),
            },
            Err(_) => missing(),
        },
        // Unspent outputs only: a cached txid whose output index does not exist answers
        // `Spent` here, which drops the announcement just the same.
        Ok(None) => UtxoAnswer {
            result: UtxoResult::Spent,
            outpoint: Some(op),
        },
        Err(_) => missing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Transaction, TxOut};

    fn block(txs: usize, tag: u64) -> Block {
        let txdata = (0..txs)
            .map(|i| Transaction {
                version: Version::TWO,
                lock_time: LockTime::ZERO,
                input: Vec::new(),
                output: vec![TxOut {
                    value: bitcoin::Amount::from_sat(tag * 1000 + i as u64),
                    script_pubkey: bitcoin::ScriptBuf::new(),
                }],
            })
            .collect();
        Block {
            header: bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header,
            txdata,
        }
    }

    fn scid(height: u32, tx: u32) -> ShortChannelId {
        ShortChannelId::from_u64((u64::from(height) << 40) | (u64::from(tx) << 16))
    }

    #[test]
    fn kept_blocks_answer_and_reorgs_forget() {
        let mut c = BlockTxids::default();
        let b = block(3, 1);
        c.connected(10, &b);
        c.connected(11, &block(2, 2));
        assert_eq!(c.len(), 5);
        assert_eq!(
            c.lookup(scid(10, 2)),
            Known::Txid(b.txdata[2].compute_txid())
        );
        assert_eq!(c.lookup(scid(10, 3)), Known::NoSuchTx);
        assert_eq!(c.lookup(scid(9, 0)), Known::Unknown);
        c.disconnected_above(10);
        assert_eq!(c.lookup(scid(11, 0)), Known::Unknown);
        assert_eq!(c.len(), 3);
        // Another block at the same height replaces the first.
        let other = block(1, 3);
        c.connected(10, &other);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.lookup(scid(10, 0)),
            Known::Txid(other.txdata[0].compute_txid())
        );
    }

    #[test]
    fn the_oldest_blocks_go_first() {
        let mut c = BlockTxids::default();
        for h in 0..(MAX_CACHED_BLOCKS as u32 + 5) {
            c.connected(h, &block(1, u64::from(h)));
        }
        assert_eq!(c.len(), MAX_CACHED_BLOCKS);
        assert_eq!(c.lookup(scid(4, 0)), Known::Unknown);
        assert!(matches!(c.lookup(scid(5, 0)), Known::Txid(_)));
        let big = MAX_CACHED_TXIDS / 2 + 1;
        c.connected(5_000, &block(big, 1));
        c.connected(5_001, &block(big, 2));
        assert!(c.len() <= MAX_CACHED_TXIDS);
        assert_eq!(c.lookup(scid(5_000, 0)), Known::Unknown);
        assert!(matches!(c.lookup(scid(5_001, 0)), Known::Txid(_)));
    }
}
