//! [`GossipStore`]: BOLT 7 gossip intake, sans-IO. It validates `channel_announcement`,
//! `channel_update` and `node_announcement` (chain, signatures, the funding output through
//! [`UtxoLookup`], timestamps, bounds), keeps the latest accepted message of each kind to
//! relay and to answer `gossip_timestamp_filter`, and hands the graph [`GraphChange`]s.
//!
//! Owns: the gossip messages we hold and relay, the announcements waiting for a UTXO
//! answer, the broadcast queue and the pruning rules. Must never do I/O, read a clock
//! (`now`, unix seconds, is an argument), hold a message that failed a check, or grow
//! without bound on what peers send.
//!
//! # Bounds
//!
//! Everything a peer can make the store keep is bounded ([`GossipConfig`]):
//! - at most `max_pending` (1,000) announcements waiting for their funding output, each
//!   with at most one held `channel_update` per direction; a held `node_announcement` only
//!   for a node of a waiting announcement (≤ 2 per waiting announcement);
//! - at most `max_channels` (100,000) channels, `max_channels_per_node` (10,000) per node;
//!   nodes exist only while they have a channel, so ≤ 2 × channels nodes;
//! - one `channel_update` per channel direction and one `node_announcement` per node;
//! - features ≤ [`MAX_FEATURES_LEN`] bytes, addresses ≤ [`MAX_ADDRESSES_LEN`], unknown
//!   trailing bytes ≤ [`MAX_EXCESS_LEN`] (longer messages are refused, not truncated: the
//!   signature covers them);
//! - the broadcast queue ≤ `max_broadcast_queue` (10,000) messages; past that, accepted
//!   messages are not queued (peers still get them from their initial sync).
//!
//! # Memory
//!
//! A stored channel is its announcement (≈ 470 bytes with the map entry) and up to two
//! updates (≈ 160 bytes each): ≈ 800 bytes typical, ≈ 2.3 KB at the field bounds; a node is
//! ≈ 100 bytes plus its announcement (≈ 200 typical, ≈ 1.2 KB at the bounds). At the
//! default bounds the worst case is ≈ 230 MB of channels plus ≈ 280 MB of nodes; a
//! mainnet-sized graph (≈ 50,000 channels, 15,000 nodes) takes ≈ 45 MB.

mod checks;
pub mod own;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sync;

use std::collections::{BTreeMap, HashMap, HashSet};

use bitcoin::secp256k1::{PublicKey, Secp256k1, VerifyOnly};
use bitcoin::{Amount, ScriptBuf};
use fulmen_wire::msgs::{
    ChannelAnnouncement, ChannelUpdate, GossipTimestampFilter, NodeAnnouncement,
};
use fulmen_wire::scid::ShortChannelId;
use fulmen_wire::Message;

use crate::change::{ChannelDirection, DirectedPolicy, GraphChange};
use checks::{bounded, check_addresses, verify};
pub use checks::{
    funding_script_pubkey, GossipError, SignatureRole, MAX_ADDRESSES_LEN, MAX_EXCESS_LEN,
    MAX_FEATURES_LEN,
};

/// A channel whose newest `channel_update` (both directions) is older than this is pruned
/// (BOLT 7: two weeks, 1,209,600 s).
pub const STALE_AFTER_SECS: u64 = 1_209_600;
/// A message timestamped more than this ahead of `now` is refused (one day).
pub const MAX_FUTURE_SECS: u64 = 86_400;
/// An announcement waiting longer than this for its UTXO answer is dropped by
/// [`GossipStore::prune_stale`] (ten minutes).
pub const PENDING_TIMEOUT_SECS: u64 = 600;

/// The answer of a [`UtxoLookup`] for a short channel id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtxoResult {
    /// The output exists and is unspent.
    Found {
        /// Its script.
        script_pubkey: ScriptBuf,
        /// Its value.
        value: Amount,
    },
    /// The output existed and is spent.
    Spent,
    /// There is no such output (no such block, transaction or output index).
    Missing,
    /// Not known yet: the caller will answer later with [`GossipStore::utxo_resolved`].
    Pending,
}

