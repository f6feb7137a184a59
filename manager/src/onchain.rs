//! The node's channels on chain: one [`ChannelMonitor`] per channel, created once both
//! commitments 0 are signed, synced with its channel at the end of every turn (its records go
//! in the same batch as the channel's), fed every block and every reorg; its claims are
//! broadcast once its records are durable, and its events settle payments and invoices.
//! Also the force close, the dev commands that break the rules on purpose, and the views of
//! closing outputs (`listchannels`, `balance --detail`).
//!
//! Owns: [`ChannelEntry::monitor`] and the on-chain outcome of payments. Must never: release
//! a `commitment_signed` or `revoke_and_ack` before the monitor records of the same turn are
//! durable (they travel in one batch), or run a dev command on a node without `--dev`.

use bitcoin::{Block, Transaction};
use fulmen_channel::machine::HtlcInfo;
use fulmen_channel::monitor::{
    ChannelMonitor, HtlcOutcome, MonitorEvent, OutputKind, OutputStatus, Resolution, RevokedHtlc,
};
use fulmen_htlc::PaymentPreimage;
use fulmen_wire::msgs::OnionPacket;

use crate::api::{
    BalanceDetailResult, CloseResult, ClosingInfo, ClosingOutput, DevBroadcastResult,
    InvoiceStatus, LimboOutput,
};
use crate::manager::{After, ChannelEntry, Manager};
use crate::types::{CmdError, NodeEvent, Output, RequestId, Response, Writes};

/// A monitor's records and the HTLC sets its snapshots archived, into the turn's writes.
fn take_monitor_writes(w: &mut Writes, id: i64, m: &mut ChannelMonitor) {
    w.monitor_records
        .extend(m.take_records().into_iter().map(|r| (id, r)));
    w.revoked_htlcs
        .extend(m.take_archived().into_iter().map(|c| (id, c)));
}

/// An incoming HTLC kept unsettled by `dev hold-htlcs on`.
#[derive(Debug, Clone)]
pub(crate) struct HeldHtlc {
    pub channel: i64,
    pub id: u64,
    pub htlc: HtlcInfo,
    pub onion: OnionPacket,
    pub must_fail: bool,
}

fn kind_name(k: OutputKind) -> &'static str {
    match k {
        OutputKind::ToLocal => "to_local",
        OutputKind::ToRemote => "to_remote",
        OutputKind::OfferedHtlc => "offered_htlc",
        OutputKind::ReceivedHtlc => "received_htlc",
        OutputKind::SecondStage => "second_stage",
        OutputKind::Revoked => "revoked",
        OutputKind::Peer => "peer",
    }
}

fn state_name(s: &OutputStatus) -> &'static str {
    match s {
        OutputStatus::Waiting { .. } => "waiting",
        OutputStatus::NeedsPreimage => "needs_preimage",
        OutputStatus::ClaimBroadcast { .. } => "claim_broadcast",
        OutputStatus::Swept { .. } => "swept",
        OutputStatus::SpentByPeer { .. } => "spent_by_peer",
        OutputStatus::NotOurs => "not_ours",
        OutputStatus::Uneconomical => "uneconomical",
    }
}

/// True for an output that is ours and not yet in the wallet (nor given up).
fn in_limbo(s: &OutputStatus, k: OutputKind) -> bool {
    k != OutputKind::Peer
        && matches!(
            s,
            OutputStatus::Waiting { .. }
                | OutputStatus::NeedsPreimage
                | OutputStatus::ClaimBroadcast { .. }
        )
}

impl Manager {
    /// Have every channel's monitor build the justice transaction of each counterparty
    /// commitment it revokes from now on, for a watchtower; take them with
    /// [`Manager::take_justice_backups`].
    pub fn enable_justice_backups(&mut self) {
        self.justice_backups = true;
        for e in &mut self.channels {
            if let Some(m) = e.monitor.as_mut() {
                m.set_justice_backups(true);
            }
        }
    }

    /// The justice backups built since the last call: (local channel id, backup).
    pub fn take_justice_backups(&mut self) -> Vec<(i64, fulmen_channel::monitor::JusticeBackup)> {
        std::mem::take(&mut self.justice_queue)
    }

