//! From the confirmed funding spend and what confirmed after it, the monitor's
//! [`Resolution`]: each output of the closing with its [`OutputStatus`], the claims to
//! broadcast (with the height from which each is valid), preimages seen on chain and how
//! each HTLC ended. A pure function of the monitor's state, recomputed on every block, so a
//! restart or a reorg needs no other bookkeeping.
//!
//! Claims: our commitment — `to_local` after the peer's `to_self_delay`, HTLC-timeout after
//! expiry and HTLC-success with the preimage (with the peer's stored HTLC signatures), then
//! each second-stage output after its delay; the peer's commitment — `to_remote` at once,
//! their offered HTLCs with the preimage, ours after expiry; a revoked commitment — one
//! justice transaction taking `to_local`, every HTLC output and the output of every
//! second-stage transaction the peer got in first, plus `to_remote` at once.
//!
//! Must never: sign a claim whose timelock is not yet met (it would be refused, not lost,
//! but it says the monitor misjudged), or count an output as ours that pays the peer.

use std::collections::{BTreeMap, HashMap, HashSet};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, OutPoint, Transaction, Txid};
use fulmen_htlc::scripts::revocable_delayed_script;
use fulmen_htlc::second_stage::finalize_second_stage;
use fulmen_htlc::second_stage::sign_second_stage;
use fulmen_htlc::{PaymentHash, PaymentPreimage};

use super::classify::SpendKind;
use super::{ChannelMonitor, CounterpartyCommitment, HtlcOutcome, LocalCommitment};
use super::{MonitorBroadcast, RevokedHtlc};
use crate::commitment::CommitmentHtlc;
use crate::justice::{build_justice_tx, htlc_justice_inputs, second_stage_justice_input};
use crate::keys::{derive_privkey, derive_revocation_privkey, per_commitment_point};
use crate::keys::{ChannelBasepoints, CommitmentKeys};
use crate::machine::commit::{self, Built};
use crate::shachain::{generate_from_seed, MAX_INDEX};
use crate::sweep::{build_sweep_tx, SpendPath, SweepInput};

/// What an output of the closing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Our `to_local` on our commitment (CSV-delayed).
    ToLocal,
    /// Our `to_remote` on the peer's commitment (ours at once).
    ToRemote,
    /// An HTLC output (either commitment) for an HTLC we offered.
    OfferedHtlc,
    /// An HTLC output (either commitment) for an HTLC we received.
    ReceivedHtlc,
    /// The output of our HTLC-timeout / HTLC-success transaction (CSV-delayed).
    SecondStage,
    /// A revocable output of a revoked commitment of the peer's (`to_local`, an HTLC, or
    /// the output of its second-stage transaction): ours with the revocation key.
    Revoked,
    /// An output that belongs to the peer.
    Peer,
}

/// Where one output stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStatus {
    /// Ours, but not spendable before `spendable_at` (CSV delay or HTLC expiry).
    Waiting {
        /// First block height that may include our claim.
        spendable_at: u32,
    },
    /// A received HTLC whose preimage we do not have: the peer may time it out.
    NeedsPreimage,
    /// Our claim is out, not yet confirmed.
    ClaimBroadcast {
        /// The claim.
        txid: Txid,
    },
    /// Spent by our transaction (a sweep to the wallet, or our second-stage transaction).
    Swept {
        /// The spending transaction.
        txid: Txid,
        /// Its height.
        height: u32,
    },
    /// Spent by the peer.
    SpentByPeer {
        /// The spending transaction.
        txid: Txid,
        /// Its height.
        height: u32,
    },
    /// The peer's output: nothing for us to do.
    NotOurs,
    /// Ours, but too small to pay for its own claim.
    Uneconomical,
}

/// One output of the closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputReport {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount_sat: u64,
    /// What it is.
    pub kind: OutputKind,
    /// Where it stands.
    pub status: OutputStatus,
}

