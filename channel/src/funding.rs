//! BOLT 3 funding output: the 2-of-2 P2WSH multisig over both funding keys (sorted
//! lexicographically by their compressed encoding), the witness that spends it, and the
//! check that a confirmed transaction really pays it ([`check_funding_output`]).
//!
//! Must never: do I/O, or order the keys or signatures any other way than BOLT 3 says
//! (the commitment and closing transactions would not verify); accept an output that pays
//! another script or another amount than the agreed funding.

use bitcoin::opcodes::all::OP_CHECKMULTISIG;
use bitcoin::script::Builder;
use bitcoin::secp256k1::{ecdsa, PublicKey};
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut, Witness};
use fulmen_htlc::scripts::sig_all;
use serde::{Deserialize, Serialize};

/// `2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG` with `pubkey1` the lexicographically lesser.
pub fn funding_script(a: &PublicKey, b: &PublicKey) -> ScriptBuf {
    let (first, second) = sorted(a, b);
    Builder::new()
        .push_int(2)
        .push_slice(first.serialize())
        .push_slice(second.serialize())
        .push_int(2)
        .push_opcode(OP_CHECKMULTISIG)
        .into_script()
}

fn sorted<'a>(a: &'a PublicKey, b: &'a PublicKey) -> (&'a PublicKey, &'a PublicKey) {
    if a.serialize() <= b.serialize() {
        (a, b)
    } else {
        (b, a)
    }
}

/// The funding transaction output (P2WSH of [`funding_script`]).
pub fn funding_output(a: &PublicKey, b: &PublicKey, value: Amount) -> TxOut {
    TxOut {
        value,
        script_pubkey: funding_script(a, b).to_p2wsh(),
    }
}

/// The witness spending the funding output: `0 <sig1> <sig2> <script>`, signatures in the
/// order of their keys in the script.
pub fn funding_witness(
    key_a: &PublicKey,
    sig_a: &ecdsa::Signature,
    key_b: &PublicKey,
    sig_b: &ecdsa::Signature,
) -> Witness {
    let script = funding_script(key_a, key_b);
    let (s1, s2) = if key_a.serialize() <= key_b.serialize() {
        (sig_a, sig_b)
    } else {
        (sig_b, sig_a)
    };
    let mut w = Witness::new();
    w.push([]);
    w.push(sig_all(s1));
    w.push(sig_all(s2));
    w.push(script.as_bytes());
    w
}

/// Sign input `input_index` of `tx` spending the funding output (SIGHASH_ALL) — used for
/// commitment and closing transactions.
pub fn sign_funding_spend<C: bitcoin::secp256k1::Signing>(
    secp: &bitcoin::secp256k1::Secp256k1<C>,
    tx: &bitcoin::Transaction,
    input_index: usize,
    key_a: &PublicKey,
    key_b: &PublicKey,
    funding_value: Amount,
    funding_secret: &bitcoin::secp256k1::SecretKey,
) -> Result<ecdsa::Signature, fulmen_htlc::scripts::ScriptError> {
    fulmen_htlc::scripts::sign_p2wsh(
        secp,
        tx,
        input_index,
        &funding_script(key_a, key_b),
        funding_value,
        funding_secret,
    )
}

/// How a confirmed transaction's output differs from the agreed funding output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FundingMismatch {
    /// The transaction has no output at the funding output index.
    #[error("the funding transaction has no output {vout} (it has {outputs})")]
    MissingOutput {
        /// The funding output index.
        vout: u32,
        /// How many outputs the transaction has.
        outputs: usize,
    },
    /// The output pays another script than the 2-of-2 P2WSH of both funding keys.
    #[error("output {vout} pays script {found}, not the 2-of-2 funding script {expected}")]
    WrongScript {
        /// The funding output index.
        vout: u32,
        /// The expected P2WSH script.
        expected: ScriptBuf,
        /// The script found.
        found: ScriptBuf,
    },
    /// The output holds another amount than the channel's capacity.
    #[error("output {vout} holds {found_sat} sat, not the funding amount {expected_sat} sat")]
    WrongAmount {
        /// The funding output index.
        vout: u32,
        /// The agreed capacity.
        expected_sat: u64,
        /// The amount found.
        found_sat: u64,
    },
}

/// Check that output `vout` of `tx` is exactly `expected` (see [`funding_output`]): same
/// script, same amount. The script is checked first: an output paying another script is a
/// [`FundingMismatch::WrongScript`] whatever its amount.
pub fn check_funding_output(
    tx: &Transaction,
    vout: u32,
    expected: &TxOut,
) -> Result<(), FundingMismatch> {
    let found = usize::try_from(vout)
        .ok()
        .and_then(|i| tx.output.get(i))
        .ok_or(FundingMismatch::MissingOutput {
            vout,
            outputs: tx.output.len(),
        })?;
    if found.script_pubkey != expected.script_pubkey {
        return Err(FundingMismatch::WrongScript {
            vout,
            expected: expected.script_pubkey.clone(),
            found: found.script_pubkey.clone(),
        });
    }
    if found.value != expected.value {
        return Err(FundingMismatch::WrongAmount {
            vout,
            expected_sat: expected.value.to_sat(),
            found_sat: found.value.to_sat(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn keys() -> (PublicKey, PublicKey) {
        let secp = Secp256k1::new();
        let k =
            |b: u8| PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[b; 32]).unwrap());
        (k(1), k(2))
    }

    fn tx(outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![],
            output: outputs,
        }
    }

    #[test]
    fn funding_output_check() {
        let (a, b) = keys();
        let good = funding_output(&a, &b, Amount::from_sat(50_000));
        // Key order does not matter.
        assert_eq!(good, funding_output(&b, &a, Amount::from_sat(50_000)));
        let other = TxOut {
            value: Amount::from_sat(50_000),
            script_pubkey: ScriptBuf::new_op_return([1u8; 4]),
        };
        let t = tx(vec![other.clone(), good.clone()]);
        assert_eq!(check_funding_output(&t, 1, &good), Ok(()));
        assert!(matches!(
            check_funding_output(&t, 0, &good),
            Err(FundingMismatch::WrongScript { vout: 0, .. })
        ));
        assert_eq!(
            check_funding_output(&t, 2, &good),
            Err(FundingMismatch::MissingOutput {
                vout: 2,
                outputs: 2
            })
        );
        let short = TxOut {
            value: Amount::from_sat(49_999),
            ..good.clone()
        };
        assert_eq!(
            check_funding_output(&tx(vec![short]), 0, &good),
            Err(FundingMismatch::WrongAmount {
                vout: 0,
                expected_sat: 50_000,
                found_sat: 49_999
            })
        );
        // A 2-of-2 of other keys is another script.
        let wrong_keys = funding_output(&a, &a, Amount::from_sat(50_000));
        assert_ne!(wrong_keys.script_pubkey, good.script_pubkey);
        assert!(check_funding_output(&tx(vec![wrong_keys]), 0, &good).is_err());
    }
}
