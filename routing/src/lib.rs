//! `fulmen-routing`: BOLT 7 gossip validation, the network graph (petgraph) and
//! pathfinding with scoring.
//!
//! Must never do I/O; chain lookups needed to validate announcements come in through the
//! caller. (Not built yet: see the routing issue.)
