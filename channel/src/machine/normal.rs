//! Normal operation: `update_add_htlc`, `update_fulfill_htlc`, `update_fail_htlc`,
//! `commitment_signed` (every HTLC signature verified), `revoke_and_ack` (secret checked
//! and kept in the shachain store), with the BOLT 2 sender and receiver checks.
//!
//! Dust exposure (`machine/dust.rs`): `add_htlc` refuses an HTLC that would put our or
//! their commitment's dust exposure above `max_dust_htlc_exposure_msat`; a peer's HTLC that
//! does is accepted into the state (the protocol allows it) and, once irrevocably
//! committed, reported as `Event::HtlcMustFail` instead of `HtlcReceived`: the caller fails
//! it (it holds the onion secret needed for the failure message).
//!
//! Must never: offer or accept an HTLC beyond the receiver's limits or the sender's
//! reserve; settle an HTLC that is not irrevocably committed; release a
//! `commitment_signed` / `revoke_and_ack` except through a persisted batch.

use bitcoin::hashes::{sha256, Hash};
use fulmen_htlc::{PaymentHash, PaymentPreimage};
use fulmen_wire::codec::LenBytes;
use fulmen_wire::msgs::{
    CommitmentSigned, Message, OnionPacket, RevokeAndAck, UpdateAddHtlc, UpdateFailHtlc,
    UpdateFulfillHtlc,
};

use super::dust::{check_exposure, over_limit};
use super::error::internal;
use super::params::SideParams;
use super::state::{reduce_iter, HtlcInfo, Phase, Record, Spec, Update};
use super::{Channel, ChannelError, Event};
use crate::commitment::{commitment_fee, CommitmentHtlc};
use crate::keys::per_commitment_point;
use crate::shachain::MAX_INDEX;

/// `cltv_expiry` at or above this is a timestamp, which BOLT 2 forbids.
const MAX_CLTV_EXPIRY: u32 = 500_000_000;

fn proto(s: String) -> ChannelError {
    ChannelError::Protocol(s)
}

/// The commitment fee (msat) of `spec` at `feerate` with the broadcaster's `dust_limit_sat`
/// (HTLCs counted conservatively as offered, whose trim threshold is the lower).
fn fee_msat_of(spec: &Spec, dust_limit_sat: u64, feerate: u32) -> u64 {
    let untrimmed = spec
        .offered_by_us
        .values()
        .chain(spec.offered_by_them.values())
        .filter(|h| {
            !CommitmentHtlc {
                offered: true,
                amount_msat: h.amount_msat,
                cltv_expiry: h.cltv_expiry,
                payment_hash: sha256::Hash::all_zeros(),
            }
            .is_trimmed(bitcoin::Amount::from_sat(dust_limit_sat), feerate)
        })
        .count();
    commitment_fee(feerate, untrimmed).to_sat() * 1000
}

/// Checks of one direction's HTLCs in `spec` against the receiver's `limits`; `by_us` says
/// whose offers and balance are checked; `funder` whether that side pays the fee.
pub(super) fn check_limits(
    spec: &Spec,
    by_us: bool,
    limits: &SideParams,
    reserve_sat: u64,
    funder: bool,
    feerate: u32,
) -> Result<(), String> {
    let (offers, balance) = if by_us {
        (&spec.offered_by_us, spec.to_us_msat)
    } else {
        (&spec.offered_by_them, spec.to_them_msat)
    };
    if offers.len() > usize::from(limits.max_accepted_htlcs) {
        return Err(format!(
            "{} htlcs exceed max_accepted_htlcs {}",
            offers.len(),
            limits.max_accepted_htlcs
        ));
    }
    let in_flight: u64 = offers.values().map(|h| h.amount_msat).sum();
    if in_flight > limits.max_htlc_value_in_flight_msat {
        return Err(format!(
            "{in_flight} msat in flight exceeds {}",
            limits.max_htlc_value_in_flight_msat
        ));
    }
    let fee_msat = if funder {
        fee_msat_of(spec, limits.dust_limit_sat, feerate)
    } else {
        0
    };
    if balance < reserve_sat * 1000 + fee_msat {
        return Err(format!(
            "sender balance {balance} msat below reserve {reserve_sat} sat + fee {fee_msat} msat"
        ));
    }
    Ok(())
}