/// How the channel's funds stand on chain after the funding output was spent.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// What spent the funding output.
    pub kind: SpendKind,
    /// The spending transaction.
    pub commitment_txid: Txid,
    /// Its height.
    pub height: u32,
    /// Every output of the closing (and of our second-stage transactions).
    pub outputs: Vec<OutputReport>,
    /// Fees our confirmed claims paid, sat.
    pub claim_fees_sat: u64,
    pub(crate) claims: Vec<MonitorBroadcast>,
    pub(crate) preimages_seen: Vec<PaymentPreimage>,
    /// (offered by us, id, hash, outcome).
    pub(crate) htlc_outcomes: Vec<(bool, u64, PaymentHash, HtlcOutcome)>,
}

impl Resolution {
    /// True when nothing more can happen to any output (every one swept, spent by the peer,
    /// not ours or uneconomical).
    pub fn is_final(&self) -> bool {
        self.outputs.iter().all(|o| {
            matches!(
                o.status,
                OutputStatus::Swept { .. }
                    | OutputStatus::SpentByPeer { .. }
                    | OutputStatus::NotOurs
                    | OutputStatus::Uneconomical
            )
        })
    }
}

/// Spends of outpoints by confirmed transactions: outpoint → (spender, height).
type Spends<'a> = HashMap<OutPoint, (&'a Transaction, u32)>;

fn internal(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A 32-byte witness element whose SHA256 is one of `hashes`.
fn preimage_in(tx: &Transaction, hashes: &HashSet<PaymentHash>) -> Option<PaymentPreimage> {
    tx.input
        .iter()
        .flat_map(|i| i.witness.iter())
        .filter(|w| w.len() == 32)
        .find_map(|w| {
            let mut b = [0u8; 32];
            b.copy_from_slice(w);
            let p = PaymentPreimage(b);
            hashes.contains(&p.payment_hash()).then_some(p)
        })
}

/// Ids of a built commitment's HTLCs in builder order (the broadcaster's offered first).
fn ids_in_build_order(
    ours: bool,
    summary: &super::CommitmentSummary,
) -> Vec<(bool, u64, PaymentHash)> {
    let spec = summary.spec();
    let by_us = spec
        .offered_by_us
        .iter()
        .map(|(id, h)| (true, *id, h.payment_hash));
    let by_them = spec
        .offered_by_them
        .iter()
        .map(|(id, h)| (false, *id, h.payment_hash));
    if ours {
        by_us.chain(by_them).collect()
    } else {
        by_them.chain(by_us).collect()
    }
}

/// The HTLC behind a built commitment's HTLC output: itself, whether we offered it, its id
/// and hash, and the output's kind. `None` if the builder's index is stale.
type HtlcOf<'a> = (&'a CommitmentHtlc, bool, u64, PaymentHash, OutputKind);

fn htlc_of<'a>(
    built: &'a Built,
    ids: &[(bool, u64, PaymentHash)],
    out: &crate::commitment::HtlcOutput,
) -> Result<Option<HtlcOf<'a>>, String> {
    let Some(h) = built.htlcs.get(out.htlc_index) else {
        return Ok(None);
    };
    let (by_us, id, hash) = ids
        .get(out.htlc_index)
        .copied()
        .ok_or("htlc index out of range")?;
    let kind = if by_us {
        OutputKind::OfferedHtlc
    } else {
        OutputKind::ReceivedHtlc
    };
    Ok(Some((h, by_us, id, hash, kind)))
}

/// Accumulates a resolution.
struct Acc {
    outputs: Vec<OutputReport>,
    claims: Vec<MonitorBroadcast>,
    outcomes: Vec<(bool, u64, PaymentHash, HtlcOutcome)>,
    preimages: Vec<PaymentPreimage>,
    height: u32,
    /// Ids of our offered HTLCs with an output in a revoked commitment of the peer's.
    revoked_offered: HashSet<u64>,
}

impl Acc {
    fn row(&mut self, outpoint: OutPoint, amount: Amount, kind: OutputKind, status: OutputStatus) {
        self.outputs.push(OutputReport {
            outpoint,
            amount_sat: amount.to_sat(),
            kind,
            status,
        });
    }

