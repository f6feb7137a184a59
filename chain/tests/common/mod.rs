//! Shared helpers of the fulmen-chain integration tests: fixed keys, signing, script
//! builders. Must never use randomness or the clock: everything is deterministic.
#![allow(dead_code)]

use bitcoin::blockdata::opcodes::all::{OP_CHECKSIG, OP_CLTV, OP_CSV, OP_DROP};
use bitcoin::ecdsa;
use bitcoin::script::Builder;
use bitcoin::secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};
use fulmen_chain::{Chain, ChainParams};

/// Header time of the first mined blocks.
pub const T0: u32 = 1_700_000_000;

pub fn secp() -> Secp256k1<All> {
    Secp256k1::new()
}

/// A fixed key: `n` repeated 32 times (n != 0).
pub fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).unwrap()
}

pub fn faucet_key() -> SecretKey {
    key(0x11)
}

pub fn pubkey(sk: &SecretKey) -> PublicKey {
    sk.public_key(&secp())
}

pub fn p2wpkh(sk: &SecretKey) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&CompressedPublicKey(pubkey(sk)).wpubkey_hash())
}

pub fn new_chain() -> Chain {
    Chain::new(ChainParams::default(), faucet_key())
}

/// A chain with `n` blocks mined to the faucet, times T0, T0+1, ...
pub fn chain_with_blocks(n: u32) -> Chain {
    let mut c = new_chain();
    c.mine(n, None, T0);
    c
}

/// Mine `n` more blocks at the next times.
pub fn mine(c: &mut Chain, n: u32) -> Vec<bitcoin::Block> {
    let t = c.tip().time + 1;
    c.mine(n, None, t)
}

/// The coinbase output of block `height` (output 0).
pub fn coinbase_out(c: &Chain, height: u32) -> (OutPoint, TxOut) {
    let cb = &c.block_at(height).unwrap().txdata[0];
    (OutPoint::new(cb.compute_txid(), 0), cb.output[0].clone())
}

/// An unsigned version-2 transaction spending `inputs` with the given sequences.
pub fn unsigned(inputs: &[(OutPoint, Sequence)], outputs: Vec<TxOut>, lock: u32) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::from_consensus(lock),
        input: inputs
            .iter()
            .map(|(op, seq)| TxIn {
                previous_output: *op,
                sequence: *seq,
                ..TxIn::default()
            })
            .collect(),
        output: outputs,
    }
}

pub fn out(value: u64, spk: &ScriptBuf) -> TxOut {
    TxOut {
        value: Amount::from_sat(value),
        script_pubkey: spk.clone(),
    }
}

/// Signs input `index` (a P2WPKH output of `sk` worth `value`) with SIGHASH_ALL.
pub fn sign_p2wpkh(tx: &mut Transaction, index: usize, sk: &SecretKey, value: Amount) {
    let spk = p2wpkh(sk);
    let sighash = SighashCache::new(&*tx)
        .p2wpkh_signature_hash(index, &spk, value, EcdsaSighashType::All)
        .unwrap();
    let sig = secp().sign_ecdsa(&Message::from(sighash), sk);
    let sig = ecdsa::Signature {
        signature: sig,
        sighash_type: EcdsaSighashType::All,
    };
    tx.input[index].witness = Witness::p2wpkh(&sig, &pubkey(sk));
}

/// A SIGHASH_ALL signature (DER + type byte) for P2WSH input `index`.
pub fn sign_p2wsh(
    tx: &Transaction,
    index: usize,
    witness_script: &ScriptBuf,
    value: Amount,
    sk: &SecretKey,
) -> Vec<u8> {
    let sighash = SighashCache::new(tx)
        .p2wsh_signature_hash(index, witness_script, value, EcdsaSighashType::All)
        .unwrap();
    let sig = secp().sign_ecdsa(&Message::from(sighash), sk);
    ecdsa::Signature {
        signature: sig,
        sighash_type: EcdsaSighashType::All,
    }
    .to_vec()
}

/// `<blocks> OP_CSV OP_DROP <pubkey> OP_CHECKSIG`
pub fn csv_script(blocks: i64, sk: &SecretKey) -> ScriptBuf {
    Builder::new()
        .push_int(blocks)
        .push_opcode(OP_CSV)
        .push_opcode(OP_DROP)
        .push_slice(pubkey(sk).serialize())
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

/// `<height> OP_CLTV OP_DROP <pubkey> OP_CHECKSIG`
pub fn cltv_script(height: i64, sk: &SecretKey) -> ScriptBuf {
    Builder::new()
        .push_int(height)
        .push_opcode(OP_CLTV)
        .push_opcode(OP_DROP)
        .push_slice(pubkey(sk).serialize())
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

/// Spends a faucet coinbase (P2WPKH, faucet key) to `outputs`, signed.
pub fn spend_faucet_coin(coin: (OutPoint, TxOut), outputs: Vec<TxOut>) -> Transaction {
    let mut tx = unsigned(&[(coin.0, Sequence::MAX)], outputs, 0);
    sign_p2wpkh(&mut tx, 0, &faucet_key(), coin.1.value);
    tx
}

/// Builds (and grinds) a block on `c`'s tip by hand: BIP34 coinbase paying `coinbase_value`
/// to the faucet, `txs` in order, a witness commitment when `commit` and any tx has witness
/// data. For block-level rejection tests.
pub fn build_block(
    c: &Chain,
    txs: Vec<Transaction>,
    coinbase_value: Amount,
    commit: bool,
) -> bitcoin::Block {
    use bitcoin::blockdata::opcodes::all::OP_RETURN;
    use bitcoin::hashes::Hash;
    let tip = c.tip();
    let height = tip.height + 1;
    let segwit = txs
        .iter()
        .any(|t| t.input.iter().any(|i| !i.witness.is_empty()));
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: fulmen_chain::coinbase_script_sig(height),
            sequence: Sequence::MAX,
            witness: if segwit && commit {
                Witness::from_slice(&[[0u8; 32]])
            } else {
                Witness::new()
            },
        }],
        output: vec![TxOut {
            value: coinbase_value,
            script_pubkey: p2wpkh(&faucet_key()),
        }],
    };
    let mut txdata = vec![coinbase];
    txdata.extend(txs);
    let mut block = bitcoin::Block {
        header: bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(fulmen_chain::BLOCK_VERSION),
            prev_blockhash: tip.hash,
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            time: tip.time + 1,
            bits: bitcoin::CompactTarget::from_consensus(fulmen_chain::REGTEST_BITS),
            nonce: 0,
        },
        txdata,
    };
    if segwit && commit {
        let root = block.witness_root().unwrap();
        let commitment = bitcoin::Block::compute_witness_commitment(&root, &[0u8; 32]);
        let mut data = [0u8; 36];
        data[..4].copy_from_slice(&[0xaa, 0x21, 0xa9, 0xed]);
        data[4..].copy_from_slice(commitment.as_byte_array());
        block.txdata[0].output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: Builder::new()
                .push_opcode(OP_RETURN)
                .push_slice(data)
                .into_script(),
        });
    }
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    regrind(&mut block.header);
    block
}

/// Finds a nonce meeting the regtest target.
pub fn regrind(header: &mut bitcoin::block::Header) {
    let target = header.target();
    header.nonce = 0;
    while header.validate_pow(target).is_err() {
        header.nonce += 1;
    }
}

/// Sum of a transaction's output values.
pub fn out_sum(tx: &Transaction) -> Amount {
    tx.output.iter().map(|o| o.value).sum()
}
