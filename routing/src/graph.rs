//! [`NetworkGraph`]: the public channel graph on petgraph, built only from [`GraphChange`]s.
//!
//! Owns: one node per node id, one directed edge per channel direction (the policy the
//! edge's source charges to forward toward its target), the maps from node ids and short
//! channel ids to petgraph indices, and the removal of nodes left without channels. Must
//! never validate gossip (signatures, chain lookups: the gossip side's job), never do I/O,
//! and never panic on any sequence of changes.
//!
//! # Memory
//!
//! Measured with `size_of` on x86-64 (the `memory_per_channel` test pins the figures): the
//! edge weight ([`DirectedChannel`]) is 56 bytes, a petgraph `StableGraph` edge slot around
//! it 72 bytes, two per channel (144 bytes); the `ShortChannelId → (EdgeIndex, EdgeIndex)`
//! map entry is 16 bytes plus a control byte at ≤ 7/8 load (≈ 20 bytes); the search's
//! compact edge index adds 2 × 56 bytes of rows and 2 × 4 bytes of slot map. In all
//! **≈ 285 bytes per channel** (≈ 165 for the graph proper, ≈ 120 for the search index),
//! before `Vec`/`HashMap` growth slack. A node costs its slot (112 bytes: entry with its
//! optional alias plus two edge-list heads), its `PublicKey → NodeIndex` map entry (68 bytes
//! plus control, ≈ 80) and 4 bytes of index, ≈ 195 bytes. On the 17,000-node /
//! 54,000-channel benchmark graph: ≈ 15 MB for channels, ≈ 3.3 MB for nodes.

use std::collections::HashMap;
use std::sync::OnceLock;

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::scid::ShortChannelId;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::change::{ChannelDirection, DirectedPolicy, GraphChange};
use crate::search_index::SearchIndex;

/// A node of the graph: its id and, once announced, its alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node id.
    pub node_id: PublicKey,
    /// The latest `node_announcement` seen for it: alias and timestamp.
    pub announcement: Option<NodeAnnouncementInfo>,
}

/// What the graph keeps of a `node_announcement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAnnouncementInfo {
    /// Alias, UTF-8, zero padded.
    pub alias: [u8; 32],
    /// The announcement's timestamp (unix seconds).
    pub timestamp: u32,
}

/// The weight of one directed edge: one direction of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectedChannel {
    /// The channel.
    pub short_channel_id: ShortChannelId,
    /// The channel's capacity (funding output value), sat.
    pub capacity_sat: u64,
    /// Which direction of the channel this edge is (source → target).
    pub direction: ChannelDirection,
    /// The policy the edge's source charges; `None` until its `channel_update` arrives.
    /// A direction without a policy, or with `enabled == false`, cannot carry payments.
    pub policy: Option<DirectedPolicy>,
}

impl DirectedChannel {
    /// The policy, if there is one and it is enabled.
    pub fn usable_policy(&self) -> Option<&DirectedPolicy> {
        self.policy.as_ref().filter(|p| p.enabled)
    }

    /// The capacity in msat (saturating).
    pub fn capacity_msat(&self) -> u64 {
        self.capacity_sat.saturating_mul(1000)
    }
}

/// A channel as the graph knows it, both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel.
    pub short_channel_id: ShortChannelId,
    /// The lesser node id.
    pub node_1: PublicKey,
    /// The greater node id.
    pub node_2: PublicKey,
    /// Capacity, sat.
    pub capacity_sat: u64,
    /// Policy of `node_1` toward `node_2`.
    pub policy_1_to_2: Option<DirectedPolicy>,
    /// Policy of `node_2` toward `node_1`.
    pub policy_2_to_1: Option<DirectedPolicy>,
}

/// Why a [`GraphChange`] was not applied. The graph is unchanged when `apply` errs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A policy update or removal named a channel the graph does not hold.
    #[error("unknown channel {0}")]
    UnknownChannel(ShortChannelId),
    /// A channel was added twice with different endpoints or capacity.
    #[error("channel {0} already known with other endpoints or capacity")]
    ConflictingChannel(ShortChannelId),
    /// A channel's two ends are the same node.
    #[error("channel {0} connects a node to itself")]
    SelfLoop(ShortChannelId),
    /// A `node_announcement` for a node with no channel in the graph (BOLT 7 ignores it).
    #[error("node announced without any channel")]
    UnknownNode,
    /// The update's timestamp is not newer than the one held.
    #[error("stale update for {0}")]
    Stale(ShortChannelId),
}

