//! `update_fee` (funder only, sanity-checked against the caller's fee estimate, affordable
//! by the funder) and `update_fail_malformed_htlc` (BADONION bit required).
//!
//! Dust exposure: we refuse to *send* a feerate increase that would put either
//! commitment's dust exposure above `max_dust_htlc_exposure_msat`. A *received* one that
//! does is accepted (BOLT 2 only says MAY fail the channel; failing it over a fee estimate
//! is harsher than the risk): the HTLCs already committed stay, new ones past the limit are
//! still refused / reported as `HtlcMustFail`.
//!
//! Floods: consecutive fee updates collapse into the last one in the state (see
//! `state::push_update`), and every `update_fee` counts towards
//! [`super::params::MAX_UNSIGNED_UPDATES`] until the funder signs, so a funder that never
//! signs can neither grow the state nor write more than that many records.
//!
//! Must never: accept `update_fee` from the non-funder or a feerate the funder cannot pay
//! while keeping its reserve; accept a malformed-failure code without the BADONION bit.

use fulmen_wire::msgs::{Message, UpdateFailMalformedHtlc, UpdateFee};

use super::dust::check_exposure;
use super::error::internal;
use super::normal::check_limits;
use super::params::check_feerate;
use super::state::{reduce_iter, Record, Update};
use super::{Channel, ChannelError};

/// BOLT 4 `BADONION` bit of a failure code.
pub const BADONION: u16 = 0x8000;

impl Channel {
    /// The caller's latest fee estimate (sat per 1000 weight), used to judge a peer's
    /// `update_fee`. Until called, the channel's opening feerate stands in.
    pub fn handle_fee_estimate(&mut self, feerate_per_kw: u32) {
        self.fee_estimate = feerate_per_kw;
    }

    /// Funder only: propose a new commitment feerate; queues `update_fee`.
    pub fn update_fee(&mut self, feerate_per_kw: u32) -> Result<(), ChannelError> {
        self.require_normal()?;
        let cmd = ChannelError::Command;
        let st = &self.state;
        if !st.setup.is_opener {
            return Err(cmd("only the funder sends update_fee".into()));
        }
        if feerate_per_kw < super::params::MIN_FEERATE_PER_KW {
            return Err(cmd("feerate below 253".into()));
        }
        let remote = *st.remote()?;
        let base = st
            .remote_next
            .as_ref()
            .or(st.remote_commit.as_ref())
            .ok_or(internal("no remote commitment"))?;
        let update = Update::Fee(feerate_per_kw);
        self.check_local_room(&update)?;
        let ours = st.local_changes.proposed.iter().chain([&update]);
        let spec = reduce_iter(&base.spec, ours, st.remote_changes.acked.iter()).map_err(cmd)?;
        check_limits(
            &spec,
            true,
            &remote,
            remote.channel_reserve_sat,
            true,
            feerate_per_kw,
        )
        .map_err(|e| cmd(format!("cannot afford feerate: {e}")))?;
        // BOLT 2: a feerate increase must not push dust exposure above our limit.
        if feerate_per_kw > base.spec.feerate_per_kw {
            check_exposure(
                &spec,
                st.setup.local.dust_limit_sat,
                remote.dust_limit_sat,
                self.config.max_dust_htlc_exposure_msat,
            )
            .map_err(cmd)?;
        }
        let channel_id = st.channel_id;
        self.transact_update(
            Record::LocalUpdate(update),
            vec![Message::UpdateFee(UpdateFee {
                channel_id,
                feerate_per_kw,
                extra_tlvs: Default::default(),
            })],
        )
    }

    pub(super) fn on_update_fee(&mut self, m: &UpdateFee) -> Result<(), ChannelError> {
        self.check_channel_id(&m.channel_id)?;
        let proto = ChannelError::Protocol;
        let st = &self.state;
        if st.setup.is_opener {
            return Err(proto("update_fee from the non-funder".into()));
        }
        check_feerate(
            m.feerate_per_kw,
            self.fee_estimate,
            self.config.feerate_tolerance,
        )?;
        let local = st.setup.local;
        let lc = st
            .local_commit
            .as_ref()
            .ok_or(internal("no local commitment"))?;
        let update = Update::Fee(m.feerate_per_kw);
        let theirs = st.remote_changes.proposed.iter().chain([&update]);
        let spec = reduce_iter(&lc.spec, st.local_changes.acked.iter(), theirs).map_err(proto)?;
        check_limits(
            &spec,
            false,
            &local,
            local.channel_reserve_sat,
            true,
            m.feerate_per_kw,
        )
        .map_err(|e| proto(format!("funder cannot afford update_fee: {e}")))?;
        self.transact_update(Record::RemoteUpdate(update), vec![])
    }

    /// Fail an HTLC the peer offered whose onion we could not parse; queues
    /// `update_fail_malformed_htlc`. `failure_code` must have the BADONION bit. Allowed
    /// while the peer is disconnected: the update is sent at reestablish.
    pub fn fail_malformed_htlc(
        &mut self,
        id: u64,
        sha256_of_onion: [u8; 32],
        failure_code: u16,
    ) -> Result<(), ChannelError> {
        let link_up = self.require_settleable()?;
        if failure_code & BADONION == 0 {
            return Err(ChannelError::Command("failure_code lacks BADONION".into()));
        }
        self.settleable_incoming(id)?;
        let channel_id = self.state.channel_id;
        let update = Update::FailMalformed {
            id,
            sha256_of_onion,
            failure_code,
        };
        self.check_local_room(&update)?;
        self.transact_update(
            Record::LocalUpdate(update),
            link_up
                .then_some(Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                    channel_id,
                    id,
                    sha256_of_onion,
                    failure_code,
                    extra_tlvs: Default::default(),
                }))
                .into_iter()
                .collect(),
        )
    }

    pub(super) fn on_update_fail_malformed(
        &mut self,
        m: &UpdateFailMalformedHtlc,
    ) -> Result<(), ChannelError> {
        self.check_channel_id(&m.channel_id)?;
        if m.failure_code & BADONION == 0 {
            return Err(ChannelError::Protocol(
                "update_fail_malformed_htlc without BADONION".into(),
            ));
        }
        self.settleable_outgoing(m.id)?;
        let update = Update::FailMalformed {
            id: m.id,
            sha256_of_onion: m.sha256_of_onion,
            failure_code: m.failure_code,
        };
        self.transact_update(Record::RemoteUpdate(update), vec![])
    }
}
