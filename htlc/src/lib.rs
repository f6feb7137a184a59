//! `fulmen-htlc`: payment hashes, preimages and secrets; HTLC scripts and second-stage
//! transactions; the BOLT 4 Sphinx onion; BOLT 11 invoices; forwarding rules.
//!
//! Must never do I/O; entropy and time come in as arguments. Depends only on `fulmen-wire`.
//! (Not built yet: see the tx and htlc issues.)
