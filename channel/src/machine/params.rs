//! Channel parameters: our [`ChannelConfig`], what each side announced ([`SideParams`]) and
//! the BOLT 2 checks of a peer's `open_channel` / `accept_channel`.
//!
//! Must never: accept a parameter set BOLT 2 says to refuse (dust limit below 354 sat or
//! above the reserve, `max_accepted_htlcs` above 483, an unreasonable `to_self_delay` or
//! `minimum_depth`, an insane feerate, an unaffordable first commitment).

use bitcoin::secp256k1::PublicKey;

use super::error::ChannelError;
use crate::commitment::{commitment_fee, MAX_HTLCS};
use crate::keys::ChannelBasepoints;

/// Smallest dust limit BOLT 2 allows (`dust_limit_satoshis` < 354 must be refused).
pub const MIN_DUST_LIMIT_SAT: u64 = 354;
/// Floor of any feerate (253 sat/kw = 1 sat/vbyte rounded up).
pub const MIN_FEERATE_PER_KW: u32 = 253;
/// Largest channel without `option_support_large_channel`: 2^24 sat.
pub const MAX_FUNDING_SAT: u64 = 1 << 24;
/// Blocks a non-funder waits for the funding to confirm before forgetting the channel.
pub const FUNDING_TIMEOUT_BLOCKS: u32 = 2016;
/// Most updates one side may propose without signing (BOLT 2 sets no total; this cap
/// bounds the records and the work a peer can cause between two `commitment_signed`).
///
/// An honest side needs at most 483 adds (`max_accepted_htlcs`) plus 483 settlements (the
/// other side's HTLCs) plus a few fee updates; consecutive fee updates collapse into one in
/// the state, but each `update_fee` received still counts here (each was persisted). A peer
/// sending more updates before its `commitment_signed` breaks the protocol; our own commands
/// are refused past it.
pub const MAX_UNSIGNED_UPDATES: usize = 1000;

/// Blocks past an offered HTLC's expiry after which, if the peer still has not removed it,
/// the channel force-closes to time it out on chain (BOLT 2: "some grace period").
pub const OFFERED_HTLC_GRACE_BLOCKS: u32 = 3;

/// Blocks before a fulfilled HTLC's expiry at which, if the peer still has not removed it,
/// the channel force-closes to claim it on chain with the preimage (BOLT 5's deadline for
/// received HTLCs, with room for the claim to confirm).
pub const FULFILLED_HTLC_DEADLINE_BLOCKS: u32 = 6;

/// What we announce and what we tolerate from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Our dust limit (≥ 354).
    pub dust_limit_sat: u64,
    /// Cap on the total value of HTLCs in flight towards us.
    pub max_htlc_value_in_flight_msat: u64,
    /// Reserve we require the peer to keep, in thousandths of the capacity (at least our
    /// and their dust limit).
    pub reserve_permille: u64,
    /// Smallest HTLC we accept.
    pub htlc_minimum_msat: u64,
    /// CSV delay we impose on the peer's own outputs.
    pub to_self_delay: u16,
    /// HTLCs we accept at once (≤ 483).
    pub max_accepted_htlcs: u16,
    /// Confirmations we require (as acceptor) before `channel_ready`.
    pub minimum_depth: u32,
    /// Largest `to_self_delay` we let a peer impose on us.
    pub max_to_self_delay: u16,
    /// Largest `minimum_depth` we accept from an acceptor.
    pub max_minimum_depth: u32,
    /// Smallest channel we accept.
    pub min_funding_sat: u64,
    /// A peer's feerate must lie within `[estimate / ratio, estimate * ratio]`.
    pub feerate_tolerance: u32,
    /// Largest dust limit we accept from a peer.
    pub max_dust_limit_sat: u64,
    /// Largest `htlc_minimum_msat` we accept from a peer.
    pub max_htlc_minimum_msat: u64,
    /// BOLT 2 dust exposure limit: the most msat of trimmed HTLCs (amount below the
    /// broadcaster's dust limit plus the HTLC's second-stage fee at the commitment feerate)
    /// either commitment, ours or theirs, may carry. We refuse to offer an HTLC or raise
    /// the feerate past it (command error); a peer's HTLC past it is accepted but reported
    /// as [`super::Event::HtlcMustFail`] once irrevocably committed. Default 5_000_000
    /// msat, as other implementations.
    pub max_dust_htlc_exposure_msat: u64,
    /// A [`super::Record::Snapshot`] of the whole state ends the batch that brings the
    /// records since the last one to this many (0: never). Default 100 (≈ 12 payments, a
    /// 5 KB snapshot after ≈ 60 KB of records: a tail a crashed node replays stays short).
    pub snapshot_every: u64,
    /// Release `update_fulfill_htlc` before its record is acknowledged durable (default
    /// true): a forwarder passes the preimage upstream, and a payer learns it, one durable
    /// write sooner per hop. Safe by BOLT 2: the fulfill binds no one until the
    /// `commitment_signed` and `revoke_and_ack` covering it, and those still wait for
    /// their records. If we crash before the record lands, the peer forgets the
    /// uncommitted fulfill when the connection drops and we restart with the HTLC still
    /// ours to settle (a forwarder learns the preimage again: the downstream peer's fulfill
    /// was not revoked-and-acked either, so it is retransmitted); the preimage the peer
    /// learned early only lets it pay its own upstream, never take from us. Only while no
    /// earlier message of the channel still waits (order is kept). False: every message
    /// waits for its batch.
    pub early_fulfill: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            dust_limit_sat: 546,
            max_htlc_value_in_flight_msat: u64::MAX,
            reserve_permille: 10,
            htlc_minimum_msat: 1,
            to_self_delay: 144,
            max_accepted_htlcs: 483,
            minimum_depth: 3,
            max_to_self_delay: 2016,
            max_minimum_depth: 144,
            min_funding_sat: 20_000,
            feerate_tolerance: 10,
            max_dust_limit_sat: 20_000,
            max_htlc_minimum_msat: 10_000_000,
            max_dust_htlc_exposure_msat: 5_000_000,
            snapshot_every: 100,
            early_fulfill: true,
        }
    }
}

