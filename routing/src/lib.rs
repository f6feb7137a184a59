//! `fulmen-routing`: BOLT 7 gossip validation, the network graph (petgraph) and
//! pathfinding with scoring.
//!
//! Must never do I/O; chain lookups needed to validate announcements come in through the
//! caller ([`UtxoLookup`]), time comes in as an argument. The gossip side ([`GossipStore`])
//! validates signed messages, keeps what to relay, and hands the graph [`GraphChange`]s; the graph side applies them
//! ([`NetworkGraph`]) and answers route queries ([`find_route`], [`PathFinder`]) weighed by
//! what the node learned from its own payments ([`ProbabilisticScorer`]).
//!
//! Modules: [`change`] (the gossip → graph contract), [`gossip`] (BOLT 7 intake, relay,
//! initial sync, pruning, and signing our own gossip in [`gossip::own`]), [`graph`] (the petgraph graph),
//! [`scorer`] (liquidity bounds and penalties), [`pathfind`] (the payee-to-payer search and
//! the [`Route`] a sender builds its onion from).

pub mod change;
pub mod gossip;
pub mod graph;
pub mod pathfind;
pub mod scorer;
mod search_index;

pub use change::{ChannelDirection, DirectedPolicy, GraphChange};
pub use gossip::{GossipConfig, GossipError, GossipStore, Handled, UtxoLookup, UtxoResult};
pub use graph::{ChannelInfo, DirectedChannel, GraphError, NetworkGraph, NodeEntry};
pub use pathfind::{
    find_route, FirstHop, HopPayload, PathFinder, Route, RouteError, RouteHint, RouteHintHop,
    RouteHop, RouteParams,
};
pub use scorer::{ProbabilisticScorer, ScorerParams};