impl Channel {
    pub(super) fn require_normal(&self) -> Result<(), ChannelError> {
        self.check_open()?;
        if self.state.phase != Phase::Normal {
            return Err(ChannelError::Command("channel is not ready".into()));
        }
        if self.link != super::Link::Up {
            return Err(ChannelError::Command(
                "peer not connected / reestablished".into(),
            ));
        }
        Ok(())
    }

    /// Like [`Channel::require_normal`] but for settling an HTLC the peer offered, which
    /// is allowed while the peer is away: the update is recorded now and goes out when the
    /// link is back (reestablish resends every update not yet covered by a
    /// `commitment_signed`). Returns whether the update message may be sent at once.
    pub(super) fn require_settleable(&self) -> Result<bool, ChannelError> {
        self.check_open()?;
        if self.state.phase != Phase::Normal {
            return Err(ChannelError::Command("channel is not ready".into()));
        }
        Ok(self.link == super::Link::Up)
    }

    /// Refuse a command whose update would take our unsigned updates past
    /// [`super::params::MAX_UNSIGNED_UPDATES`] (a fee update right after another replaces
    /// it, so it always fits).
    pub(super) fn check_local_room(&self, u: &Update) -> Result<(), ChannelError> {
        let proposed = &self.state.local_changes.proposed;
        let collapses =
            matches!(u, Update::Fee(_)) && matches!(proposed.last(), Some(Update::Fee(_)));
        if !collapses && proposed.len() >= super::params::MAX_UNSIGNED_UPDATES {
            return Err(ChannelError::Command(format!(
                "{} unsigned updates: send a commitment first",
                proposed.len()
            )));
        }
        Ok(())
    }

    /// About how much we could offer in one more HTLC now, msat: our balance in the peer's
    /// next commitment (with every pending update) less the reserve the peer requires and,
    /// if we fund the channel, the commitment fee with one more HTLC output; no more than
    /// the room left under the peer's `max_htlc_value_in_flight_msat`, and 0 once we have
    /// its `max_accepted_htlcs` HTLCs offered (or too many unsigned updates). An estimate for
    /// route finding: [`Channel::add_htlc`] makes the exact check (dust exposure, and the
    /// funder's fee when we do not fund the channel).
    /// 0 unless in normal operation, connected and not shutting down.
    pub fn spendable_msat(&self) -> u64 {
        let st = &self.state;
        if st.phase != Phase::Normal
            || !self.is_connected()
            || st.local_shutdown.is_some()
            || st.remote_shutdown.is_some()
        {
            return 0;
        }
        let Ok(remote) = st.remote() else {
            return 0;
        };
        let Some(base) = st.remote_next.as_ref().or(st.remote_commit.as_ref()) else {
            return 0;
        };
        let Ok(spec) = reduce_iter(
            &base.spec,
            st.local_changes.proposed.iter(),
            st.remote_changes.acked.iter(),
        ) else {
            return 0;
        };
        // The peer's limits on what we have in flight: one more HTLC must fit both.
        if spec.offered_by_us.len() >= usize::from(remote.max_accepted_htlcs)
            || st.local_changes.proposed.len() >= super::params::MAX_UNSIGNED_UPDATES
        {
            return 0;
        }
        let in_flight: u64 = spec.offered_by_us.values().map(|h| h.amount_msat).sum();
        let room = remote
            .max_htlc_value_in_flight_msat
            .saturating_sub(in_flight);
        let reserve = remote.channel_reserve_sat * 1000;
        let fee = if st.setup.is_opener {
            let htlcs = spec.offered_by_us.len() + spec.offered_by_them.len() + 1;
            commitment_fee(spec.feerate_per_kw, htlcs).to_sat() * 1000
        } else {
            0
        };
        spec.to_us_msat
            .saturating_sub(reserve)
            .saturating_sub(fee)
            .min(room)
    }

