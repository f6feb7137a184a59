//! Justice transactions: after the counterparty broadcasts a *revoked* commitment, take its
//! `to_local` output, every HTLC output and every second-stage (HTLC-timeout / HTLC-success)
//! output they publish from it, with the revocation private key — no delay applies.
//!
//! Must never: do I/O, or leave a revocable output of a revoked commitment out of the
//! inputs it is given (every one is taken with the revocation key).

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey, Signing};
use bitcoin::{OutPoint, ScriptBuf, Transaction};
use fulmen_htlc::scripts::revocable_delayed_script;

use crate::commitment::CommitmentTx;
use crate::keys::CommitmentKeys;
use crate::sweep::{build_sweep_tx, SpendPath, SweepError, SweepInput};

/// The revocable outputs of a revoked commitment (rebuilt with [`crate::commitment`]):
/// `to_local` and every untrimmed HTLC output, each spent with `revocation_secret`.
pub fn commitment_justice_inputs(
    commitment: &CommitmentTx,
    keys: &CommitmentKeys,
    revocation_secret: &SecretKey,
) -> Vec<SweepInput> {
    let txid = commitment.txid();
    let mut inputs = Vec::with_capacity(commitment.htlcs.len() + 1);
    if let Some((vout, ws)) = &commitment.to_local {
        if let Some(out) = commitment.tx.output.get(*vout as usize) {
            inputs.push(SweepInput {
                outpoint: OutPoint { txid, vout: *vout },
                value: out.value,
                witness_script: ws.clone(),
                path: SpendPath::RevokedDelayed,
                key: *revocation_secret,
            });
        }
    }
    for h in &commitment.htlcs {
        inputs.push(SweepInput {
            outpoint: OutPoint { txid, vout: h.vout },
            value: h.amount,
            witness_script: h.witness_script.clone(),
            path: SpendPath::RevokedHtlc {
                revocation_key: keys.revocation_key,
            },
            key: *revocation_secret,
        });
    }
    inputs
}

/// The output of a second-stage tx published from a revoked commitment — or the `to_local`
/// output of the revoked commitment itself, which pays the same script — taken with the
/// revocation key. Needs only the published transaction. `None` if no output pays the
/// expected script.
pub fn second_stage_justice_input(
    htlc_tx: &Transaction,
    to_self_delay: u16,
    keys: &CommitmentKeys,
    revocation_secret: &SecretKey,
) -> Option<SweepInput> {
    let ws = revocable_delayed_script(
        &keys.revocation_key,
        to_self_delay,
        &keys.broadcaster_delayed_key,
    );
    let spk = ws.to_p2wsh();
    let (vout, out) = htlc_tx
        .output
        .iter()
        .enumerate()
        .find(|(_, o)| o.script_pubkey == spk)?;
    Some(SweepInput {
        outpoint: OutPoint {
            txid: htlc_tx.compute_txid(),
            vout: vout as u32,
        },
        value: out.value,
        witness_script: ws,
        path: SpendPath::RevokedDelayed,
        key: *revocation_secret,
    })
}

/// The HTLC outputs of a published revoked commitment, found by script: every output paying
/// the P2WSH of one of `htlcs` (the HTLCs the monitor kept for that commitment number) under
/// `keys`. Each output is returned once, even when several HTLCs share a script.
pub fn htlc_justice_inputs(
    revoked: &Transaction,
    keys: &CommitmentKeys,
    htlcs: &[crate::commitment::CommitmentHtlc],
    revocation_secret: &SecretKey,
) -> Vec<SweepInput> {
    let txid = revoked.compute_txid();
    let scripts: Vec<ScriptBuf> = htlcs.iter().map(|h| h.witness_script(keys)).collect();
    revoked
        .output
        .iter()
        .enumerate()
        .filter_map(|(vout, out)| {
            let ws = scripts
                .iter()
                .find(|ws| ws.to_p2wsh() == out.script_pubkey)?;
            Some(SweepInput {
                outpoint: OutPoint {
                    txid,
                    vout: vout as u32,
                },
                value: out.value,
                witness_script: ws.clone(),
                path: SpendPath::RevokedHtlc {
                    revocation_key: keys.revocation_key,
                },
                key: *revocation_secret,
            })
        })
        .collect()
}

/// Build and sign a justice transaction taking all `inputs` to `destination`.
/// Every input must use a revocation path.
pub fn build_justice_tx<C: Signing>(
    secp: &Secp256k1<C>,
    inputs: &[SweepInput],
    destination: ScriptBuf,
    feerate_per_kw: u32,
) -> Result<Transaction, SweepError> {
    if inputs.iter().any(|i| {
        !matches!(
            i.path,
            SpendPath::RevokedDelayed | SpendPath::RevokedHtlc { .. }
        )
    }) {
        return Err(SweepError::NotRevocation);
    }
    build_sweep_tx(secp, inputs, destination, feerate_per_kw)
}

/// Check that `revocation_secret` is the private key of `revocation_key` (so a justice
/// transaction built with it will verify).
pub fn revocation_secret_matches<C: Signing>(
    secp: &Secp256k1<C>,
    revocation_secret: &SecretKey,
    revocation_key: &PublicKey,
) -> bool {
    PublicKey::from_secret_key(secp, revocation_secret) == *revocation_key
}
