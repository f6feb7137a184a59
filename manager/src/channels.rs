//! Channels: opening (funded from the wallet), cooperative closing, driving every channel to
//! idle at the end of a turn, acting on channel events, recording what channels broadcast,
//! and rebuilding channels from their records.
//!
//! Owns: the lifecycle bookkeeping of [`ChannelEntry`] (funding and closing transactions,
//! close reasons, who waits on an open or a close). Must never: broadcast a funding
//! transaction before the peer signed our commitment 0, or a transaction before the record
//! that names it is durable.

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, OutPoint, ScriptBuf};
use fulmen_channel::machine::{
    Broadcast, BroadcastKind, Channel, ChannelConfig, CloseReason, Event, SeedKeySource,
};
use fulmen_channel::monitor::{ChannelMonitor, MonitorError};

use crate::api::{CloseResult, OpenResult};
use crate::forward::Downstream;
use crate::manager::{After, ChannelEntry, Manager};
use crate::peers::chain_hash;
use crate::types::{CmdError, ManagerError, NodeEvent, RequestId, Response, StoredChannel};

/// A fixed feerate estimate (the simulated chain's relay floor scaled; see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy)]
pub struct FixedFee(pub u32);

/// How long a shell waits before [`Manager::handle_wake`] when
/// [`Manager::has_held_commitments`], in milliseconds (lnd batches every commitment for
/// 50 ms by default, Core Lightning for 10 ms; we hold back only those that settle the
/// peer's updates): long enough for the next payment through the channel — over a few
/// hops, ≈ 10–15 ms apart back to back — to take the held commitment along.
pub const COMMIT_DELAY_MS: u64 = 50;

impl fulmen_channel::machine::FeeEstimator for FixedFee {
    fn feerate_per_kw(&self) -> u32 {
        self.0
    }
}

impl Manager {
    /// The feerate the channels use (sat per 1000 weight).
    pub(crate) fn fee_estimator(&self) -> FixedFee {
        let per_kw =
            u32::try_from(self.config.funding_sat_per_vb.saturating_mul(250)).unwrap_or(u32::MAX);
        FixedFee(253.max(per_kw))
    }

    /// `openchannel`.
    pub(crate) fn open(&mut self, request: RequestId, node_id: PublicKey, sats: u64, push: u64) {
        if self.peers.get(&node_id).is_none_or(|p| p.conn.is_none()) {
            let msg = format!("peer {node_id} is not connected: connect first");
            return self.reply(request, Err(CmdError::failed(msg)));
        }
        let spendable = self.wallet.balance().spendable().to_sat();
        if spendable < sats {
            let msg = format!(
                "insufficient on-chain funds: {spendable} sat spendable, {sats} sat needed plus fees ({} sat missing)",
                sats - spendable
            );
            return self.reply(request, Err(CmdError::failed(msg)));
        }
        let fees = self.fee_estimator();
        let res = Channel::new_outbound(
            &self.key_source,
            self.entropy.as_mut(),
            &fees,
            self.config.channel_config.clone(),
            chain_hash(),
            sats,
            push,
            self.height,
        );
        match res {
            Ok(ch) => {
                let id = self.new_channel_id(node_id);
                let mut e = ChannelEntry::new(id, node_id, ch);
                e.open_waiter = Some(request);
                self.channels.push(e);
            }
            Err(e) => self.reply(request, Err(CmdError::invalid(e.to_string()))),
        }
    }

    /// `closechannel` (cooperative).
    pub(crate) fn close(&mut self, request: RequestId, channel_id: [u8; 32]) {
        let Some(i) = self.channel_index(&channel_id) else {
            let msg = format!("unknown channel {}", hex::encode(channel_id));
            return self.reply(request, Err(CmdError::invalid(msg)));
        };
        let script = self.wallet.sweep_script();
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        if let Some(tx) = &e.closing_tx {
            let res = CloseResult {
                channel_id: hex::encode(e.ch.channel_id()),
                closing_txid: tx.compute_txid().to_string(),
            };
            return self.reply(request, Ok(Response::Closed(res)));
        }
        if e.ch.state().local_shutdown.is_none() {
            if let Err(err) = e.ch.shutdown(script) {
                let msg = format!("cannot close: {err}");
                return self.reply(request, Err(CmdError::failed(msg)));
            }
        }
        e.close_waiters.push(request);
    }

