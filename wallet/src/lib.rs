//! `fulmen-wallet`: the on-chain wallet of a Fulmen node.
//!
//! Owns: keys, UTXO tracking, coin selection and signing of on-chain transactions.
//! Must never do I/O: it is fed blocks and mempool transactions by its caller and hands
//! back change sets for the caller to persist. (Not built yet: see the wallet issue.)