    /// Offer an HTLC; queues `update_add_htlc` and returns its id. Refused (nothing
    /// changes) if it breaks the peer's limits or our reserve.
    pub fn add_htlc(
        &mut self,
        amount_msat: u64,
        payment_hash: PaymentHash,
        cltv_expiry: u32,
        onion: OnionPacket,
    ) -> Result<u64, ChannelError> {
        self.require_normal()?;
        let remote = *self.state.remote()?;
        let cmd = ChannelError::Command;
        if self.state.local_shutdown.is_some() || self.state.remote_shutdown.is_some() {
            return Err(cmd("shutting down: no new HTLCs".into()));
        }
        if amount_msat == 0 || amount_msat < remote.htlc_minimum_msat {
            return Err(cmd(format!("amount {amount_msat} below htlc_minimum_msat")));
        }
        if cltv_expiry >= MAX_CLTV_EXPIRY {
            return Err(cmd("cltv_expiry is not a block height".into()));
        }
        let id = self.state.next_local_htlc_id;
        let htlc = HtlcInfo {
            amount_msat,
            payment_hash,
            cltv_expiry,
        };
        let update = Update::Add {
            id,
            htlc,
            onion: onion.clone(),
        };
        self.check_local_room(&update)?;
        let st = &self.state;
        let base = st
            .remote_next
            .as_ref()
            .or(st.remote_commit.as_ref())
            .ok_or(internal("no remote commitment"))?;
        let ours = st.local_changes.proposed.iter().chain([&update]);
        let spec = reduce_iter(&base.spec, ours, st.remote_changes.acked.iter()).map_err(cmd)?;
        check_limits(
            &spec,
            true,
            &remote,
            remote.channel_reserve_sat,
            st.setup.is_opener,
            spec.feerate_per_kw,
        )
        .map_err(cmd)?;
        // BOLT 2: the non-funder SHOULD NOT add an HTLC the funder could not pay the
        // commitment fee for while keeping its reserve.
        if !st.setup.is_opener {
            let fee = fee_msat_of(&spec, remote.dust_limit_sat, spec.feerate_per_kw);
            let reserve = st.setup.local.channel_reserve_sat * 1000;
            if spec.to_them_msat < fee + reserve {
                return Err(cmd("the funder could not pay the fee for it".into()));
            }
        }
        // BOLT 2: do not offer an HTLC that puts either commitment's dust exposure above
        // our limit (the next remote commitment's content stands for both).
        check_exposure(
            &spec,
            st.setup.local.dust_limit_sat,
            remote.dust_limit_sat,
            self.config.max_dust_htlc_exposure_msat,
        )
        .map_err(cmd)?;
        let channel_id = st.channel_id;
        self.transact_update(
            Record::LocalUpdate(update),
            vec![Message::UpdateAddHtlc(UpdateAddHtlc {
                channel_id,
                id,
                amount_msat,
                payment_hash: payment_hash.0,
                cltv_expiry,
                onion_routing_packet: onion,
                path_key: None,
                extra_tlvs: Default::default(),
            })],
        )?;
        Ok(id)
    }

    /// The HTLC the peer offered with `id`, if irrevocably committed and not yet settled.
    pub(super) fn settleable_incoming(&self, id: u64) -> Result<HtlcInfo, ChannelError> {
        let st = &self.state;
        let in_local = st
            .local_commit
            .as_ref()
            .and_then(|c| c.spec.offered_by_them.get(&id));
        let in_remote = st
            .remote_commit
            .as_ref()
            .and_then(|c| c.spec.offered_by_them.get(&id));
        let (Some(h), Some(_)) = (in_local, in_remote) else {
            return Err(ChannelError::Command(format!(
                "htlc {id} is not irrevocably committed"
            )));
        };
        let c = &st.local_changes;
        if c.proposed
            .iter()
            .chain(&c.signed)
            .chain(&c.acked)
            .any(|u| u.settles() == Some(id))
        {
            return Err(ChannelError::Command(format!("htlc {id} already settled")));
        }
        Ok(*h)
    }