    /// `disconnect`.
    pub(crate) fn disconnect(&mut self, request: RequestId, node_id: PublicKey) {
        let Some(conn) = self.peers.get_mut(&node_id).and_then(|p| p.conn.take()) else {
            let msg = format!("peer {node_id} is not connected");
            return self.reply(request, Err(CmdError::invalid(msg)));
        };
        // The live connection is forgotten, so its coming disconnection is ignored and no
        // redial starts: the user asked for this.
        self.after
            .push(After::Out(crate::types::Output::Disconnect {
                node_id,
                conn,
                reason: "disconnect requested".into(),
            }));
        self.channels_down(node_id, "disconnect requested");
        self.reply(request, Ok(Response::Disconnected(node_id)));
    }

    /// Whether a commitment is held back because it only settles the peer's updates
    /// ([`fulmen_channel::machine::Channel::commitment_only_settles`]): the shell then calls
    /// [`Manager::handle_wake`] shortly (the node daemon after [`crate::COMMIT_DELAY_MS`]).
    pub fn has_held_commitments(&self) -> bool {
        self.channels.iter().any(|e| e.ch.commitment_only_settles())
    }

    /// The held-back commitments go out at the next [`Manager::poll_persist`].
    pub fn handle_wake(&mut self) {
        self.commit_now = true;
    }

