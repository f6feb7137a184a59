//! Dust exposure (BOLT 2 `max_dust_htlc_exposure_msat`): the sum of the HTLC amounts a
//! commitment trims (amount below its broadcaster's dust limit plus the HTLC's second-stage
//! fee at the commitment's feerate), counted on our commitment and on theirs, each with its
//! broadcaster's dust limit. Trimmed HTLCs go to miners if the commitment is broadcast, so
//! their total is capped by [`super::ChannelConfig::max_dust_htlc_exposure_msat`].
//!
//! Must never: mutate state, or count an untrimmed HTLC as dust.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::Amount;

use super::state::{HtlcInfo, Spec};
use crate::commitment::CommitmentHtlc;

/// Whether `h` is trimmed on a commitment with `dust_limit_sat` and `feerate`; `offered`
/// says whether the commitment's broadcaster offered it (HTLC-timeout fee) or received it
/// (HTLC-success fee).
pub(super) fn is_dust(h: &HtlcInfo, offered: bool, dust_limit_sat: u64, feerate: u32) -> bool {
    CommitmentHtlc {
        offered,
        amount_msat: h.amount_msat,
        cltv_expiry: h.cltv_expiry,
        payment_hash: sha256::Hash::all_zeros(),
    }
    .is_trimmed(Amount::from_sat(dust_limit_sat), feerate)
}

/// Dust exposure (msat) of the commitment with content `spec` (from our side) broadcast by
/// us (`ours`) or by the peer, whose dust limit is `dust_limit_sat`.
pub(super) fn exposure_msat(spec: &Spec, ours: bool, dust_limit_sat: u64) -> u64 {
    let f = spec.feerate_per_kw;
    let by_us = spec
        .offered_by_us
        .values()
        .filter(|h| is_dust(h, ours, dust_limit_sat, f));
    let by_them = spec
        .offered_by_them
        .values()
        .filter(|h| is_dust(h, !ours, dust_limit_sat, f));
    by_us.chain(by_them).map(|h| h.amount_msat).sum()
}

/// Refuse if `spec`, as our commitment (our `local_dust_sat`) or as theirs (their
/// `remote_dust_sat`), trims more than `limit_msat` of HTLCs.
pub(super) fn check_exposure(
    spec: &Spec,
    local_dust_sat: u64,
    remote_dust_sat: u64,
    limit_msat: u64,
) -> Result<(), String> {
    for (ours, dust, name) in [
        (true, local_dust_sat, "our"),
        (false, remote_dust_sat, "their"),
    ] {
        let e = exposure_msat(spec, ours, dust);
        if e > limit_msat {
            return Err(format!(
                "dust exposure {e} msat on {name} commitment exceeds max_dust_htlc_exposure_msat {limit_msat}"
            ));
        }
    }
    Ok(())
}

/// The peer's HTLCs of `new` (in offer order, all present in both specs) that must be
/// failed: taken one by one on top of the exposure of the commitments without them, each
/// one that would push either commitment's exposure above `limit_msat` is selected (and not
/// counted further, since it will be failed).
pub(super) fn over_limit(
    local: &Spec,
    remote: &Spec,
    local_dust_sat: u64,
    remote_dust_sat: u64,
    limit_msat: u64,
    new: &[(u64, HtlcInfo)],
) -> Vec<u64> {
    let dust_l = |h: &HtlcInfo| is_dust(h, false, local_dust_sat, local.feerate_per_kw);
    let dust_r = |h: &HtlcInfo| is_dust(h, true, remote_dust_sat, remote.feerate_per_kw);
    let amt = |d: bool, h: &HtlcInfo| if d { h.amount_msat } else { 0 };
    let mut el = exposure_msat(local, true, local_dust_sat);
    let mut er = exposure_msat(remote, false, remote_dust_sat);
    for (_, h) in new {
        el = el.saturating_sub(amt(dust_l(h), h));
        er = er.saturating_sub(amt(dust_r(h), h));
    }
    let mut out = Vec::new();
    for (id, h) in new {
        let (dl, dr) = (amt(dust_l(h), h), amt(dust_r(h), h));
        if el.saturating_add(dl) > limit_msat || er.saturating_add(dr) > limit_msat {
            out.push(*id);
        } else {
            el += dl;
            er += dr;
        }
    }
    out
}
