//! Opening: `open_channel` / `accept_channel` / `funding_created` / `funding_signed` /
//! `channel_ready`, the funding confirmation (its output verified, the short channel id
//! derived), funding depth from heights passed in, and the funding timeout.
//!
//! Funding verification: the caller hands [`Channel::handle_funding_confirmed`] the
//! confirmed transaction itself with its height and index in the block. The channel checks
//! the txid is the funding txid (else the call is refused: wrong transaction), then that
//! the output at the funding index is exactly the 2-of-2 P2WSH of both funding keys for
//! exactly the capacity. A mismatch fails the channel with
//! [`super::CloseReason::FundingMismatch`]: an `error` goes to the peer, nothing is
//! broadcast (no commitment of ours spends anything real). Otherwise the
//! [`ShortChannelId`] `height x tx_index x vout` is stored in `Record::FundingConfirmed`
//! and sent in `channel_ready` (TLV 1).
//!
//! Must never: sign the peer's first commitment before we hold a valid signature of ours
//! (acceptor), report the funding safe to broadcast before `funding_signed` verified, or
//! count a confirmation whose output is not the agreed funding output.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, OutPoint, Transaction, Txid};
use fulmen_wire::msgs::{
    AcceptChannel, ChannelReady, FundingCreated, FundingSigned, Message, OpenChannel,
};
use fulmen_wire::ShortChannelId;

use super::close::CloseReason;
use super::error::internal;
use super::params;
use super::params::{check_accept, check_feerate, check_open, FUNDING_TIMEOUT_BLOCKS};
use super::state::{ChannelState, Phase, Record, Setup, Update};
use super::{commit, Channel, ChannelConfig, ChannelError, Entropy, Event, FeeEstimator};
use super::{KeySource, SideParams};
use crate::funding::{check_funding_output, funding_output};
use crate::keys::ChannelBasepoints;

fn proto(s: &str) -> ChannelError {
    ChannelError::Protocol(s.to_string())
}

fn side_params(
    cfg: &ChannelConfig,
    bp: ChannelBasepoints,
    first: bitcoin::secp256k1::PublicKey,
    reserve_sat: u64,
) -> SideParams {
    SideParams {
        dust_limit_sat: cfg.dust_limit_sat,
        max_htlc_value_in_flight_msat: cfg.max_htlc_value_in_flight_msat,
        channel_reserve_sat: reserve_sat,
        htlc_minimum_msat: cfg.htlc_minimum_msat,
        to_self_delay: cfg.to_self_delay,
        max_accepted_htlcs: cfg.max_accepted_htlcs,
        basepoints: bp,
        first_per_commitment_point: first,
    }
}

