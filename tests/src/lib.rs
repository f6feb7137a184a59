//! `fulmen-tests`: the one in-process, deterministic test harness and the tests that span
//! several crates.
//!
//! Modules: [`sim`] — the generic parts (seeded entropy, virtual clock, fixed fee
//! estimator, transcript hash, seeded delivery scheduler, durable log that models a crash);
//! [`pair`] — two `fulmen-channel` endpoints over it, with invariant checks at every
//! quiescent step; [`network`] — N `fulmen-manager` nodes on one in-memory chain over the
//! same scheduler, restarted from their durable records (crashes included). The tests live
//! in `tests/tests/`, examples in `tests/examples/`.
//!
//! Must never: sleep, read the wall clock or use an unseeded RNG: the same seed gives the
//! same run (tests compare transcript hashes).

#![warn(missing_docs)]

pub mod network;
pub mod pair;
pub mod sim;
