//! [`ProbabilisticScorer`]: what the node has learned about the liquidity of channel
//! directions from its own payments, and the penalty it puts on a hop for pathfinding.
//!
//! Owns: per channel direction a lower and an upper bound on the liquidity available to
//! forward (msat), learned from failures (the failing hop could not carry the amount), from
//! partial successes (the hops before a failure could) and from payments that went through;
//! the decay of those bounds toward "unknown" with a half-life; and the conversion of a
//! success probability into a msat-denominated penalty. Must never read a clock (time comes
//! in as `now`, unix seconds), never do I/O, and never panic on any amount or time.
//!
//! Model: the liquidity of a direction of capacity `C` is uniformly distributed in
//! `[lo, hi]` (initially `[0, C]`); sending `amt` succeeds with probability
//! `P = (hi - amt) / (hi - lo)` clamped to `[0, 1]` (1 when `amt <= lo`, 0 when `amt >= hi`).
//! The penalty is `base + (-log2 P) * (multiplier + amt * amount_multiplier / 2^20)`, with
//! `-log2 P` capped at [`MAX_LOG2_PENALTY`] so a failed channel stays usable as a last resort.
//!
//! The search asks for a penalty on every edge it relaxes, so lookups are cheap: the keys are
//! hashed with one fixed mixing function (they come from the node's own payment attempts,
//! not from peers, so no keyed hash is needed), and a 128 KiB bit filter answers "nothing
//! learned" for most directions without touching the map.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use fulmen_wire::scid::ShortChannelId;

use crate::change::ChannelDirection;
use crate::pathfind::Route;

/// Cap on `-log2 P` (P below 1/1024 costs as much as P = 1/1024).
pub const MAX_LOG2_PENALTY: f64 = 10.0;

/// The scorer's tunables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorerParams {
    /// Time for learned bounds to move half-way back toward "unknown", seconds.
    pub half_life_secs: u64,
    /// Flat penalty per hop, msat (prefers shorter routes).
    pub base_penalty_msat: u64,
    /// Penalty per bit of failure odds (`-log2 P`), msat.
    pub liquidity_penalty_multiplier_msat: u64,
    /// Penalty per bit of failure odds per 2^20 msat sent, msat.
    pub liquidity_penalty_amount_multiplier_msat: u64,
}

impl Default for ScorerParams {
    fn default() -> Self {
        ScorerParams {
            half_life_secs: 6 * 3600,
            base_penalty_msat: 500,
            liquidity_penalty_multiplier_msat: 10_000,
            liquidity_penalty_amount_multiplier_msat: 64,
        }
    }
}

/// Learned liquidity bounds of one channel direction. Each bound decays from the time it
/// was learned: the lower one toward 0, the upper one toward the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiquidityBounds {
    /// The direction could forward at least this much, msat.
    pub min_msat: u64,
    /// When `min_msat` was learned, unix seconds.
    pub min_at: u64,
    /// The direction could not forward this much, msat (`u64::MAX`: nothing learned).
    pub max_msat: u64,
    /// When `max_msat` was learned, unix seconds.
    pub max_at: u64,
}

/// Bits in the "maybe learned" filter (2^20 bits, 128 KiB).
const FILTER_BITS_LOG2: u32 = 20;

/// A channel direction as a map key, hashed once by [`key_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirKey {
    scid: u64,
    forward: bool,
}

impl DirKey {
    fn new(scid: ShortChannelId, direction: ChannelDirection) -> DirKey {
        DirKey {
            scid: scid.to_u64(),
            forward: direction == ChannelDirection::FromNode1,
        }
    }
}

/// splitmix64's finalizer over the scid and the direction bit.
fn key_hash(k: DirKey) -> u64 {
    let mut z = k.scid ^ if k.forward { 0 } else { 0x9e37_79b9_7f4a_7c15 };
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Hash for DirKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(key_hash(*self));
    }
}

/// Passes the already mixed `u64` through.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The probabilistic liquidity scorer.
#[derive(Debug, Clone, Default)]
pub struct ProbabilisticScorer {
    params: ScorerParams,
    bounds: HashMap<DirKey, LiquidityBounds, BuildHasherDefault<PassThrough>>,
    /// Bit `key_hash >> (64 - FILTER_BITS_LOG2)` is set for every key in `bounds` (and
    /// possibly for forgotten ones); empty until something is learned.
    filter: Vec<u64>,
}