impl Channel {
    /// Open a channel of `funding_sat` to a peer, pushing `push_msat` to it; queues
    /// `open_channel`. `height` is the current block height.
    #[allow(clippy::too_many_arguments)]
    pub fn new_outbound(
        keys: &dyn KeySource,
        entropy: &mut dyn Entropy,
        fees: &dyn FeeEstimator,
        config: ChannelConfig,
        chain_hash: [u8; 32],
        funding_sat: u64,
        push_msat: u64,
        height: u32,
    ) -> Result<Channel, ChannelError> {
        config.validate()?;
        if funding_sat >= super::params::MAX_FUNDING_SAT || funding_sat < config.min_funding_sat {
            return Err(ChannelError::Command(format!(
                "funding_sat {funding_sat} out of range"
            )));
        }
        if push_msat > funding_sat * 1000 {
            return Err(ChannelError::Command("push exceeds capacity".into()));
        }
        let feerate = fees.feerate_per_kw().max(super::params::MIN_FEERATE_PER_KW);
        let mut key_id = [0u8; 32];
        entropy.fill_bytes(&mut key_id);
        let mut temp_id = [0u8; 32];
        entropy.fill_bytes(&mut temp_id);
        let secrets = keys.channel_secrets(&key_id);
        let secp = crate::keys::context();
        let bp = secrets.basepoints(&secp);
        let reserve = config.reserve_for(funding_sat);
        // Placeholder for the first point; fixed right below from the channel's own seed.
        let setup = Setup {
            is_opener: true,
            key_id,
            chain_hash,
            temporary_channel_id: temp_id,
            funding_sat,
            push_msat,
            feerate_per_kw: feerate,
            local: side_params(&config, bp, bp.funding_pubkey, reserve),
            remote: None,
            minimum_depth: 0,
            created_height: height,
        };
        let mut ch = Channel::with_state(keys, config, ChannelState::new(setup));
        let first = ch.our_point(0)?;
        ch.state.setup.local.first_per_commitment_point = first;
        let l = ch.state.setup.local;
        let open = OpenChannel {
            chain_hash,
            temporary_channel_id: temp_id,
            funding_satoshis: funding_sat,
            push_msat,
            dust_limit_satoshis: l.dust_limit_sat,
            max_htlc_value_in_flight_msat: l.max_htlc_value_in_flight_msat,
            channel_reserve_satoshis: l.channel_reserve_sat,
            htlc_minimum_msat: l.htlc_minimum_msat,
            feerate_per_kw: feerate,
            to_self_delay: l.to_self_delay,
            max_accepted_htlcs: l.max_accepted_htlcs,
            funding_pubkey: bp.funding_pubkey,
            revocation_basepoint: bp.revocation_basepoint,
            payment_basepoint: bp.payment_basepoint,
            delayed_payment_basepoint: bp.delayed_payment_basepoint,
            htlc_basepoint: bp.htlc_basepoint,
            first_per_commitment_point: first,
            channel_flags: 0,
            upfront_shutdown_script: None,
            channel_type: None,
            extra_tlvs: Default::default(),
        };
        let rec = Record::Created(Box::new(ch.state.setup.clone()));
        ch.queue(vec![rec], vec![Message::OpenChannel(open)]);
        Ok(ch)
    }

    /// Accept a peer's `open_channel` after the BOLT 2 checks; queues `accept_channel`.
    /// An `Err` means refuse (send the peer an `error` for its temporary id).
    #[allow(clippy::too_many_arguments)]
    pub fn new_inbound(
        keys: &dyn KeySource,
        entropy: &mut dyn Entropy,
        fees: &dyn FeeEstimator,
        config: ChannelConfig,
        chain_hash: [u8; 32],
        open: &OpenChannel,
        height: u32,
    ) -> Result<Channel, ChannelError> {
        config.validate()?;
        if open.chain_hash != chain_hash {
            return Err(proto("open_channel for another chain"));
        }
        let opener = SideParams {
            dust_limit_sat: open.dust_limit_satoshis,
            max_htlc_value_in_flight_msat: open.max_htlc_value_in_flight_msat,
            channel_reserve_sat: open.channel_reserve_satoshis,
            htlc_minimum_msat: open.htlc_minimum_msat,
            to_self_delay: open.to_self_delay,
            max_accepted_htlcs: open.max_accepted_htlcs,
            basepoints: ChannelBasepoints {
                funding_pubkey: open.funding_pubkey,
                revocation_basepoint: open.revocation_basepoint,
                payment_basepoint: open.payment_basepoint,
                delayed_payment_basepoint: open.delayed_payment_basepoint,
                htlc_basepoint: open.htlc_basepoint,
            },
            first_per_commitment_point: open.first_per_commitment_point,
        };
        let reserve = config
            .reserve_for(open.funding_satoshis)
            .max(open.dust_limit_satoshis);
        check_open(
            &config,
            &opener,
            reserve,
            open.funding_satoshis,
            open.push_msat,
            open.feerate_per_kw,
            fees.feerate_per_kw(),
        )?;
        let mut key_id = [0u8; 32];
        entropy.fill_bytes(&mut key_id);
        let secrets = keys.channel_secrets(&key_id);
        let secp = crate::keys::context();
        let bp = secrets.basepoints(&secp);
        let setup = Setup {
            is_opener: false,
            key_id,
            chain_hash,
            temporary_channel_id: open.temporary_channel_id,
            funding_sat: open.funding_satoshis,
            push_msat: open.push_msat,
            feerate_per_kw: open.feerate_per_kw,
            local: side_params(&config, bp, bp.funding_pubkey, reserve),
            remote: Some(opener),
            minimum_depth: config.minimum_depth,
            created_height: height,
        };
        let mut ch = Channel::with_state(keys, config, ChannelState::new(setup));
        let first = ch.our_point(0)?;
        ch.state.setup.local.first_per_commitment_point = first;
        if ch.state.setup.local.channel_reserve_sat < opener.dust_limit_sat {
            return Err(proto("our reserve would be below the opener's dust limit"));
        }
        let l = ch.state.setup.local;
        let accept = AcceptChannel {
            temporary_channel_id: open.temporary_channel_id,
            dust_limit_satoshis: l.dust_limit_sat,
            max_htlc_value_in_flight_msat: l.max_htlc_value_in_flight_msat,
            channel_reserve_satoshis: l.channel_reserve_sat,
            htlc_minimum_msat: l.htlc_minimum_msat,
            minimum_depth: ch.state.setup.minimum_depth,
            to_self_delay: l.to_self_delay,
            max_accepted_htlcs: l.max_accepted_htlcs,
            funding_pubkey: bp.funding_pubkey,
            revocation_basepoint: bp.revocation_basepoint,
            payment_basepoint: bp.payment_basepoint,
            delayed_payment_basepoint: bp.delayed_payment_basepoint,
            htlc_basepoint: bp.htlc_basepoint,
            first_per_commitment_point: first,
            upfront_shutdown_script: None,
            channel_type: None,
            extra_tlvs: Default::default(),
        };
        let rec = Record::Created(Box::new(ch.state.setup.clone()));
        ch.queue(vec![rec], vec![Message::AcceptChannel(accept)]);
        Ok(ch)
    }

