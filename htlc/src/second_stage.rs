//! BOLT 3 second-stage HTLC transactions (no anchors): HTLC-timeout (the broadcaster reclaims
//! an HTLC it offered, after `cltv_expiry`) and HTLC-success (the broadcaster claims an HTLC
//! it received, with the preimage). Both spend one HTLC output of the broadcaster's
//! commitment and pay into the revocable, CSV-delayed script.
//!
//! Must never: do I/O, or build a transaction whose output would be negative (an HTLC too
//! small to pay its second-stage fee is trimmed from the commitment and has no such tx).

use bitcoin::absolute::LockTime;
use bitcoin::secp256k1::{ecdsa, PublicKey, Secp256k1, SecretKey, Signing};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

use crate::scripts::{revocable_delayed_script, sig_all, sign_p2wsh, ScriptError};

/// Expected weight of an HTLC-timeout transaction (BOLT 3, no anchors).
pub const HTLC_TIMEOUT_WEIGHT: u64 = 663;
/// Expected weight of an HTLC-success transaction (BOLT 3, no anchors).
pub const HTLC_SUCCESS_WEIGHT: u64 = 703;

/// Fee of an HTLC-timeout transaction at `feerate_per_kw` (rounded down, as BOLT 3).
pub fn htlc_timeout_fee(feerate_per_kw: u32) -> Amount {
    Amount::from_sat(u64::from(feerate_per_kw) * HTLC_TIMEOUT_WEIGHT / 1000)
}

/// Fee of an HTLC-success transaction at `feerate_per_kw` (rounded down, as BOLT 3).
pub fn htlc_success_fee(feerate_per_kw: u32) -> Amount {
    Amount::from_sat(u64::from(feerate_per_kw) * HTLC_SUCCESS_WEIGHT / 1000)
}

/// Which second-stage transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondStageKind {
    /// HTLC-timeout: spends an offered HTLC output; locktime = `cltv_expiry`.
    Timeout {
        /// The HTLC's CLTV expiry (block height).
        cltv_expiry: u32,
    },
    /// HTLC-success: spends a received HTLC output with the preimage; locktime 0.
    Success,
}

/// Everything needed to build one second-stage HTLC transaction.
#[derive(Debug, Clone)]
pub struct SecondStageParams {
    /// The HTLC output on the broadcaster's commitment transaction.
    pub htlc_outpoint: OutPoint,
    /// That output's value (the HTLC amount, rounded down to whole satoshis).
    pub htlc_amount: Amount,
    /// Timeout or success.
    pub kind: SecondStageKind,
    /// The commitment's `feerate_per_kw`.
    pub feerate_per_kw: u32,
    /// The broadcaster's `to_self_delay` (set by the countersignatory).
    pub to_self_delay: u16,
    /// Revocation public key of this commitment.
    pub revocation_key: PublicKey,
    /// Broadcaster's delayed payment key of this commitment.
    pub broadcaster_delayed_key: PublicKey,
}

impl SecondStageParams {
    /// The fee this transaction pays.
    pub fn fee(&self) -> Amount {
        match self.kind {
            SecondStageKind::Timeout { .. } => htlc_timeout_fee(self.feerate_per_kw),
            SecondStageKind::Success => htlc_success_fee(self.feerate_per_kw),
        }
    }

    /// The output's witness script (revocable, CSV-delayed).
    pub fn output_script(&self) -> ScriptBuf {
        revocable_delayed_script(
            &self.revocation_key,
            self.to_self_delay,
            &self.broadcaster_delayed_key,
        )
    }
}

/// Build the unsigned HTLC-timeout or HTLC-success transaction: version 2, one input with
/// nSequence 0, one P2WSH output of `htlc_amount - fee`.
pub fn build_second_stage_tx(p: &SecondStageParams) -> Result<Transaction, ScriptError> {
    let fee = p.fee();
    let value = p
        .htlc_amount
        .checked_sub(fee)
        .ok_or(ScriptError::AmountBelowFee {
            amount_sat: p.htlc_amount.to_sat(),
            fee_sat: fee.to_sat(),
        })?;
    let lock_time = match p.kind {
        SecondStageKind::Timeout { cltv_expiry } => LockTime::from_consensus(cltv_expiry),
        SecondStageKind::Success => LockTime::ZERO,
    };
    Ok(Transaction {
        version: Version::TWO,
        lock_time,
        input: vec![TxIn {
            previous_output: p.htlc_outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ZERO,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: p.output_script().to_p2wsh(),
        }],
    })
}

/// Sign input 0 of a second-stage tx with an HTLC key (either side's), SIGHASH_ALL.
pub fn sign_second_stage<C: Signing>(
    secp: &Secp256k1<C>,
    tx: &Transaction,
    htlc_script: &ScriptBuf,
    htlc_amount: Amount,
    htlc_key: &SecretKey,
) -> Result<ecdsa::Signature, ScriptError> {
    sign_p2wsh(secp, tx, 0, htlc_script, htlc_amount, htlc_key)
}

/// Put the 2-of-2 witness on a second-stage tx:
/// `0 <countersignatory_sig> <broadcaster_sig> <preimage or empty> <htlc_script>`.
/// `preimage` must be `Some` for HTLC-success and `None` for HTLC-timeout.
pub fn finalize_second_stage(
    tx: &mut Transaction,
    htlc_script: &ScriptBuf,
    countersignatory_sig: &ecdsa::Signature,
    broadcaster_sig: &ecdsa::Signature,
    preimage: Option<&[u8; 32]>,
) -> Result<(), ScriptError> {
    let input = tx.input.get_mut(0).ok_or(ScriptError::NoSuchInput(0))?;
    let mut w = Witness::new();
    w.push([]);
    w.push(sig_all(countersignatory_sig));
    w.push(sig_all(broadcaster_sig));
    match preimage {
        Some(p) => w.push(p),
        None => w.push([]),
    }
    w.push(htlc_script.as_bytes());
    input.witness = w;
    Ok(())
}