impl ProbabilisticScorer {
    /// A scorer that knows nothing yet.
    pub fn new(params: ScorerParams) -> ProbabilisticScorer {
        ProbabilisticScorer {
            params,
            bounds: HashMap::default(),
            filter: Vec::new(),
        }
    }

    /// The tunables.
    pub fn params(&self) -> &ScorerParams {
        &self.params
    }

    /// True when nothing has been learned (every probability comes from the prior).
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// The raw bounds learned for a direction (not decayed).
    pub fn bounds(
        &self,
        scid: ShortChannelId,
        direction: ChannelDirection,
    ) -> Option<&LiquidityBounds> {
        self.lookup(DirKey::new(scid, direction))
    }

    fn filter_slot(k: DirKey) -> (usize, u64) {
        let bit = key_hash(k) >> (64 - FILTER_BITS_LOG2);
        ((bit >> 6) as usize, 1u64 << (bit & 63))
    }

    fn lookup(&self, k: DirKey) -> Option<&LiquidityBounds> {
        let (word, mask) = Self::filter_slot(k);
        if self.filter.get(word).is_none_or(|w| w & mask == 0) {
            return None;
        }
        self.bounds.get(&k)
    }

    /// The bounds at `now` after decay, for a direction of capacity `capacity_msat`
    /// (`None`: unknown, `u64::MAX` is used as the top): `(lo, hi)` with `lo <= hi`.
    pub fn effective_bounds(
        &self,
        scid: ShortChannelId,
        direction: ChannelDirection,
        capacity_msat: Option<u64>,
        now: u64,
    ) -> (u64, u64) {
        let top = capacity_msat.unwrap_or(u64::MAX);
        let Some(b) = self.lookup(DirKey::new(scid, direction)) else {
            return (0, top);
        };
        let lo = ((b.min_msat.min(top) as f64) * self.decay_factor(b.min_at, now)) as u64;
        let hi = b.max_msat.min(top);
        let gap = (((top - hi) as f64) * self.decay_factor(b.max_at, now)) as u64;
        let hi = top.saturating_sub(gap);
        if lo > hi {
            (hi, hi)
        } else {
            (lo, hi)
        }
    }

    fn decay_factor(&self, then: u64, now: u64) -> f64 {
        if self.params.half_life_secs == 0 {
            return if now > then { 0.0 } else { 1.0 };
        }
        let elapsed = now.saturating_sub(then) as f64;
        (-(elapsed / self.params.half_life_secs as f64)).exp2()
    }

    /// The probability that sending `amount_msat` through the direction succeeds.
    pub fn success_probability(
        &self,
        scid: ShortChannelId,
        direction: ChannelDirection,
        amount_msat: u64,
        capacity_msat: Option<u64>,
        now: u64,
    ) -> f64 {
        let (lo, hi) = self.effective_bounds(scid, direction, capacity_msat, now);
        probability(amount_msat, lo, hi)
    }

    /// The penalty, msat, for sending `amount_msat` through the direction.
    pub fn penalty_msat(
        &self,
        scid: ShortChannelId,
        direction: ChannelDirection,
        amount_msat: u64,
        capacity_msat: Option<u64>,
        now: u64,
    ) -> u64 {
        let (lo, hi) = if self.bounds.is_empty() {
            (0, capacity_msat.unwrap_or(u64::MAX))
        } else {
            self.effective_bounds(scid, direction, capacity_msat, now)
        };
        self.penalty_for_bounds(amount_msat, lo, hi)
    }

    /// The penalty for sending `amount_msat` through liquidity known to lie in `[lo, hi]`.
    pub fn penalty_for_bounds(&self, amount_msat: u64, lo: u64, hi: u64) -> u64 {
        let p = &self.params;
        let bits = neg_log2(probability(amount_msat, lo, hi));
        if bits <= 0.0 {
            return p.base_penalty_msat;
        }
        let per_bit = p.liquidity_penalty_multiplier_msat as f64
            + (amount_msat as f64) * (p.liquidity_penalty_amount_multiplier_msat as f64)
                / 1_048_576.0;
        let liquidity = bits * per_bit;
        p.base_penalty_msat
            .saturating_add(if liquidity >= u64::MAX as f64 {
                u64::MAX
            } else {
                liquidity as u64
            })
    }

