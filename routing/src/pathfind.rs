//! [`find_route`]: the cheapest route from the payer to the payee over the
//! [`NetworkGraph`], the payer's own channels and the invoice's route hints.
//!
//! Owns: the search (Dijkstra from the payee back to the payer, so the amount each hop must
//! receive and the CLTV each HTLC needs accumulate exactly, BOLT 7 fee arithmetic), the
//! limits (HTLC minimum/maximum, capacity, disabled or missing policies, 20 hops, total CLTV,
//! maximum fee, excluded channels and nodes), the cost (fees + CLTV risk + the scorer's
//! penalty) and the [`Route`] a sender builds its onion from. Must never do I/O, never read
//! a clock (`now` comes in the params), never mutate the graph, and never panic on any
//! graph, hint or amount.
//!
//! The search keeps one label per node (the cheapest way found to the payee); a candidate
//! edge that would break a limit is skipped, so a route that needs a costlier sub-path to
//! satisfy a limit can be missed. With zero fees the amounts do not depend on the path and
//! the search finds a route whenever one exists within the hop and CLTV limits that the
//! cheapest labels respect (see the proptests).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::scid::ShortChannelId;
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::NodeIndexable;

use crate::change::ChannelDirection;
use crate::graph::{direction_between, NetworkGraph};
use crate::scorer::ProbabilisticScorer;

/// BOLT 7 / route length limit: at most 20 channels.
pub const MAX_PATH_LENGTH: u8 = 20;
/// Default limit on the total CLTV of a route (two weeks of blocks).
pub const DEFAULT_MAX_TOTAL_CLTV: u32 = 2016;
/// Default CLTV the payee asks for on its incoming HTLC (BOLT 11 default).
pub const DEFAULT_FINAL_CLTV_DELTA: u32 = 18;
/// Default CLTV risk cost: billionths of the amount per block of lock.
pub const DEFAULT_CLTV_RISK_BILLIONTHS: u64 = 15;

/// The BOLT 7 fee a node charges to forward `amount_msat`:
/// `base + floor(amount * ppm / 1_000_000)`; `None` on overflow.
pub fn forwarding_fee_msat(base_msat: u32, ppm: u32, amount_msat: u64) -> Option<u64> {
    let prop = u128::from(amount_msat) * u128::from(ppm) / 1_000_000;
    u64::try_from(prop).ok()?.checked_add(u64::from(base_msat))
}

/// The default fee limit: 1 % of the amount plus 50,000 msat.
pub fn default_max_fee_msat(amount_msat: u64) -> u64 {
    (amount_msat / 100).saturating_add(50_000)
}

/// One of the payer's own channels, with what it can send now. When
/// [`RouteParams::first_hops`] is given, these replace the payer's channels in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstHop {
    /// The channel (its real scid, or an alias for an unannounced channel).
    pub short_channel_id: ShortChannelId,
    /// The peer at the other end.
    pub peer: PublicKey,
    /// What the channel can send now, msat (after reserve and in-flight HTLCs).
    pub spendable_msat: u64,
    /// The smallest HTLC the peer accepts, msat, if known.
    pub htlc_minimum_msat: Option<u64>,
}

/// One hop of a BOLT 11 route hint (`r` field): a channel from `src_node_id` toward the
/// next hint hop's source, or toward the payee for the last hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteHintHop {
    /// The node forwarding over this channel.
    pub src_node_id: PublicKey,
    /// The channel.
    pub short_channel_id: ShortChannelId,
    /// Base fee, msat.
    pub fee_base_msat: u32,
    /// Proportional fee, millionths.
    pub fee_proportional_millionths: u32,
    /// CLTV delta the source requires.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC forwarded, msat, if stated.
    pub htlc_minimum_msat: Option<u64>,
    /// Largest HTLC forwarded, msat, if stated.
    pub htlc_maximum_msat: Option<u64>,
}