    /// A claim of ours: `Waiting` before it is valid, else handed out.
    fn claim(&mut self, what: &'static str, tx: Transaction, valid_from: u32) -> OutputStatus {
        let txid = tx.compute_txid();
        self.claims.push(MonitorBroadcast {
            what,
            tx,
            valid_from,
        });
        if valid_from > self.height.saturating_add(1) {
            OutputStatus::Waiting {
                spendable_at: valid_from,
            }
        } else {
            OutputStatus::ClaimBroadcast { txid }
        }
    }
}

impl ChannelMonitor {
    fn our_point(&self, number: u64) -> Result<bitcoin::secp256k1::PublicKey, String> {
        let idx = MAX_INDEX.checked_sub(number).ok_or("number exhausted")?;
        let secret = generate_from_seed(&self.secrets.commitment_seed, idx).map_err(internal)?;
        per_commitment_point(&self.secp, &secret).map_err(internal)
    }

    pub(crate) fn build_local(&self, l: &LocalCommitment) -> Result<Built, String> {
        let point = self.our_point(l.number)?;
        commit::build(
            &self.secp,
            &self.skeleton,
            &self.local_bp,
            true,
            l.number,
            &point,
            &l.summary.spec(),
        )
        .map_err(internal)
    }

    pub(crate) fn build_remote(
        &self,
        number: u64,
        c: &CounterpartyCommitment,
    ) -> Result<Built, String> {
        commit::build(
            &self.secp,
            &self.skeleton,
            &self.local_bp,
            false,
            number,
            &c.point,
            &c.summary.spec(),
        )
        .map_err(internal)
    }

    fn remote_bp(&self) -> Option<&ChannelBasepoints> {
        self.setup.channel.remote.as_ref().map(|r| &r.basepoints)
    }

    fn is_ours(&self, tx: &Transaction) -> bool {
        tx.output
            .iter()
            .any(|o| o.script_pubkey == self.setup.sweep_script)
    }

    /// A one-input sweep to the wallet (`None` if uneconomical or unsignable).
    fn sweep(&self, input: SweepInput) -> Option<Transaction> {
        build_sweep_tx(
            &self.secp,
            &[input],
            self.setup.sweep_script.clone(),
            self.setup.claim_feerate_per_kw,
        )
        .ok()
    }

    /// Status of an output of ours that `claim` would take, given who spent it.
    fn spent_status(&self, spends: &Spends, op: &OutPoint) -> Option<OutputStatus> {
        spends.get(op).map(|(tx, h)| {
            if self.is_ours(tx) {
                OutputStatus::Swept {
                    txid: tx.compute_txid(),
                    height: *h,
                }
            } else {
                OutputStatus::SpentByPeer {
                    txid: tx.compute_txid(),
                    height: *h,
                }
            }
        })
    }

    /// Every HTLC hash of the channel the monitor knows (to spot preimages in witnesses).
    fn known_hashes(&self) -> HashSet<PaymentHash> {
        let mut hs = self.hashes_in_commitments(true);
        hs.extend(
            self.revoked
                .values()
                .chain(self.fetched.values())
                .flat_map(|v| v.iter().map(|h| h.payment_hash)),
        );
        hs
    }