    /// Handles every channel's pending events (settlements, forwards, payments ending)
    /// without signing a commitment: what they queue that may leave before the write (a
    /// fulfill) can then go before the turn's signing, not after it.
    pub(crate) fn handle_channel_events(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.channels.len() {
                busy |= self.handle_events_of(i);
            }
            if !busy {
                return;
            }
        }
    }

    /// Handles channel `i`'s pending events; true if there were any.
    fn handle_events_of(&mut self, i: usize) -> bool {
        let mut any = false;
        while let Some(ev) = self.channels.get_mut(i).and_then(|e| e.ch.poll_event()) {
            any = true;
            self.on_channel_event(i, ev);
        }
        any
    }

    /// Drives every channel until it is idle: events handled, commitments sent (except one
    /// that only settles the peer's updates, held back until our next update or
    /// [`Manager::handle_wake`]). A channel whose commitment cannot be built is not retried
    /// within the turn.
    pub(crate) fn drive_channels(&mut self) {
        // Bounded: every pass either handles events or signs a commitment, and a channel
        // that failed to sign is skipped for the rest of the turn.
        let mut stuck = std::collections::HashSet::new();
        let commit_now = self.commit_now;
        loop {
            let mut busy = false;
            for i in 0..self.channels.len() {
                busy |= self.handle_events_of(i);
                let Some(e) = self.channels.get_mut(i) else {
                    continue;
                };
                // A commitment that only settles the peer's updates waits for our next
                // update, or for the wake-up the shell sends shortly after the turn.
                if !stuck.contains(&i)
                    && e.ch.can_send_commitment()
                    && (commit_now || !e.ch.commitment_only_settles())
                {
                    match e.ch.send_commitment() {
                        Ok(()) => busy = true,
                        Err(err) => {
                            tracing::warn!(channel = e.id, error = %err, "send_commitment");
                            stuck.insert(i);
                        }
                    }
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn on_channel_event(&mut self, i: usize, ev: Event) {
        match ev {
            Event::FundingGenerationReady {
                script_pubkey,
                value,
            } => self.fund_channel(i, script_pubkey, value),
            Event::FundingSigned { outpoint } => {
                let Some(e) = self.channels.get_mut(i) else {
                    return;
                };
                let Some(tx) = e.funding_tx.clone() else {
                    tracing::error!("funding signed but no funding transaction");
                    return;
                };
                let res = OpenResult {
                    channel_id: hex::encode(e.ch.channel_id()),
                    funding_txid: outpoint.txid.to_string(),
                    funding_output: outpoint.vout,
                };
                let waiter = e.open_waiter.take();
                self.after.push(After::Broadcast(tx));
                if let Some(w) = waiter {
                    self.reply(w, Ok(Response::Opened(res)));
                }
            }
            Event::ChannelReady => {
                if let Some(e) = self.channels.get(i) {
                    tracing::info!(channel = %hex::encode(e.ch.channel_id()), peer = %e.peer, "channel ready");
                    let ev = NodeEvent::ChannelReady {
                        channel_id: e.ch.channel_id(),
                        peer: e.peer,
                    };
                    self.event(ev);
                }
            }
            Event::HtlcReceived { id, htlc, onion } => {
                self.on_htlc_received(i, id, htlc, onion, false)
            }
            Event::HtlcMustFail { id, htlc, onion } => {
                self.on_htlc_received(i, id, htlc, onion, true)
            }
            Event::HtlcFulfilled { id, preimage } => {
                let chan = self.channels.get(i).map_or(0, |e| e.id);
                if !self.forward_resolved(chan, id, Downstream::Fulfilled(preimage)) {
                    self.on_htlc_settled(i, id, Ok(preimage.0));
                }
            }
            Event::HtlcFailed { id, reason } => {
                let chan = self.channels.get(i).map_or(0, |e| e.id);
                if !self.forward_resolved(chan, id, Downstream::FailedOnion(reason.clone())) {
                    self.on_htlc_failed(i, id, reason);
                }
            }
            Event::HtlcFailedMalformed {
                id,
                failure_code,
                sha256_of_onion,
            } => {
                let chan = self.channels.get(i).map_or(0, |e| e.id);
                let f = malformed_failure(failure_code, sha256_of_onion);
                if !self.forward_resolved(chan, id, Downstream::FailedHere(f)) {
                    self.on_htlc_settled(
                        i,
                        id,
                        Err(format!(
                            "the peer could not parse the onion (failure code {failure_code:#06x})"
                        )),
                    );
                }
            }
            Event::ShutdownReceived => {
                let script = self.wallet.sweep_script();
                if let Some(e) = self.channels.get_mut(i) {
                    if e.ch.state().local_shutdown.is_none() {
                        if let Err(err) = e.ch.shutdown(script) {
                            tracing::warn!(error = %err, "answering shutdown");
                        }
                    }
                }
            }
            Event::Closed { reason } => {
                let Some(e) = self.channels.get_mut(i) else {
                    return;
                };
                tracing::info!(channel = %hex::encode(e.ch.channel_id()), %reason, "channel closed");
                e.close_reason = Some(reason.to_string());
                if let (CloseReason::FundingTimeout { .. }, Some(tx)) = (&reason, &e.funding_tx) {
                    // Our funding never confirmed: stop broadcasting it, take the coins back.
                    let txid = tx.compute_txid();
                    self.unconfirmed.remove(&txid);
                    self.wallet.evict_tx(txid, self.now);
                }
                let waiter = e.open_waiter.take();
                let ev = NodeEvent::ChannelClosed {
                    channel_id: e.ch.channel_id(),
                    peer: e.peer,
                    reason: reason.to_string(),
                };
                if let Some(w) = waiter {
                    let msg = format!("channel open failed: {reason}");
                    self.reply(w, Err(CmdError::failed(msg)));
                }
                self.event(ev);
                // Payments pending on a failed channel stay pending: their HTLCs resolve on
                // chain, and marking them failed would invite paying twice.
            }
        }
    }

    fn fund_channel(&mut self, i: usize, script: ScriptBuf, value: Amount) {
        let aux = self.random32();
        let built = self
            .wallet
            .fund_script(script, value, self.config.funding_sat_per_vb, aux);
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        let failure = match built {
            Ok(b) => {
                let outpoint = OutPoint {
                    txid: b.txid,
                    vout: b.output_index,
                };
                match e.ch.handle_funding_tx(outpoint) {
                    Ok(()) => {
                        self.pending.funding_txs.push((e.id, b.tx.clone()));
                        e.funding_tx = Some(b.tx);
                        None
                    }
                    Err(err) => {
                        self.wallet.cancel_tx(&b.tx);
                        Some(format!("funding refused: {err}"))
                    }
                }
            }
            Err(err) => Some(format!("cannot fund the channel: {err}")),
        };
        if let Some(msg) = failure {
            if let Some(w) = self.channels.get_mut(i).and_then(|e| e.open_waiter.take()) {
                self.reply(w, Err(CmdError::failed(msg)));
            }
        }
    }

    /// An opening that cannot resume: its funding is never broadcast, its coins return to
    /// the wallet, whoever waits on it is told.
    pub(crate) fn abandon_opening(&mut self, i: usize, why: &str) {
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        if let Some(tx) = &e.funding_tx {
            self.wallet.cancel_tx(tx);
        }
        e.close_reason = Some(why.to_string());
        let waiter = e.open_waiter.take();
        if let Some(w) = waiter {
            self.reply(w, Err(CmdError::failed(why.to_string())));
        }
    }

    /// A channel handed out a transaction to broadcast: its cooperative closing transaction
    /// (recorded as the channel's closing tx), or our commitment after a failure (a force
    /// close: recorded as the channel's force-close commitment, never as a closing tx).
    /// Either is in this turn's writes and broadcast once they are durable.
    pub(crate) fn on_channel_broadcast(&mut self, id: i64, b: Broadcast) {
        let Some(e) = self.channels.iter_mut().find(|e| e.id == id) else {
            return;
        };
        let tx = b.tx;
        if let BroadcastKind::Commitment { number } = b.kind {
            let txid = tx.compute_txid();
            tracing::warn!(channel = %hex::encode(e.ch.channel_id()), commitment = number, %txid, "force close: broadcasting our commitment");
            self.pending.commitment_txs.push((id, tx.clone()));
            e.force_close_tx = Some(tx.clone());
            let waiters = std::mem::take(&mut e.close_waiters);
            self.after.push(After::Broadcast(tx.clone()));
            for w in waiters {
                let why =
                    format!("the channel failed; our commitment {number} was broadcast ({txid})");
                self.reply(w, Err(CmdError::failed(why)));
            }
            self.monitor_force_closed(id, &tx);
            // A force close we asked for: the peer learns it once our commitment is out.
            if let Some(e) = self.channels.iter().find(|e| e.id == id) {
                if matches!(e.ch.close_reason(), Some(CloseReason::ForceClosed)) {
                    let (peer, cid) = (e.peer, e.ch.channel_id());
                    let text = CloseReason::ForceClosed.to_string();
                    let err = fulmen_wire::msgs::Error::text(cid, &text);
                    self.send_after(peer, fulmen_wire::Message::Error(err));
                }
            }
            return;
        }
        self.pending.closing_txs.push((id, tx.clone()));
        let res = CloseResult {
            channel_id: hex::encode(e.ch.channel_id()),
            closing_txid: tx.compute_txid().to_string(),
        };
        e.closing_tx = Some(tx.clone());
        let waiters = std::mem::take(&mut e.close_waiters);
        self.after.push(After::Broadcast(tx));
        for w in waiters {
            self.reply(w, Ok(Response::Closed(res.clone())));
        }
    }

    /// Takes in one stored channel rebuilt by [`rebuild_channel`] (`None`: it has no
    /// records): its transactions, what waits on the chain, its peer.
    pub(crate) fn restore_channel(&mut self, stored: &StoredChannel, rebuilt: Option<Rebuilt>) {
        self.next_channel_id = self.next_channel_id.max(stored.id + 1);
        let Some(Rebuilt { ch, monitor }) = rebuilt else {
            return;
        };
        let mut e = ChannelEntry::new(stored.id, stored.peer, ch);
        e.funding_tx = stored.funding_tx.clone();
        e.closing_tx = stored.closing_tx.clone();
        e.force_close_tx = stored.commitment_tx.clone();
        e.closing_height = stored.closing_height;
        match monitor {
            Some(Ok(m)) => e.monitor = Some(m),
            Some(Err(err)) => {
                tracing::error!(channel = stored.id, error = %err, "monitor does not restore")
            }
            None => {}
        }
        // Re-broadcast until the funding is seen spent (the chain follower drops what
        // confirms).
        for tx in e.closing_tx.iter().chain(&e.force_close_tx) {
            self.unconfirmed.insert(tx.compute_txid(), tx.clone());
        }
        if e.is_unsigned_opening() {
            // Never broadcast a funding transaction whose commitment the peer has not
            // signed: the opening is abandoned, its coins go back to the wallet.
            if let Some(tx) = &e.funding_tx {
                self.wallet.cancel_tx(tx);
            }
            e.close_reason = Some("opening abandoned: interrupted by a restart".into());
        } else if let (Some(tx), None) = (&e.funding_tx, e.ch.state().funding_confirmed_height) {
            self.unconfirmed.insert(tx.compute_txid(), tx.clone());
        }
        self.peers.entry(stored.peer).or_default();
        self.channels.push(e);
    }
}

/// A stored channel's state machine and monitor rebuilt from their records.
pub(crate) struct Rebuilt {
    ch: Channel,
    /// `None` before the monitor exists; an error is logged, the channel still restores.
    monitor: Option<Result<ChannelMonitor, MonitorError>>,
}

/// Rebuilds one stored channel from its records: pure computation (key derivations, the
/// records replayed), so the node's channels are rebuilt on every core at start
/// ([`fulmen_channel::parallel::map_in_order`]). `None` for a channel without records.
pub(crate) fn rebuild_channel(
    keys: &SeedKeySource,
    config: &ChannelConfig,
    dev: bool,
    stored: &StoredChannel,
) -> Result<Option<Rebuilt>, ManagerError> {
    if stored.records.is_empty() {
        return Ok(None);
    }
    let mut ch = Channel::restore(keys, config.clone(), &stored.records).map_err(|source| {
        ManagerError::Channel {
            id: stored.id,
            source,
        }
    })?;
    if stored.old_format {
        ch.mark_for_compaction();
    }
    let monitor = (!stored.monitor_records.is_empty()).then(|| {
        ChannelMonitor::restore(keys, &stored.monitor_records).map(|mut m| {
            // Monitors compact like their channels (`ChannelConfig::snapshot_every`).
            m.set_snapshot_every(config.snapshot_every);
            // Only a dev node keeps its own revoked commitments (a channel opened by one
            // that now runs as a real node lets them go).
            m.set_keep_old_commitments(dev);
            if stored.old_format {
                m.mark_for_compaction();
            }
            m
        })
    });
    Ok(Some(Rebuilt { ch, monitor }))
}

/// The failure an upstream node reports for a downstream `update_fail_malformed_htlc`
/// (BOLT 4: the node that could not parse the onion cannot encrypt an error, so its upstream
/// peer creates one with the code it sent).
fn malformed_failure(code: u16, sha256_of_onion: [u8; 32]) -> fulmen_htlc::FailureMessage {
    use fulmen_htlc::FailureMessage;
    match code & 0xff {
        4 => FailureMessage::InvalidOnionVersion { sha256_of_onion },
        5 => FailureMessage::InvalidOnionHmac { sha256_of_onion },
        6 => FailureMessage::InvalidOnionKey { sha256_of_onion },
        _ => FailureMessage::InvalidOnionVersion { sha256_of_onion },
    }
}
