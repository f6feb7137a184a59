//! Gossip (BOLT 7) for the node: intake of peers' `channel_announcement`,
//! `node_announcement` and `channel_update` through the sans-IO [`GossipStore`] (funding
//! outputs checked through the shell, which answers [`Output::LookupUtxo`] with
//! [`Manager::handle_utxo_answer`]), relaying what it accepted to every peer in batches, the
//! initial sync (`gossip_timestamp_filter` both ways), and announcing our own channels:
//! `announcement_signatures` once the funding is [`crate::ManagerConfig::announce_depth`]
//! deep, then the combined `channel_announcement`, our `channel_update` and our
//! `node_announcement`.
//!
//! Owns: [`Manager::gossip`], the UTXO queries in flight, the funding outpoints of announced
//! channels (to prune them when spent). Must never: put unvalidated gossip into the graph
//! (everything goes through the store), or sign an announcement for a channel that is not
//! ours and deep enough. The store is not persisted: after a restart, peers' sync and our
//! re-announcement rebuild it.

use std::collections::HashMap;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, OutPoint, ScriptBuf};
use fulmen_channel::machine::Phase;
use fulmen_routing::gossip::in_filter_window;
use fulmen_routing::gossip::own::{
    announcement_signatures, announcement_unsigned, combine, sign_channel_update,
    sign_node_announcement,
};
use fulmen_routing::graph::direction_between;
use fulmen_routing::{DirectedPolicy, GraphChange, Handled, UtxoLookup, UtxoResult};
use fulmen_wire::msgs::{AnnouncementSignatures, GossipTimestampFilter};
use fulmen_wire::{Message, ShortChannelId};

use crate::manager::{After, Manager};
use crate::peers::chain_hash;
use crate::types::Output;

/// The answer to a UTXO query, from the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoAnswer {
    /// What the chain says.
    pub result: UtxoResult,
    /// The outpoint the short channel id names, if it exists.
    pub outpoint: Option<OutPoint>,
}

/// Answers lookups for our own channels at once (from the funding keys in their state: no
/// key derivation, and only for the channel asked about); queues the others for the shell.
struct Lookup<'a> {
    channels: &'a [crate::manager::ChannelEntry],
    wanted: &'a mut Vec<ShortChannelId>,
}

impl UtxoLookup for Lookup<'_> {
    fn lookup(&mut self, scid: ShortChannelId) -> UtxoResult {
        if let Some((script, value)) = own_funding(self.channels, scid) {
            return UtxoResult::Found {
                script_pubkey: script,
                value,
            };
        }
        if !self.wanted.contains(&scid) {
            self.wanted.push(scid);
        }
        UtxoResult::Pending
    }
}

/// The funding output of our channel at `scid`, if we have one there.
fn own_funding(
    channels: &[crate::manager::ChannelEntry],
    scid: ShortChannelId,
) -> Option<(ScriptBuf, Amount)> {
    let e = channels
        .iter()
        .find(|e| e.ch.short_channel_id() == Some(scid))?;
    let setup = &e.ch.state().setup;
    let remote = setup.remote.as_ref()?;
    let script = fulmen_routing::gossip::funding_script_pubkey(
        &setup.local.basepoints.funding_pubkey,
        &remote.basepoints.funding_pubkey,
    );
    Some((script, Amount::from_sat(setup.funding_sat)))
}

