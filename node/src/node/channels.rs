//! The node's channel side: peers connecting and leaving, messages routed to channels,
//! channel events acted on, opening and cooperative closing.
//!
//! Owns: mapping peer messages to channels (by channel id or temporary id), creating
//! inbound channels from `open_channel`, funding outbound ones from the wallet, reconnect
//! tasks, and the lifecycle bookkeeping of [`ChannelEntry`]. Must never: send a channel
//! message itself (messages leave in [`Node::flush`], after the write).

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, OutPoint, Transaction};
use fulmen_channel::machine::{Broadcast, BroadcastKind, Channel, ChannelError, Event, Phase};
use fulmen_wire::Message;

use super::api::{CloseResult, OpenResult, PeerInfo};
use super::state::{After, ChannelEntry, CmdError, Input, Node, Reply};
use crate::peer::{Backoff, PeerEvent};

/// The channel id a channel message is about (temporary id for the opening messages).
pub fn message_channel_id(msg: &Message) -> Option<[u8; 32]> {
    Some(match msg {
        Message::AcceptChannel(m) => m.temporary_channel_id,
        Message::FundingCreated(m) => m.temporary_channel_id,
        Message::FundingSigned(m) => m.channel_id,
        Message::ChannelReady(m) => m.channel_id,
        Message::Shutdown(m) => m.channel_id,
        Message::ClosingSigned(m) => m.channel_id,
        Message::UpdateAddHtlc(m) => m.channel_id,
        Message::UpdateFulfillHtlc(m) => m.channel_id,
        Message::UpdateFailHtlc(m) => m.channel_id,
        Message::CommitmentSigned(m) => m.channel_id,
        Message::RevokeAndAck(m) => m.channel_id,
        Message::UpdateFee(m) => m.channel_id,
        Message::UpdateFailMalformedHtlc(m) => m.channel_id,
        Message::ChannelReestablish(m) => m.channel_id,
        Message::Error(m) => m.channel_id,
        _ => return None,
    })
}

/// Most channels one peer may have pending (not yet confirmed) with us.
const MAX_PENDING_INBOUND_PER_PEER: usize = 8;

impl Node {
    /// A new connection: keep it (replacing none — a duplicate is closed), spawn its reader,
    /// and reestablish every channel with the peer.
    pub fn on_connected(
        &mut self,
        peer: Box<crate::peer::Peer>,
        dialled: Option<String>,
        reply: Option<Reply<PeerInfo>>,
    ) {
        let node_id = peer.remote_node_id;
        let slot = self.peers.entry(node_id).or_default();
        if slot.sender.is_some() {
            // Already connected: keep the existing link.
            if let Some(r) = reply {
                let _ = r.send(Ok(self.peer_info(&node_id)));
            }
            tokio::spawn(async move { peer.close("duplicate connection").await });
            return;
        }
        self.next_conn += 1;
        let conn = self.next_conn;
        slot.sender = Some(peer.sender());
        slot.conn = conn;
        slot.inbound = dialled.is_none();
        if dialled.is_some() {
            slot.address = dialled.clone();
        }
        self.pending
            .peers
            .push((hex::encode(node_id.serialize()), dialled));
        tracing::info!(%node_id, addr = %peer.remote_addr, "peer connected");
        let inputs = self.inputs.clone();
        let mut peer = peer;
        tokio::spawn(async move {
            while let Some(ev) = peer.recv().await {
                let input = match ev {
                    PeerEvent::Message(msg) => Input::PeerMessage { node_id, conn, msg },
                    PeerEvent::Disconnected(r) => Input::Disconnected {
                        node_id,
                        conn,
                        reason: r.to_string(),
                    },
                };
                if inputs.send(input).is_err() {
                    break;
                }
            }
        });
        for e in self.channels.iter_mut().filter(|e| e.peer == node_id) {
            if e.ch.state().phase == Phase::Closed {
                continue;
            }
            if let Err(err) = e.ch.handle_reconnect() {
                tracing::warn!(%node_id, error = %err, "reestablish");
            }
        }
        if let Some(r) = reply {
            let _ = r.send(Ok(self.peer_info(&node_id)));
        }
    }

