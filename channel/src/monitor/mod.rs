//! The on-chain side of a channel: [`ChannelMonitor`] watches the funding output after (and
//! before) the channel closes, classifies whatever spends it, claims every output that is
//! ours, punishes revoked commitments, and reports how each HTLC ended on chain.
//!
//! Separate from [`crate::machine::Channel`], which refuses input once closed: the monitor
//! lives on until every output is resolved. It is sans-IO like the channel.
//!
//! # Call order
//! 1. [`ChannelMonitor::new`] once the channel has a funding outpoint and both commitments 0
//!    are signed, or [`ChannelMonitor::restore`] from its records.
//! 2. After every turn of the channel, [`ChannelMonitor::sync`] with the channel's state: the
//!    monitor records each counterparty commitment we signed, each revocation secret, our
//!    latest signed commitment and every preimage. Persist these records **in the same
//!    batch** as the channel records of that turn (before the `commitment_signed` or
//!    `revoke_and_ack` they depend on leaves the node).
//! 3. Feed the chain: [`ChannelMonitor::block_connected`] for every block, in order, and
//!    [`ChannelMonitor::blocks_disconnected`] on a reorg.
//! 4. Drain [`ChannelMonitor::take_records`] (persist), then [`ChannelMonitor::poll_broadcast`]
//!    (broadcast once the records are durable) and [`ChannelMonitor::poll_event`].
//!
//! Must never: do I/O; broadcast a claim before the block at which it becomes valid; forget
//! a revoked commitment's HTLC set while a justice transaction may still need it; keep more
//! than a justice transaction needs per revoked state (bytes per state: see
//! ARCHITECTURE.md).

mod archive;
mod classify;
pub mod records;
mod resolve;
mod snapshot;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bitcoin::secp256k1::{All, PublicKey, Secp256k1};
use bitcoin::{OutPoint, Transaction, Txid};
use fulmen_htlc::{PaymentHash, PaymentPreimage};

pub use archive::{ArchiveCodecError, RevokedCommitment};
pub use classify::SpendKind;
pub use records::{
    CommitmentSummary, MonitorCodecError, MonitorHtlc, MonitorRecord, MonitorSetup,
    MonitorSnapshot, MONITOR_FORMAT_VERSION,
};
pub use resolve::{OutputKind, OutputReport, OutputStatus, Resolution};
pub use snapshot::DEFAULT_MONITOR_SNAPSHOT_EVERY;

use crate::keys::ChannelBasepoints;
use crate::machine::state::{ChannelState, Update};
use crate::machine::traits::{ChannelSecrets, KeySource};
use crate::shachain::{SecretStore, MAX_INDEX};

/// Why the monitor refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    /// The records do not replay (first is not `Setup`, a revocation out of order, ...).
    #[error("monitor records: {0}")]
    Records(String),
    /// The channel has no funding outpoint or no peer parameters yet.
    #[error("the channel cannot be monitored yet: {0}")]
    NotReady(String),
}

/// One HTLC of a revoked counterparty commitment: what a justice transaction needs to
/// rebuild its script, and its id to report how it ended (45 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokedHtlc {
    /// Its id (in its direction).
    pub id: u64,
    /// True if the peer (the broadcaster of that commitment) offered it.
    pub offered_by_them: bool,
    /// Absolute expiry height.
    pub cltv_expiry: u32,
    /// Payment hash.
    pub payment_hash: PaymentHash,
}

/// For a watchtower: the justice transaction of a counterparty commitment just revoked,
/// built before the monitor compacts that state away. Handed out only when
/// [`ChannelMonitor::set_justice_backups`] is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JusticeBackup {
    /// The revoked commitment's number.
    pub number: u64,
    /// Its txid (the tower's trigger).
    pub commitment_txid: Txid,
    /// The justice transaction taking `to_local` and every HTLC output of it.
    pub justice_tx: Transaction,
}

