//! Fake commitment and justice transactions with realistic sizes: the crate's tests use
//! them (`mod testutil` is `#[cfg(test)]`), and `examples/tower_bench.rs` includes this
//! file by path. Not part of the library.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};

/// A "commitment" transaction: one funding input (distinct per `seed`), a P2WSH to_local
/// output, a P2WPKH to_remote output and two P2WSH HTLC outputs.
pub fn commitment_tx(seed: u64) -> Transaction {
    let mut funding = [0u8; 32];
    funding[..8].copy_from_slice(&seed.to_le_bytes());
    let p2wsh = |b: u8| ScriptBuf::from_bytes([&[0x00, 0x20][..], &[b; 32][..]].concat());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(0x2000_0000 | (seed as u32 & 0xff_ffff)),
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array(funding), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence(0x8000_0000),
            witness: Witness::from_slice(&[vec![], vec![0x30; 72], vec![0x30; 72], vec![0x52; 71]]),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(500_000),
                script_pubkey: p2wsh(1),
            },
            TxOut {
                value: Amount::from_sat(400_000),
                script_pubkey: ScriptBuf::from_bytes([&[0x00, 0x14][..], &[2; 20][..]].concat()),
            },
            TxOut {
                value: Amount::from_sat(20_000),
                script_pubkey: p2wsh(3),
            },
            TxOut {
                value: Amount::from_sat(30_000),
                script_pubkey: p2wsh(4),
            },
        ],
    }
}

/// A justice transaction spending the to_local output (vout 0) and `htlcs` HTLC outputs
/// (vout 2, 3, …) of `commitment` to one P2WPKH output, with BOLT 3-sized revocation
/// witnesses (signatures are dummies: the tower does not check them).
pub fn justice_tx(commitment: &Transaction, htlcs: u32) -> Transaction {
    let txid = commitment.compute_txid();
    let mut input = vec![TxIn {
        previous_output: OutPoint::new(txid, 0),
        script_sig: ScriptBuf::new(),
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        // <revocation sig> 1 <to_local script (77 bytes)>
        witness: Witness::from_slice(&[vec![0x30; 72], vec![1], vec![0x63; 77]]),
    }];
    for i in 0..htlcs {
        input.push(TxIn {
            previous_output: OutPoint::new(txid, 2 + i),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            // <revocation sig> <revocationpubkey> <offered/received HTLC script (133/139 bytes)>
            witness: Witness::from_slice(&[vec![0x30; 72], vec![0x02; 33], vec![0x76; 136]]),
        });
    }
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input,
        output: vec![TxOut {
            value: Amount::from_sat(540_000),
            script_pubkey: ScriptBuf::from_bytes([&[0x00, 0x14][..], &[9; 20][..]].concat()),
        }],
    }
}

/// A deterministic node id.
pub fn node_id(n: u8) -> bitcoin::secp256k1::PublicKey {
    let secp = bitcoin::secp256k1::Secp256k1::signing_only();
    let mut key = [0u8; 32];
    key[31] = n.max(1);
    key[0] = 1;
    // tidy: allow-unwrap (a fixed non-zero key below the curve order)
    let sk = bitcoin::secp256k1::SecretKey::from_slice(&key).expect("valid test key");
    bitcoin::secp256k1::PublicKey::from_secret_key(&secp, &sk)
}
