//! Disconnection and `channel_reestablish`: forget the peer's uncommitted updates,
//! retransmit what the peer missed (our updates, `commitment_signed`, `revoke_and_ack`, in
//! their original order; `channel_ready`), and detect lost state on either side.
//!
//! Lost state: a peer that says we are behind must prove it with
//! `your_last_per_commitment_secret` (our own secret for the number it claims). Proven: we
//! close without broadcasting ([`super::CloseReason::LostState`]). Not proven: a protocol
//! violation — `error` sent, our latest commitment (not revoked) offered for broadcast.
//!
//! Must never: broadcast our commitment when the peer proves we lost state (it may be
//! revoked); close without broadcasting on a claim the peer did not prove (any peer could
//! lock our balance so); release a retransmission before the peer's `channel_reestablish`
//! arrived.

use fulmen_wire::codec::LenBytes;
use fulmen_wire::msgs::{
    ChannelReady, ChannelReestablish, Message, UpdateAddHtlc, UpdateFailHtlc,
    UpdateFailMalformedHtlc, UpdateFee, UpdateFulfillHtlc,
};

use super::close::CloseReason;
use super::error::internal;
use super::state::{Phase, Record, Update};
use super::{Channel, ChannelError, Link};

fn proto(s: String) -> ChannelError {
    ChannelError::Protocol(s)
}

impl Channel {
    /// The connection to the peer dropped: messages not yet handed out are discarded
    /// (records still need persisting); `channel_reestablish` resynchronises later.
    pub fn handle_disconnect(&mut self) {
        self.link = Link::Down;
        self.outbox.clear();
        for b in &mut self.batches {
            b.messages.clear();
        }
        self.closing_sent_fee = None;
    }

    /// The peer is connected again (also after a restart): forgets its uncommitted updates
    /// and queues our `channel_reestablish`. Only once funding is signed (earlier, the
    /// opening is abandoned).
    pub fn handle_reconnect(&mut self) -> Result<(), ChannelError> {
        self.check_open()?;
        if self.link != Link::Down {
            self.handle_disconnect();
        }
        let st = &self.state;
        if !matches!(st.phase, Phase::AwaitingReady | Phase::Normal) {
            return Err(ChannelError::Command("opening cannot be resumed".into()));
        }
        let recs = if st.remote_changes.proposed.is_empty() {
            vec![]
        } else {
            vec![Record::Reconnected]
        };
        self.transact(recs, |ch| {
            let st = &ch.state;
            let lc = st.local_commit.as_ref().ok_or(internal("no commitment"))?;
            let rc = st.remote_commit.as_ref().ok_or(internal("no commitment"))?;
            let last_secret = st
                .remote_secrets
                .last_index()
                .and_then(|i| st.remote_secrets.get(i))
                .unwrap_or([0u8; 32]);
            Ok(vec![Message::ChannelReestablish(ChannelReestablish {
                channel_id: st.channel_id,
                next_commitment_number: lc.number + 1,
                next_revocation_number: rc.number,
                your_last_per_commitment_secret: last_secret,
                my_current_per_commitment_point: ch.our_point(lc.number)?,
                extra_tlvs: Default::default(),
            })])
        })?;
        self.link = Link::Reestablishing;
        // The peer's unsigned updates are forgotten (Reconnected).
        self.remote_unsigned = 0;
        Ok(())
    }