/// A route hint: a path of hint hops ending at the payee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHint(pub Vec<RouteHintHop>);

/// What to search for and under which limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteParams {
    /// Who pays (the route starts here).
    pub payer: PublicKey,
    /// Who is paid.
    pub payee: PublicKey,
    /// What the payee must receive, msat.
    pub amount_msat: u64,
    /// CLTV delta the payee needs on its incoming HTLC (invoice `min_final_cltv_expiry`).
    pub final_cltv_delta: u32,
    /// Largest total CLTV delta accepted (the first HTLC's expiry above the current height).
    pub max_total_cltv: u32,
    /// Largest number of channels in the route (at most [`MAX_PATH_LENGTH`] is sensible).
    pub max_hops: u8,
    /// Largest total fee, msat; `None`: [`default_max_fee_msat`].
    pub max_fee_msat: Option<u64>,
    /// The payer's own channels with their spendable balance; `Some` overrides the graph
    /// for every channel out of the payer.
    pub first_hops: Option<Vec<FirstHop>>,
    /// Route hints toward a (possibly private) payee.
    pub route_hints: Vec<RouteHint>,
    /// Channels not to use, both directions (e.g. those that failed in earlier tries).
    pub excluded_channels: Vec<ShortChannelId>,
    /// Nodes not to route through.
    pub excluded_nodes: Vec<PublicKey>,
    /// CLTV risk cost: billionths of the forwarded amount per block of lock, msat.
    pub cltv_risk_billionths: u64,
    /// Now, unix seconds (for the scorer's decay).
    pub now: u64,
}

impl RouteParams {
    /// A query with the default limits.
    pub fn new(payer: PublicKey, payee: PublicKey, amount_msat: u64, now: u64) -> RouteParams {
        RouteParams {
            payer,
            payee,
            amount_msat,
            final_cltv_delta: DEFAULT_FINAL_CLTV_DELTA,
            max_total_cltv: DEFAULT_MAX_TOTAL_CLTV,
            max_hops: MAX_PATH_LENGTH,
            max_fee_msat: None,
            first_hops: None,
            route_hints: Vec::new(),
            excluded_channels: Vec::new(),
            excluded_nodes: Vec::new(),
            cltv_risk_billionths: DEFAULT_CLTV_RISK_BILLIONTHS,
            now,
        }
    }

    /// The fee limit in force.
    pub fn effective_max_fee_msat(&self) -> u64 {
        self.max_fee_msat
            .unwrap_or_else(|| default_max_fee_msat(self.amount_msat))
    }
}

/// One channel of a route.
///
/// For hop `i`: the HTLC offered over `short_channel_id` to `node_id` carries `amount_msat`
/// and expires at `current height + expiry_delta`. The onion payload for `node_id` is
/// therefore the next hop's `(short_channel_id, amount_msat, expiry_delta)`, or for the last
/// hop its own `(amount_msat, expiry_delta)` ([`Route::payloads`] does this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteHop {
    /// The node this hop reaches (receives the HTLC over `short_channel_id`).
    pub node_id: PublicKey,
    /// The channel used to reach it.
    pub short_channel_id: ShortChannelId,
    /// Which direction of the channel (for the scorer).
    pub direction: ChannelDirection,
    /// Amount of the HTLC over this channel, msat: what `node_id` receives. For the last
    /// hop, the payment amount.
    pub amount_msat: u64,
    /// Fee `node_id` keeps for forwarding to the next hop (`amount_msat` minus the next
    /// hop's `amount_msat`); 0 for the last hop.
    pub fee_msat: u64,
    /// Expiry of the HTLC over this channel, blocks above the current height. For the
    /// last hop, the payee's final CLTV delta.
    pub expiry_delta: u32,
    /// CLTV delta `node_id` requires (`expiry_delta` minus the next hop's); for the last
    /// hop, the final CLTV delta.
    pub cltv_expiry_delta: u32,
}

