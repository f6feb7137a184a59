//! Spends a node needs after a commitment or HTLC transaction confirms: `to_local` and
//! second-stage outputs after the CSV delay, HTLC outputs of the *counterparty's*
//! commitment by preimage or after their CLTV expiry, our `to_remote` output of their
//! commitment (P2WPKH, static remote key), and (through [`crate::justice`]) every
//! revocable output with the revocation key. One transaction may sweep many inputs to one
//! destination; its fee is computed from its weight at the given feerate.
//!
//! Must never: do I/O, or sign a spend whose timelock fields do not satisfy the script
//! (nSequence ≥ `to_self_delay` for delayed paths, nLockTime ≥ `cltv_expiry` for timeouts).

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey, Signing};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use fulmen_htlc::scripts::{
    delayed_revocation_witness, delayed_witness, htlc_revocation_witness,
    offered_htlc_preimage_witness, received_htlc_timeout_witness, sig_all, sign_p2wsh, ScriptError,
};

/// Errors building a sweep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepError {
    /// No inputs to sweep.
    #[error("nothing to sweep")]
    NoInputs,
    /// The inputs cannot pay the fee and leave a non-dust output.
    #[error(
        "inputs ({total_sat} sat) cannot pay fee {fee_sat} sat and leave at least {dust_sat} sat"
    )]
    TooSmall {
        /// Sum of the inputs.
        total_sat: u64,
        /// Fee at the requested feerate.
        fee_sat: u64,
        /// Minimum output value.
        dust_sat: u64,
    },
    /// A justice transaction was asked to spend a non-revocation path.
    #[error("a justice transaction may only spend revocation paths")]
    NotRevocation,
    /// Amounts overflow.
    #[error("input amounts overflow")]
    Overflow,
    /// Signing failed.
    #[error(transparent)]
    Script(#[from] ScriptError),
}

/// How an output is spent (which branch of its witness script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendPath {
    /// Revocable-delayed script (`to_local` or second-stage output) by the broadcaster's
    /// delayed key, after `to_self_delay` blocks.
    Delayed {
        /// The script's CSV delay.
        to_self_delay: u16,
    },
    /// Revocable-delayed script by the revocation key (justice).
    RevokedDelayed,
    /// Offered or received HTLC output by the revocation key (justice).
    RevokedHtlc {
        /// The revocation public key (it is pushed in the witness).
        revocation_key: PublicKey,
    },
    /// Offered-HTLC output of the counterparty's commitment, by our HTLC key + preimage.
    OfferedHtlcPreimage {
        /// The payment preimage.
        preimage: [u8; 32],
    },
    /// Received-HTLC output of the counterparty's commitment, by our HTLC key after expiry.
    ReceivedHtlcTimeout {
        /// The HTLC's CLTV expiry; the sweep's nLockTime is at least this.
        cltv_expiry: u32,
    },
    /// Our `to_remote` output of the counterparty's commitment: P2WPKH to our payment
    /// basepoint (`option_static_remotekey`), spendable at once with the basepoint secret.
    /// `witness_script` is ignored (the script code is derived from the key).
    StaticRemote,
}

/// One output to sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepInput {
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: Amount,
    /// Its P2WSH witness script (ignored for [`SpendPath::StaticRemote`]).
    pub witness_script: ScriptBuf,
    /// Which branch to take.
    pub path: SpendPath,
    /// The key that signs that branch (delayed, revocation or HTLC private key).
    pub key: SecretKey,
}

/// Minimum output a sweep may create (P2WSH dust under Bitcoin Core's 3 sat/vB rule; also
/// above P2WPKH's 294).
pub const SWEEP_MIN_OUTPUT: Amount = Amount::from_sat(330);

