//! The mempool: validated transactions waiting for a block.
//!
//! Owns: mempool entries in insertion order (which is topological: a child can only enter
//! after its parents), the index of outpoints spent in the mempool, parent/child links, and
//! block template selection by ancestor-package feerate (parents always before children).
//! Must never validate (the chain does that before `insert`) or do I/O.
//!
//! Invariant: every entry is valid for the block after the tip, spends only confirmed
//! outputs or outputs of earlier entries, and no two entries spend the same outpoint.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use bitcoin::{Amount, OutPoint, Transaction, TxOut, Txid};

/// One mempool transaction with its cached fee and size.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) tx: Transaction,
    pub(crate) fee: Amount,
    pub(crate) vsize: u64,
    pub(crate) weight: u64,
    pub(crate) seq: u64,
    /// In-mempool parents (transactions whose outputs this one spends).
    pub(crate) parents: Vec<Txid>,
}

/// The set of unconfirmed transactions.
#[derive(Debug, Default, Clone)]
pub(crate) struct Mempool {
    entries: HashMap<Txid, Entry>,
    order: BTreeMap<u64, Txid>,
    spends: HashMap<OutPoint, (Txid, u32)>,
    children: HashMap<Txid, HashSet<Txid>>,
    next_seq: u64,
}

impl Mempool {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, txid: &Txid) -> Option<&Entry> {
        self.entries.get(txid)
    }

    pub(crate) fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// The mempool transaction (and input index) spending `outpoint`.
    pub(crate) fn spender(&self, outpoint: &OutPoint) -> Option<(Txid, u32)> {
        self.spends.get(outpoint).copied()
    }

    /// An output created by a mempool transaction (spent or not).
    pub(crate) fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        let entry = self.entries.get(&outpoint.txid)?;
        entry.tx.output.get(usize::try_from(outpoint.vout).ok()?)
    }

    /// Adds a validated transaction. The caller guarantees it conflicts with no entry.
    pub(crate) fn insert(&mut self, txid: Txid, tx: Transaction, fee: Amount) {
        let mut parents: Vec<Txid> = Vec::new();
        for (i, input) in tx.input.iter().enumerate() {
            let prev = input.previous_output;
            self.spends
                .insert(prev, (txid, u32::try_from(i).unwrap_or(u32::MAX)));
            if self.entries.contains_key(&prev.txid) && !parents.contains(&prev.txid) {
                parents.push(prev.txid);
            }
        }
        for p in &parents {
            self.children.entry(*p).or_default().insert(txid);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, txid);
        let entry = Entry {
            vsize: tx.vsize() as u64,
            weight: tx.weight().to_wu(),
            tx,
            fee,
            seq,
            parents,
        };
        self.entries.insert(txid, entry);
    }

    /// Removes one entry, unlinking it from its parents and children (children stay).
    fn remove_one(&mut self, txid: &Txid) -> Option<Entry> {
        let entry = self.entries.remove(txid)?;
        self.order.remove(&entry.seq);
        for input in &entry.tx.input {
            if self.spends.get(&input.previous_output).map(|s| s.0) == Some(*txid) {
                self.spends.remove(&input.previous_output);
            }
        }
        for p in &entry.parents {
            if let Some(set) = self.children.get_mut(p) {
                set.remove(txid);
                if set.is_empty() {
                    self.children.remove(p);
                }
            }
        }
        if let Some(kids) = self.children.remove(txid) {
            for kid in kids {
                if let Some(k) = self.entries.get_mut(&kid) {
                    k.parents.retain(|p| p != txid);
                }
            }
        }
        Some(entry)
    }

    /// Removes `txid` and everything that descends from it.
    pub(crate) fn remove_with_descendants(&mut self, txid: &Txid) -> Vec<Entry> {
        let mut doomed = vec![*txid];
        let mut seen: HashSet<Txid> = HashSet::new();
        let mut i = 0;
        while i < doomed.len() {
            let t = doomed[i];
            i += 1;
            if !seen.insert(t) {
                continue;
            }
            if let Some(kids) = self.children.get(&t) {
                doomed.extend(kids.iter().copied());
            }
        }
        doomed.iter().filter_map(|t| self.remove_one(t)).collect()
    }

    /// Updates the mempool for a connected block: its transactions leave the mempool (their
    /// children stay, now with a confirmed parent) and mempool transactions conflicting with
    /// it are removed with their descendants.
    pub(crate) fn remove_for_block(&mut self, txs: &[Transaction]) {
        for tx in txs {
            let txid = tx.compute_txid();
            self.remove_one(&txid);
            if tx.is_coinbase() {
                continue;
            }
            for input in &tx.input {
                if let Some((other, _)) = self.spender(&input.previous_output) {
                    if other != txid {
                        self.remove_with_descendants(&other);
                    }
                }
            }
        }
    }

    /// All transactions in insertion (topological) order.
    pub(crate) fn transactions(&self) -> Vec<Transaction> {
        self.order
            .values()
            .filter_map(|t| self.entries.get(t).map(|e| e.tx.clone()))
            .collect()
    }

    /// Iterates entries in insertion order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Txid, &Entry)> + '_ {
        self.order
            .values()
            .filter_map(|t| self.entries.get_key_value(t))
    }

    /// Empties the mempool, returning its transactions in insertion order.
    pub(crate) fn drain(&mut self) -> Vec<Transaction> {
        let txs = self.transactions();
        *self = Mempool {
            next_seq: self.next_seq,
            ..Mempool::default()
        };
        txs
    }

    /// Not-yet-selected ancestors of `txid` (itself included) with their fee, vsize and weight.
    fn package(&self, txid: &Txid, selected: &HashSet<Txid>) -> Package {
        let mut pkg = Package::default();
        let mut stack = vec![*txid];
        let mut seen: HashSet<Txid> = HashSet::new();
        while let Some(t) = stack.pop() {
            if selected.contains(&t) || !seen.insert(t) {
                continue;
            }
            if let Some(e) = self.entries.get(&t) {
                pkg.fee += e.fee.to_sat();
                pkg.vsize += e.vsize;
                pkg.weight += e.weight;
                pkg.members.push((e.seq, t));
                stack.extend(e.parents.iter().copied());
            }
        }
        pkg
    }

    /// Picks transactions for a block of at most `max_weight`: highest ancestor-package
    /// feerate first (child-pays-for-parent), parents always before their children.
    pub(crate) fn select(&self, max_weight: u64) -> Vec<Txid> {
        let mut selected: HashSet<Txid> = HashSet::new();
        let mut out: Vec<Txid> = Vec::new();
        let mut used = 0u64;
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::new();
        for (txid, e) in self.entries() {
            let p = self.package(txid, &selected);
            heap.push(Candidate {
                fee: p.fee,
                vsize: p.vsize,
                seq: e.seq,
                txid: *txid,
            });
        }
        while let Some(c) = heap.pop() {
            if selected.contains(&c.txid) {
                continue;
            }
            let mut pkg = self.package(&c.txid, &selected);
            if pkg.fee != c.fee || pkg.vsize != c.vsize {
                heap.push(Candidate {
                    fee: pkg.fee,
                    vsize: pkg.vsize,
                    ..c
                });
                continue;
            }
            if used + pkg.weight > max_weight {
                continue;
            }
            used += pkg.weight;
            pkg.members.sort_unstable();
            for (_, t) in &pkg.members {
                selected.insert(*t);
                out.push(*t);
            }
            // Children of what was just selected lost ancestors: re-score them. Deeper
            // descendants are re-scored lazily when popped (the recompute above), which keeps
            // selection near-linear for long unconfirmed chains.
            for (_, t) in &pkg.members {
                for kid in self.children.get(t).into_iter().flatten() {
                    if selected.contains(kid) {
                        continue;
                    }
                    if let Some(e) = self.entries.get(kid) {
                        let p = self.package(kid, &selected);
                        heap.push(Candidate {
                            fee: p.fee,
                            vsize: p.vsize,
                            seq: e.seq,
                            txid: *kid,
                        });
                    }
                }
            }
        }
        out
    }
}

