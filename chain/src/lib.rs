//! `fulmen-chain`: the simulated Bitcoin chain every Fulmen network runs on.
//!
//! Owns: blocks with real regtest-difficulty headers, the UTXO set, the mempool, consensus
//! checks (libbitcoinconsensus on every input plus the chain rules of DESIGN.md) and the
//! faucet. Must never do I/O: no sockets, no files, no clock, no global RNG. Time and
//! entropy come in as arguments; the node crate persists and serves it.
