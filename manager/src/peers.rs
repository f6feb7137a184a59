//! Peers: connections coming and going, messages routed to channels (by channel id or
//! temporary id), `open_channel` from a peer, and asking the shell to redial.
//!
//! Owns: the [`PeerSlot`] of every known peer and which connection is live. Must never: send
//! anything itself (messages leave through the turn's outputs, after the write).

use bitcoin::secp256k1::PublicKey;
use fulmen_channel::machine::{Channel, ChannelError, Phase};
use fulmen_wire::Message;

use crate::manager::{After, ChannelEntry, Manager, PeerSlot};
use crate::types::{Output, PeerAccept, RequestId, Response};

/// Most channels one peer may have pending (not yet confirmed) with us.
const MAX_PENDING_INBOUND_PER_PEER: usize = 8;

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

impl Manager {
    /// A connection finished its handshake and `init` (`dialled`: the address we dialled,
    /// `None` if the peer dialled us). A second connection to a connected peer is refused
    /// (the shell closes it). `request` (a `connect` command) is answered with the peer's
    /// [`crate::api::PeerInfo`] after the write.
    pub fn handle_peer_connected(
        &mut self,
        request: Option<RequestId>,
        node_id: PublicKey,
        dialled: Option<String>,
    ) -> PeerAccept {
        let slot = self.peers.entry(node_id).or_default();
        if slot.conn.is_some() {
            if let Some(r) = request {
                let info = self.peer_info(&node_id);
                self.reply(r, Ok(Response::Peer(info)));
            }
            return PeerAccept::Duplicate;
        }
        self.next_conn += 1;
        let conn = self.next_conn;
        slot.conn = Some(conn);
        slot.inbound = dialled.is_none();
        if dialled.is_some() {
            slot.address = dialled.clone();
        }
        // Only peers we dialled get a durable row (their address, to redial): node ids are
        // free, so an inbound connection must not make us store anything. A peer we have a
        // channel with is known from the channel's row.
        if dialled.is_some() {
            self.pending.peers.push((node_id, dialled));
        }
        tracing::info!(%node_id, conn, "peer connected");
        for e in self.channels.iter_mut().filter(|e| e.peer == node_id) {
            if e.is_closed() {
                continue;
            }
            if let Err(err) = e.ch.handle_reconnect() {
                tracing::warn!(%node_id, error = %err, "reestablish");
            }
        }
        if let Some(r) = request {
            let info = self.peer_info(&node_id);
            self.reply(r, Ok(Response::Peer(info)));
        }
        self.gossip_connected(node_id);
        self.tower_peer_connected(node_id);
        PeerAccept::Accepted { conn }
    }

    /// Connection `conn` to `node_id` ended: its channels go down; an opening not yet
    /// signed by both sides is abandoned; we redial if we have channels and an address.
    /// A stale `conn` (not the live one) is ignored.
    pub fn handle_peer_disconnected(&mut self, node_id: PublicKey, conn: u64, reason: &str) {
        let Some(slot) = self.peers.get_mut(&node_id) else {
            return;
        };
        if slot.conn != Some(conn) {
            return;
        }
        slot.conn = None;
        tracing::info!(%node_id, %reason, "peer disconnected");
        self.channels_down(node_id, &format!("peer disconnected ({reason})"));
        self.gossip_disconnected(node_id);
        self.tower_peer_disconnected(&node_id);
        self.maybe_reconnect(node_id);
    }

    /// Every channel with `node_id` learns the link is down; unsigned openings are
    /// abandoned.
    pub(crate) fn channels_down(&mut self, node_id: PublicKey, why: &str) {
        let mut abandoned = Vec::new();
        for (i, e) in self.channels.iter_mut().enumerate() {
            if e.peer != node_id || e.is_closed() {
                continue;
            }
            e.ch.handle_disconnect();
            if e.is_unsigned_opening() && e.close_reason.is_none() {
                abandoned.push(i);
            }
        }
        for i in abandoned {
            self.abandon_opening(i, &format!("opening abandoned: {why}"));
        }
    }

    /// A reconnect the shell was asked for ended (connected or gave up).
    pub fn handle_reconnect_ended(&mut self, node_id: PublicKey) {
        if let Some(s) = self.peers.get_mut(&node_id) {
            s.reconnecting = false;
        }
    }