/// What the manager keeps for gossip besides the store.
#[derive(Debug, Default)]
pub(crate) struct GossipState {
    /// UTXO queries to hand to the shell.
    pub wanted: Vec<ShortChannelId>,
    /// Funding outpoints of announced channels, to prune them when spent.
    pub funding_of: HashMap<OutPoint, ShortChannelId>,
    /// The peer's `announcement_signatures` per channel (local id).
    pub theirs: HashMap<i64, AnnouncementSignatures>,
    /// (channel, connection) pairs we sent our signatures on.
    pub sent: HashMap<i64, u64>,
    /// Timestamp of our last `node_announcement`.
    pub node_announced: Option<u32>,
    /// Timestamp of our last `channel_update` per channel.
    pub updated: HashMap<i64, u32>,
    /// Peers whose gossip we asked for in this run, with when the connection we asked over
    /// ended (`None` while it is up): see [`Manager::gossip_connected`].
    pub synced: HashMap<PublicKey, Option<u64>>,
    /// Each connected peer's `gossip_timestamp_filter` (first timestamp, range): what we
    /// relay to it (BOLT 7: only gossip inside the window).
    pub filters: HashMap<PublicKey, (u32, u32)>,
    /// Accepted channel announcements not relayed yet because their channel has no update:
    /// each goes out with its first relayed update (filtered by that update's timestamp).
    pub held: std::collections::HashSet<ShortChannelId>,
    /// Channels with nothing left to announce on the current connection: our signatures
    /// sent on it, the announcement in the store, our update out. Skipped by
    /// `announce_channels` without looking up their peer; a channel leaves the set when its
    /// peer connects or disconnects, and the set empties when the store drops a channel.
    pub settled: std::collections::HashSet<i64>,
    /// `announce_channels` stopped at [`MAX_CHANNELS_SIGNED_PER_PASS`] with channels still to
    /// sign for: see [`Manager::has_deferred_work`].
    pub deferred: bool,
}

/// Most channels whose announcement signatures `announce_channels` makes in one pass (two
/// signatures each, and a check of the peer's pair and our `channel_update` when the
/// announcement completes: ≈ 0.3 ms). A restarted node with a thousand channels signs for
/// all of them as their peers reconnect; in passes of this size a turn stays short and an
/// RPC call does not wait behind the whole lot.
pub const MAX_CHANNELS_SIGNED_PER_PASS: usize = 32;

/// Peers a node asks for their whole gossip in one run (a restarted node's graph is empty):
/// the others are asked only for what is new.
pub(crate) const FULL_SYNC_PEERS: usize = 3;
/// How far back before a lost connection (or before now) a peer's gossip is asked for
/// again: a message created before that moment may have reached the peer after it.
pub(crate) const RESYNC_MARGIN_SECS: u64 = 600;

impl Manager {
    fn now32(&self) -> u32 {
        u32::try_from(self.now).unwrap_or(u32::MAX)
    }

    /// A gossip message from a peer (`from`), or from outside without one (a
    /// `channel_update` inside a failure): validated by the store, applied to the graph.
    pub(crate) fn handle_gossip(&mut self, from: Option<PublicKey>, msg: &Message) {
        match msg {
            Message::GossipTimestampFilter(f) => {
                let Some(peer) = from else { return };
                if f.chain_hash == chain_hash() {
                    let window = (f.first_timestamp, f.timestamp_range);
                    self.gossip_state.filters.insert(peer, window);
                }
                match self.gossip.handle_timestamp_filter(f) {
                    Ok(msgs) => {
                        for m in msgs {
                            self.send_after(peer, m);
                        }
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "timestamp filter refused"),
                }
                return;
            }
            Message::AnnouncementSignatures(a) => {
                if let Some(peer) = from {
                    self.on_announcement_signatures(peer, a);
                }
                return;
            }
            _ => {}
        }
        self.store_gossip(from, msg, false);
    }

    /// A gossip message this node built and signed (the peer's half of a combined
    /// announcement checked by `combine`): into the store without checking our own
    /// signatures again, then relayed like any other.
    fn handle_own_gossip(&mut self, msg: &Message) {
        self.store_gossip(None, msg, true);
    }

