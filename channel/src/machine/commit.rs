//! Building, signing and verifying both sides' commitment transactions (and their
//! second-stage HTLC transactions) from a [`Spec`].
//!
//! Errors: a bad signature from the peer is [`ChannelError::Protocol`]; anything that fails
//! while building, signing or hashing is our own ([`ChannelError::Internal`]).
//!
//! Must never: sign a commitment it has not built itself from the state, or accept a
//! signature without verifying it against the exact transaction.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{ecdsa::Signature, All, PublicKey, Secp256k1, SecretKey};
use bitcoin::Amount;
use fulmen_htlc::scripts::p2wsh_sighash;
use fulmen_htlc::second_stage::sign_second_stage;

use super::error::ChannelError;
use super::state::{ChannelState, Spec};
use super::traits::ChannelSecrets;
use crate::commitment::{
    build_commitment_tx, obscuring_factor, CommitmentHtlc, CommitmentParams, CommitmentTx,
};
use crate::funding::funding_script;
use crate::keys::{
    derive_privkey_with_basepoint, derive_pubkey, derive_revocation_pubkey_with_secret,
    ChannelBasepoints, CommitmentKeys, KeyError, KnownRevocationSecret,
};

/// A built commitment with everything needed to sign or verify it.
pub struct Built {
    /// Channel-level parameters.
    pub params: CommitmentParams,
    /// Keys. From [`build_known`] on a commitment without untrimmed HTLC outputs, the two
    /// HTLC keys are not derived (they hold the basepoints): nothing here uses them then.
    pub keys: CommitmentKeys,
    /// HTLCs in the order given to the builder.
    pub htlcs: Vec<CommitmentHtlc>,
    /// The transaction.
    pub tx: CommitmentTx,
}

fn internal(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Internal(format!("cannot build or sign a commitment: {e}"))
}

/// Build our (`ours = true`) or the peer's commitment number `number` with per-commitment
/// point `point`.
pub fn build(
    secp: &Secp256k1<All>,
    st: &ChannelState,
    local_bp: &ChannelBasepoints,
    ours: bool,
    number: u64,
    point: &PublicKey,
    spec: &Spec,
) -> Result<Built, ChannelError> {
    build_inner(secp, st, local_bp, ours, number, point, spec, None)
}

/// [`build`] for the channel itself, which knows a secret behind the revocation key: our
/// per-commitment secret (`ours = true`: it must be the secret of `point`) or our revocation
/// basepoint secret (the peer's commitment). The revocation key then costs one variable-base
/// multiplication instead of two, and the HTLC keys are only derived when an HTLC output is
/// left untrimmed. The transaction is the same as [`build`]'s.
#[allow(clippy::too_many_arguments)]
pub fn build_known(
    secp: &Secp256k1<All>,
    st: &ChannelState,
    local_bp: &ChannelBasepoints,
    ours: bool,
    number: u64,
    point: &PublicKey,
    spec: &Spec,
    known: &SecretKey,
) -> Result<Built, ChannelError> {
    build_inner(secp, st, local_bp, ours, number, point, spec, Some(known))
}

