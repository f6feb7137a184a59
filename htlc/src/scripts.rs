//! BOLT 3 witness scripts for HTLC outputs (offered and received) and for the revocable,
//! CSV-delayed output shared by `to_local` and the second-stage HTLC transactions; the
//! witness stacks that spend them; and the segwit-v0 ECDSA signing helper used for every
//! BOLT 3 transaction.
//!
//! Naming: *broadcaster* is the owner of the commitment transaction (the spec's "local"),
//! *countersignatory* is the other side (the spec's "remote").
//!
//! Must never: do I/O, pick entropy (signatures are deterministic RFC 6979, as the BOLT 3
//! vectors require), or use non-minimal pushes (the scripts must match BOLT 3 byte for byte).

use bitcoin::hashes::{hash160, ripemd160, sha256, Hash};
use bitcoin::opcodes::all::{
    OP_CHECKMULTISIG, OP_CHECKSIG, OP_CLTV, OP_CSV, OP_DROP, OP_DUP, OP_ELSE, OP_ENDIF, OP_EQUAL,
    OP_EQUALVERIFY, OP_HASH160, OP_IF, OP_NOTIF, OP_SIZE, OP_SWAP,
};
use bitcoin::script::Builder;
use bitcoin::secp256k1::{ecdsa, Message, PublicKey, Secp256k1, SecretKey, Signing};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{Amount, ScriptBuf, Transaction, Witness};

/// Errors from building or signing BOLT 3 scripts and transactions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The input index is not an input of the transaction being signed.
    #[error("input {0} does not exist in the transaction")]
    NoSuchInput(usize),
    /// A fee or amount computation would go below zero or overflow.
    #[error("amount {amount_sat} sat cannot pay fee {fee_sat} sat")]
    AmountBelowFee {
        /// The amount available.
        amount_sat: u64,
        /// The fee required.
        fee_sat: u64,
    },
}

/// `RIPEMD160(SHA256(pubkey))` of a compressed key, as used by the revocation branch.
fn pubkey_hash160(key: &PublicKey) -> [u8; 20] {
    hash160::Hash::hash(&key.serialize()).to_byte_array()
}

/// `RIPEMD160(payment_hash)` where `payment_hash = SHA256(preimage)`.
fn payment_hash160(payment_hash: &sha256::Hash) -> [u8; 20] {
    ripemd160::Hash::hash(payment_hash.as_byte_array()).to_byte_array()
}

/// The BOLT 3 offered-HTLC witness script (an HTLC the broadcaster offered): the
/// countersignatory takes it with the revocation key or with the preimage; the broadcaster
/// takes it back through the HTLC-timeout transaction (2-of-2).
pub fn offered_htlc_script(
    revocation_key: &PublicKey,
    broadcaster_htlc_key: &PublicKey,
    countersignatory_htlc_key: &PublicKey,
    payment_hash: &sha256::Hash,
) -> ScriptBuf {
    Builder::new()
        .push_opcode(OP_DUP)
        .push_opcode(OP_HASH160)
        .push_slice(pubkey_hash160(revocation_key))
        .push_opcode(OP_EQUAL)
        .push_opcode(OP_IF)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ELSE)
        .push_slice(countersignatory_htlc_key.serialize())
        .push_opcode(OP_SWAP)
        .push_opcode(OP_SIZE)
        .push_int(32)
        .push_opcode(OP_EQUAL)
        .push_opcode(OP_NOTIF)
        .push_opcode(OP_DROP)
        .push_int(2)
        .push_opcode(OP_SWAP)
        .push_slice(broadcaster_htlc_key.serialize())
        .push_int(2)
        .push_opcode(OP_CHECKMULTISIG)
        .push_opcode(OP_ELSE)
        .push_opcode(OP_HASH160)
        .push_slice(payment_hash160(payment_hash))
        .push_opcode(OP_EQUALVERIFY)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ENDIF)
        .push_opcode(OP_ENDIF)
        .into_script()
}