/// The public channel graph: nodes and one directed edge per channel direction.
#[derive(Debug, Clone, Default)]
pub struct NetworkGraph {
    graph: StableDiGraph<NodeEntry, DirectedChannel, u32>,
    nodes: HashMap<PublicKey, NodeIndex<u32>>,
    channels: HashMap<ShortChannelId, (EdgeIndex<u32>, EdgeIndex<u32>)>,
    /// The searches' compact copy of the edges: built on first use, patched in place by
    /// policy updates, dropped when channels come or go.
    index: OnceLock<SearchIndex>,
    /// Changes applied so far: see [`NetworkGraph::generation`].
    generation: u64,
}

/// The direction of the channel edge going from `from` to `to` (node 1 is the lesser id,
/// compared as 33-byte compressed keys).
pub fn direction_between(from: &PublicKey, to: &PublicKey) -> ChannelDirection {
    if from.serialize() < to.serialize() {
        ChannelDirection::FromNode1
    } else {
        ChannelDirection::FromNode2
    }
}

impl NetworkGraph {
    /// An empty graph.
    pub fn new() -> NetworkGraph {
        NetworkGraph::default()
    }

    /// A number that changes whenever the graph does (it counts the changes applied): a
    /// caller that keeps something in step with the graph can tell it is still in step.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Apply one validated change. On error nothing changed.
    pub fn apply(&mut self, change: &GraphChange) -> Result<(), GraphError> {
        let res = self.apply_change(change);
        if res.is_ok() {
            self.generation += 1;
        }
        res
    }

    fn apply_change(&mut self, change: &GraphChange) -> Result<(), GraphError> {
        match change {
            GraphChange::ChannelAdded {
                short_channel_id,
                node_1,
                node_2,
                capacity_sat,
            } => self.add_channel(*short_channel_id, *node_1, *node_2, *capacity_sat),
            GraphChange::PolicyUpdated {
                short_channel_id,
                direction,
                policy,
            } => self.update_policy(*short_channel_id, *direction, *policy),
            GraphChange::ChannelRemoved { short_channel_id } => {
                self.remove_channel(*short_channel_id)
            }
            GraphChange::NodeAnnounced {
                node_id,
                alias,
                timestamp,
            } => self.announce_node(node_id, *alias, *timestamp),
        }
    }

    fn node_or_insert(&mut self, node_id: PublicKey) -> NodeIndex<u32> {
        if let Some(ix) = self.nodes.get(&node_id) {
            return *ix;
        }
        let ix = self.graph.add_node(NodeEntry {
            node_id,
            announcement: None,
        });
        self.nodes.insert(node_id, ix);
        ix
    }

    fn add_channel(
        &mut self,
        scid: ShortChannelId,
        node_1: PublicKey,
        node_2: PublicKey,
        capacity_sat: u64,
    ) -> Result<(), GraphError> {
        if node_1 == node_2 {
            return Err(GraphError::SelfLoop(scid));
        }
        // Whatever order the caller gave, node 1 is the lesser key.
        let (n1, n2) = if node_1.serialize() < node_2.serialize() {
            (node_1, node_2)
        } else {
            (node_2, node_1)
        };
        if let Some(info) = self.channel(scid) {
            if info.node_1 == n1 && info.node_2 == n2 && info.capacity_sat == capacity_sat {
                return Ok(());
            }
            return Err(GraphError::ConflictingChannel(scid));
        }
        let a = self.node_or_insert(n1);
        let b = self.node_or_insert(n2);
        let weight = |direction| DirectedChannel {
            short_channel_id: scid,
            capacity_sat,
            direction,
            policy: None,
        };
        let e1 = self
            .graph
            .add_edge(a, b, weight(ChannelDirection::FromNode1));
        let e2 = self
            .graph
            .add_edge(b, a, weight(ChannelDirection::FromNode2));
        self.channels.insert(scid, (e1, e2));
        self.index = OnceLock::new();
        Ok(())
    }

    fn update_policy(
        &mut self,
        scid: ShortChannelId,
        direction: ChannelDirection,
        policy: DirectedPolicy,
    ) -> Result<(), GraphError> {
        let edge = self
            .edge_index(scid, direction)
            .ok_or(GraphError::UnknownChannel(scid))?;
        let weight = self
            .graph
            .edge_weight_mut(edge)
            .ok_or(GraphError::UnknownChannel(scid))?;
        if let Some(old) = &weight.policy {
            if old.timestamp >= policy.timestamp && *old != policy {
                return Err(GraphError::Stale(scid));
            }
        }
        weight.policy = Some(policy);
        let weight = *weight;
        if let Some(index) = self.index.get_mut() {
            index.update(edge, &weight);
        }
        Ok(())
    }