/// How the store learns about funding outputs, provided by the caller (the manager asks
/// its chain view).
///
/// Contract: answer from the chain as currently known; answer [`UtxoResult::Pending`] when
/// the answer needs work that cannot be done now, and later call
/// [`GossipStore::utxo_resolved`] exactly once for that short channel id (an answer for an
/// id that is not waiting is ignored). Never panic.
pub trait UtxoLookup {
    /// The output named by `short_channel_id` (block height, transaction index in that
    /// block, output index).
    fn lookup(&mut self, short_channel_id: ShortChannelId) -> UtxoResult;
}

/// What the store did with an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Accepted: apply these changes to the graph, in order (several when a resolved
    /// announcement brings its held updates and node announcements along; none when an
    /// accepted message changes nothing the graph keeps).
    Applied(Vec<GraphChange>),
    /// Passed every check so far and held until its channel's funding output is known.
    Held,
}

/// The store's bounds and chain. See the module docs for what each bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    /// The chain we accept gossip for (`chain_hash` of the messages).
    pub chain_hash: [u8; 32],
    /// Most announcements waiting for their UTXO answer.
    pub max_pending: usize,
    /// Most channels stored.
    pub max_channels: usize,
    /// Most channels stored per node.
    pub max_channels_per_node: usize,
    /// Most messages queued for the next [`GossipStore::take_broadcast_batch`].
    pub max_broadcast_queue: usize,
}

