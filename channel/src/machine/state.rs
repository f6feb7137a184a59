//! The persistent channel state, the update records that change it, and [`ChannelState::apply`],
//! the only function that mutates it — so replaying the records rebuilds an equal state.
//!
//! Persistence format: each [`Record`] is stored as the bytes of [`Record::encode`] (see
//! [`super::codec`]): a version byte (`RECORD_FORMAT_VERSION`), then the serde encoding of
//! the record in postcard — variants by index and fields in declaration order, no names; keys,
//! signatures, scripts and the onion as bytes. Versions 1 and 2 (JSON, externally tagged) are
//! still read, anything else refused. [`Record::decode`] returns a `RecordCodecError` on any
//! malformed, truncated or unknown-version input, never panics. Reordering, adding or removing
//! a field or variant here (or in [`super::CloseReason`]) changes the binary format — and
//! renaming one the JSON that older stores hold: bump the version and keep reading the old.
//!
//! Must never: validate peer input here (handlers do, before they emit a record); apply a
//! record that would create or destroy value (balances are checked, not saturated).

use std::collections::BTreeMap;

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, ScriptBuf};
use fulmen_htlc::{PaymentHash, PaymentPreimage};
use fulmen_wire::msgs::OnionPacket;
use fulmen_wire::ShortChannelId;
use serde::{Deserialize, Serialize};

use super::close::CloseReason;
use super::error::ChannelError;
use super::params::SideParams;
use crate::shachain::{SecretStore, MAX_INDEX};

/// One HTLC as both commitments see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HtlcInfo {
    /// Amount.
    pub amount_msat: u64,
    /// Payment hash.
    pub payment_hash: PaymentHash,
    /// Absolute expiry height.
    pub cltv_expiry: u32,
}

/// The content of one commitment, from OUR point of view whichever side holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Spec {
    /// Our balance.
    pub to_us_msat: u64,
    /// Their balance.
    pub to_them_msat: u64,
    /// HTLCs we offered, by id.
    pub offered_by_us: BTreeMap<u64, HtlcInfo>,
    /// HTLCs they offered, by id.
    pub offered_by_them: BTreeMap<u64, HtlcInfo>,
    /// Commitment feerate (sat per 1000 weight).
    pub feerate_per_kw: u32,
}

impl Spec {
    /// Sum of everything in the commitment (must equal the capacity).
    pub fn total_msat(&self) -> u64 {
        self.to_us_msat
            + self.to_them_msat
            + self
                .offered_by_us
                .values()
                .map(|h| h.amount_msat)
                .sum::<u64>()
            + self
                .offered_by_them
                .values()
                .map(|h| h.amount_msat)
                .sum::<u64>()
    }
}

/// One update (`update_add_htlc`, `update_fulfill_htlc`, `update_fail_htlc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// Offer an HTLC.
    Add {
        /// HTLC id (per direction, from 0, +1 each).
        id: u64,
        /// The HTLC.
        htlc: HtlcInfo,
        /// Its onion.
        #[serde(with = "super::codec::onion_hex")]
        onion: OnionPacket,
    },
    /// Settle an HTLC the other side offered.
    Fulfill {
        /// HTLC id (offered by the other side).
        id: u64,
        /// Its preimage.
        preimage: PaymentPreimage,
    },
    /// Fail an HTLC the other side offered.
    Fail {
        /// HTLC id (offered by the other side).
        id: u64,
        /// Encrypted failure onion.
        reason: Vec<u8>,
    },
    /// Fail an HTLC whose onion could not be parsed (`update_fail_malformed_htlc`).
    FailMalformed {
        /// HTLC id (offered by the other side).
        id: u64,
        /// SHA256 of the unparsable onion.
        sha256_of_onion: [u8; 32],
        /// Failure code (BADONION bit set).
        failure_code: u16,
    },
    /// New commitment feerate (`update_fee`, from the funder only).
    Fee(u32),
}

impl Update {
    /// The HTLC this update settles, if it is a fulfill or fail.
    pub fn settles(&self) -> Option<u64> {
        match self {
            Update::Add { .. } | Update::Fee(_) => None,
            Update::Fulfill { id, .. }
            | Update::Fail { id, .. }
            | Update::FailMalformed { id, .. } => Some(*id),
        }
    }
}