    pub(super) fn on_accept_channel(&mut self, m: &AcceptChannel) -> Result<(), ChannelError> {
        if self.state.phase != Phase::AwaitingAccept {
            return Err(proto("unexpected accept_channel"));
        }
        if m.temporary_channel_id != self.state.setup.temporary_channel_id {
            return Err(proto("accept_channel for another temporary id"));
        }
        let remote = SideParams {
            dust_limit_sat: m.dust_limit_satoshis,
            max_htlc_value_in_flight_msat: m.max_htlc_value_in_flight_msat,
            channel_reserve_sat: m.channel_reserve_satoshis,
            htlc_minimum_msat: m.htlc_minimum_msat,
            to_self_delay: m.to_self_delay,
            max_accepted_htlcs: m.max_accepted_htlcs,
            basepoints: ChannelBasepoints {
                funding_pubkey: m.funding_pubkey,
                revocation_basepoint: m.revocation_basepoint,
                payment_basepoint: m.payment_basepoint,
                delayed_payment_basepoint: m.delayed_payment_basepoint,
                htlc_basepoint: m.htlc_basepoint,
            },
            first_per_commitment_point: m.first_per_commitment_point,
        };
        check_accept(
            &self.config,
            &remote,
            &self.state.setup.local,
            self.state.setup.funding_sat,
            m.minimum_depth,
        )?;
        let rec = Record::Accepted {
            remote: Box::new(remote),
            minimum_depth: m.minimum_depth,
        };
        self.transact(vec![rec], |_| Ok(vec![]))?;
        let out = funding_output(
            &self.local_bp.funding_pubkey,
            &remote.basepoints.funding_pubkey,
            Amount::from_sat(self.state.setup.funding_sat),
        );
        self.events.push_back(Event::FundingGenerationReady {
            script_pubkey: out.script_pubkey,
            value: out.value,
        });
        Ok(())
    }

    /// Opener: the (unbroadcast) funding transaction pays the 2-of-2 at `outpoint`; queues
    /// `funding_created` with our signature of the peer's commitment 0.
    pub fn handle_funding_tx(&mut self, outpoint: OutPoint) -> Result<(), ChannelError> {
        self.check_open()?;
        if self.state.phase != Phase::AwaitingFundingTx {
            return Err(ChannelError::Command("not waiting for a funding tx".into()));
        }
        let temp = self.state.setup.temporary_channel_id;
        self.transact(vec![Record::FundingOutpoint(outpoint)], |ch| {
            let (sig, _) = ch.sign_remote_commit(false)?;
            Ok(vec![Message::FundingCreated(FundingCreated {
                temporary_channel_id: temp,
                funding_txid: outpoint.txid.to_byte_array(),
                funding_output_index: u16::try_from(outpoint.vout)
                    .map_err(|_| ChannelError::Command("funding vout > u16".into()))?,
                signature: sig,
                extra_tlvs: Default::default(),
            })])
        })
    }

