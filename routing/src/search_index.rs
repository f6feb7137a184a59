//! [`SearchIndex`]: a compact, read-only copy of the graph's incoming edges laid out per
//! target node (compressed sparse rows), so the payee-to-payer search scans memory
//! sequentially instead of chasing petgraph's per-edge linked lists.
//!
//! Owns: the layout and its construction from the petgraph graph, and patching one edge's
//! policy in place. Must never be the source of truth (the `NetworkGraph`'s petgraph graph
//! is; the index is rebuilt from it after channels come or go), never do I/O, never panic on
//! any graph.
//!
//! Memory: 56 bytes per channel direction plus 4 bytes per node and 4 bytes per edge slot
//! of the position map, about 120 bytes per channel.

use fulmen_wire::scid::ShortChannelId;
use petgraph::stable_graph::{EdgeIndex, StableDiGraph};
use petgraph::visit::{EdgeIndexable, EdgeRef, IntoEdgeReferences, NodeIndexable};

use crate::change::ChannelDirection;
use crate::graph::{DirectedChannel, NodeEntry};

/// One channel direction as the search sees it, stored under its target node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InEdge {
    /// Source node (petgraph node index).
    pub from: u32,
    /// The petgraph edge index.
    pub edge: u32,
    pub fee_base_msat: u32,
    pub fee_ppm: u32,
    pub htlc_min: u64,
    pub htlc_max: u64,
    pub capacity_msat: u64,
    pub short_channel_id: ShortChannelId,
    pub cltv_delta: u16,
    pub direction: ChannelDirection,
    /// A policy is known and enabled.
    pub usable: bool,
}

impl InEdge {
    fn new(from: u32, edge: u32, w: &DirectedChannel) -> InEdge {
        let mut e = InEdge {
            from,
            edge,
            fee_base_msat: 0,
            fee_ppm: 0,
            htlc_min: 0,
            htlc_max: 0,
            capacity_msat: w.capacity_msat(),
            short_channel_id: w.short_channel_id,
            cltv_delta: 0,
            direction: w.direction,
            usable: false,
        };
        e.set_policy(w);
        e
    }

    fn set_policy(&mut self, w: &DirectedChannel) {
        match w.usable_policy() {
            Some(p) => {
                self.fee_base_msat = p.fee_base_msat;
                self.fee_ppm = p.fee_proportional_millionths;
                self.htlc_min = p.htlc_minimum_msat;
                self.htlc_max = p.htlc_maximum_msat;
                self.cltv_delta = p.cltv_expiry_delta;
                self.usable = true;
            }
            None => self.usable = false,
        }
    }
}

/// Incoming edges grouped by target node.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchIndex {
    /// `starts[v]..starts[v + 1]` are the slots of `v`'s incoming edges.
    starts: Vec<u32>,
    edges: Vec<InEdge>,
    /// Slot of each petgraph edge index (`u32::MAX`: vacant).
    slot_of: Vec<u32>,
}

impl SearchIndex {
    /// Build from the graph (O(nodes + edges)).
    pub fn build(graph: &StableDiGraph<NodeEntry, DirectedChannel, u32>) -> SearchIndex {
        let n = graph.node_bound();
        let mut counts = vec![0u32; n + 1];
        for e in graph.edge_references() {
            if let Some(c) = counts.get_mut(e.target().index() + 1) {
                *c += 1;
            }
        }
        for i in 1..counts.len() {
            let prev = counts.get(i - 1).copied().unwrap_or(0);
            if let Some(c) = counts.get_mut(i) {
                *c += prev;
            }
        }
        let starts = counts.clone();
        let mut fill = counts;
        let total = starts.last().copied().unwrap_or(0) as usize;
        let mut edges = vec![
            InEdge {
                from: 0,
                edge: 0,
                fee_base_msat: 0,
                fee_ppm: 0,
                htlc_min: 0,
                htlc_max: 0,
                capacity_msat: 0,
                short_channel_id: ShortChannelId::from_u64(0),
                cltv_delta: 0,
                direction: ChannelDirection::FromNode1,
                usable: false,
            };
            total
        ];
        let mut slot_of = vec![u32::MAX; graph.edge_bound()];
        for e in graph.edge_references() {
            let Some(pos) = fill.get_mut(e.target().index()) else {
                continue;
            };
            let slot = *pos;
            *pos += 1;
            if let Some(s) = edges.get_mut(slot as usize) {
                *s = InEdge::new(e.source().index() as u32, e.id().index() as u32, e.weight());
            }
            if let Some(s) = slot_of.get_mut(e.id().index()) {
                *s = slot;
            }
        }
        SearchIndex {
            starts,
            edges,
            slot_of,
        }
    }

    /// The incoming edges of node `v` (empty for an index out of range).
    pub fn incoming(&self, v: usize) -> &[InEdge] {
        let (Some(&a), Some(&b)) = (self.starts.get(v), self.starts.get(v + 1)) else {
            return &[];
        };
        self.edges.get(a as usize..b as usize).unwrap_or(&[])
    }

    /// Copy an edge's new policy into its slot.
    pub fn update(&mut self, edge: EdgeIndex<u32>, w: &DirectedChannel) {
        let Some(&slot) = self.slot_of.get(edge.index()) else {
            return;
        };
        if let Some(e) = self.edges.get_mut(slot as usize) {
            e.set_policy(w);
        }
    }
}