    /// A connection ended: channels go down; reconnect if we have channels and an address.
    pub fn on_disconnected(&mut self, node_id: PublicKey, conn: u64, reason: &str) {
        let Some(slot) = self.peers.get_mut(&node_id) else {
            return;
        };
        if slot.conn != conn || slot.sender.is_none() {
            return;
        }
        slot.sender = None;
        tracing::info!(%node_id, %reason, "peer disconnected");
        for e in self.channels.iter_mut().filter(|e| e.peer == node_id) {
            if e.ch.state().phase == Phase::Closed {
                continue;
            }
            e.ch.handle_disconnect();
            if is_unsigned_opening(e) && e.close_reason.is_none() {
                if let Some(tx) = &e.funding_tx {
                    self.wallet.cancel_tx(tx);
                }
                let why = format!("opening abandoned: peer disconnected ({reason})");
                if let Some(w) = e.open_waiter.take() {
                    let _ = w.send(Err(CmdError::failed(why.clone())));
                }
                e.close_reason = Some(why);
            }
        }
        self.maybe_reconnect(node_id);
    }

    /// Starts a reconnect task to `node_id` if we have open channels with it and know where
    /// it listens.
    pub fn maybe_reconnect(&mut self, node_id: PublicKey) {
        if self.stopping {
            return;
        }
        let has_channels = self
            .channels
            .iter()
            .any(|e| e.peer == node_id && e.ch.state().phase != Phase::Closed);
        let Some(slot) = self.peers.get_mut(&node_id) else {
            return;
        };
        let Some(addr) = slot.address.clone() else {
            return;
        };
        if !has_channels || slot.reconnecting || slot.sender.is_some() {
            return;
        }
        let Ok(sock) = addr.parse() else {
            tracing::warn!(%node_id, %addr, "stored peer address is not ip:port; not reconnecting");
            return;
        };
        slot.reconnecting = true;
        let identity = self.identity.clone();
        let cfg = self.settings.peer_config.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_secs(10),
            );
            let res =
                crate::peer::connect_with_backoff(identity, node_id, sock, cfg, &mut backoff, None)
                    .await;
            let _ = inputs.send(Input::ReconnectEnded(node_id));
            match res {
                Ok(peer) => {
                    let _ = inputs.send(Input::Connected {
                        peer: Box::new(peer),
                        dialled: Some(addr),
                        reply: None,
                    });
                }
                Err(e) => tracing::warn!(%node_id, error = %e, "reconnect gave up"),
            }
        });
    }

    /// `listpeers` entry.
    pub fn peer_info(&self, node_id: &PublicKey) -> PeerInfo {
        let slot = self.peers.get(node_id);
        PeerInfo {
            node_id: node_id.to_string(),
            address: slot.and_then(|s| s.address.clone()),
            connected: slot.is_some_and(|s| s.sender.is_some()),
            inbound: slot.is_some_and(|s| s.inbound),
            channels: self
                .channels
                .iter()
                .filter(|e| e.peer == *node_id)
                .map(|e| hex::encode(e.ch.channel_id()))
                .collect(),
        }
    }

    /// A message from a peer.
    pub fn on_peer_message(&mut self, node_id: PublicKey, conn: u64, msg: Message) {
        if self.peers.get(&node_id).is_none_or(|s| s.conn != conn) {
            return;
        }
        match &msg {
            Message::OpenChannel(open) => {
                self.on_open_channel(node_id, open);
                return;
            }
            Message::Warning(w) => {
                tracing::warn!(%node_id, warning = %String::from_utf8_lossy(&w.data.0), "peer warning");
                return;
            }
            Message::Error(e) if e.channel_id == [0u8; 32] => {
                tracing::warn!(%node_id, error = %String::from_utf8_lossy(&e.data.0), "peer error for all channels");
                let ids: Vec<[u8; 32]> = self
                    .channels
                    .iter()
                    .filter(|c| c.peer == node_id)
                    .map(|c| c.ch.channel_id())
                    .collect();
                for id in ids {
                    self.deliver(node_id, id, &msg);
                }
                return;
            }
            _ => {}
        }
        let Some(id) = message_channel_id(&msg) else {
            tracing::debug!(%node_id, msg = msg.msg_type(), "ignoring message (gossip is not handled yet)");
            return;
        };
        self.deliver(node_id, id, &msg);
    }

    fn deliver(&mut self, node_id: PublicKey, id: [u8; 32], msg: &Message) {
        let Some(i) = self.channel_index(&id) else {
            tracing::debug!(%node_id, channel = %hex::encode(id), msg = msg.msg_type(), "message for an unknown channel");
            if !matches!(msg, Message::Error(_)) {
                if let Some(s) = self.peers.get(&node_id).and_then(|p| p.sender.clone()) {
                    let err = fulmen_wire::msgs::Error::text(id, "unknown channel");
                    let _ = s.send(&Message::Error(err));
                }
            }
            return;
        };
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        if e.peer != node_id {
            tracing::warn!(%node_id, "peer sent a message for another peer's channel");
            return;
        }
        match e.ch.handle_message(msg) {
            Ok(()) => {}
            Err(ChannelError::Protocol(reason) | ChannelError::Internal(reason)) => {
                tracing::warn!(%node_id, channel = %hex::encode(id), %reason, "channel failed");
            }
            Err(err) => tracing::debug!(%node_id, error = %err, "message not applied"),
        }
    }

    fn on_open_channel(&mut self, node_id: PublicKey, open: &fulmen_wire::msgs::OpenChannel) {
        let pending = self
            .channels
            .iter()
            .filter(|e| {
                e.peer == node_id && !matches!(e.ch.state().phase, Phase::Normal | Phase::Closed)
            })
            .count();
        let refuse = |node: &Node, why: &str| {
            if let Some(s) = node.peers.get(&node_id).and_then(|p| p.sender.clone()) {
                let err = fulmen_wire::msgs::Error::text(open.temporary_channel_id, why);
                let _ = s.send(&Message::Error(err));
            }
        };
        if pending >= MAX_PENDING_INBOUND_PER_PEER {
            refuse(self, "too many pending channels");
            return;
        }
        let mut entropy = OsEntropy;
        let fees = self.fee_estimator();
        match Channel::new_inbound(
            &self.key_source,
            &mut entropy,
            &fees,
            self.settings.channel_config.clone(),
            self.chain_hash(),
            open,
            self.height,
        ) {
            Ok(ch) => {
                let id = self.new_channel_id(node_id);
                tracing::info!(%node_id, sats = open.funding_satoshis, "accepting a channel");
                self.channels.push(new_entry(id, node_id, ch));
            }
            Err(e) => {
                tracing::warn!(%node_id, error = %e, "refusing open_channel");
                refuse(self, &e.to_string());
            }
        }
    }

    /// The regtest chain hash.
    pub fn chain_hash(&self) -> [u8; 32] {
        bitcoin::constants::ChainHash::REGTEST.to_bytes()
    }

    /// The feerate the channels use (sat per 1000 weight).
    pub fn fee_estimator(&self) -> FixedFee {
        FixedFee(253.max(self.settings.funding_sat_per_vb as u32 * 250))
    }

    fn new_channel_id(&mut self, peer: PublicKey) -> i64 {
        let id = self.next_channel_id;
        self.next_channel_id += 1;
        self.pending
            .new_channels
            .push((id, hex::encode(peer.serialize())));
        id
    }

    /// `openchannel`.
    pub fn open(
        &mut self,
        node_id: PublicKey,
        sats: u64,
        push_msat: u64,
        reply: Reply<OpenResult>,
    ) {
        if self.peers.get(&node_id).is_none_or(|p| p.sender.is_none()) {
            let _ = reply.send(Err(CmdError::failed(format!(
                "peer {node_id} is not connected: connect first"
            ))));
            return;
        }
        let spendable = self.wallet.balance().spendable().to_sat();
        if spendable < sats {
            let _ = reply.send(Err(CmdError::failed(format!(
                "insufficient on-chain funds: {spendable} sat spendable, {sats} sat needed plus fees ({} sat missing)",
                sats - spendable
            ))));
            return;
        }
        let mut entropy = OsEntropy;
        let fees = self.fee_estimator();
        match Channel::new_outbound(
            &self.key_source,
            &mut entropy,
            &fees,
            self.settings.channel_config.clone(),
            self.chain_hash(),
            sats,
            push_msat,
            self.height,
        ) {
            Ok(ch) => {
                let id = self.new_channel_id(node_id);
                let mut e = new_entry(id, node_id, ch);
                e.open_waiter = Some(reply);
                self.channels.push(e);
            }
            Err(e) => {
                let _ = reply.send(Err(CmdError::invalid(e.to_string())));
            }
        }
    }

    /// `closechannel` (cooperative).
    pub fn close(&mut self, channel_id: [u8; 32], reply: Reply<CloseResult>) {
        let Some(i) = self.channel_index(&channel_id) else {
            let _ = reply.send(Err(CmdError::invalid(format!(
                "unknown channel {}",
                hex::encode(channel_id)
            ))));
            return;
        };
        let script = self.wallet.sweep_script();
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        if let Some(tx) = &e.closing_tx {
            let _ = reply.send(Ok(CloseResult {
                channel_id: hex::encode(e.ch.channel_id()),
                closing_txid: tx.compute_txid().to_string(),
            }));
            return;
        }
        if e.ch.state().local_shutdown.is_none() {
            if let Err(err) = e.ch.shutdown(script) {
                let _ = reply.send(Err(CmdError::failed(format!("cannot close: {err}"))));
                return;
            }
        }
        e.close_waiters.push(reply);
    }

    /// Drives every channel until it is idle: events handled, commitments sent.
    pub fn drive_channels(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.channels.len() {
                while let Some(ev) = self.channels.get_mut(i).and_then(|e| e.ch.poll_event()) {
                    busy = true;
                    self.on_channel_event(i, ev);
                }
                if let Some(e) = self.channels.get_mut(i) {
                    if e.ch.can_send_commitment() {
                        if let Err(err) = e.ch.send_commitment() {
                            tracing::warn!(error = %err, "send_commitment");
                        } else {
                            busy = true;
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
                self.after.push(After::Broadcast(tx));
                if let Some(w) = e.open_waiter.take() {
                    self.after.push(After::OpenDone(w, Ok(res)));
                }
            }
            Event::ChannelReady => {
                if let Some(e) = self.channels.get(i) {
                    tracing::info!(channel = %hex::encode(e.ch.channel_id()), peer = %e.peer, "channel ready");
                }
            }
            Event::HtlcReceived { id, htlc, onion } => {
                self.on_htlc_received(i, id, htlc, onion, false)
            }
            Event::HtlcMustFail { id, htlc, onion } => {
                self.on_htlc_received(i, id, htlc, onion, true)
            }
            Event::HtlcFulfilled { id, preimage } => self.on_htlc_settled(i, id, Ok(preimage.0)),
            Event::HtlcFailed { id, reason } => self.on_htlc_failed(i, id, reason),
            Event::HtlcFailedMalformed {
                id, failure_code, ..
            } => self.on_htlc_settled(
                i,
                id,
                Err(format!(
                    "the peer could not parse the onion (failure code {failure_code:#06x})"
                )),
            ),
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
                if let Some(w) = e.open_waiter.take() {
                    self.after.push(After::OpenDone(
                        w,
                        Err(CmdError::failed(format!("channel open failed: {reason}"))),
                    ));
                }
                // Payments pending on a failed channel stay pending: their HTLCs resolve on
                // chain, and marking them failed would invite paying twice.
            }
        }
    }

    fn fund_channel(&mut self, i: usize, script: bitcoin::ScriptBuf, value: Amount) {
        let aux: [u8; 32] = rand::random();
        let built = self
            .wallet
            .fund_script(script, value, self.settings.funding_sat_per_vb, aux);
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        match built {
            Ok(b) => {
                let outpoint = OutPoint {
                    txid: b.txid,
                    vout: b.output_index,
                };
                match e.ch.handle_funding_tx(outpoint) {
                    Ok(()) => {
                        self.pending
                            .funding_txs
                            .push((e.id, bitcoin::consensus::serialize(&b.tx)));
                        e.funding_tx = Some(b.tx);
                    }
                    Err(err) => {
                        self.wallet.cancel_tx(&b.tx);
                        if let Some(w) = e.open_waiter.take() {
                            let _ =
                                w.send(Err(CmdError::failed(format!("funding refused: {err}"))));
                        }
                    }
                }
            }
            Err(err) => {
                if let Some(w) = e.open_waiter.take() {
                    let _ = w.send(Err(CmdError::failed(format!(
                        "cannot fund the channel: {err}"
                    ))));
                }
            }
        }
    }

    /// A channel handed out a transaction to broadcast: the cooperative closing
    /// transaction (recorded as the channel's closing tx), or our commitment after a
    /// failure (a force close: broadcast and re-broadcast while unconfirmed, never recorded
    /// as a closing tx — the chain follower records whatever spends the funding).
    pub fn on_channel_broadcast(&mut self, id: i64, b: Broadcast) {
        let Some(e) = self.channels.iter_mut().find(|e| e.id == id) else {
            return;
        };
        let tx = b.tx;
        if let BroadcastKind::Commitment { number } = b.kind {
            let txid = tx.compute_txid();
            tracing::warn!(channel = %hex::encode(e.ch.channel_id()), commitment = number, %txid, "force close: broadcasting our commitment");
            let waiters = std::mem::take(&mut e.close_waiters);
            if !waiters.is_empty() {
                let why =
                    format!("the channel failed; our commitment {number} was broadcast ({txid})");
                self.after
                    .push(After::CloseDone(waiters, Err(CmdError::failed(why))));
            }
            self.after.push(After::Broadcast(tx));
            return;
        }
        let raw = bitcoin::consensus::serialize(&tx);
        self.pending.closing_txs.push((id, raw));
        let res = CloseResult {
            channel_id: hex::encode(e.ch.channel_id()),
            closing_txid: tx.compute_txid().to_string(),
        };
        e.closing_tx = Some(tx.clone());
        let waiters = std::mem::take(&mut e.close_waiters);
        if !waiters.is_empty() {
            self.after.push(After::CloseDone(waiters, Ok(res)));
        }
        self.after.push(After::Broadcast(tx));
    }

    /// Rebuilds channels at start-up.
    pub fn restore_channel(&mut self, stored: &super::store::StoredChannel) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let records = stored
            .records
            .iter()
            .map(|r| fulmen_channel::machine::Record::decode(r))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("decoding the records of channel {}", stored.id))?;
        let peer: PublicKey = stored
            .peer
            .parse()
            .with_context(|| format!("peer of channel {}", stored.id))?;
        self.next_channel_id = self.next_channel_id.max(stored.id + 1);
        if records.is_empty() {
            return Ok(());
        }
        let ch = Channel::restore(
            &self.key_source,
            self.settings.channel_config.clone(),
            &records,
        )
        .with_context(|| format!("restoring channel {}", stored.id))?;
        let mut e = new_entry(stored.id, peer, ch);
        let decode = |raw: &Option<Vec<u8>>| -> Option<Transaction> {
            raw.as_ref()
                .and_then(|b| bitcoin::consensus::deserialize(b).ok())
        };
        e.funding_tx = decode(&stored.funding_tx);
        e.closing_tx = decode(&stored.closing_tx);
        if let Some(tx) = &e.closing_tx {
            self.unconfirmed.insert(tx.compute_txid(), tx.clone());
        }
        if is_unsigned_opening(&e) {
            // Never broadcast a funding transaction whose commitment the peer has not
            // signed: the opening is abandoned, its coins go back to the wallet.
            if let Some(tx) = &e.funding_tx {
                self.wallet.cancel_tx(tx);
            }
            e.close_reason = Some("opening abandoned: interrupted by a restart".into());
        } else if let (Some(tx), None) = (&e.funding_tx, e.ch.state().funding_confirmed_height) {
            self.unconfirmed.insert(tx.compute_txid(), tx.clone());
        }
        self.peers.entry(peer).or_default();
        self.channels.push(e);
        Ok(())
    }
}