impl GossipConfig {
    /// The default bounds for `chain_hash`: 1,000 pending, 100,000 channels, 10,000 per
    /// node, 10,000 queued broadcasts.
    pub fn new(chain_hash: [u8; 32]) -> GossipConfig {
        GossipConfig {
            chain_hash,
            max_pending: 1_000,
            max_channels: 100_000,
            max_channels_per_node: 10_000,
            max_broadcast_queue: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
struct StoredChannel {
    announcement: ChannelAnnouncement,
    capacity_sat: u64,
    /// Latest update per direction (`FromNode1`, `FromNode2`).
    updates: [Option<ChannelUpdate>; 2],
    /// When the announcement was accepted (stands for the updates until one arrives).
    accepted_at: u64,
}

#[derive(Debug, Clone, Default)]
struct StoredNode {
    channels: usize,
    announcement: Option<NodeAnnouncement>,
}

#[derive(Debug, Clone)]
struct PendingChannel {
    announcement: ChannelAnnouncement,
    since: u64,
    updates: [Option<ChannelUpdate>; 2],
}

/// Whether `timestamp` is inside a `gossip_timestamp_filter`'s window
/// `[first_timestamp, first_timestamp + timestamp_range)`.
pub fn in_filter_window(first_timestamp: u32, timestamp_range: u32, timestamp: u32) -> bool {
    let lo = u64::from(first_timestamp);
    (lo..lo + u64::from(timestamp_range)).contains(&u64::from(timestamp))
}

/// Validated gossip and what to relay; see the module docs.
#[derive(Debug, Clone)]
pub struct GossipStore {
    config: GossipConfig,
    secp: Secp256k1<VerifyOnly>,
    channels: BTreeMap<ShortChannelId, StoredChannel>,
    nodes: HashMap<PublicKey, StoredNode>,
    pending: BTreeMap<ShortChannelId, PendingChannel>,
    /// How many waiting announcements name each node.
    pending_nodes: HashMap<PublicKey, usize>,
    /// Signature-checked `node_announcement`s of nodes known only from waiting
    /// announcements.
    held_nodes: HashMap<PublicKey, NodeAnnouncement>,
    broadcast: Vec<Message>,
    broadcast_dropped: u64,
}

fn slot(direction: ChannelDirection) -> usize {
    match direction {
        ChannelDirection::FromNode1 => 0,
        ChannelDirection::FromNode2 => 1,
    }
}

/// The policy a validated `channel_update` sets.
pub fn policy_of(update: &ChannelUpdate) -> DirectedPolicy {
    DirectedPolicy {
        fee_base_msat: update.fee_base_msat,
        fee_proportional_millionths: update.fee_proportional_millionths,
        cltv_expiry_delta: update.cltv_expiry_delta,
        htlc_minimum_msat: update.htlc_minimum_msat,
        htlc_maximum_msat: update.htlc_maximum_msat,
        enabled: update.channel_flags & 2 == 0,
        timestamp: update.timestamp,
    }
}

/// Refuses a timestamp already held (or newer), and the same timestamp unless identical.
fn newer<T: PartialEq>(held: Option<(&T, u32)>, msg: &T, got: u32) -> Result<(), GossipError> {
    match held {
        Some((h, _)) if h == msg => Err(GossipError::Duplicate),
        Some((_, held)) if held >= got => Err(GossipError::Outdated { held, got }),
        _ => Ok(()),
    }
}

/// Whether a message's signatures are checked: always for what came from outside; not for
/// what this node signed itself ([`GossipStore::handle_own_message`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signatures {
    Check,
    Trusted,
}

impl Signatures {
    /// True if `sig` signs `hash` with `key` — or without looking, for our own message.
    fn accept(
        self,
        secp: &Secp256k1<VerifyOnly>,
        hash: [u8; 32],
        sig: &bitcoin::secp256k1::ecdsa::Signature,
        key: &PublicKey,
    ) -> bool {
        self == Signatures::Trusted || verify(secp, hash, sig, key)
    }
}

impl GossipStore {
    /// An empty store.
    pub fn new(config: GossipConfig) -> GossipStore {
        GossipStore {
            config,
            secp: Secp256k1::verification_only(),
            channels: BTreeMap::new(),
            nodes: HashMap::new(),
            pending: BTreeMap::new(),
            pending_nodes: HashMap::new(),
            held_nodes: HashMap::new(),
            broadcast: Vec::new(),
            broadcast_dropped: 0,
        }
    }

    /// The bounds in force.
    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    /// Number of channels stored.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Number of nodes stored (each has at least one channel).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of announcements waiting for their UTXO answer.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Is this channel's announcement waiting for its UTXO answer?
    pub fn is_pending(&self, short_channel_id: ShortChannelId) -> bool {
        self.pending.contains_key(&short_channel_id)
    }

    /// The stored announcement of a channel.
    pub fn channel_announcement(&self, scid: ShortChannelId) -> Option<&ChannelAnnouncement> {
        self.channels.get(&scid).map(|c| &c.announcement)
    }

    /// The latest accepted `channel_update` of one direction of a channel.
    pub fn channel_update(
        &self,
        scid: ShortChannelId,
        direction: ChannelDirection,
    ) -> Option<&ChannelUpdate> {
        self.channels
            .get(&scid)
            .and_then(|c| c.updates[slot(direction)].as_ref())
    }

    /// The latest accepted `node_announcement` of a node.
    pub fn node_announcement(&self, node_id: &PublicKey) -> Option<&NodeAnnouncement> {
        self.nodes
            .get(node_id)
            .and_then(|n| n.announcement.as_ref())
    }

    /// Accepted messages that did not fit in the broadcast queue since the store was made.
    pub fn broadcast_dropped(&self) -> u64 {
        self.broadcast_dropped
    }

    /// Dispatches a gossip message to its handler; [`GossipError::NotGossip`] for others
    /// (`gossip_timestamp_filter` is answered by [`GossipStore::handle_timestamp_filter`]).
    pub fn handle_message(
        &mut self,
        msg: &Message,
        utxo: &mut dyn UtxoLookup,
        now: u64,
    ) -> Result<Handled, GossipError> {
        self.dispatch(msg, utxo, now, Signatures::Check)
    }

    /// [`GossipStore::handle_message`] for a message this node built and signed itself —
    /// our `channel_update`s and `node_announcement`, a `channel_announcement` whose peer
    /// signatures [`own::combine`] has just checked: every check but the signatures (a
    /// restarted node re-announces all its channels; checking its own fresh signatures
    /// again was most of that work). Never for a message that came from outside.
    pub fn handle_own_message(
        &mut self,
        msg: &Message,
        utxo: &mut dyn UtxoLookup,
        now: u64,
    ) -> Result<Handled, GossipError> {
        self.dispatch(msg, utxo, now, Signatures::Trusted)
    }

    fn dispatch(
        &mut self,
        msg: &Message,
        utxo: &mut dyn UtxoLookup,
        now: u64,
        sigs: Signatures,
    ) -> Result<Handled, GossipError> {
        match msg {
            Message::ChannelAnnouncement(m) => self.accept_channel_announcement(m, utxo, now, sigs),
            Message::ChannelUpdate(m) => self.accept_channel_update(m, now, sigs),
            Message::NodeAnnouncement(m) => self.accept_node_announcement(m, now, sigs),
            other => Err(GossipError::NotGossip(other.msg_type())),
        }
    }

    /// Validates a `channel_announcement`: chain, node order, field bounds, required
    /// features, the four signatures, the store's bounds, then the funding output (which
    /// may be [`Handled::Held`] until [`GossipStore::utxo_resolved`]).
    pub fn handle_channel_announcement(
        &mut self,
        msg: &ChannelAnnouncement,
        utxo: &mut dyn UtxoLookup,
        now: u64,
    ) -> Result<Handled, GossipError> {
        self.accept_channel_announcement(msg, utxo, now, Signatures::Check)
    }

    fn accept_channel_announcement(
        &mut self,
        msg: &ChannelAnnouncement,
        utxo: &mut dyn UtxoLookup,
        now: u64,
        sigs: Signatures,
    ) -> Result<Handled, GossipError> {
        let scid = ShortChannelId::from_u64(msg.short_channel_id);
        if msg.chain_hash != self.config.chain_hash {
            return Err(GossipError::WrongChain);
        }
        if msg.node_id_1.serialize() >= msg.node_id_2.serialize() {
            return Err(GossipError::NodeIdsNotOrdered);
        }
        bounded("features", msg.features.0.len(), MAX_FEATURES_LEN)?;
        bounded("excess", msg.excess.len(), MAX_EXCESS_LEN)?;
        if let Some(bit) = msg.features.unknown_required(&[]) {
            return Err(GossipError::UnknownRequiredFeature(bit));
        }
        if self.channels.contains_key(&scid) {
            return Err(GossipError::Duplicate);
        }
        if self.pending.contains_key(&scid) {
            return Err(GossipError::AlreadyPending);
        }
        let hash = msg.signature_hash();
        let signatures = [
            (&msg.node_signature_1, &msg.node_id_1, SignatureRole::Node1),
            (&msg.node_signature_2, &msg.node_id_2, SignatureRole::Node2),
            (
                &msg.bitcoin_signature_1,
                &msg.bitcoin_key_1,
                SignatureRole::Bitcoin1,
            ),
            (
                &msg.bitcoin_signature_2,
                &msg.bitcoin_key_2,
                SignatureRole::Bitcoin2,
            ),
        ];
        for (sig, key, role) in signatures {
            if !sigs.accept(&self.secp, hash, sig, key) {
                return Err(GossipError::InvalidSignature(role));
            }
        }
        self.check_room(msg)?;
        match utxo.lookup(scid) {
            UtxoResult::Pending => {
                if self.pending.len() >= self.config.max_pending {
                    return Err(GossipError::PendingFull {
                        max: self.config.max_pending,
                    });
                }
                for n in [msg.node_id_1, msg.node_id_2] {
                    *self.pending_nodes.entry(n).or_insert(0) += 1;
                }
                self.pending.insert(
                    scid,
                    PendingChannel {
                        announcement: msg.clone(),
                        since: now,
                        updates: [None, None],
                    },
                );
                Ok(Handled::Held)
            }
            answer => {
                let capacity_sat = Self::check_funding(msg, answer)?;
                Ok(Handled::Applied(self.add_channel(
                    msg.clone(),
                    capacity_sat,
                    [None, None],
                    now,
                )))
            }
        }
    }

    /// The caller's later answer for an announcement that was [`Handled::Held`]. A found,
    /// matching output adds the channel (with the updates and node announcements held for
    /// it); any other answer drops the announcement and what was held for it, with the
    /// reason. An answer for an id that is not waiting is [`GossipError::UnknownChannel`];
    /// [`UtxoResult::Pending`] keeps it waiting.
    pub fn utxo_resolved(
        &mut self,
        short_channel_id: ShortChannelId,
        result: UtxoResult,
        now: u64,
    ) -> Result<Handled, GossipError> {
        if result == UtxoResult::Pending {
            return if self.pending.contains_key(&short_channel_id) {
                Ok(Handled::Held)
            } else {
                Err(GossipError::UnknownChannel(short_channel_id))
            };
        }
        let Some((p, mut held_nodes)) = self.take_pending(short_channel_id) else {
            return Err(GossipError::UnknownChannel(short_channel_id));
        };
        let capacity_sat = Self::check_funding(&p.announcement, result)?;
        self.check_room(&p.announcement)?;
        let ends = [p.announcement.node_id_1, p.announcement.node_id_2];
        let mut changes = self.add_channel(p.announcement, capacity_sat, p.updates, now);
        // Its nodes are known now: what another waiting announcement held for them is
        // theirs too.
        held_nodes.extend(ends.iter().filter_map(|n| self.held_nodes.remove(n)));
        // Held node announcements were signature-checked when they came.
        for a in held_nodes {
            let newer = self
                .nodes
                .get(&a.node_id)
                .and_then(|s| s.announcement.as_ref())
                .is_none_or(|old| old.timestamp < a.timestamp);
            if newer {
                changes.extend(self.store_node(a));
            }
        }
        Ok(Handled::Applied(changes))
    }

    /// Validates a `channel_update`: chain, `htlc_maximum_msat` present, bounds, timestamp
    /// (newer than held, ≤ a day ahead, ≤ two weeks old), HTLC limits against the capacity,
    /// and the signature of the node whose direction it is (bit 0 of `channel_flags`). An
    /// update for a channel waiting for its UTXO answer is held with it.
    pub fn handle_channel_update(
        &mut self,
        msg: &ChannelUpdate,
        now: u64,
    ) -> Result<Handled, GossipError> {
        self.accept_channel_update(msg, now, Signatures::Check)
    }

    fn accept_channel_update(
        &mut self,
        msg: &ChannelUpdate,
        now: u64,
        sigs: Signatures,
    ) -> Result<Handled, GossipError> {
        let scid = ShortChannelId::from_u64(msg.short_channel_id);
        if msg.chain_hash != self.config.chain_hash {
            return Err(GossipError::WrongChain);
        }
        if msg.message_flags & 1 == 0 {
            return Err(GossipError::MissingHtlcMaximum);
        }
        bounded("excess", msg.excess.len(), MAX_EXCESS_LEN)?;
        let ts = u64::from(msg.timestamp);
        if ts > now.saturating_add(MAX_FUTURE_SECS) {
            return Err(GossipError::TooFarInFuture {
                timestamp: msg.timestamp,
            });
        }
        if ts.saturating_add(STALE_AFTER_SECS) < now {
            return Err(GossipError::TooOld {
                timestamp: msg.timestamp,
            });
        }
        if msg.htlc_minimum_msat > msg.htlc_maximum_msat {
            return Err(GossipError::BadHtlcLimits {
                min: msg.htlc_minimum_msat,
                max: msg.htlc_maximum_msat,
            });
        }
        let direction = ChannelDirection::from_channel_flags(msg.channel_flags);
        let (ann, held, capacity_sat) = if let Some(c) = self.channels.get(&scid) {
            (&c.announcement, &c.updates, Some(c.capacity_sat))
        } else if let Some(p) = self.pending.get(&scid) {
            (&p.announcement, &p.updates, None)
        } else {
            return Err(GossipError::UnknownChannel(scid));
        };
        let held = held[slot(direction)].as_ref();
        newer(held.map(|h| (h, h.timestamp)), msg, msg.timestamp)?;
        if let Some(cap) = capacity_sat {
            if msg.htlc_maximum_msat > cap.saturating_mul(1000) {
                return Err(GossipError::BadHtlcLimits {
                    min: msg.htlc_minimum_msat,
                    max: msg.htlc_maximum_msat,
                });
            }
        }
        let signer = match direction {
            ChannelDirection::FromNode1 => &ann.node_id_1,
            ChannelDirection::FromNode2 => &ann.node_id_2,
        };
        if !sigs.accept(&self.secp, msg.signature_hash(), &msg.signature, signer) {
            return Err(GossipError::InvalidSignature(SignatureRole::Origin));
        }
        if let Some(p) = self.pending.get_mut(&scid) {
            p.updates[slot(direction)] = Some(msg.clone());
            return Ok(Handled::Held);
        }
        Ok(Handled::Applied(self.store_update(msg.clone())))
    }

    /// Validates a `node_announcement`: bounds (features, addresses, excess), address
    /// layout, a known node (one with a channel, or held for a waiting announcement),
    /// timestamp (newer than held, ≤ a day ahead) and the node's signature.
    pub fn handle_node_announcement(
        &mut self,
        msg: &NodeAnnouncement,
        now: u64,
    ) -> Result<Handled, GossipError> {
        self.accept_node_announcement(msg, now, Signatures::Check)
    }

    fn accept_node_announcement(
        &mut self,
        msg: &NodeAnnouncement,
        now: u64,
        sigs: Signatures,
    ) -> Result<Handled, GossipError> {
        bounded("features", msg.features.0.len(), MAX_FEATURES_LEN)?;
        bounded("addresses", msg.addresses.0.len(), MAX_ADDRESSES_LEN)?;
        bounded("excess", msg.excess.len(), MAX_EXCESS_LEN)?;
        check_addresses(&msg.addresses.0)?;
        if u64::from(msg.timestamp) > now.saturating_add(MAX_FUTURE_SECS) {
            return Err(GossipError::TooFarInFuture {
                timestamp: msg.timestamp,
            });
        }
        let known = self.nodes.get(&msg.node_id);
        let held = match known {
            Some(n) => n.announcement.as_ref(),
            None if self.pending_nodes.contains_key(&msg.node_id) => {
                self.held_nodes.get(&msg.node_id)
            }
            None => return Err(GossipError::UnknownNode(msg.node_id)),
        };
        newer(held.map(|h| (h, h.timestamp)), msg, msg.timestamp)?;
        if !sigs.accept(
            &self.secp,
            msg.signature_hash(),
            &msg.signature,
            &msg.node_id,
        ) {
            return Err(GossipError::InvalidSignature(SignatureRole::Origin));
        }
        if known.is_none() {
            self.held_nodes.insert(msg.node_id, msg.clone());
            return Ok(Handled::Held);
        }
        Ok(Handled::Applied(self.store_node(msg.clone())))
    }

    /// The funding output of a channel (or of a waiting announcement) was spent: forget
    /// the channel. Returns the `ChannelRemoved` to apply, if the channel was stored.
    pub fn funding_spent(&mut self, short_channel_id: ShortChannelId) -> Vec<GraphChange> {
        self.take_pending(short_channel_id);
        self.remove_channel(short_channel_id).into_iter().collect()
    }

    /// Prunes channels whose newest `channel_update` (over both directions; the time the
    /// announcement was accepted while it has none) is older than two weeks before `now`,
    /// and announcements that waited longer than [`PENDING_TIMEOUT_SECS`] for their UTXO
    /// answer. Returns a `ChannelRemoved` per pruned channel.
    pub fn prune_stale(&mut self, now: u64) -> Vec<GraphChange> {
        let cutoff = now.saturating_sub(STALE_AFTER_SECS);
        let stale: Vec<ShortChannelId> = self
            .channels
            .iter()
            .filter(|(_, c)| {
                let newest = c
                    .updates
                    .iter()
                    .flatten()
                    .map(|u| u64::from(u.timestamp))
                    .max()
                    .unwrap_or(c.accepted_at);
                newest < cutoff
            })
            .map(|(s, _)| *s)
            .collect();
        let expired: Vec<ShortChannelId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.since.saturating_add(PENDING_TIMEOUT_SECS) < now)
            .map(|(s, _)| *s)
            .collect();
        for s in expired {
            self.take_pending(s);
        }
        stale
            .into_iter()
            .filter_map(|s| self.remove_channel(s))
            .collect()
    }

    /// The messages accepted since the last call, in acceptance order (a channel's
    /// announcement before its updates, a node's announcement after its first channel),
    /// for the caller to relay to its peers in one batch.
    pub fn take_broadcast_batch(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.broadcast)
    }