    /// Into the gossip store (`own`: ours, signatures not checked again); what it applies
    /// goes to the graph; a peer whose message is refused for its own fault is warned.
    fn store_gossip(&mut self, from: Option<PublicKey>, msg: &Message, own: bool) {
        let res = {
            let mut lookup = Lookup {
                channels: &self.channels,
                wanted: &mut self.gossip_state.wanted,
            };
            if own {
                self.gossip.handle_own_message(msg, &mut lookup, self.now)
            } else {
                self.gossip.handle_message(msg, &mut lookup, self.now)
            }
        };
        match res {
            Ok(Handled::Applied(changes)) => self.apply_graph_changes(&changes),
            Ok(Handled::Held) => {}
            Err(e) => {
                tracing::debug!(peer = ?from, own, msg = msg.msg_type(), error = %e, "gossip refused");
                if let (true, Some(peer)) = (e.warn_peer(), from) {
                    let w = fulmen_wire::msgs::Warning::text([0; 32], &e.to_string());
                    self.send_after(peer, Message::Warning(w));
                }
            }
        }
    }

    pub(crate) fn apply_graph_changes(&mut self, changes: &[GraphChange]) {
        if changes
            .iter()
            .any(|c| matches!(c, GraphChange::ChannelRemoved { .. }))
        {
            // An announcement of ours may be gone: look at every channel again.
            self.gossip_state.settled.clear();
        }
        for c in changes {
            if let Err(err) = self.graph.apply(c) {
                tracing::debug!(error = %err, "graph change not applied");
            }
        }
    }

    /// The shell's answer to [`Output::LookupUtxo`].
    pub fn handle_utxo_answer(&mut self, now: u64, scid: ShortChannelId, answer: UtxoAnswer) {
        self.now = now;
        if let (Some(op), UtxoResult::Found { .. }) = (answer.outpoint, &answer.result) {
            self.gossip_state.funding_of.insert(op, scid);
        }
        match self.gossip.utxo_resolved(scid, answer.result, now) {
            Ok(Handled::Applied(changes)) => self.apply_graph_changes(&changes),
            Ok(Handled::Held) => {}
            Err(e) => tracing::debug!(%scid, error = %e, "announcement refused after lookup"),
        }
    }

    /// A block's spends: announced channels whose funding is spent leave the graph.
    pub(crate) fn gossip_block(&mut self, block: &bitcoin::Block) {
        let mut gone = Vec::new();
        for tx in &block.txdata {
            for i in &tx.input {
                if let Some(scid) = self.gossip_state.funding_of.remove(&i.previous_output) {
                    gone.push(scid);
                }
            }
        }
        for scid in gone {
            let changes = self.gossip.funding_spent(scid);
            self.apply_graph_changes(&changes);
        }
    }

    /// The connection to `peer` ended: from the next one, ask only for what is newer.
    pub(crate) fn gossip_disconnected(&mut self, peer: PublicKey) {
        if let Some(lost_at) = self.gossip_state.synced.get_mut(&peer) {
            *lost_at = Some(self.now);
        }
        self.gossip_state.filters.remove(&peer);
        self.unsettle_channels_of(peer);
    }

    /// `peer`'s channels must be announced on its next connection: out of `settled`.
    fn unsettle_channels_of(&mut self, peer: PublicKey) {
        if self.gossip_state.settled.is_empty() {
            return;
        }
        for e in &self.channels {
            if e.peer == peer {
                self.gossip_state.settled.remove(&e.id);
            }
        }
    }

    /// What to relay of the messages the store accepted: a channel announcement waits for
    /// its channel's first update (BOLT 7: an announcement is relayed with an update, and
    /// its timestamp is its updates'), so a peer that asked only for new gossip is not sent
    /// old channels a restarted node is re-learning.
    fn relay_batch(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        for m in self.gossip.take_broadcast_batch() {
            match &m {
                Message::ChannelAnnouncement(a) if self.gossip.filter_timestamp(&m).is_none() => {
                    let scid = ShortChannelId::from_u64(a.short_channel_id);
                    self.gossip_state.held.insert(scid);
                    continue;
                }
                Message::ChannelUpdate(u) => {
                    let scid = ShortChannelId::from_u64(u.short_channel_id);
                    if self.gossip_state.held.remove(&scid) {
                        if let Some(a) = self.gossip.channel_announcement(scid) {
                            out.push(Message::ChannelAnnouncement(a.clone()));
                        }
                    }
                }
                _ => {}
            }
            out.push(m);
        }
        out
    }

