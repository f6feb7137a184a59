//! The `fulmen` binary: chain daemon, node daemon, CLI client and test networks.
fn main() {}