    /// The resolution, or `None` while the funding output is unspent (or spent by a revoked
    /// commitment whose archived HTLC set has not been provided yet).
    pub(crate) fn resolve(&self) -> Option<super::Resolution> {
        let (height, spend) = self.funding_spend()?;
        let kind = self.classify(spend);
        if let SpendKind::Revoked { number } = &kind {
            // Nothing is resolved until the archived HTLC set is back (`archive.rs`).
            self.revoked_htlcs_of(*number)?;
        }
        let spends: Spends = self
            .confirmed
            .iter()
            .flat_map(|(h, tx)| tx.input.iter().map(move |i| (i.previous_output, (tx, *h))))
            .collect();
        let mut acc = Acc {
            outputs: Vec::new(),
            claims: Vec::new(),
            outcomes: Vec::new(),
            preimages: Vec::new(),
            height: self.height,
            revoked_offered: HashSet::new(),
        };
        // Preimages revealed by any confirmed spend of the commitment's outputs.
        let hashes = self.known_hashes();
        let ctxid = spend.compute_txid();
        for (_, tx) in &self.confirmed {
            if tx.input.iter().any(|i| i.previous_output.txid == ctxid) {
                if let Some(p) = preimage_in(tx, &hashes) {
                    if !acc.preimages.contains(&p) {
                        acc.preimages.push(p);
                    }
                }
            }
        }
        let result = match &kind {
            SpendKind::Local { .. } => match self.local.clone() {
                Some(l) => self.resolve_local(&l, spend, height, &spends, &mut acc),
                None => Ok(()),
            },
            SpendKind::RemoteCurrent { number } | SpendKind::RemoteNext { number } => {
                match self.counterparty.get(number) {
                    Some(c) => self.resolve_remote(*number, c, spend, &spends, &mut acc),
                    None => Ok(()),
                }
            }
            SpendKind::Revoked { number } => {
                self.resolve_revoked(*number, spend, height, &spends, &mut acc)
            }
            SpendKind::LocalRevoked { number } if self.old_local_full.contains_key(number) => {
                // A dev node that cheated claims like a real cheater would; the victim's
                // revocation claims should win every race.
                match self.old_local_full.get(number).cloned() {
                    Some(old) => self.resolve_local(&old, spend, height, &spends, &mut acc),
                    None => Ok(()),
                }
            }
            SpendKind::LocalRevoked { .. } => {
                for (vout, o) in spend.output.iter().enumerate() {
                    let op = OutPoint {
                        txid: ctxid,
                        vout: vout as u32,
                    };
                    acc.row(op, o.value, OutputKind::Peer, OutputStatus::NotOurs);
                }
                Ok(())
            }
            SpendKind::Cooperative | SpendKind::Unknown(_) => Ok(()),
        };
        let kind = match result {
            Ok(()) => kind,
            Err(e) => SpendKind::Unknown(format!("{kind}: cannot resolve: {e}")),
        };
        // Our offered HTLCs that have no output in the confirmed commitment (trimmed, or not
        // in that commitment at all) can never be claimed by the peer: they failed.
        // (On a revoked commitment of the peer's, ours are taken back by justice; on one of
        // our own revoked commitments, the peer takes everything.)
        let on_chain = match &kind {
            SpendKind::Local { .. }
            | SpendKind::RemoteCurrent { .. }
            | SpendKind::RemoteNext { .. } => Some(self.offered_on_chain(&kind)),
            SpendKind::Revoked { .. } => Some(acc.revoked_offered.clone()),
            SpendKind::LocalRevoked { .. } => Some(HashSet::new()),
            SpendKind::Cooperative | SpendKind::Unknown(_) => None,
        };
        if let Some(on_chain) = on_chain {
            let resolved: HashSet<u64> = acc.outcomes.iter().filter(|o| o.0).map(|o| o.1).collect();
            let known: BTreeMap<u64, PaymentHash> = self
                .local
                .iter()
                .map(|l| &l.summary)
                .chain(self.counterparty.values().map(|c| &c.summary))
                .flat_map(|s| s.htlcs.iter())
                .filter(|h| h.offered_by_us)
                .map(|h| (h.id, h.payment_hash))
                .collect();
            for (id, hash) in known {
                if !resolved.contains(&id) && !on_chain.contains(&id) {
                    acc.outcomes.push((true, id, hash, HtlcOutcome::TimedOut));
                }
            }
        }
        let claim_fees_sat = self.claim_fees(&spends, ctxid);
        Some(super::Resolution {
            kind,
            commitment_txid: ctxid,
            height,
            outputs: acc.outputs,
            claim_fees_sat,
            claims: acc.claims,
            preimages_seen: acc.preimages,
            htlc_outcomes: acc.outcomes,
        })
    }