    /// Stale channels leave the graph (two weeks without an update).
    pub(crate) fn gossip_tick(&mut self) {
        let changes = self.gossip.prune_stale(self.now);
        self.apply_graph_changes(&changes);
        // Held announcements whose channel left the store will never be relayed.
        let gossip = &self.gossip;
        self.gossip_state
            .held
            .retain(|s| gossip.channel_announcement(*s).is_some());
    }

    /// A new connection: ask the peer for its gossip (`gossip_timestamp_filter`). All of
    /// it from the first [`FULL_SYNC_PEERS`] peers of the run; from a peer we had it from
    /// before in this run, what is newer than when that connection ended; from any other,
    /// what is new. Without this, every reconnection re-sent the whole graph both ways: a
    /// node with a thousand channels and 25 peers restarting received and sent 75,000
    /// gossip messages.
    pub(crate) fn gossip_connected(&mut self, peer: PublicKey) {
        let since = |t: u64| {
            let t = t.saturating_sub(RESYNC_MARGIN_SECS);
            u32::try_from(t).unwrap_or(u32::MAX)
        };
        let first_timestamp = match self.gossip_state.synced.get(&peer) {
            Some(Some(lost_at)) => since(*lost_at),
            Some(None) => since(self.now),
            None if self.gossip_state.synced.len() < FULL_SYNC_PEERS => 0,
            None => since(self.now),
        };
        self.gossip_state.synced.insert(peer, None);
        self.unsettle_channels_of(peer);
        let f = GossipTimestampFilter {
            chain_hash: chain_hash(),
            first_timestamp,
            timestamp_range: u32::MAX,
            extra_tlvs: Default::default(),
        };
        self.send_after(peer, Message::GossipTimestampFilter(f));
    }

    /// Whether the last [`Manager::poll_persist`] left channels to sign announcements for
    /// (more than [`MAX_CHANNELS_SIGNED_PER_PASS`] were due): the shell then runs another
    /// turn soon — after the RPC calls and the inputs already queued — so the next pass
    /// signs the next ones.
    pub fn has_deferred_work(&self) -> bool {
        self.gossip_state.deferred
    }

    /// End of a turn: announce what is deep enough, relay what the store accepted, ask the
    /// shell for UTXO answers.
    pub(crate) fn gossip_turn(&mut self) {
        self.announce_channels();
        let batch = self.relay_batch();
        if !batch.is_empty() {
            // In node id order: the same inputs give the same outputs (deterministic tests).
            let mut peers: Vec<PublicKey> = self
                .peers
                .iter()
                .filter(|(_, s)| s.conn.is_some())
                .map(|(id, _)| *id)
                .collect();
            peers.sort();
            for m in &batch {
                let ts = self.gossip.filter_timestamp(m);
                for p in &peers {
                    // Outside the window the peer asked for: it has it (or did not ask).
                    let outside = match (ts, self.gossip_state.filters.get(p)) {
                        (Some(t), Some(&(first, range))) => !in_filter_window(first, range, t),
                        _ => false,
                    };
                    if !outside {
                        self.send_after(*p, m.clone());
                    }
                }
            }
        }
        for scid in std::mem::take(&mut self.gossip_state.wanted) {
            self.after.push(After::Out(Output::LookupUtxo {
                short_channel_id: scid,
            }));
        }
    }

