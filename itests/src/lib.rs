//! `fulmen-itests`: end-to-end tests that drive real `fulmen` processes through the CLI.
//!
//! The tests live in `itests/tests/`; each spawns daemons on free loopback ports in a
//! temporary directory and stops them when it ends.