fn apply_updates<'a>(
    spec: &mut Spec,
    updates: impl Iterator<Item = &'a Update>,
    by_us: bool,
) -> Result<(), String> {
    for u in updates {
        if let Update::Add { id, htlc, .. } = u {
            let (bal, map) = if by_us {
                (&mut spec.to_us_msat, &mut spec.offered_by_us)
            } else {
                (&mut spec.to_them_msat, &mut spec.offered_by_them)
            };
            *bal = bal
                .checked_sub(htlc.amount_msat)
                .ok_or_else(|| format!("htlc {id}: sender cannot afford it"))?;
            if map.insert(*id, *htlc).is_some() {
                return Err(format!("htlc {id} added twice"));
            }
        }
    }
    Ok(())
}

fn settle_updates<'a>(
    spec: &mut Spec,
    updates: impl Iterator<Item = &'a Update>,
    by_us: bool,
) -> Result<(), String> {
    for u in updates {
        let (id, fulfilled) = match u {
            Update::Add { .. } | Update::Fee(_) => continue,
            Update::Fulfill { id, .. } => (*id, true),
            Update::Fail { id, .. } | Update::FailMalformed { id, .. } => (*id, false),
        };
        // We settle HTLCs they offered, and the reverse.
        let map = if by_us {
            &mut spec.offered_by_them
        } else {
            &mut spec.offered_by_us
        };
        let h = map
            .remove(&id)
            .ok_or_else(|| format!("settle of unknown htlc {id}"))?;
        // Fulfilled: the amount goes to the settler; failed: back to the offerer.
        if fulfilled == by_us {
            spec.to_us_msat += h.amount_msat;
        } else {
            spec.to_them_msat += h.amount_msat;
        }
    }
    Ok(())
}

/// Append `u` to one side's list of updates; a fee update replaces a fee update right
/// before it (only the last feerate counts, see [`reduce`]), so a flood of `update_fee`
/// leaves one entry. Only consecutive ones collapse: an HTLC update between two fee updates
/// was checked at the feerate before it, and is retransmitted after it.
fn push_update(list: &mut Vec<Update>, u: Update) {
    if matches!(u, Update::Fee(_)) && matches!(list.last(), Some(Update::Fee(_))) {
        list.pop();
    }
    list.push(u);
}

/// `spec` after our `ours` and their `theirs` updates: settlements first, then adds (as
/// lnd does), then the last fee update.
///
/// Settlements go first because an add may be funded by a settlement that travels with it:
/// the peer fulfills our HTLC, then offers one that only the fulfilled amount pays for.
/// Our view of its commitment checked that add with the credit; when both updates wait
/// together for our next signature of its *older* commitment, the credit must be applied
/// before the add or that commitment cannot be built (and the channel is stuck). The
/// result does not depend on the order, only whether it can be reached does; a settlement
/// can only name an HTLC already in `spec` (settled HTLCs are irrevocably committed).
pub fn reduce(spec: &Spec, ours: &[Update], theirs: &[Update]) -> Result<Spec, String> {
    reduce_iter(spec, ours.iter(), theirs.iter())
}

/// [`reduce`] over iterators, so a caller can check one more update without cloning a list.
pub fn reduce_iter<'a, O, T>(spec: &Spec, ours: O, theirs: T) -> Result<Spec, String>
where
    O: Iterator<Item = &'a Update> + Clone,
    T: Iterator<Item = &'a Update> + Clone,
{
    let mut s = spec.clone();
    settle_updates(&mut s, ours.clone(), true)?;
    settle_updates(&mut s, theirs.clone(), false)?;
    apply_updates(&mut s, ours.clone(), true)?;
    apply_updates(&mut s, theirs.clone(), false)?;
    // Only the funder sends update_fee (checked by the handlers); the last one wins.
    for u in ours.chain(theirs) {
        if let Update::Fee(f) = u {
            s.feerate_per_kw = *f;
        }
    }
    Ok(s)
}

/// Our current commitment and the peer's signatures on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCommit {
    /// Commitment number.
    pub number: u64,
    /// Content.
    pub spec: Spec,
    /// The peer's signature of its funding input.
    pub remote_sig: Signature,
    /// The peer's signatures of our second-stage HTLC txs, in output order.
    pub htlc_sigs: Vec<Signature>,
}

