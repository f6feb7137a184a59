//! `fulmen-routing`: BOLT 7 gossip validation, the network graph (petgraph) and
//! pathfinding with scoring.
//!
//! Must never do I/O; chain lookups needed to validate announcements come in through the
//! caller, time comes in as an argument. The gossip side validates signed messages and
//! hands the graph [`GraphChange`]s; the graph side applies them and answers route queries.

pub mod change;

pub use change::{ChannelDirection, DirectedPolicy, GraphChange};