    fn remove_channel(&mut self, scid: ShortChannelId) -> Result<(), GraphError> {
        let (e1, e2) = self
            .channels
            .remove(&scid)
            .ok_or(GraphError::UnknownChannel(scid))?;
        let ends = self.graph.edge_endpoints(e1);
        self.graph.remove_edge(e1);
        self.graph.remove_edge(e2);
        self.index = OnceLock::new();
        if let Some((a, b)) = ends {
            for ix in [a, b] {
                let orphan = self
                    .graph
                    .edges_directed(ix, Direction::Outgoing)
                    .next()
                    .is_none()
                    && self
                        .graph
                        .edges_directed(ix, Direction::Incoming)
                        .next()
                        .is_none();
                if orphan {
                    if let Some(entry) = self.graph.remove_node(ix) {
                        self.nodes.remove(&entry.node_id);
                    }
                }
            }
        }
        Ok(())
    }

    fn announce_node(
        &mut self,
        node_id: &PublicKey,
        alias: [u8; 32],
        timestamp: u32,
    ) -> Result<(), GraphError> {
        let ix = *self.nodes.get(node_id).ok_or(GraphError::UnknownNode)?;
        if let Some(entry) = self.graph.node_weight_mut(ix) {
            match entry.announcement {
                Some(old) if old.timestamp >= timestamp => {}
                _ => entry.announcement = Some(NodeAnnouncementInfo { alias, timestamp }),
            }
        }
        Ok(())
    }

    /// Number of channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Number of nodes (every node has at least one channel).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node with this id.
    pub fn node(&self, node_id: &PublicKey) -> Option<&NodeEntry> {
        self.nodes
            .get(node_id)
            .and_then(|ix| self.graph.node_weight(*ix))
    }

    /// The petgraph index of a node.
    pub fn node_index(&self, node_id: &PublicKey) -> Option<NodeIndex<u32>> {
        self.nodes.get(node_id).copied()
    }

    /// The petgraph edge index of one direction of a channel.
    pub fn edge_index(
        &self,
        scid: ShortChannelId,
        direction: ChannelDirection,
    ) -> Option<EdgeIndex<u32>> {
        self.channels.get(&scid).map(|(e1, e2)| match direction {
            ChannelDirection::FromNode1 => *e1,
            ChannelDirection::FromNode2 => *e2,
        })
    }

    /// One direction of a channel: the edge's source, target and weight.
    pub fn directed_channel(
        &self,
        scid: ShortChannelId,
        direction: ChannelDirection,
    ) -> Option<(PublicKey, PublicKey, &DirectedChannel)> {
        let e = self.edge_index(scid, direction)?;
        let (a, b) = self.graph.edge_endpoints(e)?;
        Some((
            self.graph.node_weight(a)?.node_id,
            self.graph.node_weight(b)?.node_id,
            self.graph.edge_weight(e)?,
        ))
    }

    /// A channel, both directions.
    pub fn channel(&self, scid: ShortChannelId) -> Option<ChannelInfo> {
        let (n1, n2, w1) = self.directed_channel(scid, ChannelDirection::FromNode1)?;
        let (_, _, w2) = self.directed_channel(scid, ChannelDirection::FromNode2)?;
        Some(ChannelInfo {
            short_channel_id: scid,
            node_1: n1,
            node_2: n2,
            capacity_sat: w1.capacity_sat,
            policy_1_to_2: w1.policy,
            policy_2_to_1: w2.policy,
        })
    }

    /// The channels of a node, with the peer at the other end.
    pub fn channels_of(&self, node_id: &PublicKey) -> Vec<(ShortChannelId, PublicKey)> {
        let Some(ix) = self.nodes.get(node_id) else {
            return Vec::new();
        };
        self.graph
            .edges_directed(*ix, Direction::Outgoing)
            .filter_map(|e| {
                let peer = self.graph.node_weight(e.target())?.node_id;
                Some((e.weight().short_channel_id, peer))
            })
            .collect()
    }

    /// Build the searches' compact edge index now rather than on the first query after a
    /// channel was added or removed (policy updates keep it current). O(nodes + channels).
    pub fn prepare_search(&self) {
        self.search_index();
    }

    pub(crate) fn search_index(&self) -> &SearchIndex {
        self.index.get_or_init(|| SearchIndex::build(&self.graph))
    }