    /// Ids of our offered HTLCs that have an untrimmed output in the confirmed commitment.
    fn offered_on_chain(&self, kind: &SpendKind) -> HashSet<u64> {
        let (built, ids) = match kind {
            SpendKind::Local { .. } => match &self.local {
                Some(l) => (self.build_local(l), ids_in_build_order(true, &l.summary)),
                None => return HashSet::new(),
            },
            SpendKind::RemoteCurrent { number } | SpendKind::RemoteNext { number } => {
                match self.counterparty.get(number) {
                    Some(c) => (
                        self.build_remote(*number, c),
                        ids_in_build_order(false, &c.summary),
                    ),
                    None => return HashSet::new(),
                }
            }
            _ => return HashSet::new(),
        };
        let Ok(built) = built else {
            return HashSet::new();
        };
        built
            .tx
            .htlcs
            .iter()
            .filter_map(|o| ids.get(o.htlc_index))
            .filter(|(by_us, _, _)| *by_us)
            .map(|(_, id, _)| *id)
            .collect()
    }

    /// Fees of our confirmed claims: inputs (outputs of the closing's transactions) less
    /// what reached the wallet.
    fn claim_fees(&self, _spends: &Spends, _ctxid: Txid) -> u64 {
        let values: HashMap<OutPoint, Amount> = self
            .confirmed
            .iter()
            .flat_map(|(_, tx)| {
                let txid = tx.compute_txid();
                tx.output.iter().enumerate().map(move |(v, o)| {
                    let op = OutPoint {
                        txid,
                        vout: v as u32,
                    };
                    (op, o.value)
                })
            })
            .collect();
        self.confirmed
            .iter()
            .filter(|(_, tx)| self.is_ours(tx))
            .map(|(_, tx)| {
                let ins: u64 = tx
                    .input
                    .iter()
                    .filter_map(|i| values.get(&i.previous_output))
                    .map(|a| a.to_sat())
                    .sum();
                let outs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
                ins.saturating_sub(outs)
            })
            .sum()
    }