#[derive(Default)]
struct Package {
    fee: u64,
    vsize: u64,
    weight: u64,
    members: Vec<(u64, Txid)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    fee: u64,
    vsize: u64,
    seq: u64,
    txid: Txid,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = u128::from(self.fee) * u128::from(other.vsize.max(1));
        let b = u128::from(other.fee) * u128::from(self.vsize.max(1));
        a.cmp(&b)
            .then_with(|| other.seq.cmp(&self.seq))
            .then_with(|| self.txid.cmp(&other.txid))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, ScriptBuf, Sequence, TxIn};

    /// An (unvalidated) transaction spending `prev` with one output of `pad` script bytes.
    fn tx(prev: OutPoint, pad: usize) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: prev,
                sequence: Sequence::MAX,
                ..TxIn::default()
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51; pad]),
            }],
        }
    }

    fn confirmed(n: u8) -> OutPoint {
        OutPoint::new(Txid::from_byte_array([n; 32]), 0)
    }

    fn add(m: &mut Mempool, t: Transaction, fee: u64) -> Txid {
        let id = t.compute_txid();
        m.insert(id, t, Amount::from_sat(fee));
        id
    }

    #[test]
    fn selection_respects_weight_and_puts_parents_first() {
        let mut m = Mempool::default();
        let parent = add(&mut m, tx(confirmed(1), 10), 100);
        let child = add(&mut m, tx(OutPoint::new(parent, 0), 10), 10_000);
        let other = add(&mut m, tx(confirmed(2), 10), 1_000);
        let w = m.get(&parent).unwrap().weight;
        assert_eq!(m.select(u64::MAX), vec![parent, child, other]);
        // Room for two transactions: the (parent, child) package wins.
        assert_eq!(m.select(2 * w), vec![parent, child]);
        // Room for one: the child's package does not fit, the best single one does.
        assert_eq!(m.select(w), vec![other]);
        assert!(m.select(0).is_empty());
    }

    #[test]
    fn removal_keeps_links_consistent() {
        let mut m = Mempool::default();
        let a = add(&mut m, tx(confirmed(1), 10), 100);
        let b = add(&mut m, tx(OutPoint::new(a, 0), 10), 100);
        let c = add(&mut m, tx(OutPoint::new(b, 0), 10), 100);
        // Confirming `a` keeps b and c, b now without in-mempool parents.
        m.remove_for_block(&[m.get(&a).unwrap().tx.clone()]);
        assert_eq!(m.len(), 2);
        assert!(m.get(&b).unwrap().parents.is_empty());
        assert_eq!(m.spender(&OutPoint::new(b, 0)), Some((c, 0)));
        // A block spending b's input differently evicts b and its descendant c.
        let rival = tx(OutPoint::new(a, 0), 11);
        m.remove_for_block(&[rival]);
        assert_eq!(m.len(), 0);
        assert_eq!(m.spender(&OutPoint::new(b, 0)), None);
        assert!(m.transactions().is_empty());
    }
}
