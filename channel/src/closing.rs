//! BOLT 3 cooperative closing transaction: version 2, locktime 0, the funding input with
//! nSequence 0xFFFFFFFF, one output per side (the `shutdown` scripts) minus the fee the
//! funder pays, outputs below the dust limit omitted, BIP69 output order.
//!
//! Must never: do I/O, or create value (amounts must fit in the funding output).

use bitcoin::absolute::LockTime;
use bitcoin::secp256k1::{ecdsa, PublicKey, Secp256k1, SecretKey, Signing};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use fulmen_htlc::scripts::ScriptError;

use crate::funding::{funding_witness, sign_funding_spend};

/// Errors building a closing transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosingError {
    /// The outputs plus fee exceed the funding amount.
    #[error(
        "closing outputs and fee ({total_sat} sat) exceed the funding amount ({funding_sat} sat)"
    )]
    ExceedsFunding {
        /// Sum of both outputs and the fee.
        total_sat: u64,
        /// The funding amount.
        funding_sat: u64,
    },
    /// The funder's balance cannot pay the fee.
    #[error("closing fee {fee_sat} sat exceeds the funder's balance {balance_sat} sat")]
    FeeAboveFunderBalance {
        /// The fee.
        fee_sat: u64,
        /// The funder's balance.
        balance_sat: u64,
    },
    /// Both outputs are below the dust limit: nothing would be paid out.
    #[error("both closing outputs are below the dust limit")]
    NoOutputs,
    /// Signing failed.
    #[error(transparent)]
    Script(#[from] ScriptError),
}

/// One side's part of a closing transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosingOutput {
    /// The `scriptpubkey` from that side's `shutdown`.
    pub script_pubkey: ScriptBuf,
    /// That side's balance in whole satoshis, before the fee.
    pub amount: Amount,
    /// True if this side opened the channel and so pays the fee.
    pub is_funder: bool,
}

/// Build the unsigned closing transaction paying `fee` from the funder's output.
/// `a.amount + b.amount` must not exceed `funding_value` (any remainder also goes to fees).
pub fn build_closing_tx(
    funding_outpoint: OutPoint,
    funding_value: Amount,
    a: &ClosingOutput,
    b: &ClosingOutput,
    fee: Amount,
    dust_limit: Amount,
) -> Result<Transaction, ClosingError> {
    let total = a.amount.checked_add(b.amount);
    match total {
        Some(t) if t <= funding_value => {}
        _ => {
            return Err(ClosingError::ExceedsFunding {
                total_sat: total.map(|t| t.to_sat()).unwrap_or(u64::MAX),
                funding_sat: funding_value.to_sat(),
            })
        }
    }
    let mut outputs = Vec::with_capacity(2);
    for side in [a, b] {
        let value = if side.is_funder {
            side.amount
                .checked_sub(fee)
                .ok_or(ClosingError::FeeAboveFunderBalance {
                    fee_sat: fee.to_sat(),
                    balance_sat: side.amount.to_sat(),
                })?
        } else {
            side.amount
        };
        if value >= dust_limit && value > Amount::ZERO {
            outputs.push(TxOut {
                value,
                script_pubkey: side.script_pubkey.clone(),
            });
        }
    }
    if outputs.is_empty() {
        return Err(ClosingError::NoOutputs);
    }
    outputs.sort_by(|x, y| {
        (x.value, x.script_pubkey.as_bytes()).cmp(&(y.value, y.script_pubkey.as_bytes()))
    });
    Ok(Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: funding_outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: outputs,
    })
}

/// Sign a closing transaction with one side's funding key.
pub fn sign_closing<C: Signing>(
    secp: &Secp256k1<C>,
    tx: &Transaction,
    funding_key_a: &PublicKey,
    funding_key_b: &PublicKey,
    funding_value: Amount,
    funding_secret: &SecretKey,
) -> Result<ecdsa::Signature, ClosingError> {
    Ok(sign_funding_spend(
        secp,
        tx,
        0,
        funding_key_a,
        funding_key_b,
        funding_value,
        funding_secret,
    )?)
}

/// The closing transaction with both signatures in its witness.
pub fn signed_closing_tx(
    tx: &Transaction,
    key_a: &PublicKey,
    sig_a: &ecdsa::Signature,
    key_b: &PublicKey,
    sig_b: &ecdsa::Signature,
) -> Transaction {
    let mut tx = tx.clone();
    if let Some(input) = tx.input.first_mut() {
        input.witness = funding_witness(key_a, sig_a, key_b, sig_b);
    }
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn out(tag: u8, sat: u64, is_funder: bool) -> ClosingOutput {
        ClosingOutput {
            script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([tag; 20])),
            amount: Amount::from_sat(sat),
            is_funder,
        }
    }

    #[test]
    fn fee_from_funder_dust_dropped_bip69_order() {
        let op = OutPoint::null();
        let f = Amount::from_sat(100_000);
        let tx = build_closing_tx(
            op,
            f,
            &out(1, 60_000, true),
            &out(2, 40_000, false),
            Amount::from_sat(500),
            Amount::from_sat(546),
        )
        .unwrap();
        assert_eq!(tx.output.len(), 2);
        assert_eq!(tx.output[0].value, Amount::from_sat(40_000));
        assert_eq!(tx.output[1].value, Amount::from_sat(59_500));
        assert_eq!(tx.input[0].sequence, Sequence::MAX);
        assert_eq!(tx.lock_time, LockTime::ZERO);
        // The non-funder's dust output disappears.
        let tx = build_closing_tx(
            op,
            f,
            &out(1, 99_500, true),
            &out(2, 500, false),
            Amount::from_sat(500),
            Amount::from_sat(546),
        )
        .unwrap();
        assert_eq!(tx.output.len(), 1);
        assert_eq!(tx.output[0].value, Amount::from_sat(99_000));
        // Over the funding amount, or a fee the funder cannot pay: refused.
        assert!(matches!(
            build_closing_tx(
                op,
                f,
                &out(1, 60_001, true),
                &out(2, 40_000, false),
                Amount::ZERO,
                Amount::from_sat(546)
            ),
            Err(ClosingError::ExceedsFunding { .. })
        ));
        assert!(matches!(
            build_closing_tx(
                op,
                f,
                &out(1, 400, true),
                &out(2, 40_000, false),
                Amount::from_sat(500),
                Amount::from_sat(546)
            ),
            Err(ClosingError::FeeAboveFunderBalance { .. })
        ));
    }
}