    /// Sign the peer's current (`next = false`) or next commitment.
    pub(super) fn sign_remote_commit(
        &self,
        next: bool,
    ) -> Result<
        (
            bitcoin::secp256k1::ecdsa::Signature,
            Vec<bitcoin::secp256k1::ecdsa::Signature>,
        ),
        ChannelError,
    > {
        let rc = if next {
            self.state.remote_next.as_ref()
        } else {
            self.state.remote_commit.as_ref()
        }
        .ok_or(internal("no remote commitment to sign"))?;
        let built = commit::build_known(
            &self.secp,
            &self.state,
            &self.local_bp,
            false,
            rc.number,
            &rc.point,
            &rc.spec,
            &self.secrets.revocation_base,
        )?;
        commit::sign_remote(
            &self.secp,
            &built,
            &self.secrets,
            &self.local_bp,
            &self.state.remote()?.basepoints.funding_pubkey,
        )
    }

    /// Verify the peer's signatures of our commitment `number` with content `spec`.
    pub(super) fn verify_local_commit(
        &self,
        number: u64,
        spec: &super::Spec,
        sig: &bitcoin::secp256k1::ecdsa::Signature,
        htlc_sigs: &[bitcoin::secp256k1::ecdsa::Signature],
    ) -> Result<(), ChannelError> {
        let (secret, point) = self.our_secret_and_point(number)?;
        let secret = SecretKey::from_slice(&secret).map_err(internal)?;
        let built = commit::build_known(
            &self.secp,
            &self.state,
            &self.local_bp,
            true,
            number,
            &point,
            spec,
            &secret,
        )?;
        commit::verify_local(
            &self.secp,
            &built,
            sig,
            htlc_sigs,
            &self.local_bp.funding_pubkey,
            &self.state.remote()?.basepoints.funding_pubkey,
        )
    }

    pub(super) fn on_funding_created(&mut self, m: &FundingCreated) -> Result<(), ChannelError> {
        if self.state.phase != Phase::AwaitingFundingCreated {
            return Err(proto("unexpected funding_created"));
        }
        if m.temporary_channel_id != self.state.setup.temporary_channel_id {
            return Err(proto("funding_created for another temporary id"));
        }
        let outpoint = OutPoint {
            txid: Txid::from_byte_array(m.funding_txid),
            vout: u32::from(m.funding_output_index),
        };
        let sig = m.signature;
        let recs = vec![
            Record::FundingOutpoint(outpoint),
            Record::InitialCommitSigned(sig),
        ];
        self.transact(recs, |ch| {
            ch.verify_local_commit(0, &ch.state.initial_spec(), &sig, &[])?;
            let (our_sig, _) = ch.sign_remote_commit(false)?;
            Ok(vec![Message::FundingSigned(FundingSigned {
                channel_id: ch.state.channel_id,
                signature: our_sig,
                extra_tlvs: Default::default(),
            })])
        })
    }

    pub(super) fn on_funding_signed(&mut self, m: &FundingSigned) -> Result<(), ChannelError> {
        if self.state.phase != Phase::AwaitingFundingSigned {
            return Err(proto("unexpected funding_signed"));
        }
        if m.channel_id != self.state.channel_id {
            return Err(proto("funding_signed for another channel"));
        }
        let sig = m.signature;
        self.transact(vec![Record::InitialCommitSigned(sig)], |ch| {
            ch.verify_local_commit(0, &ch.state.initial_spec(), &sig, &[])?;
            Ok(vec![])
        })?;
        if let Some(outpoint) = self.state.funding_outpoint {
            self.events.push_back(Event::FundingSigned { outpoint });
        }
        Ok(())
    }