    fn resolve_local(
        &self,
        l: &LocalCommitment,
        spend: &Transaction,
        height: u32,
        spends: &Spends,
        acc: &mut Acc,
    ) -> Result<(), String> {
        let built = self.build_local(l)?;
        let point = built.keys.per_commitment_point;
        let delay = self
            .setup
            .channel
            .remote
            .as_ref()
            .ok_or("no peer parameters")?
            .to_self_delay;
        let delayed_key = derive_privkey(&self.secp, &self.secrets.delayed_payment_base, &point)
            .map_err(internal)?;
        let htlc_key =
            derive_privkey(&self.secp, &self.secrets.htlc_base, &point).map_err(internal)?;
        let txid = spend.compute_txid();
        if let Some((vout, ws)) = &built.tx.to_local {
            let op = OutPoint { txid, vout: *vout };
            let value = spend
                .output
                .get(*vout as usize)
                .map_or(Amount::ZERO, |o| o.value);
            let status = match self.spent_status(spends, &op) {
                Some(s) => s,
                None => match self.sweep(SweepInput {
                    outpoint: op,
                    value,
                    witness_script: ws.clone(),
                    path: SpendPath::Delayed {
                        to_self_delay: delay,
                    },
                    key: delayed_key,
                }) {
                    Some(tx) => acc.claim("to_local sweep", tx, height + u32::from(delay)),
                    None => OutputStatus::Uneconomical,
                },
            };
            acc.row(op, value, OutputKind::ToLocal, status);
        }
        if let Some(vout) = built.tx.to_remote {
            let op = OutPoint { txid, vout };
            let value = spend
                .output
                .get(vout as usize)
                .map_or(Amount::ZERO, |o| o.value);
            acc.row(op, value, OutputKind::Peer, OutputStatus::NotOurs);
        }
        let ids = ids_in_build_order(true, &l.summary);
        let htlc_txs = built
            .tx
            .htlc_txs(&built.params, &built.keys, &built.htlcs)
            .map_err(internal)?;
        for (i, out) in built.tx.htlcs.iter().enumerate() {
            let op = OutPoint {
                txid,
                vout: out.vout,
            };
            let Some((h, by_us, id, hash, kind)) = htlc_of(&built, &ids, out)? else {
                continue;
            };
            let Some(unsigned) = htlc_txs.get(i) else {
                continue;
            };
            let second_txid = unsigned.compute_txid();
            match spends.get(&op) {
                Some((t2, h2)) if t2.compute_txid() == second_txid => {
                    acc.row(
                        op,
                        out.amount,
                        kind,
                        OutputStatus::Swept {
                            txid: second_txid,
                            height: *h2,
                        },
                    );
                    acc.outcomes.push((
                        by_us,
                        id,
                        hash,
                        if by_us {
                            HtlcOutcome::TimedOut
                        } else {
                            HtlcOutcome::Fulfilled
                        },
                    ));
                    // Its output: ours after the delay.
                    let p = built
                        .tx
                        .second_stage_params(&built.params, &built.keys, &built.htlcs, out)
                        .map_err(internal)?;
                    let op2 = OutPoint {
                        txid: second_txid,
                        vout: 0,
                    };
                    let value2 = t2.output.first().map_or(Amount::ZERO, |o| o.value);
                    let status = match self.spent_status(spends, &op2) {
                        Some(s) => s,
                        None => match self.sweep(SweepInput {
                            outpoint: op2,
                            value: value2,
                            witness_script: p.output_script(),
                            path: SpendPath::Delayed {
                                to_self_delay: delay,
                            },
                            key: delayed_key,
                        }) {
                            Some(tx) => acc.claim("second-stage sweep", tx, *h2 + u32::from(delay)),
                            None => OutputStatus::Uneconomical,
                        },
                    };
                    acc.row(op2, value2, OutputKind::SecondStage, status);
                }
                Some((t2, h2)) => {
                    // The peer took it: with the preimage (our offered HTLC) or by timeout.
                    let status = OutputStatus::SpentByPeer {
                        txid: t2.compute_txid(),
                        height: *h2,
                    };
                    acc.row(op, out.amount, kind, status);
                    if by_us {
                        acc.outcomes.push((by_us, id, hash, HtlcOutcome::Fulfilled));
                    }
                }
                None => {
                    let sig_remote = l.htlc_sigs.get(i).ok_or("missing htlc signature")?;
                    let preimage = if by_us {
                        None
                    } else {
                        match self.preimages.get(&hash) {
                            Some(p) => Some(p.0),
                            None => {
                                acc.row(op, out.amount, kind, OutputStatus::NeedsPreimage);
                                continue;
                            }
                        }
                    };
                    let mut tx = unsigned.clone();
                    let ours = sign_second_stage(
                        &self.secp,
                        &tx,
                        &out.witness_script,
                        out.amount,
                        &htlc_key,
                    )
                    .map_err(internal)?;
                    finalize_second_stage(
                        &mut tx,
                        &out.witness_script,
                        sig_remote,
                        &ours,
                        preimage.as_ref(),
                    )
                    .map_err(internal)?;
                    let (what, valid_from) = if by_us {
                        ("HTLC-timeout", h.cltv_expiry + 1)
                    } else {
                        ("HTLC-success", 0)
                    };
                    let status = acc.claim(what, tx, valid_from);
                    acc.row(op, out.amount, kind, status);
                }
            }
        }
        Ok(())
    }

