//! Compaction of a monitor's records: [`MonitorRecord::Snapshot`], the whole persistent state
//! of a [`ChannelMonitor`], written every so many records so that a restart replays the
//! latest snapshot and a short tail instead of every record since the channel opened (≈ 7
//! per payment).
//!
//! Owns: building a snapshot from the monitor's state and loading one back, when to write
//! one, and what a snapshot lets go of. At a snapshot the HTLC sets of the commitments
//! revoked since the last one move to the revocation archive (`archive.rs`), and the
//! preimages of HTLCs that no unrevoked commitment holds any more are forgotten (a claim
//! needs a preimage only for an HTLC output of a commitment that can still confirm; on a
//! revoked one, justice takes every output with the revocation key). So a snapshot's size
//! does not grow with the channel's history, except on a dev node, which keeps its own old
//! commitments: a snapshot is written once the records since the last weigh about as much
//! as the snapshot would (by the sizes below), so the bytes it rewrites stay within about
//! those of the records it replaces. Must never: leave out a field that replay rebuilds (a
//! monitor restored from a snapshot and its tail equals one restored from every record),
//! forget a preimage an unrevoked commitment's HTLC needs, or be written while the caller
//! cannot persist it, with the HTLC sets it archives, in the batch of the records before it.

use std::collections::{BTreeMap, HashMap, HashSet};

use fulmen_htlc::PaymentHash;

use super::records::{ConfirmedTx, MonitorSnapshot};
use super::{ChannelMonitor, MonitorError, MonitorRecord};

/// Default [`ChannelMonitor::set_snapshot_every`]: as `ChannelConfig::snapshot_every`.
pub const DEFAULT_MONITOR_SNAPSHOT_EVERY: u64 = 100;

/// Encoded bytes, about: a record on average, and in a snapshot a preimage, an old commitment
/// of a dev node. Measured in JSON on a 7,800-payment history (500, 150, 500), scaled by what
/// the binary form (monitor format 4) makes of the same records: 3.3–4.4× smaller
/// (`channel/tests/data/v3_*_monitor.jsonl` re-encoded: a `Revoked` 165 → 35 bytes, a
/// `Preimage` 148 → 34, a `LocalCommitment` with one HTLC 650 → 197).
const RECORD_BYTES: u64 = 120;
const PREIMAGE_BYTES: u64 = 34;
const OLD_COMMITMENT_BYTES: u64 = 150;

impl ChannelMonitor {
    /// Write a [`MonitorRecord::Snapshot`] after every `n` records (0: never), once the
    /// records since the last one weigh about as much as the snapshot (see the module doc).
    /// Not persisted: the node sets it after `new` or `restore`.
    pub fn set_snapshot_every(&mut self, n: u64) {
        self.snapshot_every = n;
    }

    /// After a record: a snapshot, if one is due (see the module doc).
    pub(super) fn maybe_snapshot(&mut self) {
        let every = self.snapshot_every;
        if every == 0 || self.since_snapshot < every {
            return;
        }
        // (Revoked HTLC sets are not rewritten: they move to the archive once.)
        let growing = self.preimages.len() as u64 * PREIMAGE_BYTES
            + self.old_local_full.len() as u64 * OLD_COMMITMENT_BYTES;
        if self.since_snapshot * RECORD_BYTES < growing {
            return;
        }
        self.write_snapshot();
    }

    /// Writes a snapshot now if any record was written since the last one (a clean stop:
    /// the next start reads one record for this monitor).
    pub fn compact(&mut self) {
        if self.since_snapshot > 0 {
            self.write_snapshot();
        }
    }

    /// Makes the next [`ChannelMonitor::compact`] write a snapshot even if no record was
    /// written since the last one: the stored records are in an older format and the
    /// snapshot rewrites them in the current one.
    pub fn mark_for_compaction(&mut self) {
        self.since_snapshot = self.since_snapshot.max(1);
    }

    /// Archives the revoked HTLC sets, forgets the preimages no commitment needs, and
    /// appends the snapshot.
    fn write_snapshot(&mut self) {
        self.archive_revoked();
        let held = self.hashes_in_commitments(true);
        self.preimages.retain(|hash, _| held.contains(hash));
        let snapshot = self.snapshot();
        self.records
            .push(MonitorRecord::Snapshot(Box::new(snapshot)));
        self.since_snapshot = 0;
    }

    /// The monitor's whole persistent state, in a canonical order (two monitors with equal
    /// snapshots act the same on any chain).
    pub fn snapshot(&self) -> MonitorSnapshot {
        let mut preimages: Vec<_> = self.preimages.values().copied().collect();
        preimages.sort_by_key(|p| p.payment_hash());
        MonitorSnapshot {
            setup: self.setup.clone(),
            counterparty: self
                .counterparty
                .iter()
                .map(|(n, c)| (*n, c.clone()))
                .collect(),
            revoked: self.revoked.iter().map(|(n, h)| (*n, h.clone())).collect(),
            archived_through: self.archived_through,
            their_secrets: self.their_secrets.clone(),
            local: self.local.clone(),
            old_local: self.old_local_full.values().cloned().collect(),
            preimages,
            force_closed: self.force_closed,
            confirmed: self
                .confirmed
                .iter()
                .map(|(height, tx)| ConfirmedTx {
                    height: *height,
                    tx: tx.clone(),
                })
                .collect(),
            height: self.height,
        }
    }

    /// Replaces the state with a snapshot's (of this monitor's channel: same setup).
    pub(super) fn load_snapshot(&mut self, s: &MonitorSnapshot) -> Result<(), MonitorError> {
        if s.setup != self.setup {
            return Err(MonitorError::Records(
                "a snapshot of another channel's monitor".into(),
            ));
        }
        self.counterparty = s.counterparty.iter().cloned().collect();
        self.revoked = s.revoked.iter().cloned().collect();
        self.archived_through = s.archived_through;
        self.their_secrets = s.their_secrets.clone();
        self.local = s.local.clone();
        self.old_local_full = s
            .old_local
            .iter()
            .map(|c| (c.number, c.clone()))
            .collect::<BTreeMap<_, _>>();
        self.preimages = s
            .preimages
            .iter()
            .map(|p| (p.payment_hash(), *p))
            .collect::<HashMap<_, _>>();
        self.force_closed = s.force_closed;
        self.confirmed = s
            .confirmed
            .iter()
            .map(|c| (c.height, c.tx.clone()))
            .collect();
        self.height = s.height;
        Ok(())
    }

    /// Payment hashes of the HTLCs in the commitments that can still confirm: our latest,
    /// the peer's unrevoked ones, and on a dev node (`with_old`) our old ones.
    pub(super) fn hashes_in_commitments(&self, with_old: bool) -> HashSet<PaymentHash> {
        let old = self.old_local_full.values().filter(|_| with_old);
        self.local
            .iter()
            .chain(old)
            .map(|l| &l.summary)
            .chain(self.counterparty.values().map(|c| &c.summary))
            .flat_map(|s| s.htlcs.iter().map(|h| h.payment_hash))
            .collect()
    }
}
