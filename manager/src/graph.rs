//! The node's routing graph: our own channels enter it as soon as they are usable (with our
//! forwarding policy for our direction) and leave it when they close; what gossip teaches
//! about other channels joins it through the same [`GraphChange`]s.
//!
//! Owns: keeping `Manager::graph` in step with our channels. Must never: put a channel in
//! the graph before its funding output is verified (it has a short channel id only then).

use std::collections::HashSet;

use fulmen_channel::machine::Phase;
use fulmen_routing::graph::direction_between;
use fulmen_routing::{ChannelDirection, DirectedPolicy, GraphChange};

use bitcoin::secp256k1::PublicKey;

use crate::api::{
    FeesResult, ForwardInfo, ForwardsResult, GraphChannel, GraphResult, RouteHopInfo, RouteResult,
};
use crate::forward::ForwardStatus;
use crate::manager::Manager;
use crate::send::PaymentPlan;
use crate::types::{CmdError, RequestId, Response};

impl Manager {
    /// Adds our usable channels to the graph (and our policy for them), removes closed ones.
    pub(crate) fn sync_graph(&mut self) {
        let mut live = HashSet::new();
        let mut changes = Vec::new();
        // Runs every turn for every channel. A channel whose state, link and policy are as
        // when it was last put in the graph, while the graph itself has not changed since,
        // is skipped: a payment turn of a node with a thousand channels looks at one.
        let in_step = self.graph_synced == Some(self.graph.generation());
        let mut keys = Vec::new();
        for (i, e) in self.channels.iter().enumerate() {
            let Some(scid) = e.ch.short_channel_id() else {
                continue;
            };
            if e.ch.state().phase != Phase::Normal {
                continue;
            }
            live.insert(scid);
            let pol = self.policy_of(e.id);
            let enabled = e.ch.is_connected();
            let key = GraphKey {
                state_version: e.ch.state_version(),
                enabled,
                policy: (pol.fee_base_msat, pol.fee_ppm, pol.cltv_expiry_delta),
            };
            if in_step && e.graph_key == Some(key) {
                continue;
            }
            keys.push((i, key));
            // One or two graph lookups, and the direction from the stored endpoints (no
            // public-key serialization) once the graph has the channel.
            let first = self
                .graph
                .directed_channel(scid, ChannelDirection::FromNode1);
            let known = first.is_some();
            let (dir, current) = match first {
                Some((node_1, _, d)) if node_1 == self.node_id => {
                    (ChannelDirection::FromNode1, d.policy)
                }
                Some(_) => {
                    let dir = ChannelDirection::FromNode2;
                    let d = self.graph.directed_channel(scid, dir);
                    (dir, d.and_then(|(_, _, d)| d.policy))
                }
                None => (direction_between(&self.node_id, &e.peer), None),
            };
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
        for (i, key) in keys {
            if let Some(e) = self.channels.get_mut(i) {
                e.graph_key = Some(key);
            }
        }
        self.graph_synced = Some(self.graph.generation());
    }
}

/// What a channel's entry in our graph was made from (see [`Manager::sync_graph`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GraphKey {
    /// The channel's [`fulmen_channel::machine::Channel::state_version`].
    state_version: u64,
    /// Its link was up.
    enabled: bool,
    /// Our forwarding policy: base fee, ppm, CLTV delta.
    policy: (u32, u32, u16),
}

impl Manager {
    /// `graph`.
    pub(crate) fn graph_view(&self, full: bool) -> GraphResult {
        let pol = |p: Option<DirectedPolicy>| {
            p.map(|p| {
                (
                    p.fee_base_msat,
                    p.fee_proportional_millionths,
                    p.cltv_expiry_delta,
                    p.enabled,
                )
            })
        };
        let g = self.graph.petgraph();
        let mut nodes = Vec::new();
        let mut channels = Vec::new();
        if full {
            for n in g.node_weights() {
                let alias = n.announcement.map(|a| {
                    String::from_utf8_lossy(&a.alias)
                        .trim_end_matches('\0')
                        .to_string()
                });
                nodes.push((n.node_id.to_string(), alias));
            }
            let mut seen = HashSet::new();
            for e in g.edge_weights() {
                if !seen.insert(e.short_channel_id) {
                    continue;
                }
                if let Some(c) = self.graph.channel(e.short_channel_id) {
                    channels.push(GraphChannel {
                        short_channel_id: c.short_channel_id.to_string(),
                        node_1: c.node_1.to_string(),
                        node_2: c.node_2.to_string(),
                        capacity_sat: c.capacity_sat,
                        policy_1_to_2: pol(c.policy_1_to_2),
                        policy_2_to_1: pol(c.policy_2_to_1),
                    });
                }
            }
            nodes.sort();
            channels.sort_by(|a, b| a.short_channel_id.cmp(&b.short_channel_id));
        }
        GraphResult {
            num_nodes: self.graph.node_count(),
            num_channels: self.graph.channel_count(),
            nodes,
            channels,
        }
    }