    /// The petgraph graph itself (read only), for searches.
    pub fn petgraph(&self) -> &StableDiGraph<NodeEntry, DirectedChannel, u32> {
        &self.graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    pub(crate) fn key(i: u8) -> PublicKey {
        let mut b = [0u8; 32];
        b[31] = i;
        b[0] = 1;
        PublicKey::from_secret_key(
            &Secp256k1::signing_only(),
            &SecretKey::from_slice(&b).unwrap(),
        )
    }

    fn policy(ts: u32) -> DirectedPolicy {
        DirectedPolicy {
            fee_base_msat: 1000,
            fee_proportional_millionths: 100,
            cltv_expiry_delta: 40,
            htlc_minimum_msat: 1,
            htlc_maximum_msat: 1_000_000,
            enabled: true,
            timestamp: ts,
        }
    }

    #[test]
    fn add_update_remove() {
        let mut g = NetworkGraph::new();
        let scid = ShortChannelId::from_u64(7);
        let (a, b) = (key(1), key(2));
        g.apply(&GraphChange::ChannelAdded {
            short_channel_id: scid,
            node_1: b,
            node_2: a,
            capacity_sat: 1000,
        })
        .unwrap();
        assert_eq!((g.node_count(), g.channel_count()), (2, 1));
        let info = g.channel(scid).unwrap();
        assert!(info.node_1.serialize() < info.node_2.serialize());
        assert_eq!(info.policy_1_to_2, None);
        g.apply(&GraphChange::PolicyUpdated {
            short_channel_id: scid,
            direction: ChannelDirection::FromNode2,
            policy: policy(5),
        })
        .unwrap();
        assert_eq!(g.channel(scid).unwrap().policy_2_to_1, Some(policy(5)));
        let (from, to, _) = g
            .directed_channel(scid, ChannelDirection::FromNode2)
            .unwrap();
        assert_eq!(direction_between(&from, &to), ChannelDirection::FromNode2);
        assert_eq!(
            g.apply(&GraphChange::PolicyUpdated {
                short_channel_id: scid,
                direction: ChannelDirection::FromNode2,
                policy: DirectedPolicy {
                    fee_base_msat: 1,
                    ..policy(4)
                },
            }),
            Err(GraphError::Stale(scid))
        );
        assert_eq!(
            g.apply(&GraphChange::NodeAnnounced {
                node_id: key(3),
                alias: [0; 32],
                timestamp: 1
            }),
            Err(GraphError::UnknownNode)
        );
        g.apply(&GraphChange::NodeAnnounced {
            node_id: a,
            alias: [1; 32],
            timestamp: 1,
        })
        .unwrap();
        assert_eq!(g.node(&a).unwrap().announcement.unwrap().alias, [1; 32]);
        assert_eq!(g.channels_of(&a), vec![(scid, b)]);
        g.apply(&GraphChange::ChannelRemoved {
            short_channel_id: scid,
        })
        .unwrap();
        assert_eq!((g.node_count(), g.channel_count()), (0, 0));
        assert_eq!(
            g.apply(&GraphChange::ChannelRemoved {
                short_channel_id: scid
            }),
            Err(GraphError::UnknownChannel(scid))
        );
    }

    #[test]
    fn conflicting_and_self_loop() {
        let mut g = NetworkGraph::new();
        let scid = ShortChannelId::from_u64(1);
        let add = |n1, n2, cap| GraphChange::ChannelAdded {
            short_channel_id: scid,
            node_1: n1,
            node_2: n2,
            capacity_sat: cap,
        };
        assert_eq!(
            g.apply(&add(key(1), key(1), 5)),
            Err(GraphError::SelfLoop(scid))
        );
        g.apply(&add(key(1), key(2), 5)).unwrap();
        g.apply(&add(key(1), key(2), 5)).unwrap();
        assert_eq!(
            g.apply(&add(key(1), key(3), 5)),
            Err(GraphError::ConflictingChannel(scid))
        );
        assert_eq!(g.channel_count(), 1);
    }

    #[test]
    fn memory_per_channel() {
        use std::mem::size_of;
        // The figures quoted in the module documentation.
        assert!(
            size_of::<DirectedChannel>() <= 56,
            "{}",
            size_of::<DirectedChannel>()
        );
        assert!(size_of::<(ShortChannelId, (EdgeIndex<u32>, EdgeIndex<u32>))>() <= 16);
        assert!(size_of::<(PublicKey, NodeIndex<u32>)>() <= 68);
    }
}