    fn resolve_remote(
        &self,
        number: u64,
        c: &CounterpartyCommitment,
        spend: &Transaction,
        spends: &Spends,
        acc: &mut Acc,
    ) -> Result<(), String> {
        let built = self.build_remote(number, c)?;
        let point = c.point;
        let htlc_key =
            derive_privkey(&self.secp, &self.secrets.htlc_base, &point).map_err(internal)?;
        let txid = spend.compute_txid();
        if let Some(vout) = built.tx.to_remote {
            let op = OutPoint { txid, vout };
            let value = spend
                .output
                .get(vout as usize)
                .map_or(Amount::ZERO, |o| o.value);
            let status = self.static_remote_status(op, value, spends, acc);
            acc.row(op, value, OutputKind::ToRemote, status);
        }
        if let Some((vout, _)) = &built.tx.to_local {
            let op = OutPoint { txid, vout: *vout };
            let value = spend
                .output
                .get(*vout as usize)
                .map_or(Amount::ZERO, |o| o.value);
            acc.row(op, value, OutputKind::Peer, OutputStatus::NotOurs);
        }
        let ids = ids_in_build_order(false, &c.summary);
        for out in &built.tx.htlcs {
            let op = OutPoint {
                txid,
                vout: out.vout,
            };
            let Some((h, by_us, id, hash, kind)) = htlc_of(&built, &ids, out)? else {
                continue;
            };
            if let Some(status) = self.spent_status(spends, &op) {
                let outcome = match (status, by_us) {
                    (OutputStatus::Swept { .. }, true) => Some(HtlcOutcome::TimedOut),
                    (OutputStatus::Swept { .. }, false) => Some(HtlcOutcome::Fulfilled),
                    (_, true) => Some(HtlcOutcome::Fulfilled),
                    (_, false) => None,
                };
                if let Some(o) = outcome {
                    acc.outcomes.push((by_us, id, hash, o));
                }
                acc.row(op, out.amount, kind, status);
                continue;
            }
            let (path, valid_from, what) = if by_us {
                (
                    SpendPath::ReceivedHtlcTimeout {
                        cltv_expiry: h.cltv_expiry,
                    },
                    h.cltv_expiry + 1,
                    "HTLC timeout claim",
                )
            } else {
                match self.preimages.get(&hash) {
                    Some(p) => (
                        SpendPath::OfferedHtlcPreimage { preimage: p.0 },
                        0,
                        "HTLC preimage claim",
                    ),
                    None => {
                        acc.row(op, out.amount, kind, OutputStatus::NeedsPreimage);
                        continue;
                    }
                }
            };
            let status = match self.sweep(SweepInput {
                outpoint: op,
                value: out.amount,
                witness_script: out.witness_script.clone(),
                path,
                key: htlc_key,
            }) {
                Some(tx) => acc.claim(what, tx, valid_from),
                None => OutputStatus::Uneconomical,
            };
            acc.row(op, out.amount, kind, status);
        }
        Ok(())
    }

    /// Our `to_remote` on a commitment of the peer's: swept at once with the payment
    /// basepoint secret.
    fn static_remote_status(
        &self,
        op: OutPoint,
        value: Amount,
        spends: &Spends,
        acc: &mut Acc,
    ) -> OutputStatus {
        if let Some(s) = self.spent_status(spends, &op) {
            return s;
        }
        match self.sweep(SweepInput {
            outpoint: op,
            value,
            witness_script: bitcoin::ScriptBuf::new(),
            path: SpendPath::StaticRemote,
            key: self.secrets.payment_base,
        }) {
            Some(tx) => acc.claim("to_remote sweep", tx, 0),
            None => OutputStatus::Uneconomical,
        }
    }