    /// `route`: what `pay` would choose now for `amount_msat` to `node_id`.
    pub(crate) fn route_query(&mut self, request: RequestId, node_id: PublicKey, amount_msat: u64) {
        self.sync_graph();
        let plan = PaymentPlan {
            payee: node_id.to_string(),
            total_msat: amount_msat,
            final_cltv_delta: crate::payments::MIN_FINAL_CLTV + 3,
            max_fee_msat: fulmen_routing::pathfind::default_max_fee_msat(amount_msat),
            ..PaymentPlan::default()
        };
        let res = self
            .single_route(&plan, node_id, amount_msat)
            .map(|r| {
                let mut prev = self.node_id;
                let hops = r
                    .hops
                    .iter()
                    .map(|h| {
                        let dir = direction_between(&prev, &h.node_id);
                        prev = h.node_id;
                        RouteHopInfo {
                            node_id: h.node_id.to_string(),
                            short_channel_id: h.short_channel_id.to_string(),
                            amount_msat: h.amount_msat,
                            fee_msat: h.fee_msat,
                            expiry_delta: h.expiry_delta,
                            success_probability: self.scorer.success_probability(
                                h.short_channel_id,
                                dir,
                                h.amount_msat,
                                self.graph
                                    .channel(h.short_channel_id)
                                    .map(|c| c.capacity_sat * 1000),
                                self.now,
                            ),
                        }
                    })
                    .collect();
                Response::Route(RouteResult {
                    hops,
                    total_amount_msat: r.total_amount_msat,
                    total_fee_msat: r.total_fee_msat,
                    total_cltv_delta: r.total_cltv_delta,
                    success_probability: r.success_probability,
                })
            })
            .map_err(|e| CmdError::failed(format!("no route: {e}")));
        self.reply(request, res);
    }

    /// `forwards`.
    pub(crate) fn forwards_view(&mut self) -> ForwardsResult {
        let recalled = std::mem::take(&mut self.recalled_forwards);
        let hex_of = |id: i64| {
            self.channels
                .iter()
                .find(|e| e.id == id)
                .map(|e| hex::encode(e.ch.channel_id()))
                .unwrap_or_default()
        };
        let mut earned = 0;
        // Oldest first: those recalled from the store for this call and the ones in memory.
        let held = &self.forwards;
        let mut records: Vec<&crate::ForwardRecord> = recalled
            .iter()
            .filter(|r| !held.by_in.contains_key(&(r.in_channel, r.in_htlc)))
            .chain(held.order.iter().filter_map(|k| held.by_in.get(k)))
            .collect();
        records.sort_by_key(|r| r.created_at);
        let forwards = records
            .into_iter()
            .map(|r| {
                let fee = r.in_msat.saturating_sub(r.out_msat);
                if r.status == ForwardStatus::Settled {
                    earned += fee;
                }
                ForwardInfo {
                    in_channel: hex_of(r.in_channel),
                    out_channel: hex_of(r.out_channel),
                    in_msat: r.in_msat,
                    out_msat: r.out_msat,
                    fee_msat: fee,
                    payment_hash: r.payment_hash.clone(),
                    status: match r.status {
                        ForwardStatus::Pending => "pending",
                        ForwardStatus::Settled => "settled",
                        ForwardStatus::Failed => "failed",
                    }
                    .into(),
                    failure: r.failure.clone(),
                    created_at: r.created_at,
                    resolved_at: r.resolved_at,
                }
            })
            .collect();
        ForwardsResult {
            forwards,
            fees_earned_msat: earned,
        }
    }

    /// `setfees`.
    pub(crate) fn set_fees(
        &mut self,
        request: RequestId,
        channel_id: [u8; 32],
        base_msat: u32,
        ppm: u32,
        cltv_delta: Option<u16>,
    ) {
        let Some(e) = self
            .channel_index(&channel_id)
            .and_then(|i| self.channels.get(i))
        else {
            let msg = format!("unknown channel {}", hex::encode(channel_id));
            return self.reply(request, Err(CmdError::invalid(msg)));
        };
        let id = e.id;
        let mut pol = self.policy_of(id);
        pol.fee_base_msat = base_msat;
        pol.fee_ppm = ppm;
        if let Some(d) = cltv_delta {
            if d < 6 {
                let msg = "cltv delta below 6 blocks is unsafe";
                return self.reply(request, Err(CmdError::invalid(msg)));
            }
            pol.cltv_expiry_delta = d;
        }
        self.policies.insert(id, pol);
        self.pending.policies.push((id, pol));
        self.sync_graph();
        self.policy_changed(id);
        let res = FeesResult {
            channel_id: hex::encode(channel_id),
            fee_base_msat: pol.fee_base_msat,
            fee_ppm: pol.fee_ppm,
            cltv_expiry_delta: pol.cltv_expiry_delta,
        };
        self.reply(request, Ok(Response::FeesSet(res)));
    }
}