    fn entry(&mut self, scid: ShortChannelId, direction: ChannelDirection) -> &mut LiquidityBounds {
        let k = DirKey::new(scid, direction);
        if self.filter.is_empty() {
            self.filter = vec![0; 1 << (FILTER_BITS_LOG2 - 6)];
        }
        let (word, mask) = Self::filter_slot(k);
        if let Some(w) = self.filter.get_mut(word) {
            *w |= mask;
        }
        self.bounds.entry(k).or_insert(LiquidityBounds {
            min_msat: 0,
            min_at: 0,
            max_msat: u64::MAX,
            max_at: 0,
        })
    }

    /// The direction failed to forward `amount_msat` (a `temporary_channel_failure` at
    /// this hop): its liquidity is below `amount_msat`. The newest observation replaces an
    /// older upper bound (liquidity moves); a lower bound it contradicts is dropped.
    pub fn payment_failed_at(
        &mut self,
        scid: ShortChannelId,
        direction: ChannelDirection,
        amount_msat: u64,
        now: u64,
    ) {
        let b = self.entry(scid, direction);
        if !(b.max_at == now && b.max_msat < amount_msat) {
            b.max_msat = amount_msat;
            b.max_at = now;
        }
        if b.min_msat >= b.max_msat {
            b.min_msat = 0;
        }
    }

    /// The direction forwarded `amount_msat` (the payment failed further on, or a probe
    /// reached past it): its liquidity is at least `amount_msat`. The newest observation
    /// replaces an older lower bound; an upper bound it contradicts is dropped.
    pub fn channel_succeeded(
        &mut self,
        scid: ShortChannelId,
        direction: ChannelDirection,
        amount_msat: u64,
        now: u64,
    ) {
        let b = self.entry(scid, direction);
        if !(b.min_at == now && b.min_msat > amount_msat) {
            b.min_msat = amount_msat;
            b.min_at = now;
        }
        if b.max_msat <= b.min_msat {
            b.max_msat = u64::MAX;
        }
    }

    /// A payment along `route` failed at hop `failed_hop` (index into `route.hops`): the
    /// hops before it carried their amounts, that hop could not. When the error onion comes
    /// from `route.hops[i].node_id` with a channel failure (e.g. `temporary_channel_failure`),
    /// the channel it could not forward over is `route.hops[i + 1]`, so `failed_hop = i + 1`
    /// (and `0` when the payer's own first hop failed). A `failed_hop` past the end (a
    /// failure at the payee) teaches only the successes.
    pub fn payment_path_failed(&mut self, route: &Route, failed_hop: usize, now: u64) {
        for (i, hop) in route.hops.iter().enumerate() {
            if i < failed_hop {
                self.channel_succeeded(hop.short_channel_id, hop.direction, hop.amount_msat, now);
            } else if i == failed_hop {
                self.payment_failed_at(hop.short_channel_id, hop.direction, hop.amount_msat, now);
            }
        }
    }

    /// A payment along `route` went through: every hop had the liquidity, and now has that
    /// much less in this direction (both bounds shift down by the amount).
    pub fn payment_path_succeeded(&mut self, route: &Route) {
        for hop in &route.hops {
            let b = self.entry(hop.short_channel_id, hop.direction);
            b.min_msat = b.min_msat.saturating_sub(hop.amount_msat);
            if b.max_msat != u64::MAX {
                b.max_msat = b.max_msat.saturating_sub(hop.amount_msat);
            }
        }
    }

    /// Forget everything learned about a channel (both directions), e.g. once it closed.
    pub fn forget_channel(&mut self, scid: ShortChannelId) {
        for direction in [ChannelDirection::FromNode1, ChannelDirection::FromNode2] {
            self.bounds.remove(&DirKey::new(scid, direction));
        }
        if self.bounds.is_empty() {
            self.filter.clear();
        }
    }
}

/// `P = (hi - amt) / (hi - lo)` clamped to `[0, 1]`: 1 when `amt <= lo`, 0 when `amt >= hi`.
pub fn probability(amount_msat: u64, lo: u64, hi: u64) -> f64 {
    if amount_msat <= lo {
        1.0
    } else if amount_msat >= hi {
        0.0
    } else {
        (hi - amount_msat) as f64 / (hi - lo) as f64
    }
}