    fn resolve_revoked(
        &self,
        number: u64,
        spend: &Transaction,
        _height: u32,
        spends: &Spends,
        acc: &mut Acc,
    ) -> Result<(), String> {
        let secret = self.their_secret(number).ok_or("no secret")?;
        let secret_key = SecretKey::from_slice(&secret).map_err(internal)?;
        let their_bp = *self.remote_bp().ok_or("no peer parameters")?;
        let point = per_commitment_point(&self.secp, &secret).map_err(internal)?;
        let keys = CommitmentKeys::derive(&self.secp, &point, &their_bp, &self.local_bp)
            .map_err(internal)?;
        let rev_key =
            derive_revocation_privkey(&self.secp, &self.secrets.revocation_base, &secret_key)
                .map_err(internal)?;
        let delay = self.setup.channel.local.to_self_delay;
        let txid = spend.compute_txid();
        let revoked_htlcs: &[RevokedHtlc] = self
            .revoked_htlcs_of(number)
            .ok_or("its HTLC set is archived and not fetched")?;
        let htlcs: Vec<CommitmentHtlc> = revoked_htlcs
            .iter()
            .map(|h| CommitmentHtlc {
                offered: h.offered_by_them,
                amount_msat: 0,
                cltv_expiry: h.cltv_expiry,
                payment_hash: sha256::Hash::from_byte_array(h.payment_hash.0),
            })
            .collect();
        let mut inputs: Vec<(SweepInput, Option<&RevokedHtlc>)> = Vec::new();
        let to_local_spk =
            revocable_delayed_script(&keys.revocation_key, delay, &keys.broadcaster_delayed_key)
                .to_p2wsh();
        let ours_spk = Self::p2wpkh(&self.local_bp.payment_basepoint);
        for (vout, o) in spend.output.iter().enumerate() {
            let op = OutPoint {
                txid,
                vout: vout as u32,
            };
            if o.script_pubkey == to_local_spk {
                inputs.push((
                    SweepInput {
                        outpoint: op,
                        value: o.value,
                        witness_script: revocable_delayed_script(
                            &keys.revocation_key,
                            delay,
                            &keys.broadcaster_delayed_key,
                        ),
                        path: SpendPath::RevokedDelayed,
                        key: rev_key,
                    },
                    None,
                ));
            } else if o.script_pubkey == ours_spk {
                let status = self.static_remote_status(op, o.value, spends, acc);
                acc.row(op, o.value, OutputKind::ToRemote, status);
            }
        }
        for input in htlc_justice_inputs(spend, &keys, &htlcs, &rev_key) {
            let which = htlcs
                .iter()
                .position(|h| h.witness_script(&keys) == input.witness_script)
                .and_then(|i| revoked_htlcs.get(i));
            if let Some(h) = which.filter(|h| !h.offered_by_them) {
                acc.revoked_offered.insert(h.id);
            }
            inputs.push((input, which));
        }
        // Outputs the peer spent first: with a second-stage transaction, whose output we
        // take with the same revocation key inside its CSV window.
        let mut justice: Vec<SweepInput> = Vec::new();
        let mut rows: Vec<(OutPoint, Amount)> = Vec::new();
        for (input, htlc) in &inputs {
            match spends.get(&input.outpoint) {
                Some((t2, h2)) if self.is_ours(t2) => {
                    acc.row(
                        input.outpoint,
                        input.value,
                        OutputKind::Revoked,
                        OutputStatus::Swept {
                            txid: t2.compute_txid(),
                            height: *h2,
                        },
                    );
                    if let Some(h) = htlc.filter(|h| !h.offered_by_them) {
                        acc.outcomes
                            .push((true, h.id, h.payment_hash, HtlcOutcome::TimedOut));
                    }
                }
                Some((t2, h2)) => {
                    acc.row(
                        input.outpoint,
                        input.value,
                        OutputKind::Revoked,
                        OutputStatus::SpentByPeer {
                            txid: t2.compute_txid(),
                            height: *h2,
                        },
                    );
                    if let Some(i2) = second_stage_justice_input(t2, delay, &keys, &rev_key) {
                        match self.spent_status(spends, &i2.outpoint) {
                            Some(s) => acc.row(i2.outpoint, i2.value, OutputKind::Revoked, s),
                            None => {
                                rows.push((i2.outpoint, i2.value));
                                justice.push(i2);
                            }
                        }
                    }
                }
                None => {
                    rows.push((input.outpoint, input.value));
                    justice.push(input.clone());
                }
            }
        }
        if !justice.is_empty() {
            let status = match build_justice_tx(
                &self.secp,
                &justice,
                self.setup.sweep_script.clone(),
                self.setup.claim_feerate_per_kw,
            ) {
                Ok(tx) => acc.claim("justice", tx, 0),
                Err(_) => OutputStatus::Uneconomical,
            };
            for (op, value) in rows {
                acc.row(op, value, OutputKind::Revoked, status);
            }
        }
        // Every other output is the peer's (there is none in a breach: all are revocable or
        // ours), listed for completeness.
        for (vout, o) in spend.output.iter().enumerate() {
            let op = OutPoint {
                txid,
                vout: vout as u32,
            };
            if !acc.outputs.iter().any(|r| r.outpoint == op) {
                acc.row(op, o.value, OutputKind::Peer, OutputStatus::NotOurs);
            }
        }
        Ok(())
    }
}
