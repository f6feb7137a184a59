//! Building, signing and verifying both sides' commitment transactions (and their
//! second-stage HTLC transactions) from a [`Spec`].
//!
//! Errors: a bad signature from the peer is [`ChannelError::Protocol`]; anything that fails
//! while building, signing or hashing is our own ([`ChannelError::Internal`]).
//!
//! Must never: sign a commitment it has not built itself from the state, or accept a
//! signature without verifying it against the exact transaction.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{ecdsa::Signature, All, PublicKey, Secp256k1};
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
use crate::keys::{derive_privkey, ChannelBasepoints, CommitmentKeys};

/// A built commitment with everything needed to sign or verify it.
pub struct Built {
    /// Channel-level parameters.
    pub params: CommitmentParams,
    /// Keys.
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
    let keys = CommitmentKeys::derive(secp, point, broadcaster, counter).map_err(internal)?;
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
    let tx = build_commitment_tx(&params, &keys, to_b, to_c, &htlcs).map_err(internal)?;
    Ok(Built {
        params,
        keys,
        htlcs,
        tx,
    })
}

/// Our signatures for the peer's commitment: the funding input and every HTLC output.
pub fn sign_remote(
    secp: &Secp256k1<All>,
    built: &Built,
    secrets: &ChannelSecrets,
    local_funding: &PublicKey,
    remote_funding: &PublicKey,
) -> Result<(Signature, Vec<Signature>), ChannelError> {
    let sig = built
        .tx
        .sign(
            secp,
            &built.params,
            local_funding,
            remote_funding,
            &secrets.funding_key,
        )
        .map_err(internal)?;
    let htlc_key = derive_privkey(secp, &secrets.htlc_base, &built.keys.per_commitment_point)
        .map_err(internal)?;
    let txs = built
        .tx
        .htlc_txs(&built.params, &built.keys, &built.htlcs)
        .map_err(internal)?;
    let mut sigs = Vec::with_capacity(txs.len());
    for (tx, out) in txs.iter().zip(&built.tx.htlcs) {
        sigs.push(
            sign_second_stage(secp, tx, &out.witness_script, out.amount, &htlc_key)
                .map_err(internal)?,
        );
    }
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
    for ((tx, out), s) in txs.iter().zip(&built.tx.htlcs).zip(htlc_sigs) {
        let msg = p2wsh_sighash(tx, 0, &out.witness_script, out.amount).map_err(internal)?;
        secp.verify_ecdsa(&msg, s, &built.keys.countersignatory_htlc_key)
            .map_err(|_| {
                ChannelError::Protocol(format!("invalid htlc signature (output {})", out.vout))
            })?;
    }
    Ok(())
}