    fn update_msg(&self, u: &Update) -> Message {
        let channel_id = self.state.channel_id;
        let extra_tlvs = Default::default();
        match u {
            Update::Add { id, htlc, onion } => Message::UpdateAddHtlc(UpdateAddHtlc {
                channel_id,
                id: *id,
                amount_msat: htlc.amount_msat,
                payment_hash: htlc.payment_hash.0,
                cltv_expiry: htlc.cltv_expiry,
                onion_routing_packet: onion.clone(),
                path_key: None,
                extra_tlvs,
            }),
            Update::Fulfill { id, preimage } => Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
                channel_id,
                id: *id,
                payment_preimage: preimage.0,
                extra_tlvs,
            }),
            Update::Fail { id, reason } => Message::UpdateFailHtlc(UpdateFailHtlc {
                channel_id,
                id: *id,
                reason: LenBytes(reason.clone()),
                extra_tlvs,
            }),
            Update::FailMalformed {
                id,
                sha256_of_onion,
                failure_code,
            } => Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                channel_id,
                id: *id,
                sha256_of_onion: *sha256_of_onion,
                failure_code: *failure_code,
                extra_tlvs,
            }),
            Update::Fee(f) => Message::UpdateFee(UpdateFee {
                channel_id,
                feerate_per_kw: *f,
                extra_tlvs,
            }),
        }
    }

    /// True if `secret` is our per-commitment secret for commitment `number` (false for a
    /// number beyond the shachain, which no secret can prove).
    fn proves_secret(&self, number: u64, secret: &[u8; 32]) -> bool {
        self.our_secret(number).is_ok_and(|ours| ours == *secret)
    }

    pub(super) fn on_channel_reestablish(
        &mut self,
        m: &ChannelReestablish,
    ) -> Result<(), ChannelError> {
        if self.link != Link::Reestablishing {
            return Err(proto("unexpected channel_reestablish".into()));
        }
        if m.channel_id != self.state.channel_id {
            return Err(proto("channel_reestablish for another channel".into()));
        }
        let st = &self.state;
        let lc = st.local_commit.as_ref().ok_or(internal("no commitment"))?;
        let rc = st.remote_commit.as_ref().ok_or(internal("no commitment"))?;
        let (lcn, rcn) = (lc.number, rc.number);
        // The peer claims revocations from us we do not remember. Only its
        // `your_last_per_commitment_secret` can prove it: our secret for the claimed
        // number, which nobody but us could have made. Proven, we lost state: our
        // commitment may be revoked — never broadcast it; ask the peer to close. Not
        // proven, the claim is a lie (BOLT 2: fail the channel); our latest commitment is
        // not revoked (the peer holds no revocation of it), so failing broadcasts it.
        if m.next_revocation_number > lcn {
            if !self.proves_secret(
                m.next_revocation_number - 1,
                &m.your_last_per_commitment_secret,
            ) {
                return Err(proto(format!(
                    "peer claims we revoked commitment {} (we are at commitment {lcn}) \
                     without proving it: your_last_per_commitment_secret is wrong",
                    m.next_revocation_number - 1
                )));
            }
            let reason = CloseReason::LostState {
                their_next_commitment: m.next_commitment_number,
                their_next_revocation: m.next_revocation_number,
                our_commitment: lcn,
                their_commitment: rcn,
            };
            self.fail_with(reason, false, true);
            return Err(ChannelError::Closed);
        }
        if m.next_revocation_number > 0
            && !self.proves_secret(
                m.next_revocation_number - 1,
                &m.your_last_per_commitment_secret,
            )
        {
            return Err(proto("your_last_per_commitment_secret is wrong".into()));
        }
        // Signatures of ours we do not remember: nothing proves that claim (the secret
        // above is one we revealed already), and our commitment is not revoked: a
        // protocol violation, like any other commitment number we did not sign.
        if m.next_commitment_number > rcn + 2 {
            return Err(proto(format!(
                "peer claims commitment {} signed by us, we signed up to {}",
                m.next_commitment_number.saturating_sub(1),
                st.remote_next.as_ref().map_or(rcn, |n| n.number)
            )));
        }
        if m.next_revocation_number + 1 < lcn {
            return Err(proto(format!(
                "peer lost state (expects revocation {}, we revoked up to {})",
                m.next_revocation_number,
                lcn - 1
            )));
        }
        let need_raa = m.next_revocation_number + 1 == lcn;
        let need_commit = match &st.remote_next {
            Some(n) if m.next_commitment_number == n.number => true,
            Some(n) if m.next_commitment_number == n.number + 1 => false,
            None if m.next_commitment_number == rcn + 1 => false,
            _ => {
                return Err(proto(format!(
                    "peer expects commitment {}, we signed up to {}",
                    m.next_commitment_number,
                    st.remote_next.as_ref().map_or(rcn, |n| n.number)
                )))
            }
        };
        let mut msgs = Vec::new();
        if st.ready_sent && lcn == 0 && m.next_commitment_number == 1 {
            msgs.push(Message::ChannelReady(ChannelReady {
                channel_id: st.channel_id,
                second_per_commitment_point: self.our_point(1)?,
                short_channel_id: st.short_channel_id,
                extra_tlvs: Default::default(),
            }));
        }
        let raa = if need_raa {
            Some(Message::RevokeAndAck(fulmen_wire::msgs::RevokeAndAck {
                channel_id: st.channel_id,
                per_commitment_secret: self.our_secret(lcn - 1)?,
                next_per_commitment_point: self.our_point(lcn + 1)?,
                extra_tlvs: Default::default(),
            }))
        } else {
            None
        };
        let mut commit = Vec::new();
        if need_commit {
            for u in &st.local_changes.signed {
                commit.push(self.update_msg(u));
            }
            let (signature, htlc_signatures) = self.sign_remote_commit(true)?;
            commit.push(Message::CommitmentSigned(
                fulmen_wire::msgs::CommitmentSigned {
                    channel_id: st.channel_id,
                    signature,
                    htlc_signatures,
                    extra_tlvs: Default::default(),
                },
            ));
        }
        if st.commit_sent_last {
            msgs.extend(raa);
            msgs.extend(commit);
        } else {
            msgs.extend(commit);
            msgs.extend(raa);
        }
        // Updates never covered by a commitment_signed: the peer forgot them; resend.
        for u in &st.local_changes.proposed {
            msgs.push(self.update_msg(u));
        }
        if let Some(s) = &st.local_shutdown {
            msgs.push(Message::Shutdown(fulmen_wire::msgs::Shutdown {
                channel_id: st.channel_id,
                scriptpubkey: LenBytes(s.to_bytes()),
                extra_tlvs: Default::default(),
            }));
        }
        self.link = Link::Up;
        self.queue(vec![], msgs);
        Ok(())
    }
}