    /// The timestamp a `gossip_timestamp_filter` judges `msg` by, as
    /// [`GossipStore::messages_since`] does: its own for an update or a node announcement;
    /// for a channel announcement, the newest of its channel's updates here (`None`: no
    /// update yet, or not a gossip message).
    pub fn filter_timestamp(&self, msg: &Message) -> Option<u32> {
        match msg {
            Message::ChannelUpdate(u) => Some(u.timestamp),
            Message::NodeAnnouncement(a) => Some(a.timestamp),
            Message::ChannelAnnouncement(a) => self
                .channels
                .get(&ShortChannelId::from_u64(a.short_channel_id))?
                .updates
                .iter()
                .flatten()
                .map(|u| u.timestamp)
                .max(),
            _ => None,
        }
    }

    /// Answers a peer's `gossip_timestamp_filter` with [`GossipStore::messages_since`];
    /// refuses another chain's filter.
    pub fn handle_timestamp_filter(
        &self,
        filter: &GossipTimestampFilter,
    ) -> Result<Vec<Message>, GossipError> {
        if filter.chain_hash != self.config.chain_hash {
            return Err(GossipError::WrongChain);
        }
        Ok(self.messages_since(filter.first_timestamp, filter.timestamp_range))
    }

    /// What to send a peer whose filter is `[first_timestamp, first_timestamp +
    /// timestamp_range)`, in BOLT 7 order: channels by short channel id, each
    /// `channel_announcement` (sent when one of its updates is in the window; a channel
    /// without updates is not sent) followed by its updates in the window; each node's
    /// `node_announcement` in the window right after the first channel of the node sent,
    /// and the rest (nodes whose channels are all outside the window) at the end.
    pub fn messages_since(&self, first_timestamp: u32, timestamp_range: u32) -> Vec<Message> {
        let in_window = |t: u32| in_filter_window(first_timestamp, timestamp_range, t);
        let node_in_window = |n: &PublicKey| {
            self.nodes
                .get(n)
                .and_then(|n| n.announcement.as_ref())
                .filter(|a| in_window(a.timestamp))
        };
        let mut out = Vec::new();
        let mut sent_nodes = HashSet::new();
        for c in self.channels.values() {
            let updates: Vec<&ChannelUpdate> = c
                .updates
                .iter()
                .flatten()
                .filter(|u| in_window(u.timestamp))
                .collect();
            if updates.is_empty() {
                continue;
            }
            out.push(Message::ChannelAnnouncement(c.announcement.clone()));
            out.extend(
                updates
                    .into_iter()
                    .map(|u| Message::ChannelUpdate(u.clone())),
            );
            for n in [&c.announcement.node_id_1, &c.announcement.node_id_2] {
                if let Some(a) = node_in_window(n) {
                    if sent_nodes.insert(*n) {
                        out.push(Message::NodeAnnouncement(a.clone()));
                    }
                }
            }
        }
        let mut rest: Vec<&NodeAnnouncement> = self
            .nodes
            .iter()
            .filter(|(id, _)| !sent_nodes.contains(*id))
            .filter_map(|(id, _)| node_in_window(id))
            .collect();
        rest.sort_by_key(|a| a.node_id.serialize());
        out.extend(
            rest.into_iter()
                .map(|a| Message::NodeAnnouncement(a.clone())),
        );
        out
    }