/// A commitment of the peer's that we signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCommit {
    /// Commitment number.
    pub number: u64,
    /// Content.
    pub spec: Spec,
    /// The peer's per-commitment point for it.
    #[serde(with = "crate::machine::codec::key_hex")]
    pub point: PublicKey,
}

/// Where the opening flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Opener: `open_channel` sent, waiting for `accept_channel`.
    AwaitingAccept,
    /// Opener: accepted; waiting for the caller's funding outpoint.
    AwaitingFundingTx,
    /// Acceptor: `accept_channel` sent, waiting for `funding_created`.
    AwaitingFundingCreated,
    /// Opener: `funding_created` sent, waiting for `funding_signed`.
    AwaitingFundingSigned,
    /// Both commitments 0 signed; waiting for depth and `channel_ready` both ways.
    AwaitingReady,
    /// Normal operation.
    Normal,
    /// Failed or timed out; no more input.
    Closed,
}

/// Our updates by stage: proposed (sent, not yet signed), signed (in a commitment we signed,
/// awaiting their revocation), acked (in their current commitment, next in ours).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LocalChanges {
    /// Sent, not yet covered by our `commitment_signed`.
    pub proposed: Vec<Update>,
    /// Covered by our last `commitment_signed`, awaiting `revoke_and_ack`.
    pub signed: Vec<Update>,
    /// Acknowledged by their `revoke_and_ack`; will enter our commitment.
    pub acked: Vec<Update>,
}

/// Their updates by stage: proposed (received), acked (in our commitment, which we
/// revoked the previous of), signed (in a commitment of theirs we signed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RemoteChanges {
    /// Received, not yet covered by their `commitment_signed`.
    pub proposed: Vec<Update>,
    /// In our current commitment; will enter theirs when we sign.
    pub acked: Vec<Update>,
    /// In the commitment of theirs we signed, awaiting their revocation.
    pub signed: Vec<Update>,
}

/// Initial setup of a channel (first record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    /// True if we opened (and fund) the channel.
    pub is_opener: bool,
    /// Id of our key material (see `KeySource`).
    pub key_id: [u8; 32],
    /// Chain hash.
    pub chain_hash: [u8; 32],
    /// Temporary channel id.
    pub temporary_channel_id: [u8; 32],
    /// Capacity.
    pub funding_sat: u64,
    /// Pushed to the acceptor.
    pub push_msat: u64,
    /// Commitment feerate.
    pub feerate_per_kw: u32,
    /// Our parameters.
    pub local: SideParams,
    /// Theirs, when known (acceptor: from `open_channel`).
    pub remote: Option<SideParams>,
    /// `minimum_depth` (acceptor: ours; opener: set by `Accepted`).
    pub minimum_depth: u32,
    /// Block height at creation (funding timeout base).
    pub created_height: u32,
}