    /// Creates the monitors of channels that can be monitored and syncs every monitor with
    /// its channel; their records join this turn's writes.
    pub(crate) fn sync_monitors(&mut self) {
        let feerate = self.fee_estimator().0;
        for i in 0..self.channels.len() {
            let needs = self.channels.get(i).is_some_and(|e| {
                e.monitor.is_none()
                    && e.ch.state().local_commit.is_some()
                    && !e.is_unsigned_opening()
            });
            if needs {
                let script = self.wallet.sweep_script();
                let dev = self.config.dev;
                let Some(e) = self.channels.get_mut(i) else {
                    continue;
                };
                match ChannelMonitor::setup_for(e.ch.state(), script, feerate, dev)
                    .and_then(|s| ChannelMonitor::new(&self.key_source, s))
                {
                    Ok(mut m) => {
                        m.set_justice_backups(self.justice_backups);
                        m.set_snapshot_every(self.config.channel_config.snapshot_every);
                        e.monitor = Some(m);
                        e.monitor_synced = None;
                    }
                    Err(err) => tracing::error!(channel = e.id, error = %err, "monitor"),
                }
            }
            let Some(e) = self.channels.get_mut(i) else {
                continue;
            };
            if let Some(m) = e.monitor.as_mut() {
                // `sync` reads only the channel's state: nothing to do while it is unchanged
                // (a node with a thousand channels synced every monitor every turn).
                let version = e.ch.state_version();
                if e.monitor_synced != Some(version) {
                    m.sync(e.ch.state());
                    e.monitor_synced = Some(version);
                }
                let id = e.id;
                take_monitor_writes(&mut self.pending, id, m);
                while let Some(b) = m.poll_justice_backup() {
                    self.justice_queue.push((id, b));
                }
            }
        }
        self.drain_monitors();
    }

    /// Every monitor sees the block.
    pub(crate) fn monitors_block_connected(&mut self, block: &Block, height: u32) {
        // An archived state asked for and not answered (a read that failed) is asked again.
        self.revoked_htlcs_asked.clear();
        for e in &mut self.channels {
            if let Some(m) = e.monitor.as_mut() {
                m.block_connected(height, &block.txdata);
            }
        }
        self.drain_monitors();
    }

    /// Every monitor forgets the blocks above `fork_height`.
    pub(crate) fn monitors_blocks_disconnected(&mut self, fork_height: u32) {
        for e in &mut self.channels {
            if let Some(m) = e.monitor.as_mut() {
                m.blocks_disconnected(fork_height);
            }
        }
        self.drain_monitors();
    }

    /// Monitors hand out every claim still needed (after a restart).
    pub(crate) fn monitors_rebroadcast(&mut self) {
        let height = self.height;
        for e in &mut self.channels {
            if let Some(m) = e.monitor.as_mut() {
                m.rebroadcast(height);
            }
        }
        self.drain_monitors();
    }

    /// Monitor records into the turn's writes, claims to broadcast after them, events acted on.
    fn drain_monitors(&mut self) {
        let mut events = Vec::new();
        for e in &mut self.channels {
            let Some(m) = e.monitor.as_mut() else {
                continue;
            };
            let id = e.id;
            take_monitor_writes(&mut self.pending, id, m);
            while let Some(b) = m.poll_broadcast() {
                let txid = b.tx.compute_txid();
                tracing::info!(channel = id, what = b.what, %txid, "on-chain claim");
                self.after.push(After::Broadcast(b.tx));
            }
            // A revoked commitment of the peer's confirmed and its HTLC set is archived: ask
            // the shell (once per block), after this turn's writes are durable.
            if let Some(number) = m.wanted_revoked_htlcs() {
                if self.revoked_htlcs_asked.insert((id, number)) {
                    tracing::info!(channel = id, number, "reading an archived revoked state");
                    self.after.push(After::Out(Output::LoadRevokedHtlcs {
                        channel: id,
                        number,
                    }));
                }
            }
            while let Some(ev) = m.poll_event() {
                events.push((id, ev));
            }
        }
        for (id, ev) in events {
            self.on_monitor_event(id, ev);
        }
    }

    /// Before a clean stop: every channel and every monitor that wrote records since its
    /// last snapshot writes one now (in the next [`Manager::poll_persist`]), so the next
    /// start reads one channel record and one monitor record per channel instead of tails
    /// of up to `snapshot_every` records each.
    pub fn compact_logs(&mut self) {
        for e in &mut self.channels {
            e.ch.compact();
            if let Some(m) = e.monitor.as_mut() {
                m.compact();
            }
        }
    }