/// What one node's onion payload must say (BOLT 4 TLV payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopPayload {
    /// The node reading the payload.
    pub node_id: PublicKey,
    /// The channel to forward over (`short_channel_id`); `None` for the payee.
    pub short_channel_id: Option<ShortChannelId>,
    /// `amt_to_forward`, msat.
    pub amt_to_forward_msat: u64,
    /// `outgoing_cltv_value` minus the current height.
    pub outgoing_cltv_delta: u32,
}

/// A route from the payer to the payee.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The payer.
    pub payer: PublicKey,
    /// The channels, from the payer's first channel to the one reaching the payee.
    pub hops: Vec<RouteHop>,
    /// What the payer sends (the first hop's `amount_msat`), msat.
    pub total_amount_msat: u64,
    /// Sum of the fees, msat (`total_amount_msat` minus the payment amount).
    pub total_fee_msat: u64,
    /// The first HTLC's expiry above the current height (the first hop's `expiry_delta`).
    pub total_cltv_delta: u32,
    /// The scorer's estimate that every hop past the payer's own channel has the liquidity.
    pub success_probability: f64,
}

impl Route {
    /// The onion payload of each node on the route, in route order (the payee last).
    pub fn payloads(&self) -> Vec<HopPayload> {
        let mut out = Vec::with_capacity(self.hops.len());
        for (i, hop) in self.hops.iter().enumerate() {
            out.push(match self.hops.get(i + 1) {
                Some(next) => HopPayload {
                    node_id: hop.node_id,
                    short_channel_id: Some(next.short_channel_id),
                    amt_to_forward_msat: next.amount_msat,
                    outgoing_cltv_delta: next.expiry_delta,
                },
                None => HopPayload {
                    node_id: hop.node_id,
                    short_channel_id: None,
                    amt_to_forward_msat: hop.amount_msat,
                    outgoing_cltv_delta: hop.expiry_delta,
                },
            });
        }
        out
    }

    /// The payment amount (what the payee receives), msat.
    pub fn final_amount_msat(&self) -> u64 {
        self.hops.last().map_or(0, |h| h.amount_msat)
    }
}

/// Why no route was returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Payer and payee are the same node.
    #[error("payer and payee are the same node")]
    SelfPayment,
    /// The amount is zero.
    #[error("amount must be positive")]
    ZeroAmount,
    /// The payer has no channel in the graph, no first hops were given and no route hint
    /// starts at it.
    #[error("payer unknown to the graph and no first hops given")]
    UnknownPayer,
    /// The payee is not in the graph and no route hint leads to it.
    #[error("payee unknown to the graph and no route hint reaches it")]
    UnknownPayee,
    /// No route satisfies the constraints. The flags say which limits cut candidates
    /// (none set: the payee is unreachable over usable channels for this amount).
    #[error("no route (cut by fee limit: {by_fee}, CLTV limit: {by_cltv}, hop limit: {by_hops})")]
    NoRoute {
        /// Some candidate exceeded the fee limit.
        by_fee: bool,
        /// Some candidate exceeded the total CLTV limit.
        by_cltv: bool,
        /// Some candidate exceeded the hop limit.
        by_hops: bool,
    },
}

const NONE: u32 = u32::MAX;
const EXTRA_BIT: u32 = 1 << 31;
const UNSEEN: u8 = 0;
const SETTLED: u8 = 2;
const BLOCKED: u8 = 3;

/// The search's label of one node: the cheapest known way from it to the payee.
#[derive(Debug, Clone, Copy)]
struct Label {
    cost: u64,
    /// What the node must receive, msat.
    amount: u64,
    /// Expiry of the HTLC the node receives, above the current height.
    cltv: u32,
    /// The next node toward the payee (search index).
    next: u32,
    /// The channel to `next`: a graph edge index, or `EXTRA_BIT | extra edge index`.
    via: u32,
    /// Head of the list of extra (first hop, hint) edges into this node.
    extra_in: u32,
    hops: u8,
    state: u8,
}