    // ----- internals -----

    /// Refuses an announcement the store has no room for.
    fn check_room(&self, msg: &ChannelAnnouncement) -> Result<(), GossipError> {
        if self.channels.len() >= self.config.max_channels {
            return Err(GossipError::TooManyChannels {
                max: self.config.max_channels,
            });
        }
        for n in [msg.node_id_1, msg.node_id_2] {
            if self.nodes.get(&n).map_or(0, |s| s.channels) >= self.config.max_channels_per_node {
                return Err(GossipError::TooManyChannelsForNode {
                    node_id: n,
                    max: self.config.max_channels_per_node,
                });
            }
        }
        Ok(())
    }

    /// The capacity (sat) if `answer` is the announced 2-of-2, else why not.
    fn check_funding(msg: &ChannelAnnouncement, answer: UtxoResult) -> Result<u64, GossipError> {
        let scid = ShortChannelId::from_u64(msg.short_channel_id);
        match answer {
            UtxoResult::Found {
                script_pubkey,
                value,
            } => {
                if script_pubkey != funding_script_pubkey(&msg.bitcoin_key_1, &msg.bitcoin_key_2) {
                    return Err(GossipError::FundingScriptMismatch(scid));
                }
                Ok(value.to_sat())
            }
            UtxoResult::Spent => Err(GossipError::FundingSpent(scid)),
            UtxoResult::Missing | UtxoResult::Pending => Err(GossipError::FundingMissing(scid)),
        }
    }