    /// Sends our `announcement_signatures` for every channel deep enough (once per
    /// connection), and completes the announcements whose peer signatures we have.
    fn announce_channels(&mut self) {
        if !self.config.announce_channels {
            return;
        }
        let height = self.height;
        let depth = self.config.announce_depth.max(1);
        let mut todo = Vec::new();
        for e in &self.channels {
            if self.gossip_state.settled.contains(&e.id) {
                continue;
            }
            let st = e.ch.state();
            let (Some(scid), Some(conf)) = (e.ch.short_channel_id(), st.funding_confirmed_height)
            else {
                continue;
            };
            if st.phase != Phase::Normal || height + 1 < conf + depth {
                continue;
            }
            let Some(conn) = self.peers.get(&e.peer).and_then(|p| p.conn) else {
                continue;
            };
            todo.push((e.id, e.peer, scid, conn, e.ch.channel_id()));
        }
        let mut budget = MAX_CHANNELS_SIGNED_PER_PASS;
        self.gossip_state.deferred = false;
        for (id, peer, scid, conn, channel_id) in todo {
            // Signing costs two signatures and a key derivation: only when our signatures
            // must go out on this connection, or the announcement is still to be combined.
            let send_ours = self.gossip_state.sent.get(&id) != Some(&conn);
            let in_store = self.gossip.channel_announcement(scid).is_some();
            if !send_ours && (in_store || !self.gossip_state.theirs.contains_key(&id)) {
                if in_store {
                    self.announced_once(id);
                    if self.gossip_state.updated.contains_key(&id) {
                        self.gossip_state.settled.insert(id);
                    }
                }
                continue;
            }
            // The rest wait for the next pass (the shell comes back for them at once).
            if budget == 0 {
                self.gossip_state.deferred = true;
                break;
            }
            budget -= 1;
            let Some(e) = self.channels.iter().find(|e| e.id == id) else {
                continue;
            };
            let setup = &e.ch.state().setup;
            let Some(remote) = setup.remote.as_ref() else {
                continue;
            };
            use fulmen_channel::machine::KeySource;
            let secrets = self.key_source.channel_secrets(&setup.key_id);
            let unsigned = announcement_unsigned(
                chain_hash(),
                scid,
                Default::default(),
                self.node_id,
                peer,
                setup.local.basepoints.funding_pubkey,
                remote.basepoints.funding_pubkey,
            );
            let ours = announcement_signatures(
                &self.secp,
                &unsigned,
                channel_id,
                &self.node_secret,
                &secrets.funding_key,
            );
            if send_ours {
                self.gossip_state.sent.insert(id, conn);
                self.send_after(peer, Message::AnnouncementSignatures(ours.clone()));
            }
            if in_store {
                self.announced_once(id);
                continue;
            }
            let Some(theirs) = self.gossip_state.theirs.get(&id).cloned() else {
                continue;
            };
            match combine(&self.secp, &unsigned, &self.node_id, &ours, &theirs) {
                Ok(ann) => {
                    tracing::info!(channel = id, %scid, "channel announced");
                    self.handle_own_gossip(&Message::ChannelAnnouncement(ann));
                    self.announce_node();
                    self.policy_changed(id);
                }
                Err(err) => {
                    tracing::warn!(channel = id, error = %err, "cannot combine announcement")
                }
            }
        }
    }

    /// Once channel `id`'s announcement is in the store (ours, or the peer's combined one
    /// relayed to us first): our side's update and node announcement go out, once.
    fn announced_once(&mut self, id: i64) {
        if !self.gossip_state.updated.contains_key(&id) {
            self.announce_node();
            self.policy_changed(id);
        }
    }

    fn on_announcement_signatures(&mut self, peer: PublicKey, a: &AnnouncementSignatures) {
        let Some(e) = self
            .channels
            .iter()
            .find(|e| e.ch.channel_id() == a.channel_id && e.peer == peer)
        else {
            tracing::debug!(%peer, "announcement_signatures for an unknown channel");
            return;
        };
        if e.ch.short_channel_id().map(|s| s.to_u64()) != Some(a.short_channel_id) {
            tracing::warn!(%peer, "announcement_signatures with another short channel id");
            return;
        }
        self.gossip_state.theirs.insert(e.id, a.clone());
    }

