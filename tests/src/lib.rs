//! `fulmen-tests`: deterministic in-process tests that span several crates.
//!
//! Seeded RNG, blocks mined by the test, no sleeps and no sockets. The tests live in
//! `tests/tests/`; this library holds shared helpers as they are needed.
