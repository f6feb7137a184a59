//! `fulmen-wire`: BOLT 1/2/7 message types, their codec (BigSize, TLV) and the Noise
//! transport state machine.
//!
//! Owns: bytes in, typed messages out, and back. Must never do I/O and never panic or
//! allocate without bound on bytes from a peer. Depends on no other workspace crate.
//! (Not built yet: see the wire issue.)