const FRESH: Label = Label {
    cost: u64::MAX,
    amount: 0,
    cltv: 0,
    next: NONE,
    via: NONE,
    extra_in: NONE,
    hops: 0,
    state: UNSEEN,
};

/// An edge that is not in the graph for this query: a first hop or a hint hop.
#[derive(Debug, Clone, Copy)]
struct ExtraEdge {
    from: u32,
    short_channel_id: ShortChannelId,
    direction: ChannelDirection,
    fee_base_msat: u32,
    fee_ppm: u32,
    cltv_delta: u32,
    htlc_min: u64,
    htlc_max: u64,
    /// Known capacity (or spendable balance), msat.
    capacity_msat: Option<u64>,
    /// Next extra edge into the same target.
    next_in: u32,
}

/// The policy-like view of one candidate edge during relaxation.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    from: u32,
    via: u32,
    short_channel_id: ShortChannelId,
    direction: ChannelDirection,
    fee_base_msat: u32,
    fee_ppm: u32,
    cltv_delta: u32,
    htlc_min: u64,
    htlc_max: u64,
    capacity_msat: Option<u64>,
}

/// Reusable search buffers: keep one per thread to avoid reallocating per query.
#[derive(Debug, Default)]
pub struct PathFinder {
    labels: Vec<Label>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    extra: Vec<ExtraEdge>,
    virtual_nodes: Vec<PublicKey>,
    excluded: Vec<u64>,
}

/// Find a route with fresh buffers (see [`PathFinder::find_route`]).
pub fn find_route(
    graph: &NetworkGraph,
    scorer: &ProbabilisticScorer,
    params: &RouteParams,
) -> Result<Route, RouteError> {
    PathFinder::new().find_route(graph, scorer, params)
}

struct Query<'a> {
    graph: &'a NetworkGraph,
    scorer: &'a ProbabilisticScorer,
    params: &'a RouteParams,
    payer: u32,
    max_fee: u64,
    cut_fee: bool,
    cut_cltv: bool,
    cut_hops: bool,
}

impl PathFinder {
    /// Empty buffers.
    pub fn new() -> PathFinder {
        PathFinder::default()
    }

    fn search_index(&mut self, graph: &NetworkGraph, node: &PublicKey) -> u32 {
        if let Some(ix) = graph.node_index(node) {
            return ix.index() as u32;
        }
        let base = graph.petgraph().node_bound();
        if let Some(i) = self.virtual_nodes.iter().position(|k| k == node) {
            return (base + i) as u32;
        }
        self.virtual_nodes.push(*node);
        (base + self.virtual_nodes.len() - 1) as u32
    }

    fn node_id(&self, graph: &NetworkGraph, ix: u32) -> Option<PublicKey> {
        let base = graph.petgraph().node_bound();
        let ix = ix as usize;
        if ix < base {
            graph
                .petgraph()
                .node_weight(NodeIndex::new(ix))
                .map(|n| n.node_id)
        } else {
            self.virtual_nodes.get(ix - base).copied()
        }
    }

    fn add_extra(&mut self, to: u32, mut edge: ExtraEdge) {
        let Some(label) = self.labels.get_mut(to as usize) else {
            return;
        };
        edge.next_in = label.extra_in;
        label.extra_in = self.extra.len() as u32;
        self.extra.push(edge);
    }