fn neg_log2(p: f64) -> f64 {
    if p >= 1.0 {
        0.0
    } else if p <= 0.0 {
        MAX_LOG2_PENALTY
    } else {
        (-p.log2()).min(MAX_LOG2_PENALTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: ChannelDirection = ChannelDirection::FromNode1;

    fn scid() -> ShortChannelId {
        ShortChannelId::from_u64(42)
    }

    #[test]
    fn prior_is_uniform_over_capacity() {
        let s = ProbabilisticScorer::new(ScorerParams::default());
        let p = s.success_probability(scid(), D, 250, Some(1000), 0);
        assert!((p - 0.75).abs() < 1e-9);
        assert_eq!(s.success_probability(scid(), D, 1000, Some(1000), 0), 0.0);
        assert_eq!(s.success_probability(scid(), D, 0, Some(1000), 0), 1.0);
        // P = 1/2 costs one bit.
        let params = ScorerParams::default();
        assert_eq!(
            s.penalty_msat(scid(), D, 500, Some(1000), 0),
            params.base_penalty_msat + params.liquidity_penalty_multiplier_msat
        );
    }

    #[test]
    fn failure_then_decay() {
        let mut s = ProbabilisticScorer::new(ScorerParams {
            half_life_secs: 100,
            ..ScorerParams::default()
        });
        s.payment_failed_at(scid(), D, 400, 1000);
        assert_eq!(s.success_probability(scid(), D, 400, Some(1000), 1000), 0.0);
        assert_eq!(s.effective_bounds(scid(), D, Some(1000), 1000), (0, 400));
        // One half-life later the missing 600 is half restored.
        assert_eq!(s.effective_bounds(scid(), D, Some(1000), 1100), (0, 700));
        // Much later, back to the prior.
        let (lo, hi) = s.effective_bounds(scid(), D, Some(1000), 1000 + 100 * 64);
        assert_eq!((lo, hi), (0, 1000));
    }

    #[test]
    fn success_raises_lower_bound_and_contradiction_resets() {
        let mut s = ProbabilisticScorer::new(ScorerParams::default());
        s.channel_succeeded(scid(), D, 300, 0);
        assert_eq!(s.success_probability(scid(), D, 300, Some(1000), 0), 1.0);
        let p = s.success_probability(scid(), D, 650, Some(1000), 0);
        assert!((p - 0.5).abs() < 1e-9);
        s.payment_failed_at(scid(), D, 200, 0);
        assert_eq!(s.effective_bounds(scid(), D, Some(1000), 0), (0, 200));
        s.channel_succeeded(scid(), D, 250, 0);
        assert_eq!(s.effective_bounds(scid(), D, Some(1000), 0), (250, 1000));
        s.forget_channel(scid());
        assert!(s.is_empty());
    }

    #[test]
    fn many_keys_and_forgetting() {
        let mut s = ProbabilisticScorer::new(ScorerParams::default());
        for i in 0..5000u64 {
            let d = if i % 3 == 0 { D } else { D.reverse() };
            s.payment_failed_at(ShortChannelId::from_u64(i << 20), d, 1000 + i, 0);
        }
        for i in 0..5000u64 {
            let d = if i % 3 == 0 { D } else { D.reverse() };
            let id = ShortChannelId::from_u64(i << 20);
            assert_eq!(s.bounds(id, d).map(|b| b.max_msat), Some(1000 + i));
            assert_eq!(s.bounds(id, d.reverse()), None);
            if i % 2 == 0 {
                s.forget_channel(id);
                assert_eq!(s.bounds(id, d), None);
            }
        }
        assert_eq!(s.bounds.len(), 2500);
    }

    #[test]
    fn penalty_is_capped_and_monotone() {
        let s = ProbabilisticScorer::new(ScorerParams::default());
        let mut last = 0;
        for amt in [0u64, 100, 500, 900, 999, 1000, 5000] {
            let pen = s.penalty_for_bounds(amt, 0, 1000);
            assert!(pen >= last);
            last = pen;
        }
        assert!(last < 20 * ScorerParams::default().liquidity_penalty_multiplier_msat);
    }
}