impl ChannelConfig {
    /// Reserve we require of the peer for a channel of `funding_sat`.
    pub fn reserve_for(&self, funding_sat: u64) -> u64 {
        (funding_sat.saturating_mul(self.reserve_permille) / 1000).max(self.dust_limit_sat)
    }

    /// Check our own config against the same rules we apply to peers.
    pub fn validate(&self) -> Result<(), ChannelError> {
        if self.dust_limit_sat < MIN_DUST_LIMIT_SAT {
            return Err(ChannelError::Command("dust_limit_sat below 354".into()));
        }
        if usize::from(self.max_accepted_htlcs) > MAX_HTLCS || self.max_accepted_htlcs == 0 {
            return Err(ChannelError::Command(
                "max_accepted_htlcs not in 1..=483".into(),
            ));
        }
        if self.feerate_tolerance < 1 {
            return Err(ChannelError::Command(
                "feerate_tolerance must be >= 1".into(),
            ));
        }
        Ok(())
    }
}

/// The parameters one side announced (`open_channel` / `accept_channel`), named from that
/// side: `dust_limit_sat` is for its own commitment, `channel_reserve_sat` and
/// `to_self_delay` are what it imposes on the *other* side, the HTLC limits are what it
/// accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SideParams {
    /// Dust limit of this side's commitment.
    pub dust_limit_sat: u64,
    /// Cap on HTLC value in flight towards this side.
    pub max_htlc_value_in_flight_msat: u64,
    /// Reserve the other side must keep.
    pub channel_reserve_sat: u64,
    /// Smallest HTLC this side accepts.
    pub htlc_minimum_msat: u64,
    /// CSV delay of the other side's own outputs.
    pub to_self_delay: u16,
    /// HTLCs this side accepts at once.
    pub max_accepted_htlcs: u16,
    /// This side's basepoints.
    pub basepoints: ChannelBasepoints,
    /// This side's per-commitment point for commitment 0.
    #[serde(with = "crate::machine::codec::key_hex")]
    pub first_per_commitment_point: PublicKey,
}

fn refuse(reason: String) -> Result<(), ChannelError> {
    Err(ChannelError::Protocol(reason))
}

/// BOLT 2 checks both receivers of `open_channel` / `accept_channel` apply to the other
/// side's parameters.
pub fn check_peer_params(
    cfg: &ChannelConfig,
    peer: &SideParams,
    funding_sat: u64,
) -> Result<(), ChannelError> {
    if usize::from(peer.max_accepted_htlcs) > MAX_HTLCS {
        return refuse(format!(
            "max_accepted_htlcs {} > 483",
            peer.max_accepted_htlcs
        ));
    }
    if peer.max_accepted_htlcs == 0 {
        return refuse("max_accepted_htlcs is 0".into());
    }
    if peer.to_self_delay > cfg.max_to_self_delay {
        return refuse(format!(
            "to_self_delay {} above our maximum {}",
            peer.to_self_delay, cfg.max_to_self_delay
        ));
    }
    if peer.dust_limit_sat < MIN_DUST_LIMIT_SAT {
        return refuse(format!("dust_limit_satoshis {} < 354", peer.dust_limit_sat));
    }
    if peer.dust_limit_sat > cfg.max_dust_limit_sat {
        return refuse(format!(
            "dust_limit_satoshis {} too large",
            peer.dust_limit_sat
        ));
    }
    if peer.htlc_minimum_msat > cfg.max_htlc_minimum_msat {
        return refuse(format!(
            "htlc_minimum_msat {} too large",
            peer.htlc_minimum_msat
        ));
    }
    if peer.channel_reserve_sat.saturating_mul(5) > funding_sat {
        return refuse(format!(
            "channel_reserve_satoshis {} too large for capacity {funding_sat}",
            peer.channel_reserve_sat
        ));
    }
    if peer.max_htlc_value_in_flight_msat < 1000 {
        return refuse("max_htlc_value_in_flight_msat below 1000".into());
    }
    Ok(())
}