    /// The shell's answer to [`Output::LoadRevokedHtlcs`]: the archived HTLCs of revoked
    /// commitment `number` of channel `channel` (empty if the archive has no row for it).
    /// The monitor then resolves the breach: its justice claims go out after this turn's
    /// writes.
    pub fn handle_revoked_htlcs(&mut self, channel: i64, number: u64, htlcs: Vec<RevokedHtlc>) {
        let Some(m) = self
            .channels
            .iter_mut()
            .find(|e| e.id == channel)
            .and_then(|e| e.monitor.as_mut())
        else {
            return;
        };
        m.provide_revoked_htlcs(number, htlcs);
        self.drain_monitors();
    }

    fn on_monitor_event(&mut self, chan: i64, ev: MonitorEvent) {
        let Some(i) = self.channels.iter().position(|e| e.id == chan) else {
            return;
        };
        match ev {
            MonitorEvent::FundingSpent { kind, txid, height } => {
                tracing::warn!(channel = chan, %kind, %txid, height, "funding output spent");
                if let Some(e) = self.channels.get_mut(i) {
                    if let fulmen_channel::monitor::SpendKind::Unknown(why) = &kind {
                        tracing::error!(channel = chan, %why, "impossible spend of the funding output");
                        e.close_reason = Some(format!("impossible funding spend: {why}"));
                    }
                }
            }
            MonitorEvent::PreimageLearned { preimage } => {
                tracing::info!(channel = chan, hash = %preimage.payment_hash(), "preimage learned on chain");
                self.settle_payment_by_hash(&preimage);
                self.forward_preimage(&preimage);
            }
            MonitorEvent::HtlcResolved {
                offered_by_us,
                id,
                payment_hash,
                outcome,
            } => match (offered_by_us, outcome) {
                (true, HtlcOutcome::TimedOut) => {
                    let f = fulmen_htlc::FailureMessage::PermanentChannelFailure;
                    let downstream = crate::forward::Downstream::FailedHere(f);
                    if !self.forward_resolved(chan, id, downstream) {
                        self.on_htlc_settled(
                            i,
                            id,
                            Err("the HTLC was resolved on chain by timeout".into()),
                        );
                    }
                }
                (true, HtlcOutcome::Fulfilled) => {}
                (false, HtlcOutcome::Fulfilled) => {
                    let key = hex::encode(payment_hash.0);
                    if let Some(mut rec) = self.invoices.get(&key).cloned() {
                        if rec.info.status != InvoiceStatus::Paid {
                            rec.info.status = InvoiceStatus::Paid;
                            rec.info.paid_at = Some(self.now);
                            let info = rec.info.clone();
                            self.save_invoice(rec);
                            self.event(NodeEvent::InvoicePaid(info));
                        }
                    }
                }
                (false, HtlcOutcome::TimedOut) => {}
            },
            MonitorEvent::OutputSwept {
                outpoint,
                txid,
                height,
            } => {
                tracing::info!(channel = chan, %outpoint, %txid, height, "output swept");
            }
            MonitorEvent::FullyResolved => {
                tracing::info!(channel = chan, "every output of the closing is resolved");
            }
        }
    }

    /// A preimage seen on chain succeeds the pending payment with its hash.
    fn settle_payment_by_hash(&mut self, preimage: &PaymentPreimage) {
        let key = hex::encode(preimage.payment_hash().0);
        let Some(rec) = self.payments.get(&key) else {
            return;
        };
        let (Some(chan), Some(htlc), true) = (rec.channel, rec.htlc_id, rec.is_pending()) else {
            return;
        };
        if let Some(i) = self.channels.iter().position(|e| e.id == chan) {
            self.on_htlc_settled(i, htlc, Ok(preimage.0));
        }
    }

    /// Invoice preimages for HTLCs a closed channel's monitor could claim on chain.
    /// Only the HTLCs a closed channel's monitor still wants are looked up (by hash), so a
    /// turn costs nothing per invoice.
    pub(crate) fn feed_invoice_preimages(&mut self) {
        if self.hold_htlcs {
            return;
        }
        let mut wanted = Vec::new();
        for (n, e) in self.channels.iter().enumerate() {
            let Some(m) = &e.monitor else { continue };
            if !e.is_closed() {
                continue;
            }
            for hash in m.wanted_preimages() {
                let pre = self
                    .invoices
                    .get(&hex::encode(hash.0))
                    .and_then(|rec| crate::payments::parse_hex32(&rec.preimage));
                if let Some(pre) = pre {
                    wanted.push((n, PaymentPreimage(pre)));
                }
            }
        }
        for (n, p) in wanted {
            if let Some(m) = self.channels.get_mut(n).and_then(|e| e.monitor.as_mut()) {
                m.provide_preimage(p);
            }
        }
    }

