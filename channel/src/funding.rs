//! BOLT 3 funding output: the 2-of-2 P2WSH multisig over both funding keys (sorted
//! lexicographically by their compressed encoding), and the witness that spends it.
//!
//! Must never: do I/O, or order the keys or signatures any other way than BOLT 3 says
//! (the commitment and closing transactions would not verify).

use bitcoin::opcodes::all::OP_CHECKMULTISIG;
use bitcoin::script::Builder;
use bitcoin::secp256k1::{ecdsa, PublicKey};
use bitcoin::{Amount, ScriptBuf, TxOut, Witness};
use fulmen_htlc::scripts::sig_all;

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