/// The acceptor's extra checks of `open_channel`: chain, size, push, feerate, dust vs
/// reserve, and that the first commitment is affordable and not all reserve.
pub fn check_open(
    cfg: &ChannelConfig,
    opener: &SideParams,
    our_reserve_sat: u64,
    funding_sat: u64,
    push_msat: u64,
    feerate_per_kw: u32,
    fee_estimate: u32,
) -> Result<(), ChannelError> {
    check_peer_params(cfg, opener, funding_sat)?;
    if funding_sat >= MAX_FUNDING_SAT {
        return refuse(format!("funding_satoshis {funding_sat} >= 2^24"));
    }
    if funding_sat < cfg.min_funding_sat {
        return refuse(format!("funding_satoshis {funding_sat} too small"));
    }
    if push_msat > funding_sat.saturating_mul(1000) {
        return refuse(format!("push_msat {push_msat} exceeds the capacity"));
    }
    check_feerate(feerate_per_kw, fee_estimate, cfg.feerate_tolerance)?;
    if opener.dust_limit_sat > opener.channel_reserve_sat {
        return refuse("opener's dust_limit_satoshis above its channel_reserve_satoshis".into());
    }
    if opener.channel_reserve_sat < cfg.dust_limit_sat {
        return refuse("channel_reserve_satoshis below our dust limit".into());
    }
    let opener_msat = funding_sat.saturating_mul(1000) - push_msat;
    let fee_msat = commitment_fee(feerate_per_kw, 0).to_sat() * 1000;
    if opener_msat < fee_msat {
        return refuse("opener cannot pay the first commitment's fee".into());
    }
    let to_opener = (opener_msat - fee_msat) / 1000;
    let to_acceptor = push_msat / 1000;
    if to_opener <= our_reserve_sat && to_acceptor <= opener.channel_reserve_sat {
        return refuse("both first-commitment outputs are within the reserve".into());
    }
    Ok(())
}

/// The opener's extra checks of `accept_channel`.
pub fn check_accept(
    cfg: &ChannelConfig,
    acceptor: &SideParams,
    ours: &SideParams,
    funding_sat: u64,
    minimum_depth: u32,
) -> Result<(), ChannelError> {
    check_peer_params(cfg, acceptor, funding_sat)?;
    if minimum_depth > cfg.max_minimum_depth {
        return refuse(format!("minimum_depth {minimum_depth} unreasonably large"));
    }
    if acceptor.channel_reserve_sat < ours.dust_limit_sat {
        return refuse("channel_reserve_satoshis below our dust_limit_satoshis".into());
    }
    if ours.channel_reserve_sat < acceptor.dust_limit_sat {
        return refuse("our channel_reserve_satoshis below their dust_limit_satoshis".into());
    }
    Ok(())
}

/// A feerate is sane if ≥ 253 and within the tolerance factor of our estimate.
pub fn check_feerate(feerate: u32, estimate: u32, tolerance: u32) -> Result<(), ChannelError> {
    let estimate = estimate.max(MIN_FEERATE_PER_KW);
    if feerate < MIN_FEERATE_PER_KW
        || feerate < estimate / tolerance
        || u64::from(feerate) > u64::from(estimate) * u64::from(tolerance)
    {
        return refuse(format!(
            "feerate_per_kw {feerate} insane (estimate {estimate})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feerate_sanity_bounds() {
        assert!(check_feerate(253, 1000, 10).is_ok());
        assert!(check_feerate(252, 253, 10).is_err());
        assert!(check_feerate(99, 1000, 10).is_err());
        assert!(check_feerate(10_000, 1000, 10).is_ok());
        assert!(check_feerate(10_001, 1000, 10).is_err());
    }

    #[test]
    fn config_validation_and_reserve() {
        let c = ChannelConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.reserve_for(1_000_000), 10_000);
        assert_eq!(c.reserve_for(10_000), c.dust_limit_sat);
        let bad = ChannelConfig {
            max_accepted_htlcs: 484,
            ..ChannelConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = ChannelConfig {
            dust_limit_sat: 353,
            ..ChannelConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
