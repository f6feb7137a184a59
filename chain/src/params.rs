//! Chain parameters and consensus constants of the simulated regtest chain.
//!
//! Owns: [`ChainParams`] (the tunable policy values), the block subsidy schedule and the
//! fixed regtest constants (difficulty bits, weight limits). Must never hold state or do I/O.

use bitcoin::{Amount, CompactTarget, FeeRate, Target};

/// Compact difficulty bits of every regtest block header (the regtest proof-of-work limit).
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// Blocks between subsidy halvings on regtest.
pub const HALVING_INTERVAL: u32 = 150;

/// Consensus block weight limit (BIP141).
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;

/// Policy limit on the weight of one transaction (Bitcoin Core's `MAX_STANDARD_TX_WEIGHT`).
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;

/// Weight reserved for the coinbase when the miner fills a block from the mempool.
pub const COINBASE_WEIGHT_RESERVE: u64 = 4_000;

/// Locktime values at or above this are UNIX times rather than block heights.
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Number of previous blocks whose median time a new block's time must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// Tunable rules; `ChainParams::default()` = the regtest values of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainParams {
    /// Confirmations a coinbase output needs before it may be spent (100).
    pub coinbase_maturity: u32,
    /// Minimum feerate a transaction must pay to enter the mempool (1 sat/vB).
    pub min_relay_feerate: FeeRate,
    /// Feerate of Bitcoin Core's dust rule (3 sat/vB: P2WPKH dust is 294 sat, P2WSH 330).
    pub dust_relay_feerate: FeeRate,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            coinbase_maturity: 100,
            min_relay_feerate: FeeRate::from_sat_per_vb_u32(1),
            dust_relay_feerate: FeeRate::from_sat_per_vb_u32(3),
        }
    }
}

/// Block subsidy at `height`: 50 BTC, halving every [`HALVING_INTERVAL`] blocks.
pub fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat(Amount::from_int_btc(50).to_sat() >> halvings)
}

/// The proof-of-work target every block must meet (from [`REGTEST_BITS`]).
pub fn regtest_target() -> Target {
    Target::from_compact(CompactTarget::from_consensus(REGTEST_BITS))
}

/// Fee owed at `rate` for `vsize` virtual bytes, rounded up; `None` on overflow.
pub fn fee_for_vsize(rate: FeeRate, vsize: u64) -> Option<Amount> {
    let wu = vsize.checked_mul(4)?;
    let sat = rate.to_sat_per_kwu().checked_mul(wu)?.checked_add(999)? / 1000;
    Some(Amount::from_sat(sat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(subsidy(0), Amount::from_int_btc(50));
        assert_eq!(subsidy(149), Amount::from_int_btc(50));
        assert_eq!(subsidy(150), Amount::from_int_btc(25));
        assert_eq!(subsidy(300), Amount::from_sat(1_250_000_000));
        assert_eq!(subsidy(150 * 64), Amount::ZERO);
    }

    #[test]
    fn fee_rounds_up() {
        let one = FeeRate::from_sat_per_vb_u32(1);
        assert_eq!(fee_for_vsize(one, 141), Some(Amount::from_sat(141)));
        let quarter = FeeRate::from_sat_per_kwu(251);
        assert_eq!(fee_for_vsize(quarter, 1), Some(Amount::from_sat(2)));
    }

    #[test]
    fn default_dust_matches_core() {
        let p = ChainParams::default();
        let wpkh = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([0; 20]));
        assert_eq!(
            wpkh.minimal_non_dust_custom(p.dust_relay_feerate),
            Amount::from_sat(294)
        );
        let wsh = bitcoin::ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([0; 32]));
        assert_eq!(
            wsh.minimal_non_dust_custom(p.dust_relay_feerate),
            Amount::from_sat(330)
        );
    }
}