/// The BOLT 3 received-HTLC witness script (an HTLC the broadcaster received): the
/// broadcaster takes it with the preimage through the HTLC-success transaction (2-of-2);
/// the countersignatory takes it with the revocation key, or alone after `cltv_expiry`.
pub fn received_htlc_script(
    revocation_key: &PublicKey,
    broadcaster_htlc_key: &PublicKey,
    countersignatory_htlc_key: &PublicKey,
    payment_hash: &sha256::Hash,
    cltv_expiry: u32,
) -> ScriptBuf {
    Builder::new()
        .push_opcode(OP_DUP)
        .push_opcode(OP_HASH160)
        .push_slice(pubkey_hash160(revocation_key))
        .push_opcode(OP_EQUAL)
        .push_opcode(OP_IF)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ELSE)
        .push_slice(countersignatory_htlc_key.serialize())
        .push_opcode(OP_SWAP)
        .push_opcode(OP_SIZE)
        .push_int(32)
        .push_opcode(OP_EQUAL)
        .push_opcode(OP_IF)
        .push_opcode(OP_HASH160)
        .push_slice(payment_hash160(payment_hash))
        .push_opcode(OP_EQUALVERIFY)
        .push_int(2)
        .push_opcode(OP_SWAP)
        .push_slice(broadcaster_htlc_key.serialize())
        .push_int(2)
        .push_opcode(OP_CHECKMULTISIG)
        .push_opcode(OP_ELSE)
        .push_opcode(OP_DROP)
        .push_int(i64::from(cltv_expiry))
        .push_opcode(OP_CLTV)
        .push_opcode(OP_DROP)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ENDIF)
        .push_opcode(OP_ENDIF)
        .into_script()
}