/// A transaction the monitor wants broadcast, and from which block height it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorBroadcast {
    /// What it is (for logs).
    pub what: &'static str,
    /// The fully signed transaction.
    pub tx: Transaction,
    /// First block height that may include it.
    pub valid_from: u32,
}

/// How an HTLC ended on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtlcOutcome {
    /// Our offered HTLC came back to us (timeout claim confirmed, or it was not in the
    /// confirmed commitment, or the peer's revoked commitment was punished): the payment
    /// failed.
    TimedOut,
    /// The HTLC was settled with its preimage on chain (by the peer for our offered HTLC,
    /// by our HTLC-success claim for a received one).
    Fulfilled,
}

/// Something the node should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorEvent {
    /// The funding output was spent, by a transaction of this kind, at this height.
    FundingSpent {
        /// What spent it.
        kind: SpendKind,
        /// The spending transaction.
        txid: Txid,
        /// Its height.
        height: u32,
    },
    /// A preimage appeared on chain (in the witness of a spend of an HTLC output).
    PreimageLearned {
        /// The preimage.
        preimage: PaymentPreimage,
    },
    /// An HTLC of the channel is resolved on chain.
    HtlcResolved {
        /// True if we offered it.
        offered_by_us: bool,
        /// Its id (in its direction).
        id: u64,
        /// Its payment hash.
        payment_hash: PaymentHash,
        /// How it ended.
        outcome: HtlcOutcome,
    },
    /// One of our claims confirmed: its value is in the wallet.
    OutputSwept {
        /// The claimed output.
        outpoint: OutPoint,
        /// The claim.
        txid: Txid,
        /// Its height.
        height: u32,
    },
    /// Every output of the closing is resolved.
    FullyResolved,
}

/// Our latest commitment, as the monitor keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LocalCommitment {
    pub number: u64,
    pub summary: CommitmentSummary,
    pub remote_sig: bitcoin::secp256k1::ecdsa::Signature,
    pub htlc_sigs: Vec<bitcoin::secp256k1::ecdsa::Signature>,
}

/// A counterparty commitment we signed that is not (known to be) revoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CounterpartyCommitment {
    #[serde(with = "crate::machine::codec::key_hex")]
    pub point: PublicKey,
    pub summary: CommitmentSummary,
}

/// Watches one channel's funding output and everything that spends it.
pub struct ChannelMonitor {
    pub(crate) setup: MonitorSetup,
    /// A state skeleton (setup + funding outpoint) to build commitments with.
    pub(crate) skeleton: ChannelState,
    pub(crate) secrets: ChannelSecrets,
    pub(crate) local_bp: ChannelBasepoints,
    pub(crate) secp: Secp256k1<All>,
    /// Unrevoked counterparty commitments we signed, by number (current and next).
    pub(crate) counterparty: BTreeMap<u64, CounterpartyCommitment>,
    /// HTLCs of counterparty commitments revoked since the last snapshot that had any, by
    /// number (a snapshot moves them to the archive: see `archive.rs`).
    pub(crate) revoked: BTreeMap<u64, Vec<RevokedHtlc>>,
    /// Every commitment up to this number had its HTLC set archived (or had none).
    pub(crate) archived_through: Option<u64>,
    /// Archived HTLC sets the node handed back (not persisted: the archive holds them).
    fetched: BTreeMap<u64, Vec<RevokedHtlc>>,
    /// HTLC sets archived by a snapshot and not yet taken (see `take_archived`).
    archive_out: Vec<RevokedCommitment>,
    /// The peer's per-commitment secrets (compact: O(log n)).
    pub(crate) their_secrets: SecretStore,
    pub(crate) local: Option<LocalCommitment>,
    /// Dev mode: our revoked commitments with the peer's signatures (replayed from the
    /// `LocalCommitment` records), so `dev broadcast-revoked` can sign one, and a dev node
    /// that broadcast one tries to claim its outputs as a real cheater would (the victim's
    /// monitor must win the race).
    pub(crate) old_local_full: BTreeMap<u64, LocalCommitment>,
    pub(crate) preimages: HashMap<PaymentHash, PaymentPreimage>,
    pub(crate) force_closed: bool,
    /// Transactions that concern the channel, with their heights, in order.
    pub(crate) confirmed: Vec<(u32, Transaction)>,
    pub(crate) height: u32,
    records: Vec<MonitorRecord>,
    broadcasts: VecDeque<MonitorBroadcast>,
    events: VecDeque<MonitorEvent>,
    /// Claims handed out since the last restart or reorg (not persisted: after either, every
    /// claim still needed is handed out again).
    handed_out: HashSet<Txid>,
    /// Events reported since the last restart (the node treats repeats as no-ops).
    reported: HashSet<String>,
    /// Records applied since the last snapshot (or since the first record).
    since_snapshot: u64,
    /// See [`ChannelMonitor::set_snapshot_every`] (not persisted: the node sets it).
    snapshot_every: u64,
    /// Keep our revoked commitments: the setup's `keep_old_commitments`, unless the node
    /// turned it off ([`ChannelMonitor::set_keep_old_commitments`]; not persisted).
    keep_old: bool,
    /// Build a [`JusticeBackup`] at each revocation (not persisted: the node sets it).
    justice_backups: bool,
    backups: VecDeque<JusticeBackup>,
}