    /// The cheapest route for `params` (cost: fees + CLTV risk + scorer penalty).
    pub fn find_route(
        &mut self,
        graph: &NetworkGraph,
        scorer: &ProbabilisticScorer,
        params: &RouteParams,
    ) -> Result<Route, RouteError> {
        if params.payer == params.payee {
            return Err(RouteError::SelfPayment);
        }
        if params.amount_msat == 0 {
            return Err(RouteError::ZeroAmount);
        }
        let hinted = params.route_hints.iter().any(|h| !h.0.is_empty());
        if graph.node_index(&params.payee).is_none() && !hinted {
            return Err(RouteError::UnknownPayee);
        }
        let payer_hints = params
            .route_hints
            .iter()
            .any(|h| h.0.iter().any(|hop| hop.src_node_id == params.payer));
        if graph.node_index(&params.payer).is_none() && params.first_hops.is_none() && !payer_hints
        {
            return Err(RouteError::UnknownPayer);
        }

        // Index every node the query names that the graph does not hold.
        self.virtual_nodes.clear();
        self.extra.clear();
        let payer = self.search_index(graph, &params.payer);
        let payee = self.search_index(graph, &params.payee);
        for hop in params.first_hops.iter().flatten() {
            self.search_index(graph, &hop.peer);
        }
        for hint in &params.route_hints {
            for hop in &hint.0 {
                self.search_index(graph, &hop.src_node_id);
            }
        }
        let n = graph.petgraph().node_bound() + self.virtual_nodes.len();
        self.labels.clear();
        self.labels.resize(n, FRESH);
        self.heap.clear();
        self.excluded.clear();
        self.excluded
            .extend(params.excluded_channels.iter().map(|s| s.to_u64()));
        self.excluded.sort_unstable();

        // First hops: the payer's channels with their exact balance.
        if let Some(first_hops) = &params.first_hops {
            for hop in first_hops {
                let to = self.search_index(graph, &hop.peer);
                let edge = ExtraEdge {
                    from: payer,
                    short_channel_id: hop.short_channel_id,
                    direction: direction_between(&params.payer, &hop.peer),
                    fee_base_msat: 0,
                    fee_ppm: 0,
                    cltv_delta: 0,
                    htlc_min: hop.htlc_minimum_msat.unwrap_or(0),
                    htlc_max: hop.spendable_msat,
                    capacity_msat: Some(hop.spendable_msat),
                    next_in: NONE,
                };
                self.add_extra(to, edge);
            }
        }
        // Hints: temporary edges toward the payee.
        for hint in &params.route_hints {
            for (k, hop) in hint.0.iter().enumerate() {
                let target = hint.0.get(k + 1).map_or(params.payee, |h| h.src_node_id);
                if hop.src_node_id == target
                    || (hop.src_node_id == params.payer && params.first_hops.is_some())
                {
                    continue;
                }
                let from = self.search_index(graph, &hop.src_node_id);
                let to = self.search_index(graph, &target);
                let edge = ExtraEdge {
                    from,
                    short_channel_id: hop.short_channel_id,
                    direction: direction_between(&hop.src_node_id, &target),
                    fee_base_msat: hop.fee_base_msat,
                    fee_ppm: hop.fee_proportional_millionths,
                    cltv_delta: u32::from(hop.cltv_expiry_delta),
                    htlc_min: hop.htlc_minimum_msat.unwrap_or(0),
                    htlc_max: hop.htlc_maximum_msat.unwrap_or(u64::MAX),
                    capacity_msat: None,
                    next_in: NONE,
                };
                self.add_extra(to, edge);
            }
        }
        for node in &params.excluded_nodes {
            if *node == params.payer || *node == params.payee {
                continue;
            }
            let ix = self.search_index_existing(graph, node);
            if let Some(label) = ix.and_then(|ix| self.labels.get_mut(ix as usize)) {
                label.state = BLOCKED;
            }
        }

        let mut q = Query {
            graph,
            scorer,
            params,
            payer,
            max_fee: params.effective_max_fee_msat(),
            cut_fee: false,
            cut_cltv: false,
            cut_hops: false,
        };
        if params.final_cltv_delta > params.max_total_cltv {
            return Err(RouteError::NoRoute {
                by_fee: false,
                by_cltv: true,
                by_hops: false,
            });
        }
        if let Some(l) = self.labels.get_mut(payee as usize) {
            l.cost = 0;
            l.amount = params.amount_msat;
            l.cltv = params.final_cltv_delta;
            l.hops = 0;
        }
        self.heap.push(Reverse((0, payee)));

        let mut found = false;
        while let Some(Reverse((cost, v))) = self.heap.pop() {
            let Some(lv) = self.labels.get(v as usize).copied() else {
                continue;
            };
            if lv.state == SETTLED || lv.state == BLOCKED || cost != lv.cost {
                continue;
            }
            if let Some(l) = self.labels.get_mut(v as usize) {
                l.state = SETTLED;
            }
            if v == payer {
                found = true;
                break;
            }
            self.relax_into(&mut q, v, lv);
        }
        if !found {
            return Err(RouteError::NoRoute {
                by_fee: q.cut_fee,
                by_cltv: q.cut_cltv,
                by_hops: q.cut_hops,
            });
        }
        self.build_route(&q, payer, payee)
    }