/// The revocable, CSV-delayed script of BOLT 3 `to_local` (also the output script of
/// HTLC-timeout / HTLC-success transactions): the broadcaster's delayed key after
/// `to_self_delay` blocks, or the revocation key at any time.
pub fn revocable_delayed_script(
    revocation_key: &PublicKey,
    to_self_delay: u16,
    broadcaster_delayed_key: &PublicKey,
) -> ScriptBuf {
    Builder::new()
        .push_opcode(OP_IF)
        .push_slice(revocation_key.serialize())
        .push_opcode(OP_ELSE)
        .push_int(i64::from(to_self_delay))
        .push_opcode(OP_CSV)
        .push_opcode(OP_DROP)
        .push_slice(broadcaster_delayed_key.serialize())
        .push_opcode(OP_ENDIF)
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

/// Signature hash (SIGHASH_ALL, segwit v0) of input `input_index` spending a P2WSH output of
/// `value` locked by `witness_script`.
pub fn p2wsh_sighash(
    tx: &Transaction,
    input_index: usize,
    witness_script: &ScriptBuf,
    value: Amount,
) -> Result<Message, ScriptError> {
    let mut cache = SighashCache::new(tx);
    let hash = cache
        .p2wsh_signature_hash(input_index, witness_script, value, EcdsaSighashType::All)
        .map_err(|_| ScriptError::NoSuchInput(input_index))?;
    Ok(Message::from_digest(hash.to_byte_array()))
}

/// Deterministic (RFC 6979, no extra entropy, no low-R grinding — as the BOLT 3 vectors)
/// SIGHASH_ALL signature of a P2WSH input.
pub fn sign_p2wsh<C: Signing>(
    secp: &Secp256k1<C>,
    tx: &Transaction,
    input_index: usize,
    witness_script: &ScriptBuf,
    value: Amount,
    key: &SecretKey,
) -> Result<ecdsa::Signature, ScriptError> {
    let msg = p2wsh_sighash(tx, input_index, witness_script, value)?;
    Ok(secp.sign_ecdsa(&msg, key))
}

/// A signature in script form: DER followed by the SIGHASH_ALL byte.
pub fn sig_all(sig: &ecdsa::Signature) -> Vec<u8> {
    bitcoin::ecdsa::Signature::sighash_all(*sig).to_vec()
}

/// Witness for the revocation path of an offered or received HTLC output:
/// `<revocation_sig> <revocation_pubkey> <script>`.
pub fn htlc_revocation_witness(
    revocation_sig: &ecdsa::Signature,
    revocation_key: &PublicKey,
    witness_script: &ScriptBuf,
) -> Witness {
    let mut w = Witness::new();
    w.push(sig_all(revocation_sig));
    w.push(revocation_key.serialize());
    w.push(witness_script.as_bytes());
    w
}

/// Witness for the countersignatory taking an offered HTLC output with the preimage:
/// `<countersignatory_htlc_sig> <payment_preimage> <script>`.
pub fn offered_htlc_preimage_witness(
    countersignatory_sig: &ecdsa::Signature,
    preimage: &[u8; 32],
    witness_script: &ScriptBuf,
) -> Witness {
    let mut w = Witness::new();
    w.push(sig_all(countersignatory_sig));
    w.push(preimage);
    w.push(witness_script.as_bytes());
    w
}

/// Witness for the countersignatory taking a received HTLC output after its CLTV expiry:
/// `<countersignatory_htlc_sig> <> <script>` (the spending tx's locktime must be ≥ expiry).
pub fn received_htlc_timeout_witness(
    countersignatory_sig: &ecdsa::Signature,
    witness_script: &ScriptBuf,
) -> Witness {
    let mut w = Witness::new();
    w.push(sig_all(countersignatory_sig));
    w.push([]);
    w.push(witness_script.as_bytes());
    w
}

/// Witness for the delayed path of a revocable-delayed output (to_local or second-stage):
/// `<delayed_sig> <> <script>` (the input's nSequence must be ≥ `to_self_delay`).
pub fn delayed_witness(delayed_sig: &ecdsa::Signature, witness_script: &ScriptBuf) -> Witness {
    let mut w = Witness::new();
    w.push(sig_all(delayed_sig));
    w.push([]);
    w.push(witness_script.as_bytes());
    w
}

/// Witness for the revocation path of a revocable-delayed output (to_local or second-stage):
/// `<revocation_sig> 1 <script>`.
pub fn delayed_revocation_witness(
    revocation_sig: &ecdsa::Signature,
    witness_script: &ScriptBuf,
) -> Witness {
    let mut w = Witness::new();
    w.push(sig_all(revocation_sig));
    w.push([1u8]);
    w.push(witness_script.as_bytes());
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hex::FromHex;

    fn pk(h: &str) -> PublicKey {
        PublicKey::from_slice(&Vec::<u8>::from_hex(h).unwrap()).unwrap()
    }

    // Keys of BOLT 3 Appendix C.
    const REV: &str = "0212a140cd0c6539d07cd08dfe09984dec3251ea808b892efeac3ede9402bf2b19";
    const LOCAL_HTLC: &str = "030d417a46946384f88d5f3337267c5e579765875dc4daca813e21734b140639e7";
    const REMOTE_HTLC: &str = "0394854aa6eab5b2a8122cc726e9dded053a2184d88256816826d6231c068d4a5b";
    const DELAYED: &str = "03fd5960528dc152014952efdb702a88f71e3c1653b2314431701ec77e57fde83c";

    #[test]
    fn received_script_matches_appendix_c_htlc0() {
        let hash = sha256::Hash::hash(&[0u8; 32]);
        let s = received_htlc_script(&pk(REV), &pk(LOCAL_HTLC), &pk(REMOTE_HTLC), &hash, 500);
        assert_eq!(
            s.to_hex_string(),
            "76a91414011f7254d96b819c76986c277d115efce6f7b58763ac67210394854aa6eab5b2a8122cc726e9dded053a2184d88256816826d6231c068d4a5b7c8201208763a914b8bcb07f6344b42ab04250c86a6e8b75d3fdbbc688527c21030d417a46946384f88d5f3337267c5e579765875dc4daca813e21734b140639e752ae677502f401b175ac6868"
        );
    }

    #[test]
    fn offered_script_matches_appendix_c_htlc2() {
        let hash = sha256::Hash::hash(&[2u8; 32]);
        let s = offered_htlc_script(&pk(REV), &pk(LOCAL_HTLC), &pk(REMOTE_HTLC), &hash);
        assert_eq!(
            s.to_hex_string(),
            "76a91414011f7254d96b819c76986c277d115efce6f7b58763ac67210394854aa6eab5b2a8122cc726e9dded053a2184d88256816826d6231c068d4a5b7c820120876475527c21030d417a46946384f88d5f3337267c5e579765875dc4daca813e21734b140639e752ae67a914b43e1b38138a41b37f7cd9a1d274bc63e3a9b5d188ac6868"
        );
    }

    #[test]
    fn to_local_script_matches_appendix_c() {
        let s = revocable_delayed_script(&pk(REV), 144, &pk(DELAYED));
        assert_eq!(
            s.to_hex_string(),
            "63210212a140cd0c6539d07cd08dfe09984dec3251ea808b892efeac3ede9402bf2b1967029000b2752103fd5960528dc152014952efdb702a88f71e3c1653b2314431701ec77e57fde83c68ac"
        );
    }
}