impl std::fmt::Debug for ChannelMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelMonitor")
            .field("funding", &self.setup.funding_outpoint)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl ChannelMonitor {
    /// The setup a monitor of `state` needs, or why the channel cannot be monitored yet.
    pub fn setup_for(
        state: &ChannelState,
        sweep_script: bitcoin::ScriptBuf,
        claim_feerate_per_kw: u32,
        keep_old_commitments: bool,
    ) -> Result<MonitorSetup, MonitorError> {
        let funding_outpoint = state
            .funding_outpoint
            .ok_or(MonitorError::NotReady("no funding outpoint".into()))?;
        if state.setup.remote.is_none() {
            return Err(MonitorError::NotReady("no peer parameters".into()));
        }
        Ok(MonitorSetup {
            channel: state.setup.clone(),
            funding_outpoint,
            sweep_script,
            claim_feerate_per_kw,
            keep_old_commitments,
        })
    }

    /// A new monitor; its `Setup` record is the first of [`ChannelMonitor::take_records`].
    pub fn new(keys: &dyn KeySource, setup: MonitorSetup) -> Result<ChannelMonitor, MonitorError> {
        let mut m = ChannelMonitor::empty(keys, setup.clone())?;
        m.records.push(MonitorRecord::Setup(Box::new(setup)));
        Ok(m)
    }

    /// Rebuild a monitor from its records (the first must be `Setup`, or a `Snapshot` once
    /// the store dropped what came before it). Every claim still needed is handed out again
    /// at the next [`ChannelMonitor::block_connected`] or [`ChannelMonitor::rebroadcast`].
    pub fn restore(
        keys: &dyn KeySource,
        records: &[MonitorRecord],
    ) -> Result<ChannelMonitor, MonitorError> {
        let (first, rest) = records
            .split_first()
            .ok_or(MonitorError::Records("no records".into()))?;
        let mut m = match first {
            MonitorRecord::Setup(setup) => ChannelMonitor::empty(keys, (**setup).clone())?,
            MonitorRecord::Snapshot(s) => {
                let mut m = ChannelMonitor::empty(keys, s.setup.clone())?;
                m.load_snapshot(s)?;
                m
            }
            _ => {
                return Err(MonitorError::Records(
                    "first record is neither Setup nor Snapshot".into(),
                ))
            }
        };
        for r in rest {
            m.apply(r)?;
        }
        Ok(m)
    }

    fn empty(keys: &dyn KeySource, setup: MonitorSetup) -> Result<ChannelMonitor, MonitorError> {
        if setup.channel.remote.is_none() {
            return Err(MonitorError::Records(
                "setup without peer parameters".into(),
            ));
        }
        let secp = crate::keys::context();
        let secrets = keys.channel_secrets(&setup.channel.key_id);
        // Our basepoints as the channel's setup recorded them, checked against `keys`.
        let local_bp = setup.channel.local.basepoints;
        if !secrets.are_behind(&secp, &local_bp) {
            return Err(MonitorError::Records(
                "the key source does not hold this channel's keys".into(),
            ));
        }
        let keep_old = setup.keep_old_commitments;
        let mut skeleton = ChannelState::new(setup.channel.clone());
        skeleton.funding_outpoint = Some(setup.funding_outpoint);
        Ok(ChannelMonitor {
            height: setup.channel.created_height,
            setup,
            skeleton,
            secrets,
            local_bp,
            secp,
            counterparty: BTreeMap::new(),
            revoked: BTreeMap::new(),
            archived_through: None,
            fetched: BTreeMap::new(),
            archive_out: Vec::new(),
            their_secrets: SecretStore::new(),
            local: None,
            old_local_full: BTreeMap::new(),
            preimages: HashMap::new(),
            force_closed: false,
            confirmed: Vec::new(),
            records: Vec::new(),
            broadcasts: VecDeque::new(),
            events: VecDeque::new(),
            handed_out: HashSet::new(),
            reported: HashSet::new(),
            since_snapshot: 0,
            snapshot_every: DEFAULT_MONITOR_SNAPSHOT_EVERY,
            keep_old,
            justice_backups: false,
            backups: VecDeque::new(),
        })
    }

    /// The funding outpoint watched.
    pub fn funding_outpoint(&self) -> OutPoint {
        self.setup.funding_outpoint
    }

    /// The setup.
    pub fn setup(&self) -> &MonitorSetup {
        &self.setup
    }

    /// Number of revoked counterparty commitments whose HTLCs are kept in memory (those that
    /// had any, revoked since the last snapshot archived the others).
    pub fn revoked_states_with_htlcs(&self) -> usize {
        self.revoked.len()
    }

    fn apply(&mut self, r: &MonitorRecord) -> Result<(), MonitorError> {
        match r {
            MonitorRecord::Setup(_) => return Err(MonitorError::Records("Setup twice".into())),
            MonitorRecord::CounterpartyCommitment {
                number,
                point,
                summary,
            } => {
                self.counterparty.insert(
                    *number,
                    CounterpartyCommitment {
                        point: *point,
                        summary: summary.clone(),
                    },
                );
            }
            MonitorRecord::Revoked { number, secret } => {
                let idx = MAX_INDEX
                    .checked_sub(*number)
                    .ok_or(MonitorError::Records("commitment number too high".into()))?;
                self.their_secrets
                    .insert(idx, *secret)
                    .map_err(|e| MonitorError::Records(e.to_string()))?;
                // Keep only what justice needs of every commitment up to this one.
                let done: Vec<u64> = self
                    .counterparty
                    .range(..=*number)
                    .map(|(n, _)| *n)
                    .collect();
                for n in done {
                    if let Some(c) = self.counterparty.remove(&n) {
                        let htlcs: Vec<RevokedHtlc> = c
                            .summary
                            .htlcs
                            .iter()
                            .map(|h| RevokedHtlc {
                                id: h.id,
                                offered_by_them: !h.offered_by_us,
                                cltv_expiry: h.cltv_expiry,
                                payment_hash: h.payment_hash,
                            })
                            .collect();
                        if !htlcs.is_empty() {
                            self.revoked.insert(n, htlcs);
                        }
                    }
                }
            }
            MonitorRecord::LocalCommitment {
                number,
                summary,
                remote_sig,
                htlc_sigs,
            } => {
                let old = self.local.replace(LocalCommitment {
                    number: *number,
                    summary: summary.clone(),
                    remote_sig: *remote_sig,
                    htlc_sigs: htlc_sigs.clone(),
                });
                if let (Some(old), true) = (old, self.keep_old) {
                    self.old_local_full.insert(old.number, old);
                }
            }
            MonitorRecord::Preimage(p) => {
                self.preimages.insert(p.payment_hash(), *p);
            }
            MonitorRecord::ForceClosed => self.force_closed = true,
            MonitorRecord::Confirmed { height, tx } => {
                let txid = tx.compute_txid();
                if !self.confirmed.iter().any(|(_, t)| t.compute_txid() == txid) {
                    self.confirmed.push((*height, tx.clone()));
                }
                self.height = self.height.max(*height);
            }
            MonitorRecord::Disconnected { fork_height } => {
                self.confirmed.retain(|(h, _)| h <= fork_height);
                self.height = *fork_height;
            }
            MonitorRecord::Snapshot(s) => {
                self.load_snapshot(s)?;
                self.since_snapshot = 0;
                return Ok(());
            }
        }
        self.since_snapshot += 1;
        Ok(())
    }

    fn push(&mut self, r: MonitorRecord) {
        // Our own records always apply (they are built from a consistent state).
        if let Err(e) = self.apply(&r) {
            self.events.push_back(MonitorEvent::FundingSpent {
                kind: SpendKind::Unknown(format!("monitor record refused: {e}")),
                txid: self.setup.funding_outpoint.txid,
                height: self.height,
            });
            return;
        }
        self.records.push(r);
        self.maybe_snapshot();
    }

    /// Learn what the channel signed, revoked and settled since the last call: counterparty
    /// commitments, revocation secrets, our latest commitment, preimages. Persist the
    /// resulting records in the same batch as the channel's.
    pub fn sync(&mut self, state: &ChannelState) {
        if state.funding_outpoint != Some(self.setup.funding_outpoint) {
            return;
        }
        // Revocations first: a revoked commitment's HTLCs are compacted when its secret
        // arrives, so record the secret only once the commitment itself is recorded.
        if let Some(last) = state.remote_secrets.last_index() {
            let latest = MAX_INDEX - last;
            let from = self
                .their_secrets
                .last_index()
                .map_or(0, |i| MAX_INDEX - i + 1);
            for number in from..=latest {
                if let Some(secret) = state.remote_secrets.get(MAX_INDEX - number) {
                    if self.justice_backups {
                        if let Some(b) = self.justice_backup(number, &secret) {
                            self.backups.push_back(b);
                        }
                    }
                    self.push(MonitorRecord::Revoked { number, secret });
                }
            }
        }
        for rc in [&state.remote_commit, &state.remote_next]
            .into_iter()
            .flatten()
        {
            let revoked = self
                .their_secrets
                .last_index()
                .is_some_and(|i| rc.number <= MAX_INDEX - i);
            if revoked || self.counterparty.contains_key(&rc.number) {
                continue;
            }
            self.push(MonitorRecord::CounterpartyCommitment {
                number: rc.number,
                point: rc.point,
                summary: CommitmentSummary::of(&rc.spec),
            });
        }
        if let Some(lc) = &state.local_commit {
            if self.local.as_ref().is_none_or(|l| l.number < lc.number) {
                self.push(MonitorRecord::LocalCommitment {
                    number: lc.number,
                    summary: CommitmentSummary::of(&lc.spec),
                    remote_sig: lc.remote_sig,
                    htlc_sigs: lc.htlc_sigs.clone(),
                });
            }
        }
        let lists = [
            &state.local_changes.proposed,
            &state.local_changes.signed,
            &state.local_changes.acked,
            &state.remote_changes.proposed,
            &state.remote_changes.signed,
            &state.remote_changes.acked,
        ];
        let new: Vec<PaymentPreimage> = lists
            .iter()
            .flat_map(|l| l.iter())
            .filter_map(|u| match u {
                Update::Fulfill { preimage, .. } => Some(*preimage),
                _ => None,
            })
            .filter(|p| !self.preimages.contains_key(&p.payment_hash()))
            .collect();
        if new.is_empty() {
            return;
        }
        // Only a preimage of an HTLC in a commitment that can still confirm is worth a record
        // (a snapshot forgets the others: see `snapshot.rs`). One settled now is in a current
        // commitment; a dev node's old ones are not searched (thousands, on every fulfill).
        let held = self.hashes_in_commitments(false);
        for p in new.into_iter().filter(|p| held.contains(&p.payment_hash())) {
            self.push(MonitorRecord::Preimage(p));
        }
    }

    /// Build a [`JusticeBackup`] for every counterparty commitment revoked from now on (for
    /// a watchtower).
    pub fn set_justice_backups(&mut self, on: bool) {
        self.justice_backups = on;
    }

    /// The next justice backup for a watchtower.
    pub fn poll_justice_backup(&mut self) -> Option<JusticeBackup> {
        self.backups.pop_front()
    }

    /// The justice transaction of counterparty commitment `number` (still held in full),
    /// given its revealed `secret`.
    fn justice_backup(&self, number: u64, secret: &[u8; 32]) -> Option<JusticeBackup> {
        let c = self.counterparty.get(&number)?;
        let built = self.build_remote(number, c).ok()?;
        let sk = bitcoin::secp256k1::SecretKey::from_slice(secret).ok()?;
        let rev =
            crate::keys::derive_revocation_privkey(&self.secp, &self.secrets.revocation_base, &sk)
                .ok()?;
        let inputs = crate::justice::commitment_justice_inputs(&built.tx, &built.keys, &rev);
        if inputs.is_empty() {
            return None;
        }
        let tx = crate::justice::build_justice_tx(
            &self.secp,
            &inputs,
            self.setup.sweep_script.clone(),
            self.setup.claim_feerate_per_kw,
        )
        .ok()?;
        Some(JusticeBackup {
            number,
            commitment_txid: built.tx.txid(),
            justice_tx: tx,
        })
    }

    /// A preimage learned elsewhere (an invoice of ours whose HTLC is on chain).
    pub fn provide_preimage(&mut self, preimage: PaymentPreimage) {
        if !self.preimages.contains_key(&preimage.payment_hash()) {
            self.push(MonitorRecord::Preimage(preimage));
            self.refresh();
        }
    }

    /// Hashes of the HTLCs we received that a preimage would let us claim on chain (we do
    /// not know it yet), without repeats, in commitment order.
    pub fn wanted_preimages(&self) -> Vec<PaymentHash> {
        let mut out: Vec<PaymentHash> = Vec::new();
        let received = self
            .local
            .iter()
            .map(|l| &l.summary)
            .chain(self.counterparty.values().map(|c| &c.summary))
            .flat_map(|s| s.htlcs.iter())
            .filter(|h| !h.offered_by_us && !self.preimages.contains_key(&h.payment_hash));
        for h in received {
            if !out.contains(&h.payment_hash) {
                out.push(h.payment_hash);
            }
        }
        out
    }

    /// We broadcast our latest commitment (a force close): the monitor keeps broadcasting
    /// it until the funding output is spent (a reorg that removes it gets it back).
    pub fn force_closed(&mut self) {
        if !self.force_closed {
            self.push(MonitorRecord::ForceClosed);
        }
    }

    /// Stop keeping our revoked commitments (`on: false`) when the setup asked for them: a
    /// channel opened by a dev node that now runs as a real one. Those kept are dropped (the
    /// next snapshot, or [`ChannelMonitor::compact`], leaves them out). `on: true` keeps them
    /// again only if the setup asked.
    pub fn set_keep_old_commitments(&mut self, on: bool) {
        self.keep_old = on && self.setup.keep_old_commitments;
        if !self.keep_old && !self.old_local_full.is_empty() {
            self.old_local_full.clear();
            // The snapshot on record still holds them: a compaction writes a new one.
            self.mark_for_compaction();
        }
    }

    /// Dev mode: one of our revoked commitments, signed — number `number`, or by default
    /// the oldest of those where our balance was highest. `None` if none is kept.
    pub fn revoked_local_commitment(&self, number: Option<u64>) -> Option<(u64, Transaction)> {
        let n = match number {
            Some(n) => n,
            None => {
                let best = self
                    .old_local_full
                    .values()
                    .map(|c| c.summary.to_us_msat)
                    .max()?;
                *self
                    .old_local_full
                    .iter()
                    .find(|(_, c)| c.summary.to_us_msat == best)?
                    .0
            }
        };
        let old = self.old_local_full.get(&n)?;
        self.signed_local_tx(old).ok().map(|tx| (n, tx))
    }

    /// Numbers of our revoked commitments kept signed (dev mode), ascending.
    pub fn revoked_local_numbers(&self) -> Vec<u64> {
        self.old_local_full.keys().copied().collect()
    }

    /// Our balance in revoked commitment `number` (dev mode keeps them), msat.
    pub fn revoked_balance_msat(&self, number: u64) -> Option<u64> {
        self.old_local_full
            .get(&number)
            .map(|c| c.summary.to_us_msat)
    }

    /// The block at `height` joined the best chain.
    /// Every claim still needed is handed out again at each block until it confirms (a claim
    /// refused for a conflict that has since been resolved goes out again).
    pub fn block_connected(&mut self, height: u32, txdata: &[Transaction]) {
        self.handed_out.clear();
        let mut watched: HashSet<OutPoint> = self.watched_outpoints();
        for tx in txdata {
            if tx
                .input
                .iter()
                .any(|i| watched.contains(&i.previous_output))
            {
                let txid = tx.compute_txid();
                let known = self.confirmed.iter().any(|(_, t)| t.compute_txid() == txid);
                if !known {
                    self.push(MonitorRecord::Confirmed {
                        height,
                        tx: tx.clone(),
                    });
                    // A commitment or second-stage tx in this block may be spent in it too.
                    watched = self.watched_outpoints();
                }
            }
        }
        self.height = self.height.max(height);
        self.refresh();
    }

    /// Every block above `fork_height` left the best chain: what they confirmed is
    /// forgotten, and every claim still needed is handed out again.
    pub fn blocks_disconnected(&mut self, fork_height: u32) {
        if fork_height >= self.height {
            return;
        }
        self.push(MonitorRecord::Disconnected { fork_height });
        self.handed_out.clear();
        self.reported
            .retain(|k| !k.starts_with("spent:") && !k.starts_with("swept:"));
        self.refresh();
    }

    /// Hand out every claim still needed again, the chain being at `height` (after a
    /// restart).
    pub fn rebroadcast(&mut self, height: u32) {
        self.height = self.height.max(height);
        self.handed_out.clear();
        self.refresh();
    }

    /// The records to persist (taken: each is handed out once).
    pub fn take_records(&mut self) -> Vec<MonitorRecord> {
        std::mem::take(&mut self.records)
    }

    /// The next transaction to broadcast.
    pub fn poll_broadcast(&mut self) -> Option<MonitorBroadcast> {
        self.broadcasts.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MonitorEvent> {
        self.events.pop_front()
    }

    /// Outpoints whose spend concerns the channel: the funding output, every output of the
    /// confirmed funding spend, and every output of a confirmed transaction spending one of
    /// those (second-stage HTLC transactions).
    fn watched_outpoints(&self) -> HashSet<OutPoint> {
        let mut w = HashSet::new();
        w.insert(self.setup.funding_outpoint);
        let Some((_, spend)) = self.funding_spend() else {
            return w;
        };
        let ctxid = spend.compute_txid();
        for vout in 0..spend.output.len() {
            w.insert(OutPoint {
                txid: ctxid,
                vout: vout as u32,
            });
        }
        for (_, tx) in &self.confirmed {
            if tx.input.iter().any(|i| i.previous_output.txid == ctxid) {
                let txid = tx.compute_txid();
                for vout in 0..tx.output.len() {
                    w.insert(OutPoint {
                        txid,
                        vout: vout as u32,
                    });
                }
            }
        }
        w
    }

    /// The confirmed transaction spending the funding output, with its height.
    pub(crate) fn funding_spend(&self) -> Option<(u32, &Transaction)> {
        self.confirmed
            .iter()
            .find(|(_, tx)| {
                tx.input
                    .iter()
                    .any(|i| i.previous_output == self.setup.funding_outpoint)
            })
            .map(|(h, tx)| (*h, tx))
    }

    /// Recompute the resolution; hand out new claims and report new events.
    fn refresh(&mut self) {
        let Some(res) = self.resolve() else {
            // Spent, by a revoked commitment whose archived HTLC set is on its way: wait.
            if self.force_closed && self.funding_spend().is_none() {
                if let Some(local) = self.local.clone() {
                    if let Ok(tx) = self.signed_local_tx(&local) {
                        let txid = tx.compute_txid();
                        if self.handed_out.insert(txid) {
                            self.broadcasts.push_back(MonitorBroadcast {
                                what: "our commitment",
                                tx,
                                valid_from: 0,
                            });
                        }
                    }
                }
            }
            return;
        };
        let mut events = Vec::new();
        events.push((
            format!("spent:{}", res.commitment_txid),
            MonitorEvent::FundingSpent {
                kind: res.kind.clone(),
                txid: res.commitment_txid,
                height: res.height,
            },
        ));
        for p in &res.preimages_seen {
            events.push((
                format!("preimage:{}", p.payment_hash()),
                MonitorEvent::PreimageLearned { preimage: *p },
            ));
        }
        for (offered_by_us, id, hash, outcome) in &res.htlc_outcomes {
            events.push((
                format!("htlc:{offered_by_us}:{id}"),
                MonitorEvent::HtlcResolved {
                    offered_by_us: *offered_by_us,
                    id: *id,
                    payment_hash: *hash,
                    outcome: *outcome,
                },
            ));
        }
        for o in &res.outputs {
            if let OutputStatus::Swept { txid, height } = o.status {
                events.push((
                    format!("swept:{}", o.outpoint),
                    MonitorEvent::OutputSwept {
                        outpoint: o.outpoint,
                        txid,
                        height,
                    },
                ));
            }
        }
        if res.is_final() {
            events.push(("final".to_string(), MonitorEvent::FullyResolved));
        }
        for (key, ev) in events {
            if self.reported.insert(key) {
                self.events.push_back(ev);
            }
        }
        for c in res.claims {
            if c.valid_from > self.height.saturating_add(1) {
                continue;
            }
            if self.handed_out.insert(c.tx.compute_txid()) {
                self.broadcasts.push_back(c);
            }
        }
    }

    /// How the channel's funds stand on chain (`None` while the funding output is unspent).
    pub fn resolution(&self) -> Option<Resolution> {
        self.resolve()
    }

    /// Our latest commitment, fully signed.
    fn signed_local_tx(&self, local: &LocalCommitment) -> Result<Transaction, String> {
        let built = self.build_local(local)?;
        let remote_funding = self
            .setup
            .channel
            .remote
            .as_ref()
            .ok_or("no peer parameters")?
            .basepoints
            .funding_pubkey;
        crate::machine::commit::signed_local(
            &self.secp,
            &built,
            &self.secrets,
            &self.local_bp.funding_pubkey,
            &remote_funding,
            &local.remote_sig,
        )
        .map_err(|e| e.to_string())
    }
}