    /// Asks the shell to redial `node_id` if we have open channels with it (or it is one of
    /// our watchtowers), know where it listens, and are not connected or redialling already.
    pub(crate) fn maybe_reconnect(&mut self, node_id: PublicKey) {
        let has_channels = self
            .channels
            .iter()
            .any(|e| e.peer == node_id && !e.is_closed())
            || self.towers.is_tower(&node_id);
        let Some(slot) = self.peers.get_mut(&node_id) else {
            return;
        };
        let Some(address) = slot.address.clone() else {
            return;
        };
        if !has_channels || slot.reconnecting || slot.conn.is_some() {
            return;
        }
        slot.reconnecting = true;
        self.after
            .push(After::Out(Output::Connect { node_id, address }));
    }

    /// A message from a peer on connection `conn` (stale connections are ignored).
    pub fn handle_peer_message(&mut self, now: u64, node_id: PublicKey, conn: u64, msg: Message) {
        self.now = now;
        if self.peers.get(&node_id).and_then(|s| s.conn) != Some(conn) {
            return;
        }
        match &msg {
            Message::OpenChannel(open) => {
                self.on_open_channel(node_id, open);
                return;
            }
            Message::Unknown { msg_type, payload } => {
                if !self.handle_tower_message(node_id, *msg_type, payload) {
                    tracing::debug!(%node_id, msg_type, "ignoring unknown odd message");
                }
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
        if matches!(
            msg,
            Message::ChannelAnnouncement(_)
                | Message::NodeAnnouncement(_)
                | Message::ChannelUpdate(_)
                | Message::GossipTimestampFilter(_)
                | Message::AnnouncementSignatures(_)
        ) {
            self.handle_gossip(Some(node_id), &msg);
            return;
        }
        let Some(id) = message_channel_id(&msg) else {
            tracing::debug!(%node_id, msg = msg.msg_type(), "ignoring message");
            return;
        };
        self.deliver(node_id, id, &msg);
    }

    fn deliver(&mut self, node_id: PublicKey, id: [u8; 32], msg: &Message) {
        let Some(i) = self.channel_index(&id) else {
            tracing::debug!(%node_id, channel = %hex::encode(id), msg = msg.msg_type(), "message for an unknown channel");
            if !matches!(msg, Message::Error(_)) {
                let err = fulmen_wire::msgs::Error::text(id, "unknown channel");
                self.send_after(node_id, Message::Error(err));
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
        let pending_all = self
            .channels
            .iter()
            .filter(|e| {
                !e.ch.state().setup.is_opener
                    && e.close_reason.is_none()
                    && !matches!(e.ch.state().phase, Phase::Normal | Phase::Closed)
            })
            .count();
        let refusal = if pending >= MAX_PENDING_INBOUND_PER_PEER {
            Some("too many pending channels")
        } else if pending_all >= self.config.max_pending_inbound_opens {
            Some("too many pending channels on this node")
        } else {
            None
        };
        if let Some(why) = refusal {
            let err = fulmen_wire::msgs::Error::text(open.temporary_channel_id, why);
            self.send_after(node_id, Message::Error(err));
            return;
        }
        let fees = self.fee_estimator();
        let res = Channel::new_inbound(
            &self.key_source,
            self.entropy.as_mut(),
            &fees,
            self.config.channel_config.clone(),
            chain_hash(),
            open,
            self.height,
        );
        match res {
            Ok(ch) => {
                let id = self.new_channel_id(node_id);
                tracing::info!(%node_id, sats = open.funding_satoshis, "accepting a channel");
                self.channels.push(ChannelEntry::new(id, node_id, ch));
            }
            Err(e) => {
                tracing::warn!(%node_id, error = %e, "refusing open_channel");
                let err = fulmen_wire::msgs::Error::text(open.temporary_channel_id, &e.to_string());
                self.send_after(node_id, Message::Error(err));
            }
        }
    }

    /// A new local channel id (its row is part of this turn's writes).
    pub(crate) fn new_channel_id(&mut self, peer: PublicKey) -> i64 {
        let id = self.next_channel_id;
        self.next_channel_id += 1;
        self.pending.new_channels.push((id, peer));
        id
    }

    /// Finds a channel by id (or temporary id).
    pub(crate) fn channel_index(&self, id: &[u8; 32]) -> Option<usize> {
        self.channels.iter().position(|e| {
            e.ch.channel_id() == *id || e.ch.state().setup.temporary_channel_id == *id
        })
    }

    /// Known peer slots (for views).
    pub(crate) fn peer_slot(&self, node_id: &PublicKey) -> Option<&PeerSlot> {
        self.peers.get(node_id)
    }
}

/// The regtest chain hash.
pub(crate) fn chain_hash() -> [u8; 32] {
    bitcoin::constants::ChainHash::REGTEST.to_bytes()
}