    /// Our `node_announcement` (once we have an announced channel; again when it changes).
    fn announce_node(&mut self) {
        let ts = self
            .now32()
            .max(self.gossip_state.node_announced.map_or(0, |t| t + 1));
        if self.gossip_state.node_announced.is_some() {
            return;
        }
        let mut alias = [0u8; 32];
        let bytes = self.config.alias.as_bytes();
        let n = bytes.len().min(32);
        alias[..n].copy_from_slice(&bytes[..n]);
        let ann = sign_node_announcement(
            &self.secp,
            &self.node_secret,
            Default::default(),
            ts,
            [0x33, 0x99, 0xff],
            alias,
            Vec::new(),
        );
        self.gossip_state.node_announced = Some(ts);
        self.handle_own_gossip(&Message::NodeAnnouncement(ann));
    }

    /// Our policy for channel `id` changed (or it was just announced): a new signed
    /// `channel_update` goes into the store (and out to peers with the next batch).
    pub(crate) fn policy_changed(&mut self, id: i64) {
        let Some(e) = self.channels.iter().find(|e| e.id == id) else {
            return;
        };
        let Some(scid) = e.ch.short_channel_id() else {
            return;
        };
        if self.gossip.channel_announcement(scid).is_none() {
            return;
        }
        let pol = self.policy_of(id);
        let last = self.gossip_state.updated.get(&id).copied();
        let ts = self.now32().max(last.map_or(0, |t| t + 1));
        let policy = DirectedPolicy {
            fee_base_msat: pol.fee_base_msat,
            fee_proportional_millionths: pol.fee_ppm,
            cltv_expiry_delta: pol.cltv_expiry_delta,
            htlc_minimum_msat: 1,
            htlc_maximum_msat: e.ch.state().setup.funding_sat * 1000,
            enabled: true,
            timestamp: ts,
        };
        let dir = direction_between(&self.node_id, &e.peer);
        let u = sign_channel_update(
            &self.secp,
            chain_hash(),
            scid,
            dir,
            &policy,
            &self.node_secret,
        );
        self.gossip_state.updated.insert(id, ts);
        self.handle_own_gossip(&Message::ChannelUpdate(u));
    }

    /// The bytes of our latest `channel_update` for channel `chan` (type 258 included), for
    /// failures that carry one; empty while the channel is not announced.
    pub(crate) fn channel_update_bytes(&self, chan: i64) -> Vec<u8> {
        let Some(e) = self.channels.iter().find(|e| e.id == chan) else {
            return Vec::new();
        };
        let Some(scid) = e.ch.short_channel_id() else {
            return Vec::new();
        };
        let dir = direction_between(&self.node_id, &e.peer);
        self.gossip
            .channel_update(scid, dir)
            .map(|u| Message::ChannelUpdate(u.clone()).encode())
            .unwrap_or_default()
    }

    /// A `channel_update` that came back inside a failure: validated like gossip and, if
    /// newer, applied to the graph (so a stale policy is fixed before the retry).
    pub(crate) fn learn_channel_update(&mut self, update: &[u8]) {
        let msg = match Message::decode(update) {
            Ok(m @ Message::ChannelUpdate(_)) => m,
            _ => {
                // Older nodes send it without the type.
                let mut typed = 258u16.to_be_bytes().to_vec();
                typed.extend_from_slice(update);
                match Message::decode(&typed) {
                    Ok(m @ Message::ChannelUpdate(_)) => m,
                    _ => {
                        tracing::debug!("undecodable channel_update in a failure");
                        return;
                    }
                }
            }
        };
        self.handle_gossip(None, &msg);
    }
}