/// One increment of channel state. Persist them in order; replay with `Channel::restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The channel was created.
    Created(Box<Setup>),
    /// Opener: `accept_channel` received and checked.
    Accepted {
        /// The acceptor's parameters.
        remote: Box<SideParams>,
        /// Its `minimum_depth`.
        minimum_depth: u32,
    },
    /// The funding outpoint is known; the peer's commitment 0 is signed by us.
    FundingOutpoint(OutPoint),
    /// The peer's valid signature of our commitment 0.
    InitialCommitSigned(Signature),
    /// The funding transaction confirmed, at `height`, and its output was checked to be
    /// the agreed 2-of-2 for the capacity.
    FundingConfirmed {
        /// Height of the block holding the funding transaction.
        height: u32,
        /// Where the funding output sits (height, tx index, output index). `None` only in
        /// records of format version 1, written before the funding output was verified.
        #[serde(with = "super::codec::scid_text")]
        short_channel_id: Option<ShortChannelId>,
    },
    /// We sent `channel_ready`.
    ReadySent,
    /// We received `channel_ready` with the peer's second per-commitment point.
    ReadyReceived(#[serde(with = "crate::machine::codec::key_hex")] PublicKey),
    /// We sent an update (a fee update right after another replaces it in the state).
    LocalUpdate(Update),
    /// We received an update (checked; a fee update right after another replaces it in
    /// the state).
    RemoteUpdate(Update),
    /// We signed the peer's next commitment.
    SentCommitment,
    /// We received and verified a `commitment_signed` and revoked our previous commitment.
    ReceivedCommitment {
        /// Signature of our new commitment.
        sig: Signature,
        /// HTLC signatures.
        htlc_sigs: Vec<Signature>,
    },
    /// The peer revoked its previous commitment.
    ReceivedRevocation {
        /// Its per-commitment secret.
        secret: [u8; 32],
        /// Its point for the commitment after next.
        #[serde(with = "crate::machine::codec::key_hex")]
        next_point: PublicKey,
    },
    /// We sent `shutdown` with this script.
    ShutdownSent(ScriptBuf),
    /// The peer sent `shutdown` with this script.
    ShutdownReceived(ScriptBuf),
    /// The peer reconnected: its uncommitted updates are forgotten (BOLT 2).
    Reconnected,
    /// The channel is closed (failure, funding timeout or mismatch, lost state, mutual
    /// close).
    Closed(CloseReason),
    /// The whole state at this point: replay starts here, and the store may drop this
    /// channel's earlier records (written every `ChannelConfig::snapshot_every` records, so
    /// a restart replays a snapshot and a short tail instead of the channel's history).
    Snapshot(Box<ChannelState>),
}

/// Everything that persists about a channel. Equal states mean equal channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// The setup.
    pub setup: Setup,
    /// Opening / operation phase.
    pub phase: Phase,
    /// Real channel id once the funding outpoint is known, else the temporary one.
    pub channel_id: [u8; 32],
    /// Funding outpoint.
    pub funding_outpoint: Option<OutPoint>,
    /// Height of the funding confirmation.
    pub funding_confirmed_height: Option<u32>,
    /// The short channel id, from the verified funding output (`None` before the funding
    /// confirmed, and for channels confirmed under record format version 1).
    #[serde(with = "super::codec::scid_text")]
    pub short_channel_id: Option<ShortChannelId>,
    /// `channel_ready` sent.
    pub ready_sent: bool,
    /// Our current commitment.
    pub local_commit: Option<LocalCommit>,
    /// Their current commitment (as we signed it).
    pub remote_commit: Option<RemoteCommit>,
    /// Their next commitment, signed by us, awaiting their revocation.
    pub remote_next: Option<RemoteCommit>,
    /// Their per-commitment point for the commitment after `remote_commit`.
    #[serde(with = "crate::machine::codec::opt_key_hex")]
    pub remote_next_point: Option<PublicKey>,
    /// Our updates.
    pub local_changes: LocalChanges,
    /// Their updates.
    pub remote_changes: RemoteChanges,
    /// Next id for an HTLC we offer.
    pub next_local_htlc_id: u64,
    /// Next id we expect for an HTLC they offer.
    pub next_remote_htlc_id: u64,
    /// Their revealed per-commitment secrets.
    pub remote_secrets: SecretStore,
    /// Our `shutdown` script, once sent.
    pub local_shutdown: Option<ScriptBuf>,
    /// The peer's `shutdown` script, once received.
    pub remote_shutdown: Option<ScriptBuf>,
    /// True if our last `commitment_signed` was sent after our last `revoke_and_ack`
    /// (the order to retransmit them in).
    pub commit_sent_last: bool,
    /// Why it closed.
    pub closed_reason: Option<CloseReason>,
}

/// The BOLT 2 channel id: funding txid (internal order) with the output index XORed into
/// its last two bytes.
pub fn channel_id_from(outpoint: &OutPoint) -> [u8; 32] {
    use bitcoin::hashes::Hash;
    let mut id = outpoint.txid.to_byte_array();
    let idx = (outpoint.vout as u16).to_be_bytes();
    id[30] ^= idx[0];
    id[31] ^= idx[1];
    id
}

fn bad(s: &str) -> ChannelError {
    ChannelError::Records(s.to_string())
}