/// True while an opening cannot be resumed: before both commitments 0 are signed (BOLT 2:
/// such an opening is forgotten on disconnection).
pub fn is_unsigned_opening(e: &ChannelEntry) -> bool {
    matches!(
        e.ch.state().phase,
        Phase::AwaitingAccept
            | Phase::AwaitingFundingTx
            | Phase::AwaitingFundingCreated
            | Phase::AwaitingFundingSigned
    )
}

fn new_entry(id: i64, peer: PublicKey, ch: Channel) -> ChannelEntry {
    ChannelEntry {
        id,
        peer,
        ch,
        funding_tx: None,
        closing_tx: None,
        closing_height: None,
        close_reason: None,
        open_waiter: None,
        close_waiters: Vec::new(),
    }
}

/// Entropy from the OS RNG.
pub struct OsEntropy;

impl fulmen_channel::machine::Entropy for OsEntropy {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use rand::RngCore as _;
        rand::rngs::OsRng.fill_bytes(dest);
    }
}

/// A fixed feerate estimate (the simulated chain's relay floor scaled; see ARCHITECTURE.md).
pub struct FixedFee(pub u32);

impl fulmen_channel::machine::FeeEstimator for FixedFee {
    fn feerate_per_kw(&self) -> u32 {
        self.0
    }
}