fn witness_for(
    input: &SweepInput,
    pubkey: &PublicKey,
    sig: &bitcoin::secp256k1::ecdsa::Signature,
) -> Witness {
    let ws = &input.witness_script;
    match input.path {
        SpendPath::Delayed { .. } => delayed_witness(sig, ws),
        SpendPath::RevokedDelayed => delayed_revocation_witness(sig, ws),
        SpendPath::RevokedHtlc { revocation_key } => {
            htlc_revocation_witness(sig, &revocation_key, ws)
        }
        SpendPath::OfferedHtlcPreimage { preimage } => {
            offered_htlc_preimage_witness(sig, &preimage, ws)
        }
        SpendPath::ReceivedHtlcTimeout { .. } => received_htlc_timeout_witness(sig, ws),
        SpendPath::StaticRemote => {
            let mut w = Witness::new();
            w.push(sig_all(sig));
            w.push(pubkey.serialize());
            w
        }
    }
}

/// Build and sign one transaction sweeping `inputs` to `destination`, paying
/// `feerate_per_kw` × weight / 1000. nLockTime is the highest CLTV expiry among timeout
/// paths (0 if none); delayed inputs carry nSequence = their delay.
pub fn build_sweep_tx<C: Signing>(
    secp: &Secp256k1<C>,
    inputs: &[SweepInput],
    destination: ScriptBuf,
    feerate_per_kw: u32,
) -> Result<Transaction, SweepError> {
    if inputs.is_empty() {
        return Err(SweepError::NoInputs);
    }
    let total = inputs
        .iter()
        .try_fold(Amount::ZERO, |acc, i| acc.checked_add(i.value))
        .ok_or(SweepError::Overflow)?;
    let lock_time = inputs
        .iter()
        .filter_map(|i| match i.path {
            SpendPath::ReceivedHtlcTimeout { cltv_expiry } => Some(cltv_expiry),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(lock_time),
        input: inputs
            .iter()
            .map(|i| TxIn {
                previous_output: i.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: match i.path {
                    SpendPath::Delayed { to_self_delay } => Sequence::from_height(to_self_delay),
                    _ => Sequence::ENABLE_LOCKTIME_NO_RBF,
                },
                witness: Witness::new(),
            })
            .collect(),
        output: vec![TxOut {
            value: total,
            script_pubkey: destination,
        }],
    };
    // Weigh with real signatures over the zero-fee draft. The final signatures sign another
    // message: with low-S, their DER length differs only by r's optional 0x00 pad (one
    // byte), so one extra weight unit per input keeps the fee at or above the target.
    sign_all(secp, &mut tx, inputs)?;
    let weight = tx.weight().to_wu() + inputs.len() as u64;
    let fee = Amount::from_sat(u64::from(feerate_per_kw) * weight / 1000);
    let value = total
        .checked_sub(fee)
        .filter(|v| *v >= SWEEP_MIN_OUTPUT)
        .ok_or(SweepError::TooSmall {
            total_sat: total.to_sat(),
            fee_sat: fee.to_sat(),
            dust_sat: SWEEP_MIN_OUTPUT.to_sat(),
        })?;
    if let Some(out) = tx.output.first_mut() {
        out.value = value;
    }
    sign_all(secp, &mut tx, inputs)?;
    Ok(tx)
}

fn sign_all<C: Signing>(
    secp: &Secp256k1<C>,
    tx: &mut Transaction,
    inputs: &[SweepInput],
) -> Result<(), SweepError> {
    let mut witnesses = Vec::with_capacity(inputs.len());
    for (n, input) in inputs.iter().enumerate() {
        let pubkey = PublicKey::from_secret_key(secp, &input.key);
        let sig = match input.path {
            SpendPath::StaticRemote => {
                let spk = ScriptBuf::new_p2wpkh(&CompressedPublicKey(pubkey).wpubkey_hash());
                let hash = SighashCache::new(&*tx)
                    .p2wpkh_signature_hash(n, &spk, input.value, EcdsaSighashType::All)
                    .map_err(|_| ScriptError::NoSuchInput(n))?;
                secp.sign_ecdsa(&Message::from_digest(hash.to_byte_array()), &input.key)
            }
            _ => sign_p2wsh(secp, tx, n, &input.witness_script, input.value, &input.key)?,
        };
        witnesses.push(witness_for(input, &pubkey, &sig));
    }
    for (txin, w) in tx.input.iter_mut().zip(witnesses) {
        txin.witness = w;
    }
    Ok(())
}