impl ChannelState {
    /// The state right after the first record.
    pub fn new(setup: Setup) -> ChannelState {
        let phase = if setup.is_opener {
            Phase::AwaitingAccept
        } else {
            Phase::AwaitingFundingCreated
        };
        ChannelState {
            channel_id: setup.temporary_channel_id,
            setup,
            phase,
            funding_outpoint: None,
            funding_confirmed_height: None,
            short_channel_id: None,
            ready_sent: false,
            local_commit: None,
            remote_commit: None,
            remote_next: None,
            remote_next_point: None,
            local_changes: LocalChanges::default(),
            remote_changes: RemoteChanges::default(),
            next_local_htlc_id: 0,
            next_remote_htlc_id: 0,
            remote_secrets: SecretStore::new(),
            local_shutdown: None,
            remote_shutdown: None,
            commit_sent_last: false,
            closed_reason: None,
        }
    }

    /// The initial balances (commitment 0), from our side.
    pub fn initial_spec(&self) -> Spec {
        let total = self.setup.funding_sat * 1000;
        let to_acceptor = self.setup.push_msat;
        let to_opener = total - to_acceptor;
        if self.setup.is_opener {
            Spec {
                to_us_msat: to_opener,
                to_them_msat: to_acceptor,
                feerate_per_kw: self.setup.feerate_per_kw,
                ..Spec::default()
            }
        } else {
            Spec {
                to_us_msat: to_acceptor,
                to_them_msat: to_opener,
                feerate_per_kw: self.setup.feerate_per_kw,
                ..Spec::default()
            }
        }
    }

    /// The peer's parameters (an internal failure if asked before they are known).
    pub fn remote(&self) -> Result<&SideParams, ChannelError> {
        self.setup
            .remote
            .as_ref()
            .ok_or(ChannelError::Internal("no remote parameters yet".into()))
    }