    fn search_index_existing(&self, graph: &NetworkGraph, node: &PublicKey) -> Option<u32> {
        if let Some(ix) = graph.node_index(node) {
            return Some(ix.index() as u32);
        }
        let base = graph.petgraph().node_bound();
        self.virtual_nodes
            .iter()
            .position(|k| k == node)
            .map(|i| (base + i) as u32)
    }

    /// Relax every edge into the settled node `v`.
    fn relax_into(&mut self, q: &mut Query<'_>, v: u32, lv: Label) {
        let pg = q.graph.petgraph();
        let own_first_hops = q.params.first_hops.is_some();
        if (v as usize) < pg.node_bound() {
            let index = q.graph.search_index();
            for e in index.incoming(v as usize) {
                if !e.usable || (own_first_hops && e.from == q.payer) {
                    continue;
                }
                let cand = Candidate {
                    from: e.from,
                    via: e.edge,
                    short_channel_id: e.short_channel_id,
                    direction: e.direction,
                    fee_base_msat: e.fee_base_msat,
                    fee_ppm: e.fee_ppm,
                    cltv_delta: u32::from(e.cltv_delta),
                    htlc_min: e.htlc_min,
                    htlc_max: e.htlc_max,
                    capacity_msat: Some(e.capacity_msat),
                };
                self.relax(q, v, &lv, &cand);
            }
        }
        let mut x = lv.extra_in;
        while let Some(edge) = self.extra.get(x as usize).copied() {
            let cand = Candidate {
                from: edge.from,
                via: EXTRA_BIT | x,
                short_channel_id: edge.short_channel_id,
                direction: edge.direction,
                fee_base_msat: edge.fee_base_msat,
                fee_ppm: edge.fee_ppm,
                cltv_delta: edge.cltv_delta,
                htlc_min: edge.htlc_min,
                htlc_max: edge.htlc_max,
                capacity_msat: edge.capacity_msat,
            };
            self.relax(q, v, &lv, &cand);
            x = edge.next_in;
        }
    }