    /// Fulfill an HTLC the peer offered; queues `update_fulfill_htlc`. Refused if
    /// `preimage` does not hash to the HTLC's payment hash. Allowed while the peer is
    /// disconnected: the update is sent at reestablish.
    pub fn fulfill_htlc(&mut self, id: u64, preimage: PaymentPreimage) -> Result<(), ChannelError> {
        let link_up = self.require_settleable()?;
        let h = self.settleable_incoming(id)?;
        if !preimage.matches(&h.payment_hash) {
            return Err(ChannelError::Command("preimage does not match".into()));
        }
        let update = Update::Fulfill { id, preimage };
        self.check_local_room(&update)?;
        let channel_id = self.state.channel_id;
        self.transact_update(
            Record::LocalUpdate(update),
            link_up
                .then_some(Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
                    channel_id,
                    id,
                    payment_preimage: preimage.0,
                    extra_tlvs: Default::default(),
                }))
                .into_iter()
                .collect(),
        )
    }

    /// Fail an HTLC the peer offered; queues `update_fail_htlc`. Allowed while the peer
    /// is disconnected: the update is sent at reestablish.
    pub fn fail_htlc(&mut self, id: u64, reason: Vec<u8>) -> Result<(), ChannelError> {
        let link_up = self.require_settleable()?;
        self.settleable_incoming(id)?;
        if reason.len() > usize::from(u16::MAX) {
            return Err(ChannelError::Command("failure reason too long".into()));
        }
        let r2 = reason.clone();
        let update = Update::Fail { id, reason };
        self.check_local_room(&update)?;
        let channel_id = self.state.channel_id;
        self.transact_update(
            Record::LocalUpdate(update),
            link_up
                .then_some(Message::UpdateFailHtlc(UpdateFailHtlc {
                    channel_id,
                    id,
                    reason: LenBytes(r2),
                    extra_tlvs: Default::default(),
                }))
                .into_iter()
                .collect(),
        )
    }

    /// Whether [`Channel::send_commitment`] would do something: updates to sign and no
    /// revocation outstanding.
    pub fn can_send_commitment(&self) -> bool {
        let st = &self.state;
        st.phase == Phase::Normal
            && self.link == super::Link::Up
            && st.remote_next.is_none()
            && (!st.local_changes.proposed.is_empty() || !st.remote_changes.acked.is_empty())
    }

    /// Whether the commitment we owe would only remove HTLCs the peer settled (its
    /// `update_fulfill_htlc` / `update_fail_htlc` / `update_fail_malformed_htlc`, already
    /// acknowledged by our `revoke_and_ack`): nothing waits on it but the peer's own
    /// commitment, so it may go out with our next update — the manager holds it back
    /// briefly, and a payer's next `update_add_htlc` then needs no wait for the
    /// `revoke_and_ack` of a commitment sent just before it.
    pub fn commitment_only_settles(&self) -> bool {
        let st = &self.state;
        self.can_send_commitment()
            && st.local_changes.proposed.is_empty()
            && st.remote_changes.acked.iter().all(|u| {
                matches!(
                    u,
                    Update::Fulfill { .. } | Update::Fail { .. } | Update::FailMalformed { .. }
                )
            })
    }

    /// Sign the peer's next commitment with every pending update; queues
    /// `commitment_signed` (released after its batch is persisted).
    ///
    /// Unlike other commands, a failure to build or sign that commitment
    /// ([`ChannelError::Internal`]) fails the channel ([`super::CloseReason::Internal`],
    /// our latest commitment offered for broadcast, [`Event::Closed`]): nothing that can
    /// happen later makes the pending updates signable, so leaving the channel open would
    /// leave [`Channel::can_send_commitment`] true for ever with every attempt failing.
    pub fn send_commitment(&mut self) -> Result<(), ChannelError> {
        self.require_normal()?;
        if self.state.remote_next.is_some() {
            return Err(ChannelError::Command("awaiting revoke_and_ack".into()));
        }
        if !self.can_send_commitment() {
            return Err(ChannelError::Command("no updates to sign".into()));
        }
        let res = self.transact(vec![Record::SentCommitment], |ch| {
            let (signature, htlc_signatures) = ch.sign_remote_commit(true)?;
            Ok(vec![Message::CommitmentSigned(CommitmentSigned {
                channel_id: ch.state.channel_id,
                signature,
                htlc_signatures,
                extra_tlvs: Default::default(),
            })])
        });
        if let Err(ChannelError::Internal(r)) = &res {
            let reason = format!("cannot sign the peer's next commitment: {r}");
            self.fail(super::CloseReason::Internal(reason));
        }
        res
    }

    pub(super) fn check_channel_id(&self, id: &[u8; 32]) -> Result<(), ChannelError> {
        if self.state.phase != Phase::Normal {
            return Err(proto("update before the channel is ready".into()));
        }
        if *id != self.state.channel_id {
            return Err(proto("message for another channel".into()));
        }
        Ok(())
    }

    pub(super) fn on_update_add(&mut self, m: &UpdateAddHtlc) -> Result<(), ChannelError> {
        self.check_channel_id(&m.channel_id)?;
        let st = &self.state;
        let local = st.setup.local;
        if st.remote_shutdown.is_some() {
            return Err(proto("update_add_htlc after shutdown".into()));
        }
        if m.id != st.next_remote_htlc_id {
            return Err(proto(format!(
                "htlc id {} but expected {}",
                m.id, st.next_remote_htlc_id
            )));
        }
        if m.amount_msat == 0 || m.amount_msat < local.htlc_minimum_msat {
            return Err(proto(format!(
                "amount {} below htlc_minimum_msat",
                m.amount_msat
            )));
        }
        if m.cltv_expiry >= MAX_CLTV_EXPIRY {
            return Err(proto("cltv_expiry is not a block height".into()));
        }
        let update = Update::Add {
            id: m.id,
            htlc: HtlcInfo {
                amount_msat: m.amount_msat,
                payment_hash: PaymentHash(m.payment_hash),
                cltv_expiry: m.cltv_expiry,
            },
            onion: m.onion_routing_packet.clone(),
        };
        let lc = st
            .local_commit
            .as_ref()
            .ok_or(internal("no local commitment"))?;
        let theirs = st.remote_changes.proposed.iter().chain([&update]);
        let spec = reduce_iter(&lc.spec, st.local_changes.acked.iter(), theirs).map_err(proto)?;
        check_limits(
            &spec,
            false,
            &local,
            local.channel_reserve_sat,
            !st.setup.is_opener,
            spec.feerate_per_kw,
        )
        .map_err(proto)?;
        self.transact_update(Record::RemoteUpdate(update), vec![])
    }

    /// The HTLC we offered with `id`, if irrevocably committed and not settled yet.
    pub(super) fn settleable_outgoing(&self, id: u64) -> Result<HtlcInfo, ChannelError> {
        let st = &self.state;
        let in_local = st
            .local_commit
            .as_ref()
            .and_then(|c| c.spec.offered_by_us.get(&id));
        let in_remote = st
            .remote_commit
            .as_ref()
            .and_then(|c| c.spec.offered_by_us.get(&id));
        let (Some(h), Some(_)) = (in_local, in_remote) else {
            return Err(proto(format!(
                "settle of htlc {id} not irrevocably committed"
            )));
        };
        let c = &st.remote_changes;
        if c.proposed
            .iter()
            .chain(&c.acked)
            .chain(&c.signed)
            .any(|u| u.settles() == Some(id))
        {
            return Err(proto(format!("htlc {id} settled twice")));
        }
        Ok(*h)
    }

    pub(super) fn on_update_fulfill(&mut self, m: &UpdateFulfillHtlc) -> Result<(), ChannelError> {
        self.check_channel_id(&m.channel_id)?;
        let h = self.settleable_outgoing(m.id)?;
        let preimage = PaymentPreimage(m.payment_preimage);
        if !preimage.matches(&h.payment_hash) {
            return Err(proto(format!("wrong preimage for htlc {}", m.id)));
        }
        let update = Update::Fulfill { id: m.id, preimage };
        self.transact_update(Record::RemoteUpdate(update), vec![])?;
        self.events
            .push_back(Event::HtlcFulfilled { id: m.id, preimage });
        Ok(())
    }

    pub(super) fn on_update_fail(&mut self, m: &UpdateFailHtlc) -> Result<(), ChannelError> {
        self.check_channel_id(&m.channel_id)?;
        self.settleable_outgoing(m.id)?;
        let update = Update::Fail {
            id: m.id,
            reason: m.reason.0.clone(),
        };
        self.transact_update(Record::RemoteUpdate(update), vec![])
    }

    pub(super) fn on_commitment_signed(
        &mut self,
        m: &CommitmentSigned,
    ) -> Result<(), ChannelError> {
        self.check_channel_id(&m.channel_id)?;
        let st = &self.state;
        if st.local_changes.acked.is_empty() && st.remote_changes.proposed.is_empty() {
            return Err(proto("commitment_signed without updates".into()));
        }
        let rec = Record::ReceivedCommitment {
            sig: m.signature,
            htlc_sigs: m.htlc_signatures.clone(),
        };
        self.transact(vec![rec], |ch| {
            let lc = ch
                .state
                .local_commit
                .as_ref()
                .ok_or(internal("no local commitment"))?;
            ch.verify_local_commit(lc.number, &lc.spec, &m.signature, &m.htlc_signatures)?;
            // Revoke the previous commitment.
            let revoked = lc.number - 1;
            Ok(vec![Message::RevokeAndAck(RevokeAndAck {
                channel_id: ch.state.channel_id,
                per_commitment_secret: ch.our_secret(revoked)?,
                next_per_commitment_point: ch.our_point(lc.number + 1)?,
                extra_tlvs: Default::default(),
            })])
        })
    }

    pub(super) fn on_revoke_and_ack(&mut self, m: &RevokeAndAck) -> Result<(), ChannelError> {
        self.check_channel_id(&m.channel_id)?;
        let st = &self.state;
        if st.remote_next.is_none() {
            return Err(proto("revoke_and_ack without a pending commitment".into()));
        }
        let rc = st
            .remote_commit
            .as_ref()
            .ok_or(internal("no remote commitment"))?;
        let point = per_commitment_point(&self.secp, &m.per_commitment_secret)
            .map_err(|_| proto("per_commitment_secret is not a valid key".into()))?;
        if point != rc.point {
            return Err(proto(
                "per_commitment_secret does not match the point".into(),
            ));
        }
        let mut store = st.remote_secrets.clone();
        store
            .insert(MAX_INDEX - rc.number, m.per_commitment_secret)
            .map_err(|e| proto(format!("per_commitment_secret refused by shachain: {e}")))?;
        let mut events = Vec::new();
        let mut added = Vec::new();
        for u in &st.remote_changes.signed {
            match u {
                Update::Add { id, htlc, onion } => {
                    added.push((*id, *htlc));
                    events.push(Event::HtlcReceived {
                        id: *id,
                        htlc: *htlc,
                        onion: onion.clone(),
                    })
                }
                Update::Fail { id, reason } => events.push(Event::HtlcFailed {
                    id: *id,
                    reason: reason.clone(),
                }),
                Update::FailMalformed {
                    id,
                    sha256_of_onion,
                    failure_code,
                } => events.push(Event::HtlcFailedMalformed {
                    id: *id,
                    sha256_of_onion: *sha256_of_onion,
                    failure_code: *failure_code,
                }),
                Update::Fulfill { .. } | Update::Fee(_) => {}
            }
        }
        let rec = Record::ReceivedRevocation {
            secret: m.per_commitment_secret,
            next_point: m.next_per_commitment_point,
        };
        self.transact(vec![rec], |_| Ok(vec![]))?;
        // The peer's new HTLCs are now in both commitments: those over the dust exposure
        // limit are reported as must-fail instead of received (BOLT 2).
        let st = &self.state;
        if let (false, Some(lc), Some(rc), Some(remote)) = (
            added.is_empty(),
            st.local_commit.as_ref(),
            st.remote_commit.as_ref(),
            st.setup.remote.as_ref(),
        ) {
            let fail = over_limit(
                &lc.spec,
                &rc.spec,
                st.setup.local.dust_limit_sat,
                remote.dust_limit_sat,
                self.config.max_dust_htlc_exposure_msat,
                &added,
            );
            for e in &mut events {
                if let Event::HtlcReceived { id, htlc, onion } = e {
                    if fail.contains(id) {
                        *e = Event::HtlcMustFail {
                            id: *id,
                            htlc: *htlc,
                            onion: onion.clone(),
                        };
                    }
                }
            }
        }
        self.events.extend(events);
        Ok(())
    }
}