    fn queue(&mut self, msg: Message) {
        if self.broadcast.len() < self.config.max_broadcast_queue {
            self.broadcast.push(msg);
        } else {
            self.broadcast_dropped += 1;
        }
    }

    /// Removes a waiting announcement; also returns the node announcements held for its
    /// nodes that no other waiting announcement names.
    fn take_pending(
        &mut self,
        scid: ShortChannelId,
    ) -> Option<(PendingChannel, Vec<NodeAnnouncement>)> {
        let p = self.pending.remove(&scid)?;
        let mut released = Vec::new();
        for n in [p.announcement.node_id_1, p.announcement.node_id_2] {
            if let Some(count) = self.pending_nodes.get_mut(&n) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.pending_nodes.remove(&n);
                    released.extend(self.held_nodes.remove(&n));
                }
            }
        }
        Some((p, released))
    }

    /// Stores a fully validated channel with the updates held for it.
    fn add_channel(
        &mut self,
        ann: ChannelAnnouncement,
        capacity_sat: u64,
        held_updates: [Option<ChannelUpdate>; 2],
        now: u64,
    ) -> Vec<GraphChange> {
        let scid = ShortChannelId::from_u64(ann.short_channel_id);
        let mut changes = vec![GraphChange::ChannelAdded {
            short_channel_id: scid,
            node_1: ann.node_id_1,
            node_2: ann.node_id_2,
            capacity_sat,
        }];
        for n in [ann.node_id_1, ann.node_id_2] {
            self.nodes.entry(n).or_default().channels += 1;
        }
        self.queue(Message::ChannelAnnouncement(ann.clone()));
        self.channels.insert(
            scid,
            StoredChannel {
                announcement: ann,
                capacity_sat,
                updates: [None, None],
                accepted_at: now,
            },
        );
        for u in held_updates.into_iter().flatten() {
            // Held updates were signature-checked; the capacity is known only now.
            if u.htlc_maximum_msat <= capacity_sat.saturating_mul(1000) {
                changes.extend(self.store_update(u));
            }
        }
        changes
    }

    /// Stores a validated update of a stored channel.
    fn store_update(&mut self, u: ChannelUpdate) -> Vec<GraphChange> {
        let scid = ShortChannelId::from_u64(u.short_channel_id);
        let direction = ChannelDirection::from_channel_flags(u.channel_flags);
        let Some(c) = self.channels.get_mut(&scid) else {
            return Vec::new();
        };
        c.updates[slot(direction)] = Some(u.clone());
        let change = GraphChange::PolicyUpdated {
            short_channel_id: scid,
            direction,
            policy: policy_of(&u),
        };
        self.queue(Message::ChannelUpdate(u));
        vec![change]
    }

    /// Stores a validated announcement of a stored node.
    fn store_node(&mut self, a: NodeAnnouncement) -> Vec<GraphChange> {
        let Some(n) = self.nodes.get_mut(&a.node_id) else {
            return Vec::new();
        };
        n.announcement = Some(a.clone());
        let change = GraphChange::NodeAnnounced {
            node_id: a.node_id,
            alias: a.alias,
            timestamp: a.timestamp,
        };
        self.queue(Message::NodeAnnouncement(a));
        vec![change]
    }

    fn remove_channel(&mut self, scid: ShortChannelId) -> Option<GraphChange> {
        let c = self.channels.remove(&scid)?;
        for n in [c.announcement.node_id_1, c.announcement.node_id_2] {
            if let Some(s) = self.nodes.get_mut(&n) {
                s.channels = s.channels.saturating_sub(1);
                if s.channels == 0 {
                    self.nodes.remove(&n);
                }
            }
        }
        Some(GraphChange::ChannelRemoved {
            short_channel_id: scid,
        })
    }
}