    /// The funding transaction `tx` confirmed: it is the `tx_index`-th transaction (0 =
    /// coinbase) of the block at `height`. Call it again (with the new place) if a reorg
    /// confirms it elsewhere.
    ///
    /// The output at the funding outpoint must be exactly the agreed funding output (2-of-2
    /// P2WSH of both funding keys, the capacity): if it is not, the channel fails with
    /// [`CloseReason::FundingMismatch`] (an `error` to the peer, nothing to broadcast) and
    /// the call returns [`ChannelError::Protocol`] (acceptor: the opener named it) or
    /// [`ChannelError::Internal`] (opener: our own funding). Otherwise the confirmation and
    /// the [`ShortChannelId`] are recorded and `channel_ready` follows at depth.
    ///
    /// Refused with [`ChannelError::Command`], nothing changed: before the funding
    /// outpoint is known, if `tx` is not the funding transaction (another txid), or if
    /// `height` or `tx_index` does not fit a short channel id (24 bits each).
    pub fn handle_funding_confirmed(
        &mut self,
        height: u32,
        tx_index: u32,
        tx: &Transaction,
    ) -> Result<(), ChannelError> {
        self.check_open()?;
        let op = self
            .state
            .funding_outpoint
            .ok_or(ChannelError::Command("no funding outpoint yet".into()))?;
        let txid = tx.compute_txid();
        if txid != op.txid {
            return Err(ChannelError::Command(format!(
                "transaction {txid} is not the funding transaction {}",
                op.txid
            )));
        }
        // The outpoint came from `funding_created`, whose index is a u16.
        let vout = u16::try_from(op.vout).map_err(|_| internal("funding vout above u16"))?;
        let scid = ShortChannelId::new(height, tx_index, vout).ok_or_else(|| {
            ChannelError::Command(format!(
                "height {height} / tx index {tx_index} do not fit a short channel id"
            ))
        })?;
        let remote_funding = self.state.remote()?.basepoints.funding_pubkey;
        let expected = funding_output(
            &self.local_bp.funding_pubkey,
            &remote_funding,
            Amount::from_sat(self.state.setup.funding_sat),
        );
        if let Err(mismatch) = check_funding_output(tx, op.vout, &expected) {
            let reason = CloseReason::FundingMismatch(mismatch);
            let text = reason.to_string();
            self.fail_with(reason, false, true);
            return Err(if self.state.setup.is_opener {
                ChannelError::Internal(text)
            } else {
                ChannelError::Protocol(text)
            });
        }
        if self.state.short_channel_id != Some(scid)
            || self.state.funding_confirmed_height != Some(height)
        {
            let rec = Record::FundingConfirmed {
                height,
                short_channel_id: Some(scid),
            };
            self.transact(vec![rec], |_| Ok(vec![]))?;
        }
        self.check_ready()
    }

    /// The funding output was spent on chain by `txid` (the caller saw it in a block). A
    /// channel still open here closes with [`CloseReason::FundingSpent`] — without
    /// broadcasting (the funds already left) or messaging the peer. A closed channel ignores
    /// it.
    pub fn handle_funding_spent(&mut self, txid: bitcoin::Txid) {
        if self.state.phase == Phase::Closed {
            return;
        }
        self.fail_with(CloseReason::FundingSpent { txid }, false, false);
    }

    /// The chain tip is now `height`: sends `channel_ready` at depth, times out a funding
    /// that never confirmed (after 2016 blocks; the opener too — its funding transaction
    /// was refused or evicted, and the caller returns its coins to the wallet).
    pub fn handle_block(&mut self, height: u32) -> Result<(), ChannelError> {
        self.check_open()?;
        self.best_height = height;
        let st = &self.state;
        if st.funding_confirmed_height.is_none()
            && height
                >= st
                    .setup
                    .created_height
                    .saturating_add(FUNDING_TIMEOUT_BLOCKS)
        {
            let reason = CloseReason::FundingTimeout {
                created_height: st.setup.created_height,
                height,
            };
            self.fail_with(reason, false, false);
            return Ok(());
        }
        if let Some(reason) = self.htlc_deadline(height) {
            self.fail_with(reason, true, true);
            return Ok(());
        }
        self.check_ready()
    }

