//! Cooperative close: `shutdown` both ways, HTLCs drained, then `closing_signed` fee
//! negotiation with `fee_range` (the funder proposes; the other side agrees with a fee
//! inside both ranges).
//!
//! Must never: accept an HTLC after `shutdown`, sign a closing transaction while an HTLC or
//! an unsigned update is outstanding, or sign a closing tx paying to a non-standard script.

use bitcoin::{Amount, ScriptBuf, Transaction};
use fulmen_htlc::scripts::p2wsh_sighash;
use fulmen_wire::codec::LenBytes;
use fulmen_wire::msgs::{ClosingSigned, FeeRange, Message, Shutdown};

use super::close::{Broadcast, BroadcastKind, CloseReason};
use super::error::internal;
use super::state::{Phase, Record};
use super::{Channel, ChannelError, Event};
use crate::closing::{
    build_closing_tx, sign_closing, signed_closing_tx, ClosingError, ClosingOutput,
};
use crate::funding::funding_script;

/// Weight of a closing transaction's witness (2 signatures + the 2-of-2 script), added to
/// the unsigned weight to estimate its fee.
const CLOSING_WITNESS_WEIGHT: u64 = 222;

fn proto(s: &str) -> ChannelError {
    ChannelError::Protocol(s.to_string())
}

/// `shutdown` scripts BOLT 2 allows: P2PKH, P2SH, P2WPKH, P2WSH, witness v1..16.
fn standard(script: &ScriptBuf) -> bool {
    script.is_p2pkh()
        || script.is_p2sh()
        || script.is_p2wpkh()
        || script.is_p2wsh()
        || (script.witness_version().is_some_and(|v| v.to_num() >= 1)
            && (4..=42).contains(&script.len()))
}

impl Channel {
    /// Start (or answer) a cooperative close paying our balance to `script_pubkey`; queues
    /// `shutdown`. Refused while our own updates are not yet signed (call
    /// [`Channel::send_commitment`] first).
    pub fn shutdown(&mut self, script_pubkey: ScriptBuf) -> Result<(), ChannelError> {
        self.check_open()?;
        let cmd = ChannelError::Command;
        if self.state.phase != Phase::Normal {
            return Err(cmd("channel is not ready".into()));
        }
        if self.state.local_shutdown.is_some() {
            return Err(cmd("shutdown already sent".into()));
        }
        if !self.state.local_changes.proposed.is_empty() {
            return Err(cmd("unsigned updates pending: send_commitment first".into()));
        }
        if !standard(&script_pubkey) {
            return Err(cmd("non-standard shutdown script".into()));
        }
        let channel_id = self.state.channel_id;
        let bytes = script_pubkey.to_bytes();
        self.transact(vec![Record::ShutdownSent(script_pubkey)], |_| {
            Ok(vec![Message::Shutdown(Shutdown {
                channel_id,
                scriptpubkey: LenBytes(bytes),
                extra_tlvs: Default::default(),
            })])
        })?;
        self.maybe_start_closing()
    }

    pub(super) fn on_shutdown(&mut self, m: &Shutdown) -> Result<(), ChannelError> {
        if self.state.phase != Phase::Normal || m.channel_id != self.state.channel_id {
            return Err(proto("unexpected shutdown"));
        }
        let script = ScriptBuf::from_bytes(m.scriptpubkey.0.clone());
        if !standard(&script) {
            return Err(proto("non-standard shutdown script"));
        }
        if let Some(prev) = &self.state.remote_shutdown {
            if *prev == script {
                return Ok(());
            }
            return Err(proto("shutdown script changed"));
        }
        self.transact(vec![Record::ShutdownReceived(script)], |_| Ok(vec![]))?;
        if self.state.local_shutdown.is_none() {
            self.events.push_back(Event::ShutdownReceived);
        }
        Ok(())
    }

    /// Both shutdowns exchanged, no HTLC in either commitment, nothing in flight.
    fn ready_to_close(&self) -> bool {
        let st = &self.state;
        let empty = |s: &super::Spec| s.offered_by_us.is_empty() && s.offered_by_them.is_empty();
        st.phase == Phase::Normal
            && st.local_shutdown.is_some()
            && st.remote_shutdown.is_some()
            && self.is_quiescent()
            && st.local_commit.as_ref().is_some_and(|c| empty(&c.spec))
            && st.remote_commit.as_ref().is_some_and(|c| empty(&c.spec))
    }

    /// The unsigned closing tx at `fee_sat` (identical on both sides). The outer error is
    /// ours (state missing); the inner one says why this fee cannot build a closing
    /// transaction (the caller decides whose fault the fee is).
    fn closing_tx(&self, fee_sat: u64) -> Result<Result<Transaction, ClosingError>, ChannelError> {
        let st = &self.state;
        let remote = st.remote()?;
        let lc = st.local_commit.as_ref().ok_or(internal("no commitment"))?;
        let (Some(ls), Some(rs), Some(op)) = (
            st.local_shutdown.clone(),
            st.remote_shutdown.clone(),
            st.funding_outpoint,
        ) else {
            return Err(internal("closing before shutdown"));
        };
        let ours = ClosingOutput {
            script_pubkey: ls,
            amount: Amount::from_sat(lc.spec.to_us_msat / 1000),
            is_funder: st.setup.is_opener,
        };
        let theirs = ClosingOutput {
            script_pubkey: rs,
            amount: Amount::from_sat(lc.spec.to_them_msat / 1000),
            is_funder: !st.setup.is_opener,
        };
        let dust = st.setup.local.dust_limit_sat.max(remote.dust_limit_sat);
        Ok(build_closing_tx(
            op,
            Amount::from_sat(st.setup.funding_sat),
            &ours,
            &theirs,
            Amount::from_sat(fee_sat),
            Amount::from_sat(dust),
        ))
    }