    /// Apply one record. Handlers call it after validating; `restore` replays with it.
    pub fn apply(&mut self, record: &Record) -> Result<(), ChannelError> {
        match record {
            Record::Created(_) => return Err(bad("Created record twice")),
            Record::Accepted {
                remote,
                minimum_depth,
            } => {
                if self.phase != Phase::AwaitingAccept {
                    return Err(bad("Accepted out of order"));
                }
                self.setup.remote = Some(**remote);
                self.setup.minimum_depth = *minimum_depth;
                self.phase = Phase::AwaitingFundingTx;
            }
            Record::FundingOutpoint(op) => {
                let first = self
                    .setup
                    .remote
                    .as_ref()
                    .ok_or(bad("FundingOutpoint before the remote parameters"))?
                    .first_per_commitment_point;
                self.funding_outpoint = Some(*op);
                self.channel_id = channel_id_from(op);
                self.remote_commit = Some(RemoteCommit {
                    number: 0,
                    spec: self.initial_spec(),
                    point: first,
                });
                self.phase = Phase::AwaitingFundingSigned;
            }
            Record::InitialCommitSigned(sig) => {
                if self.remote_commit.is_none() {
                    return Err(bad("InitialCommitSigned before FundingOutpoint"));
                }
                self.local_commit = Some(LocalCommit {
                    number: 0,
                    spec: self.initial_spec(),
                    remote_sig: *sig,
                    htlc_sigs: Vec::new(),
                });
                self.phase = Phase::AwaitingReady;
            }
            Record::FundingConfirmed {
                height,
                short_channel_id,
            } => {
                let op = self
                    .funding_outpoint
                    .ok_or(bad("FundingConfirmed before FundingOutpoint"))?;
                if let Some(scid) = short_channel_id {
                    if scid.block_height() != *height || u32::from(scid.output_index()) != op.vout {
                        return Err(bad("short_channel_id does not match the funding"));
                    }
                }
                self.funding_confirmed_height = Some(*height);
                self.short_channel_id = *short_channel_id;
            }
            Record::ReadySent => {
                self.ready_sent = true;
                self.maybe_normal();
            }
            Record::ReadyReceived(p) => {
                self.remote_next_point = Some(*p);
                self.maybe_normal();
            }
            Record::LocalUpdate(u) => {
                if let Update::Add { id, .. } = u {
                    if *id != self.next_local_htlc_id {
                        return Err(bad("local htlc id out of order"));
                    }
                    self.next_local_htlc_id += 1;
                }
                push_update(&mut self.local_changes.proposed, u.clone());
            }
            Record::RemoteUpdate(u) => {
                if let Update::Add { id, .. } = u {
                    if *id != self.next_remote_htlc_id {
                        return Err(bad("remote htlc id out of order"));
                    }
                    self.next_remote_htlc_id += 1;
                }
                push_update(&mut self.remote_changes.proposed, u.clone());
            }
            Record::SentCommitment => {
                let rc = self.remote_commit.as_ref().ok_or(bad("no remote commit"))?;
                let point = self.remote_next_point.ok_or(bad("no remote next point"))?;
                if self.remote_next.is_some() {
                    return Err(bad("SentCommitment while awaiting revocation"));
                }
                let spec = reduce(
                    &rc.spec,
                    &self.local_changes.proposed,
                    &self.remote_changes.acked,
                )
                .map_err(ChannelError::Records)?;
                self.remote_next = Some(RemoteCommit {
                    number: rc.number + 1,
                    spec,
                    point,
                });
                self.commit_sent_last = true;
                self.local_changes.signed = std::mem::take(&mut self.local_changes.proposed);
                self.remote_changes.signed = std::mem::take(&mut self.remote_changes.acked);
            }
            Record::ReceivedCommitment { sig, htlc_sigs } => {
                let lc = self.local_commit.as_ref().ok_or(bad("no local commit"))?;
                let spec = reduce(
                    &lc.spec,
                    &self.local_changes.acked,
                    &self.remote_changes.proposed,
                )
                .map_err(ChannelError::Records)?;
                self.local_commit = Some(LocalCommit {
                    number: lc.number + 1,
                    spec,
                    remote_sig: *sig,
                    htlc_sigs: htlc_sigs.clone(),
                });
                self.commit_sent_last = false;
                self.local_changes.acked.clear();
                let proposed = std::mem::take(&mut self.remote_changes.proposed);
                for u in proposed {
                    push_update(&mut self.remote_changes.acked, u);
                }
            }
            Record::ReceivedRevocation { secret, next_point } => {
                let rc = self.remote_commit.as_ref().ok_or(bad("no remote commit"))?;
                let next = self.remote_next.take().ok_or(bad("nothing to revoke"))?;
                self.remote_secrets
                    .insert(MAX_INDEX - rc.number, *secret)
                    .map_err(|e| ChannelError::Records(e.to_string()))?;
                self.remote_commit = Some(next);
                self.remote_next_point = Some(*next_point);
                let signed = std::mem::take(&mut self.local_changes.signed);
                for u in signed {
                    push_update(&mut self.local_changes.acked, u);
                }
                self.remote_changes.signed.clear();
            }
            Record::Reconnected => {
                let dropped = std::mem::take(&mut self.remote_changes.proposed);
                let adds = dropped
                    .iter()
                    .filter(|u| matches!(u, Update::Add { .. }))
                    .count() as u64;
                self.next_remote_htlc_id -= adds;
            }
            Record::ShutdownSent(script) => self.local_shutdown = Some(script.clone()),
            Record::ShutdownReceived(script) => self.remote_shutdown = Some(script.clone()),
            Record::Closed(reason) => {
                self.phase = Phase::Closed;
                self.closed_reason = Some(reason.clone());
            }
            Record::Snapshot(state) => {
                // A snapshot of another channel (or of a different setup) is not ours.
                if state.setup != self.setup {
                    return Err(bad("snapshot of another channel"));
                }
                *self = (**state).clone();
            }
        }
        Ok(())
    }