    /// `closechannel --force`: our latest commitment goes out now.
    pub(crate) fn force_close(&mut self, request: RequestId, channel_id: [u8; 32]) {
        let Some(i) = self.channel_index(&channel_id) else {
            let msg = format!("unknown channel {}", hex::encode(channel_id));
            return self.reply(request, Err(CmdError::invalid(msg)));
        };
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        if let Some(tx) = e.leaving_tx() {
            let res = CloseResult {
                channel_id: hex::encode(e.ch.channel_id()),
                closing_txid: tx.compute_txid().to_string(),
            };
            return self.reply(request, Ok(Response::Closed(res)));
        }
        match e.ch.force_close() {
            Ok(()) => e.force_close_waiters.push(request),
            Err(err) => {
                let msg = format!("cannot force-close: {err}");
                self.reply(request, Err(CmdError::failed(msg)));
            }
        }
    }

    /// `dev broadcast-revoked`.
    pub(crate) fn dev_broadcast_revoked(
        &mut self,
        request: RequestId,
        channel_id: [u8; 32],
        number: Option<u64>,
    ) {
        if !self.config.dev {
            return self.reply(request, Err(dev_only()));
        }
        let Some(e) = self
            .channel_index(&channel_id)
            .and_then(|i| self.channels.get(i))
        else {
            let msg = format!("unknown channel {}", hex::encode(channel_id));
            return self.reply(request, Err(CmdError::invalid(msg)));
        };
        let Some((n, tx)) = e
            .monitor
            .as_ref()
            .and_then(|m| m.revoked_local_commitment(number))
        else {
            let msg = match number {
                Some(n) => format!("no revoked commitment {n} kept for this channel"),
                None => "no revoked commitment kept for this channel (pay first)".to_string(),
            };
            return self.reply(request, Err(CmdError::failed(msg)));
        };
        let to_us_sat = e
            .monitor
            .as_ref()
            .map_or(0, |m| m.revoked_balance_msat(n).unwrap_or(0) / 1000);
        let res = DevBroadcastResult {
            channel_id: hex::encode(e.ch.channel_id()),
            commitment_number: n,
            txid: tx.compute_txid().to_string(),
            to_us_sat,
        };
        tracing::warn!(commitment = n, txid = %res.txid, "dev: broadcasting a revoked commitment");
        self.after
            .push(After::Out(crate::types::Output::Broadcast(tx)));
        self.reply(request, Ok(Response::DevBroadcast(res)));
    }

    /// `dev hold-htlcs on|off`: releasing settles every held HTLC now.
    pub(crate) fn dev_hold_htlcs(&mut self, request: RequestId, on: bool) {
        if !self.config.dev {
            return self.reply(request, Err(dev_only()));
        }
        self.hold_htlcs = on;
        if !on {
            for h in std::mem::take(&mut self.held) {
                if let Some(i) = self.channels.iter().position(|e| e.id == h.channel) {
                    self.on_htlc_received(i, h.id, h.htlc, h.onion, h.must_fail);
                }
            }
        }
        self.reply(request, Ok(Response::HoldHtlcs(on)));
    }

    /// The closing of a channel whose funding output is spent, as `listchannels` shows it.
    pub(crate) fn closing_info(&self, e: &ChannelEntry) -> Option<ClosingInfo> {
        let r = e.monitor.as_ref()?.resolution()?;
        Some(self.closing_view(&r))
    }