    /// The unsigned closing tx at a fee we chose: any failure is ours.
    fn our_closing_tx(&self, fee_sat: u64) -> Result<Transaction, ChannelError> {
        self.closing_tx(fee_sat)?
            .map_err(|e| internal(format!("closing tx: {e}")))
    }

    /// Our acceptable closing fee range: half to twice the fee at the commitment feerate,
    /// capped by the funder's balance.
    fn closing_fee_range(&self) -> Result<(u64, u64), ChannelError> {
        let tx = self.our_closing_tx(0)?;
        let weight = tx.weight().to_wu() + CLOSING_WITNESS_WEIGHT;
        let lc = self
            .state
            .local_commit
            .as_ref()
            .ok_or(internal("no commitment"))?;
        let fee = u64::from(lc.spec.feerate_per_kw) * weight / 1000;
        let funder_sat = if self.state.setup.is_opener {
            lc.spec.to_us_msat / 1000
        } else {
            lc.spec.to_them_msat / 1000
        };
        Ok(((fee / 2).max(1), (fee * 2).min(funder_sat)))
    }

    fn closing_signed(&self, fee: u64, range: (u64, u64)) -> Result<Message, ChannelError> {
        let tx = self.our_closing_tx(fee)?;
        let remote_funding = self.state.remote()?.basepoints.funding_pubkey;
        let sig = sign_closing(
            &self.secp,
            &tx,
            &self.local_bp.funding_pubkey,
            &remote_funding,
            Amount::from_sat(self.state.setup.funding_sat),
            &self.secrets.funding_key,
        )
        .map_err(|e| internal(format!("sign closing: {e}")))?;
        Ok(Message::ClosingSigned(ClosingSigned {
            channel_id: self.state.channel_id,
            fee_satoshis: fee,
            signature: sig,
            fee_range: Some(FeeRange {
                min_fee_satoshis: range.0,
                max_fee_satoshis: range.1,
            }),
            extra_tlvs: Default::default(),
        }))
    }

    /// The funder opens the fee negotiation once the channel is drained.
    pub(super) fn maybe_start_closing(&mut self) -> Result<(), ChannelError> {
        if !self.state.setup.is_opener || self.closing_sent_fee.is_some() || !self.ready_to_close()
        {
            return Ok(());
        }
        let range = self.closing_fee_range()?;
        let fee = (range.0 + range.1) / 2;
        let msg = self.closing_signed(fee, range)?;
        self.closing_sent_fee = Some(fee);
        self.queue(vec![], vec![msg]);
        Ok(())
    }

    pub(super) fn on_closing_signed(&mut self, m: &ClosingSigned) -> Result<(), ChannelError> {
        if m.channel_id != self.state.channel_id || !self.ready_to_close() {
            return Err(proto("closing_signed before the channel is drained"));
        }
        // A fee the closing transaction cannot pay is the peer's proposal: a violation.
        let tx = self
            .closing_tx(m.fee_satoshis)?
            .map_err(|e| ChannelError::Protocol(format!("closing tx at the peer's fee: {e}")))?;
        let remote_funding = self.state.remote()?.basepoints.funding_pubkey;
        let value = Amount::from_sat(self.state.setup.funding_sat);
        let script = funding_script(&self.local_bp.funding_pubkey, &remote_funding);
        let sighash = p2wsh_sighash(&tx, 0, &script, value).map_err(internal)?;
        self.secp
            .verify_ecdsa(&sighash, &m.signature, &remote_funding)
            .map_err(|_| proto("invalid closing signature"))?;
        let ours = self.closing_fee_range()?;
        let theirs = m
            .fee_range
            .map(|r| (r.min_fee_satoshis, r.max_fee_satoshis))
            .unwrap_or((m.fee_satoshis, m.fee_satoshis));
        let fee = m.fee_satoshis;
        if fee < theirs.0 || fee > theirs.1 {
            return Err(proto("closing fee outside the sender's own fee_range"));
        }
        let agreed = self.closing_sent_fee == Some(fee);
        if !agreed && !(ours.0..=ours.1).contains(&fee) {
            let (lo, hi) = (ours.0.max(theirs.0), ours.1.min(theirs.1));
            if lo > hi {
                return Err(proto("closing fee ranges do not overlap"));
            }
            let counter = fee.clamp(lo, hi);
            let msg = self.closing_signed(counter, (lo, hi))?;
            self.closing_sent_fee = Some(counter);
            self.queue(vec![], vec![msg]);
            return Ok(());
        }
        // Agreement: answer with the same fee unless it was ours, then broadcast.
        let reply = if agreed {
            None
        } else {
            Some(self.closing_signed(fee, ours)?)
        };
        let our_sig = sign_closing(
            &self.secp,
            &tx,
            &self.local_bp.funding_pubkey,
            &remote_funding,
            value,
            &self.secrets.funding_key,
        )
        .map_err(|e| internal(format!("sign closing: {e}")))?;
        let signed = signed_closing_tx(
            &tx,
            &self.local_bp.funding_pubkey,
            &our_sig,
            &remote_funding,
            &m.signature,
        );
        let reason = CloseReason::MutualClose { fee_sat: fee };
        self.transact(vec![Record::Closed(reason.clone())], |_| {
            Ok(reply.into_iter().collect())
        })?;
        self.broadcasts.push_back(Broadcast {
            kind: BroadcastKind::Closing,
            tx: signed,
        });
        self.events.push_back(Event::Closed { reason });
        Ok(())
    }
}