    #[inline]
    fn relax(&mut self, q: &mut Query<'_>, v: u32, lv: &Label, c: &Candidate) {
        let Some(lu) = self.labels.get(c.from as usize) else {
            return;
        };
        if lu.state == SETTLED || lu.state == BLOCKED {
            return;
        }
        let amt = lv.amount;
        if amt < c.htlc_min || amt > c.htlc_max || c.capacity_msat.is_some_and(|cap| amt > cap) {
            return;
        }
        if !self.excluded.is_empty()
            && self
                .excluded
                .binary_search(&c.short_channel_id.to_u64())
                .is_ok()
        {
            return;
        }
        let hops = lv.hops.saturating_add(1);
        let is_payer = c.from == q.payer;
        // A node other than the payer still needs at least one channel before it.
        if hops > q.params.max_hops || (!is_payer && hops >= q.params.max_hops) {
            q.cut_hops = true;
            return;
        }
        let (fee, cltv_add) = if is_payer {
            (0, 0)
        } else {
            match forwarding_fee_msat(c.fee_base_msat, c.fee_ppm, amt) {
                Some(fee) => (fee, c.cltv_delta),
                None => return,
            }
        };
        let Some(amount) = amt.checked_add(fee) else {
            return;
        };
        if amount.saturating_sub(q.params.amount_msat) > q.max_fee {
            q.cut_fee = true;
            return;
        }
        let cltv = lv.cltv.saturating_add(cltv_add);
        if cltv > q.params.max_total_cltv {
            q.cut_cltv = true;
            return;
        }
        let risk =
            u128::from(amt) * u128::from(cltv_add) * u128::from(q.params.cltv_risk_billionths)
                / 1_000_000_000;
        let risk = u64::try_from(risk).unwrap_or(u64::MAX);
        let partial = lv.cost.saturating_add(fee).saturating_add(risk);
        if partial >= lu.cost {
            return;
        }
        let penalty = if is_payer {
            0
        } else {
            q.scorer.penalty_msat(
                c.short_channel_id,
                c.direction,
                amt,
                c.capacity_msat,
                q.params.now,
            )
        };
        let cost = partial.saturating_add(penalty);
        if cost >= lu.cost {
            return;
        }
        if let Some(lu) = self.labels.get_mut(c.from as usize) {
            lu.cost = cost;
            lu.amount = amount;
            lu.cltv = cltv;
            lu.hops = hops;
            lu.next = v;
            lu.via = c.via;
            self.heap.push(Reverse((cost, c.from)));
        }
    }

    /// Walk the settled labels from the payer to the payee.
    fn build_route(&self, q: &Query<'_>, payer: u32, payee: u32) -> Result<Route, RouteError> {
        let no_route = RouteError::NoRoute {
            by_fee: false,
            by_cltv: false,
            by_hops: false,
        };
        let pg = q.graph.petgraph();
        let mut hops: Vec<RouteHop> = Vec::new();
        let mut probability = 1.0;
        let mut at = payer;
        while at != payee {
            let l = *self.labels.get(at as usize).ok_or(no_route.clone())?;
            let next = *self.labels.get(l.next as usize).ok_or(no_route.clone())?;
            let (scid, direction, capacity) = if l.via & EXTRA_BIT != 0 {
                let e = self
                    .extra
                    .get((l.via & !EXTRA_BIT) as usize)
                    .ok_or(no_route.clone())?;
                (e.short_channel_id, e.direction, e.capacity_msat)
            } else {
                let w = pg
                    .edge_weight(EdgeIndex::new(l.via as usize))
                    .ok_or(no_route.clone())?;
                (w.short_channel_id, w.direction, Some(w.capacity_msat()))
            };
            if at != payer {
                probability *= q.scorer.success_probability(
                    scid,
                    direction,
                    next.amount,
                    capacity,
                    q.params.now,
                );
            }
            if let Some(prev) = hops.last_mut() {
                prev.fee_msat = prev.amount_msat.saturating_sub(next.amount);
                prev.cltv_expiry_delta = prev.expiry_delta.saturating_sub(next.cltv);
            }
            hops.push(RouteHop {
                node_id: self.node_id(q.graph, l.next).ok_or(no_route.clone())?,
                short_channel_id: scid,
                direction,
                amount_msat: next.amount,
                fee_msat: 0,
                expiry_delta: next.cltv,
                cltv_expiry_delta: next.cltv,
            });
            if hops.len() > usize::from(MAX_PATH_LENGTH).max(usize::from(q.params.max_hops)) {
                return Err(no_route);
            }
            at = l.next;
        }
        let first = hops.first().ok_or(no_route)?;
        Ok(Route {
            payer: q.params.payer,
            total_amount_msat: first.amount_msat,
            total_fee_msat: first.amount_msat.saturating_sub(q.params.amount_msat),
            total_cltv_delta: first.expiry_delta,
            success_probability: probability,
            hops,
        })
    }
}

#[cfg(test)]
#[path = "pathfind_tests.rs"]
mod tests;