    fn closing_view(&self, r: &Resolution) -> ClosingInfo {
        let outputs = r
            .outputs
            .iter()
            .map(|o| {
                let (spendable_at, txid, spent_height) = match o.status {
                    OutputStatus::Waiting { spendable_at } => (Some(spendable_at), None, None),
                    OutputStatus::ClaimBroadcast { txid } => (None, Some(txid), None),
                    OutputStatus::Swept { txid, height }
                    | OutputStatus::SpentByPeer { txid, height } => {
                        (None, Some(txid), Some(height))
                    }
                    _ => (None, None, None),
                };
                ClosingOutput {
                    outpoint: o.outpoint.to_string(),
                    amount_sat: o.amount_sat,
                    kind: kind_name(o.kind).into(),
                    state: state_name(&o.status).into(),
                    spendable_at,
                    blocks_left: spendable_at.map(|h| h.saturating_sub(self.height + 1)),
                    txid: txid.map(|t| t.to_string()),
                    spent_height,
                }
            })
            .collect();
        ClosingInfo {
            kind: r.kind.to_string(),
            commitment_txid: r.commitment_txid.to_string(),
            height: r.height,
            outputs,
            claim_fees_sat: r.claim_fees_sat,
            resolved: r.is_final(),
        }
    }

    /// `balance --detail`.
    pub(crate) fn balance_detail(&self) -> BalanceDetailResult {
        let b = self.balance();
        let mut in_flight_in = 0u64;
        let mut limbo = Vec::new();
        let mut claim_fees = 0u64;
        for e in &self.channels {
            let st = e.ch.state();
            if !e.is_closed() {
                if let Some(c) = &st.local_commit {
                    in_flight_in += c
                        .spec
                        .offered_by_them
                        .values()
                        .map(|h| h.amount_msat)
                        .sum::<u64>();
                }
            }
            let Some(r) = e.monitor.as_ref().and_then(|m| m.resolution()) else {
                continue;
            };
            claim_fees += r.claim_fees_sat;
            for o in &r.outputs {
                if in_limbo(&o.status, o.kind) {
                    limbo.push(LimboOutput {
                        channel_id: hex::encode(e.ch.channel_id()),
                        outpoint: o.outpoint.to_string(),
                        amount_sat: o.amount_sat,
                        kind: kind_name(o.kind).into(),
                        state: state_name(&o.status).into(),
                        spendable_at: match o.status {
                            OutputStatus::Waiting { spendable_at } => Some(spendable_at),
                            _ => None,
                        },
                    });
                }
            }
        }
        let in_limbo_sat: u64 = limbo.iter().map(|o| o.amount_sat).sum();
        let claimable_now_sat = limbo
            .iter()
            .filter(|o| o.state == "claim_broadcast")
            .map(|o| o.amount_sat)
            .sum();
        // A closing whose commitment is not yet confirmed is still counted by `balance` as
        // pending_close (inside the wallet's unconfirmed); confirmed closings are here.
        BalanceDetailResult {
            total_sat: b.total_sat + in_limbo_sat,
            onchain: b.onchain,
            channels_local_msat: b.channels_local_msat,
            in_flight_out_msat: b.channels_htlc_out_msat,
            in_flight_in_msat: in_flight_in,
            pending_open_sat: b.pending_open_sat,
            closing_outputs: limbo,
            in_limbo_sat,
            claimable_now_sat,
            claim_fees_sat: claim_fees,
        }
    }

    /// Our commitment went out (force close): the monitor keeps it broadcast until the
    /// funding output is spent.
    pub(crate) fn monitor_force_closed(&mut self, id: i64, tx: &Transaction) {
        if let Some(e) = self.channels.iter_mut().find(|e| e.id == id) {
            if let Some(m) = e.monitor.as_mut() {
                m.force_closed();
            }
            let res = CloseResult {
                channel_id: hex::encode(e.ch.channel_id()),
                closing_txid: tx.compute_txid().to_string(),
            };
            let waiters = std::mem::take(&mut e.force_close_waiters);
            for w in waiters {
                self.reply(w, Ok(Response::Closed(res.clone())));
            }
        }
        self.drain_monitors();
    }

    /// `dev hold-htlcs on` keeps this HTLC: true if it was held.
    pub(crate) fn maybe_hold(
        &mut self,
        i: usize,
        id: u64,
        htlc: HtlcInfo,
        onion: &OnionPacket,
        must_fail: bool,
    ) -> bool {
        if !self.hold_htlcs {
            return false;
        }
        let Some(channel) = self.channels.get(i).map(|e| e.id) else {
            return false;
        };
        tracing::warn!(channel, htlc = id, "dev: holding an incoming HTLC");
        self.held.push(HeldHtlc {
            channel,
            id,
            htlc,
            onion: onion.clone(),
            must_fail,
        });
        true
    }
}

fn dev_only() -> CmdError {
    CmdError::failed("dev commands need a node started with --dev")
}
