//! Block construction and the structural checks of a block.
//!
//! Owns: the coinbase (BIP34 height, subsidy plus fees, BIP141 witness commitment when the
//! block has segwit transactions), the merkle root, nonce grinding at regtest difficulty, and
//! the checks of a received block that need no UTXO set. Must never touch chain state or do
//! I/O; time comes in as an argument.

use bitcoin::block::{Header, Version};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::opcodes::OP_0;
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{
    absolute, transaction, Amount, Block, BlockHash, CompactTarget, OutPoint, Script, ScriptBuf,
    Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Witness,
};

use crate::error::BlockRejection;
use crate::params::{regtest_target, MAX_BLOCK_WEIGHT, REGTEST_BITS};

/// Header version of mined blocks (BIP9 top bits; >= 2 as BIP34 requires).
pub const BLOCK_VERSION: i32 = 0x2000_0000;

/// Magic prefix of the BIP141 witness commitment output script.
const WITNESS_COMMITMENT_MAGIC: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];

/// Coinbase scriptSig: the height as Bitcoin Core pushes it (BIP34), then OP_0 so the script
/// is at least 2 bytes.
pub fn coinbase_script_sig(height: u32) -> ScriptBuf {
    Builder::new()
        .push_int(i64::from(height))
        .push_opcode(OP_0)
        .into_script()
}

/// BIP34 check: the coinbase scriptSig starts with the height pushed as Core does and is
/// 2..=100 bytes long.
pub fn coinbase_height_ok(coinbase: &Transaction, height: u32) -> bool {
    let Some(input) = coinbase.input.first() else {
        return false;
    };
    let sig = input.script_sig.as_bytes();
    let expected = Builder::new().push_int(i64::from(height)).into_script();
    (2..=100).contains(&sig.len()) && sig.starts_with(expected.as_bytes())
}

/// Whether any transaction carries witness data.
pub fn has_witness(txs: &[Transaction]) -> bool {
    txs.iter()
        .any(|t| t.input.iter().any(|i| !i.witness.is_empty()))
}

/// Builds a block on `prev` at `height`: coinbase paying `coinbase_value` to `to`, then
/// `txs` in the given order; adds the witness commitment when needed and grinds the nonce
/// until the header meets the regtest target.
pub fn assemble(
    prev: BlockHash,
    height: u32,
    time: u32,
    to: &Script,
    coinbase_value: Amount,
    txs: Vec<Transaction>,
) -> Block {
    let segwit = has_witness(&txs);
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: coinbase_script_sig(height),
            sequence: Sequence::MAX,
            witness: if segwit {
                Witness::from_slice(&[[0u8; 32]])
            } else {
                Witness::new()
            },
        }],
        output: vec![TxOut {
            value: coinbase_value,
            script_pubkey: to.to_owned(),
        }],
    };
    let mut txdata = Vec::with_capacity(txs.len() + 1);
    txdata.push(coinbase);
    txdata.extend(txs);
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(BLOCK_VERSION),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: 0,
        },
        txdata,
    };
    if segwit {
        if let Some(root) = block.witness_root() {
            let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
            let mut data = [0u8; 36];
            data[..4].copy_from_slice(&WITNESS_COMMITMENT_MAGIC);
            data[4..].copy_from_slice(commitment.as_byte_array());
            let script = Builder::new()
                .push_opcode(OP_RETURN)
                .push_slice(data)
                .into_script();
            block.txdata[0].output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: script,
            });
        }
    }
    if let Some(root) = block.compute_merkle_root() {
        block.header.merkle_root = root;
    }
    grind(&mut block.header);
    block
}

/// Increments the nonce (and, if all 2^32 fail, the time) until the header meets its target.
pub fn grind(header: &mut Header) {
    let target = regtest_target();
    loop {
        if header.validate_pow(target).is_ok() {
            return;
        }
        if header.nonce == u32::MAX {
            header.nonce = 0;
            header.time = header.time.wrapping_add(1);
        } else {
            header.nonce += 1;
        }
    }
}

/// Checks of a block that need neither the UTXO set nor the chain: bits, proof of work,
/// coinbase position, merkle root, witness commitment and weight.
pub fn check_structure(block: &Block) -> Result<(), BlockRejection> {
    let bits = block.header.bits.to_consensus();
    if bits != REGTEST_BITS {
        return Err(BlockRejection::BadBits { bits });
    }
    if block.header.validate_pow(regtest_target()).is_err() {
        return Err(BlockRejection::BadProofOfWork {
            hash: block.block_hash(),
        });
    }
    match block.txdata.first() {
        Some(cb) if cb.is_coinbase() => {}
        _ => return Err(BlockRejection::NoCoinbase),
    }
    if let Some(index) = block.txdata.iter().skip(1).position(|t| t.is_coinbase()) {
        return Err(BlockRejection::ExtraCoinbase { index: index + 1 });
    }
    if !block.check_merkle_root() {
        return Err(BlockRejection::BadMerkleRoot);
    }
    if !block.check_witness_commitment() {
        return Err(BlockRejection::BadWitnessCommitment);
    }
    let weight = block.weight().to_wu();
    if weight > MAX_BLOCK_WEIGHT {
        return Err(BlockRejection::TooHeavy { weight });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip34_small_heights_use_op_n_like_core() {
        let cb = |h| Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                script_sig: coinbase_script_sig(h),
                ..TxIn::default()
            }],
            output: vec![],
        };
        assert_eq!(coinbase_script_sig(1).as_bytes(), &[0x51, 0x00]);
        assert_eq!(
            coinbase_script_sig(200).as_bytes(),
            &[0x02, 0xc8, 0x00, 0x00]
        );
        assert!(coinbase_height_ok(&cb(200), 200));
        assert!(!coinbase_height_ok(&cb(200), 201));
        assert!(coinbase_height_ok(&cb(5), 5));
    }

    #[test]
    fn assembled_block_is_structurally_valid() {
        let prev = BlockHash::all_zeros();
        let block = assemble(prev, 1, 1_700_000_000, Script::new(), Amount::ZERO, vec![]);
        assert_eq!(check_structure(&block), Ok(()));
        let mut bad = block.clone();
        bad.header.merkle_root = TxMerkleNode::all_zeros();
        grind(&mut bad.header);
        assert_eq!(check_structure(&bad), Err(BlockRejection::BadMerkleRoot));
    }
}