    fn maybe_normal(&mut self) {
        if self.ready_sent && self.remote_next_point.is_some() && self.phase == Phase::AwaitingReady
        {
            self.phase = Phase::Normal;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulmen_wire::msgs::ONION_PACKET_LEN;

    fn add(id: u64, amount_msat: u64) -> Update {
        Update::Add {
            id,
            htlc: HtlcInfo {
                amount_msat,
                payment_hash: PaymentHash([id as u8; 32]),
                cltv_expiry: 100,
            },
            onion: OnionPacket(Box::new([0u8; ONION_PACKET_LEN])),
        }
    }

    #[test]
    fn reduce_conserves_and_settles_to_the_right_side() {
        let s0 = Spec {
            to_us_msat: 700,
            to_them_msat: 300,
            feerate_per_kw: 253,
            ..Spec::default()
        };
        let s1 = reduce(&s0, &[add(0, 100), add(1, 50)], &[add(0, 30)]).unwrap();
        assert_eq!(s1.total_msat(), 1000);
        assert_eq!((s1.to_us_msat, s1.to_them_msat), (550, 270));
        // They fulfill our 0, fail our 1; we fulfill their 0.
        let s2 = reduce(
            &s1,
            &[Update::Fulfill {
                id: 0,
                preimage: PaymentPreimage([0; 32]),
            }],
            &[
                Update::Fulfill {
                    id: 0,
                    preimage: PaymentPreimage([0; 32]),
                },
                Update::Fail {
                    id: 1,
                    reason: vec![],
                },
                Update::Fee(1000),
            ],
        )
        .unwrap();
        assert_eq!(s2.total_msat(), 1000);
        assert_eq!((s2.to_us_msat, s2.to_them_msat), (630, 370));
        assert!(s2.offered_by_us.is_empty() && s2.offered_by_them.is_empty());
        assert_eq!(s2.feerate_per_kw, 1000);
    }

    #[test]
    fn reduce_refuses_overdraft_duplicates_and_unknown_settles() {
        let s0 = Spec {
            to_us_msat: 100,
            to_them_msat: 0,
            ..Spec::default()
        };
        assert!(reduce(&s0, &[add(0, 101)], &[]).is_err());
        assert!(reduce(&s0, &[add(0, 10), add(0, 10)], &[]).is_err());
        let fail = Update::Fail {
            id: 9,
            reason: vec![],
        };
        assert!(reduce(&s0, &[], &[fail]).is_err());
    }

    #[test]
    fn reduce_applies_settlements_before_adds() {
        // Our htlc 0 (500) is in flight; they fulfill it, then add 300 they could only
        // afford with the credit. Both wait together for one commitment: it must build.
        let mut s0 = Spec {
            to_us_msat: 400,
            to_them_msat: 100,
            ..Spec::default()
        };
        if let Update::Add { htlc, .. } = add(0, 500) {
            s0.offered_by_us.insert(0, htlc);
        }
        let fulfill = Update::Fulfill {
            id: 0,
            preimage: PaymentPreimage([0; 32]),
        };
        let s1 = reduce(&s0, &[], &[fulfill, add(0, 300)]).unwrap();
        assert_eq!((s1.to_us_msat, s1.to_them_msat), (400, 300));
        assert_eq!(s1.total_msat(), 1000);
        assert!(s1.offered_by_us.is_empty());
        assert_eq!(s1.offered_by_them.len(), 1);
    }

    #[test]
    fn consecutive_fee_updates_collapse_others_do_not() {
        let mut l = Vec::new();
        for f in [300, 400, 500] {
            push_update(&mut l, Update::Fee(f));
        }
        assert_eq!(l, vec![Update::Fee(500)]);
        push_update(&mut l, add(0, 10));
        push_update(&mut l, Update::Fee(600));
        push_update(&mut l, Update::Fee(700));
        assert_eq!(l, vec![Update::Fee(500), add(0, 10), Update::Fee(700)]);
        // The reduced spec is the same as without collapsing.
        let s0 = Spec {
            to_us_msat: 100,
            feerate_per_kw: 253,
            ..Spec::default()
        };
        let all = [
            Update::Fee(300),
            Update::Fee(500),
            add(0, 10),
            Update::Fee(600),
            Update::Fee(700),
        ];
        assert_eq!(reduce(&s0, &all, &[]), reduce(&s0, &l, &[]));
    }

    #[test]
    fn channel_id_xors_the_output_index() {
        use bitcoin::hashes::Hash;
        let op = OutPoint {
            txid: bitcoin::Txid::from_byte_array([0x11; 32]),
            vout: 0x0102,
        };
        let id = channel_id_from(&op);
        assert_eq!(id[30], 0x11 ^ 0x01);
        assert_eq!(id[31], 0x11 ^ 0x02);
        assert_eq!(id[..30], [0x11; 30]);
    }
}
