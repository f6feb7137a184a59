//! Accounting of a channel's end on chain, for the force-close and penalty tests: walk every
//! confirmed transaction that descends from the funding output until the outputs that pay a
//! node's wallet, and sum where each sat went — to which wallet, into fees, or still
//! unresolved.
//!
//! Must never: count an output twice, or stop at an output that pays no wallet while it is
//! unspent without reporting it.

use std::collections::BTreeMap;

use bitcoin::{OutPoint, Transaction};

use super::Network;

/// Where a channel's capacity went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Sat that reached each node's wallet (by node index).
    pub to_wallet: BTreeMap<usize, u64>,
    /// Sat paid in fees by every transaction of the tree.
    pub fees: u64,
    /// Confirmed outputs of the tree that pay no wallet and are unspent (or spent only in
    /// the mempool).
    pub unresolved: Vec<(OutPoint, u64)>,
    /// Every confirmed transaction of the tree, from the funding spend down.
    pub txs: Vec<Transaction>,
}

impl Settlement {
    /// Total accounted for: wallets + fees + unresolved.
    pub fn total(&self) -> u64 {
        self.to_wallet.values().sum::<u64>()
            + self.fees
            + self.unresolved.iter().map(|(_, v)| v).sum::<u64>()
    }
}

impl Network {
    fn owner_of(&self, script: &bitcoin::Script) -> Option<usize> {
        self.nodes.iter().position(|n| n.m.wallet().is_mine(script))
    }

    /// Where the funds of the output `funding` (value `capacity`) went on chain.
    pub fn settlement(&self, funding: OutPoint) -> Settlement {
        let mut s = Settlement::default();
        let mut queue = vec![funding];
        let value_of = |op: &OutPoint| -> u64 {
            self.chain
                .transaction(&op.txid)
                .and_then(|t| t.tx.output.get(op.vout as usize).map(|o| o.value.to_sat()))
                .unwrap_or(0)
        };
        while let Some(op) = queue.pop() {
            let spend = self
                .chain
                .spender(&op)
                .filter(|sp| sp.height.is_some())
                .and_then(|sp| self.chain.transaction(&sp.txid));
            let Some(st) = spend else {
                s.unresolved.push((op, value_of(&op)));
                continue;
            };
            let tx = st.tx;
            if s.txs.iter().any(|t| t.compute_txid() == tx.compute_txid()) {
                continue;
            }
            let ins: u64 = tx.input.iter().map(|i| value_of(&i.previous_output)).sum();
            let outs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
            s.fees += ins - outs;
            let txid = tx.compute_txid();
            for (vout, o) in tx.output.iter().enumerate() {
                match self.owner_of(&o.script_pubkey) {
                    Some(k) => *s.to_wallet.entry(k).or_default() += o.value.to_sat(),
                    None => queue.push(OutPoint {
                        txid,
                        vout: vout as u32,
                    }),
                }
            }
            s.txs.push(tx);
        }
        // Every input of the tree is the funding output or an output of the tree: no value
        // came in from elsewhere.
        for tx in &s.txs {
            for i in &tx.input {
                assert!(
                    i.previous_output == funding
                        || s.txs
                            .iter()
                            .any(|t| t.compute_txid() == i.previous_output.txid),
                    "a transaction of the tree spends {} from outside it",
                    i.previous_output
                );
            }
        }
        s
    }
}