    /// BOLT 2 / BOLT 5 deadlines: an HTLC we offered still in a commitment
    /// [`params::OFFERED_HTLC_GRACE_BLOCKS`] after its expiry (the peer neither fulfilled nor
    /// failed it: time it out on chain before an upstream deadline), or an HTLC we fulfilled
    /// that the peer has not removed [`params::FULFILLED_HTLC_DEADLINE_BLOCKS`] before its
    /// expiry (claim it on chain with the preimage before the peer can time it out).
    fn htlc_deadline(&self, height: u32) -> Option<CloseReason> {
        let st = &self.state;
        let commits = st
            .local_commit
            .iter()
            .map(|c| &c.spec)
            .chain(st.remote_commit.iter().map(|c| &c.spec))
            .chain(st.remote_next.iter().map(|c| &c.spec));
        let fulfilled: std::collections::HashSet<u64> = st
            .local_changes
            .proposed
            .iter()
            .chain(&st.local_changes.signed)
            .chain(&st.local_changes.acked)
            .filter_map(|u| match u {
                Update::Fulfill { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        for spec in commits {
            for h in spec.offered_by_us.values() {
                if height
                    >= h.cltv_expiry
                        .saturating_add(params::OFFERED_HTLC_GRACE_BLOCKS)
                {
                    return Some(CloseReason::HtlcDeadline {
                        cltv_expiry: h.cltv_expiry,
                        height,
                        offered: true,
                    });
                }
            }
            for (id, h) in &spec.offered_by_them {
                if fulfilled.contains(id)
                    && height.saturating_add(params::FULFILLED_HTLC_DEADLINE_BLOCKS)
                        >= h.cltv_expiry
                {
                    return Some(CloseReason::HtlcDeadline {
                        cltv_expiry: h.cltv_expiry,
                        height,
                        offered: false,
                    });
                }
            }
        }
        None
    }

    fn check_ready(&mut self) -> Result<(), ChannelError> {
        let st = &self.state;
        let Some(conf) = st.funding_confirmed_height else {
            return Ok(());
        };
        if st.phase != Phase::AwaitingReady || st.ready_sent {
            return Ok(());
        }
        let depth = self.best_height.max(conf).saturating_sub(conf) + 1;
        if depth < st.setup.minimum_depth.max(1) {
            return Ok(());
        }
        self.transact(vec![Record::ReadySent], |ch| {
            Ok(vec![Message::ChannelReady(ChannelReady {
                channel_id: ch.state.channel_id,
                second_per_commitment_point: ch.our_point(1)?,
                short_channel_id: ch.state.short_channel_id,
                extra_tlvs: Default::default(),
            })])
        })?;
        if self.state.phase == Phase::Normal {
            self.events.push_back(Event::ChannelReady);
        }
        Ok(())
    }

    /// The peer's `channel_ready`. Its `short_channel_id` TLV is not used: ours comes from
    /// the funding output we verified ourselves.
    pub(super) fn on_channel_ready(&mut self, m: &ChannelReady) -> Result<(), ChannelError> {
        if m.channel_id != self.state.channel_id {
            return Err(proto("channel_ready for another channel"));
        }
        match self.state.phase {
            Phase::AwaitingReady if self.state.remote_next_point.is_none() => {}
            // A retransmission after reconnect: ignore if it repeats the same point.
            Phase::AwaitingReady | Phase::Normal
                if self
                    .state
                    .remote_commit
                    .as_ref()
                    .is_some_and(|c| c.number == 0)
                    && self.state.remote_next_point == Some(m.second_per_commitment_point) =>
            {
                return Ok(())
            }
            _ => return Err(proto("unexpected channel_ready")),
        }
        self.transact(
            vec![Record::ReadyReceived(m.second_per_commitment_point)],
            |_| Ok(vec![]),
        )?;
        if self.state.phase == Phase::Normal {
            self.events.push_back(Event::ChannelReady);
        }
        Ok(())
    }

    /// Judge a peer-proposed feerate against our estimate (used by `update_fee` later).
    pub fn feerate_is_sane(&self, feerate: u32, fees: &dyn FeeEstimator) -> bool {
        check_feerate(
            feerate,
            fees.feerate_per_kw(),
            self.config.feerate_tolerance,
        )
        .is_ok()
    }
}