/// The keys of a commitment with the revocation key derived through our own secret, and the
/// HTLC keys only if `htlc_keys` (otherwise they hold the basepoints, underived).
fn derive_known(
    secp: &Secp256k1<All>,
    point: &PublicKey,
    broadcaster: &ChannelBasepoints,
    counter: &ChannelBasepoints,
    known: KnownRevocationSecret<'_>,
    htlc_keys: bool,
) -> Result<CommitmentKeys, KeyError> {
    let (broadcaster_htlc_key, countersignatory_htlc_key) = if htlc_keys {
        (
            derive_pubkey(secp, &broadcaster.htlc_basepoint, point)?,
            derive_pubkey(secp, &counter.htlc_basepoint, point)?,
        )
    } else {
        (broadcaster.htlc_basepoint, counter.htlc_basepoint)
    };
    Ok(CommitmentKeys {
        per_commitment_point: *point,
        revocation_key: derive_revocation_pubkey_with_secret(
            secp,
            &counter.revocation_basepoint,
            point,
            known,
        )?,
        broadcaster_htlc_key,
        countersignatory_htlc_key,
        broadcaster_delayed_key: derive_pubkey(
            secp,
            &broadcaster.delayed_payment_basepoint,
            point,
        )?,
        countersignatory_payment_key: counter.payment_basepoint,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_inner(
    secp: &Secp256k1<All>,
    st: &ChannelState,
    local_bp: &ChannelBasepoints,
    ours: bool,
    number: u64,
    point: &PublicKey,
    spec: &Spec,
    known: Option<&SecretKey>,
) -> Result<Built, ChannelError> {
    let remote = st.remote()?;
    let outpoint = st.funding_outpoint.ok_or(internal("no funding outpoint"))?;
    let (opener_bp, acceptor_bp) = if st.setup.is_opener {
        (local_bp, &remote.basepoints)
    } else {
        (&remote.basepoints, local_bp)
    };
    let params = CommitmentParams {
        funding_outpoint: outpoint,
        funding_value: Amount::from_sat(st.setup.funding_sat),
        commitment_number: number,
        obscuring_factor: obscuring_factor(
            &opener_bp.payment_basepoint,
            &acceptor_bp.payment_basepoint,
        ),
        to_self_delay: if ours {
            remote.to_self_delay
        } else {
            st.setup.local.to_self_delay
        },
        dust_limit: Amount::from_sat(if ours {
            st.setup.local.dust_limit_sat
        } else {
            remote.dust_limit_sat
        }),
        feerate_per_kw: spec.feerate_per_kw,
        broadcaster_is_funder: st.setup.is_opener == ours,
    };
    let (broadcaster, counter) = if ours {
        (local_bp, &remote.basepoints)
    } else {
        (&remote.basepoints, local_bp)
    };
    let (b_offered, b_received, to_b, to_c) = if ours {
        (
            &spec.offered_by_us,
            &spec.offered_by_them,
            spec.to_us_msat,
            spec.to_them_msat,
        )
    } else {
        (
            &spec.offered_by_them,
            &spec.offered_by_us,
            spec.to_them_msat,
            spec.to_us_msat,
        )
    };
    let mk = |offered: bool, h: &super::state::HtlcInfo| CommitmentHtlc {
        offered,
        amount_msat: h.amount_msat,
        cltv_expiry: h.cltv_expiry,
        payment_hash: sha256::Hash::from_byte_array(h.payment_hash.0),
    };
    let htlcs: Vec<CommitmentHtlc> = b_offered
        .values()
        .map(|h| mk(true, h))
        .chain(b_received.values().map(|h| mk(false, h)))
        .collect();
    let htlc_keys = known.is_none()
        || htlcs
            .iter()
            .any(|h| !h.is_trimmed(params.dust_limit, params.feerate_per_kw));
    let keys = match known {
        None => CommitmentKeys::derive(secp, point, broadcaster, counter),
        Some(secret) => {
            let known = if ours {
                KnownRevocationSecret::PerCommitmentPoint(secret)
            } else {
                KnownRevocationSecret::RevocationBasepoint(secret)
            };
            derive_known(secp, point, broadcaster, counter, known, htlc_keys)
        }
    }
    .map_err(internal)?;
    let tx = build_commitment_tx(&params, &keys, to_b, to_c, &htlcs).map_err(internal)?;
    if !htlc_keys && !tx.htlcs.is_empty() {
        return Err(internal("HTLC output built without derived HTLC keys"));
    }
    Ok(Built {
        params,
        keys,
        htlcs,
        tx,
    })
}

/// Our signature of `built`'s funding input.
fn funding_sig(
    secp: &Secp256k1<All>,
    built: &Built,
    secrets: &ChannelSecrets,
    local_funding: &PublicKey,
    remote_funding: &PublicKey,
) -> Result<Signature, ChannelError> {
    built
        .tx
        .sign(
            secp,
            &built.params,
            local_funding,
            remote_funding,
            &secrets.funding_key,
        )
        .map_err(internal)
}

/// Our commitment `built`, fully signed: our funding signature beside the peer's
/// `remote_sig` (what a force close broadcasts).
pub fn signed_local(
    secp: &Secp256k1<All>,
    built: &Built,
    secrets: &ChannelSecrets,
    local_funding: &PublicKey,
    remote_funding: &PublicKey,
    remote_sig: &Signature,
) -> Result<bitcoin::Transaction, ChannelError> {
    let ours = funding_sig(secp, built, secrets, local_funding, remote_funding)?;
    Ok(built
        .tx
        .signed_tx(local_funding, &ours, remote_funding, remote_sig))
}

/// Our signatures for the peer's commitment: the funding input and every HTLC output.
pub fn sign_remote(
    secp: &Secp256k1<All>,
    built: &Built,
    secrets: &ChannelSecrets,
    local_bp: &ChannelBasepoints,
    remote_funding: &PublicKey,
) -> Result<(Signature, Vec<Signature>), ChannelError> {
    let (local_funding, local_htlc_basepoint) =
        (&local_bp.funding_pubkey, &local_bp.htlc_basepoint);
    let sig = funding_sig(secp, built, secrets, local_funding, remote_funding)?;
    let txs = built
        .tx
        .htlc_txs(&built.params, &built.keys, &built.htlcs)
        .map_err(internal)?;
    if txs.is_empty() {
        return Ok((sig, Vec::new()));
    }
    let htlc_key = derive_privkey_with_basepoint(
        &secrets.htlc_base,
        local_htlc_basepoint,
        &built.keys.per_commitment_point,
    )
    .map_err(internal)?;
    let pairs: Vec<_> = txs.iter().zip(&built.tx.htlcs).collect();
    let sigs = crate::parallel::map_in_order(&pairs, |(tx, out)| {
        sign_second_stage(secp, tx, &out.witness_script, out.amount, &htlc_key).map_err(internal)
    })?;
    Ok((sig, sigs))
}

/// Verify the peer's signatures of our commitment.
pub fn verify_local(
    secp: &Secp256k1<All>,
    built: &Built,
    sig: &Signature,
    htlc_sigs: &[Signature],
    local_funding: &PublicKey,
    remote_funding: &PublicKey,
) -> Result<(), ChannelError> {
    let script = funding_script(local_funding, remote_funding);
    let msg =
        p2wsh_sighash(&built.tx.tx, 0, &script, built.params.funding_value).map_err(internal)?;
    secp.verify_ecdsa(&msg, sig, remote_funding)
        .map_err(|_| ChannelError::Protocol("invalid commitment signature".into()))?;
    if htlc_sigs.len() != built.tx.htlcs.len() {
        return Err(ChannelError::Protocol(format!(
            "{} htlc signatures for {} htlc outputs",
            htlc_sigs.len(),
            built.tx.htlcs.len()
        )));
    }
    let txs = built
        .tx
        .htlc_txs(&built.params, &built.keys, &built.htlcs)
        .map_err(internal)?;
    let triples: Vec<_> = txs.iter().zip(&built.tx.htlcs).zip(htlc_sigs).collect();
    crate::parallel::map_in_order(&triples, |((tx, out), s)| {
        let msg = p2wsh_sighash(tx, 0, &out.witness_script, out.amount).map_err(internal)?;
        secp.verify_ecdsa(&msg, s, &built.keys.countersignatory_htlc_key)
            .map_err(|_| {
                ChannelError::Protocol(format!("invalid htlc signature (output {})", out.vout))
            })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::OutPoint;

    fn basepoints(secp: &Secp256k1<All>, base: u8) -> (SecretKey, ChannelBasepoints) {
        let sk = |n: u8| SecretKey::from_slice(&[base.wrapping_add(n); 32]).unwrap();
        let pk = |n: u8| PublicKey::from_secret_key(secp, &sk(n));
        (
            sk(1),
            ChannelBasepoints {
                funding_pubkey: pk(0),
                revocation_basepoint: pk(1),
                payment_basepoint: pk(2),
                delayed_payment_basepoint: pk(3),
                htlc_basepoint: pk(4),
            },
        )
    }

    /// The revocation key through either of our secrets equals the plain derivation, and so
    /// do the other keys when the HTLC keys are asked for.
    #[test]
    fn known_secret_keys_match_plain_derivation() {
        let secp = Secp256k1::new();
        let (our_rev, ours) = basepoints(&secp, 10);
        let (_, theirs) = basepoints(&secp, 90);
        for n in [1u8, 2, 77] {
            let pcs = SecretKey::from_slice(&[n; 32]).unwrap();
            let pcp = PublicKey::from_secret_key(&secp, &pcs);
            // Our commitment: we broadcast, we know the per-commitment secret.
            let plain = CommitmentKeys::derive(&secp, &pcp, &ours, &theirs).unwrap();
            let known = KnownRevocationSecret::PerCommitmentPoint(&pcs);
            let fast = derive_known(&secp, &pcp, &ours, &theirs, known, true).unwrap();
            assert_eq!(fast, plain);
            // Their commitment: we know our revocation basepoint secret.
            let plain = CommitmentKeys::derive(&secp, &pcp, &theirs, &ours).unwrap();
            let known = KnownRevocationSecret::RevocationBasepoint(&our_rev);
            let fast = derive_known(&secp, &pcp, &theirs, &ours, known, true).unwrap();
            assert_eq!(fast, plain);
            let partial = derive_known(&secp, &pcp, &theirs, &ours, known, false).unwrap();
            assert_eq!(partial.revocation_key, plain.revocation_key);
            assert_eq!(
                partial.broadcaster_delayed_key,
                plain.broadcaster_delayed_key
            );
        }
    }

    /// Without untrimmed HTLC outputs the HTLC keys do not reach the transaction.
    #[test]
    fn trimmed_htlcs_do_not_use_the_htlc_keys() {
        let secp = Secp256k1::new();
        let (our_rev, ours) = basepoints(&secp, 10);
        let (_, theirs) = basepoints(&secp, 90);
        let pcp = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[5; 32]).unwrap());
        let full = CommitmentKeys::derive(&secp, &pcp, &theirs, &ours).unwrap();
        let known = KnownRevocationSecret::RevocationBasepoint(&our_rev);
        let partial = derive_known(&secp, &pcp, &theirs, &ours, known, false).unwrap();
        let params = CommitmentParams {
            funding_outpoint: OutPoint::null(),
            funding_value: Amount::from_sat(1_000_000),
            commitment_number: 7,
            obscuring_factor: 0x1234_5678_9abc,
            to_self_delay: 144,
            dust_limit: Amount::from_sat(546),
            feerate_per_kw: 253,
            broadcaster_is_funder: true,
        };
        let htlcs: Vec<CommitmentHtlc> = [(true, 10_000u64), (false, 600_000)]
            .iter()
            .map(|&(offered, amount_msat)| CommitmentHtlc {
                offered,
                amount_msat,
                cltv_expiry: 500,
                payment_hash: sha256::Hash::hash(&amount_msat.to_be_bytes()),
            })
            .collect();
        assert!(htlcs
            .iter()
            .all(|h| h.is_trimmed(params.dust_limit, params.feerate_per_kw)));
        let a = build_commitment_tx(&params, &full, 600_000_000, 399_390_000, &htlcs).unwrap();
        let b = build_commitment_tx(&params, &partial, 600_000_000, 399_390_000, &htlcs).unwrap();
        assert_eq!(a.tx, b.tx);
        assert!(b.htlcs.is_empty());
    }
}
