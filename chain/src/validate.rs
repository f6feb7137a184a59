//! Transaction validation: the chain rules of DESIGN.md plus libbitcoinconsensus per input.
//!
//! Owns: the context-free checks ([`check_sanity`]) and the checks against the spent coins
//! and the height of the block the transaction would enter ([`check_inputs`]). The caller
//! resolves the coins (UTXO set, mempool, earlier transactions of the same block). Must never
//! mutate chain state, panic on hostile transactions, or do I/O.

use std::collections::HashMap;

use bitcoin::consensus::encode::serialize;
use bitcoin::{Amount, Transaction, WitnessVersion};

use crate::error::TxRejection;
use crate::params::{fee_for_vsize, ChainParams, LOCKTIME_THRESHOLD, MAX_STANDARD_TX_WEIGHT};
use crate::types::Coin;

/// libbitcoinconsensus flags applied to every input:
/// P2SH | DERSIG | NULLDUMMY | CHECKLOCKTIMEVERIFY | CHECKSEQUENCEVERIFY | WITNESS.
pub const SCRIPT_VERIFY_FLAGS: u32 =
    (1 << 0) | (1 << 2) | (1 << 4) | (1 << 9) | (1 << 10) | (1 << 11);

/// BIP68: set in an input's nSequence to disable its relative lock.
const SEQUENCE_DISABLE_FLAG: u32 = 1 << 31;
/// BIP68: set in an input's nSequence for a time-based (512 s units) relative lock.
const SEQUENCE_TYPE_FLAG: u32 = 1 << 22;
/// BIP68: the lock value bits.
const SEQUENCE_MASK: u32 = 0xffff;

fn idx(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Context-free checks of a non-coinbase transaction: non-empty inputs and outputs, not a
/// coinbase, weight limit, output value ranges, no dust (OP_RETURN exempt), no duplicate
/// inputs.
pub fn check_sanity(tx: &Transaction, params: &ChainParams) -> Result<(), TxRejection> {
    if tx.input.is_empty() {
        return Err(TxRejection::NoInputs);
    }
    if tx.output.is_empty() {
        return Err(TxRejection::NoOutputs);
    }
    if tx.is_coinbase() {
        return Err(TxRejection::Coinbase);
    }
    let weight = tx.weight().to_wu();
    if weight > MAX_STANDARD_TX_WEIGHT {
        return Err(TxRejection::TooHeavy {
            weight,
            limit: MAX_STANDARD_TX_WEIGHT,
        });
    }
    check_output_values(tx)?;
    for (i, out) in tx.output.iter().enumerate() {
        if out.script_pubkey.is_op_return() {
            continue;
        }
        let minimum = out
            .script_pubkey
            .minimal_non_dust_custom(params.dust_relay_feerate);
        if out.value < minimum {
            return Err(TxRejection::Dust {
                output: idx(i),
                value: out.value,
                minimum,
            });
        }
    }
    let mut seen = HashMap::with_capacity(tx.input.len());
    for (i, input) in tx.input.iter().enumerate() {
        if input.previous_output.is_null() {
            return Err(TxRejection::MissingOrSpent {
                input: idx(i),
                outpoint: input.previous_output,
            });
        }
        if let Some(first) = seen.insert(input.previous_output, idx(i)) {
            return Err(TxRejection::DuplicateInput {
                input: idx(i),
                first,
                outpoint: input.previous_output,
            });
        }
    }
    Ok(())
}

/// Every output and their sum within 0..=21M BTC; returns the sum.
pub fn check_output_values(tx: &Transaction) -> Result<Amount, TxRejection> {
    let mut total = Amount::ZERO;
    for (i, out) in tx.output.iter().enumerate() {
        let out_of_range = TxRejection::OutputValueOutOfRange { output: idx(i) };
        if out.value > Amount::MAX_MONEY {
            return Err(out_of_range);
        }
        total = total
            .checked_add(out.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or(out_of_range)?;
    }
    Ok(total)
}

/// Checks of a sane non-coinbase transaction against the coins it spends (`coins[i]` is
/// spent by input `i`), for inclusion in the block at `next_height`: absolute locktime,
/// coinbase maturity, BIP68, witness version, value, fee, and — when `verify_scripts` —
/// libbitcoinconsensus for every input. Returns the fee.
pub fn check_inputs(
    tx: &Transaction,
    coins: &[Coin],
    next_height: u32,
    median_time_past: u32,
    params: &ChainParams,
    verify_scripts: bool,
) -> Result<Amount, TxRejection> {
    check_locktime(tx, next_height, median_time_past)?;
    let relative_locks = (tx.version.0 as u32) >= 2;
    let mut total_in = Amount::ZERO;
    for (i, (input, coin)) in tx.input.iter().zip(coins).enumerate() {
        if coin.is_coinbase {
            let confirmations = next_height.saturating_sub(coin.height);
            if confirmations < params.coinbase_maturity {
                return Err(TxRejection::ImmatureCoinbase {
                    input: idx(i),
                    outpoint: input.previous_output,
                    confirmations,
                    required: params.coinbase_maturity,
                });
            }
        }
        let sequence = input.sequence.to_consensus_u32();
        if relative_locks && sequence & SEQUENCE_DISABLE_FLAG == 0 {
            if sequence & SEQUENCE_TYPE_FLAG != 0 {
                return Err(TxRejection::RelativeTimeLockUnsupported {
                    input: idx(i),
                    sequence,
                });
            }
            let blocks = (sequence & SEQUENCE_MASK) as u16;
            let valid_from = coin.height.saturating_add(u32::from(blocks));
            if next_height < valid_from {
                return Err(TxRejection::Bip68Immature {
                    input: idx(i),
                    blocks,
                    coin_height: coin.height,
                    valid_from,
                    next_height,
                });
            }
        }
        if let Some(version) = coin.txout.script_pubkey.witness_version() {
            if version != WitnessVersion::V0 {
                return Err(TxRejection::UnsupportedWitnessVersion {
                    input: idx(i),
                    version: version.to_num(),
                });
            }
        }
        total_in = total_in
            .checked_add(coin.txout.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or(TxRejection::Overspend {
                inputs: Amount::MAX_MONEY,
                outputs: Amount::ZERO,
            })?;
    }
    let total_out = check_output_values(tx)?;
    let fee = total_in
        .checked_sub(total_out)
        .ok_or(TxRejection::Overspend {
            inputs: total_in,
            outputs: total_out,
        })?;
    let vsize = tx.vsize() as u64;
    let required = fee_for_vsize(params.min_relay_feerate, vsize).unwrap_or(Amount::MAX_MONEY);
    if fee < required {
        return Err(TxRejection::FeeTooLow {
            fee,
            required,
            vsize,
        });
    }
    if verify_scripts {
        verify_scripts_of(tx, coins)?;
    }
    Ok(fee)
}

/// Absolute locktime: valid in block `next_height` iff locktime is 0, every input is final,
/// or — by height — below `next_height`; — by time (>= 500000000) — below the median time
/// past of the chain the block extends (BIP113). BOLT 3 commitment transactions carry
/// `0x20xxxxxx` locktimes (a 1987 time, always past); future time-based locks are refused.
pub fn check_locktime(
    tx: &Transaction,
    next_height: u32,
    median_time_past: u32,
) -> Result<(), TxRejection> {
    let locktime = tx.lock_time.to_consensus_u32();
    if locktime == 0 || tx.input.iter().all(|i| i.sequence.is_final()) {
        return Ok(());
    }
    if locktime >= LOCKTIME_THRESHOLD {
        if locktime < median_time_past {
            return Ok(());
        }
        return Err(TxRejection::TimeLockUnsupported { locktime });
    }
    if locktime >= next_height {
        return Err(TxRejection::LockTimeNotReached {
            locktime,
            next_height,
            valid_from: locktime + 1,
        });
    }
    Ok(())
}

/// libbitcoinconsensus on every input with [`SCRIPT_VERIFY_FLAGS`].
pub fn verify_scripts_of(tx: &Transaction, coins: &[Coin]) -> Result<(), TxRejection> {
    let bytes = serialize(tx);
    for (i, coin) in coins.iter().enumerate().take(tx.input.len()) {
        if let Err(e) = coin.txout.script_pubkey.verify_with_flags(
            i,
            coin.txout.value,
            &bytes,
            SCRIPT_VERIFY_FLAGS,
        ) {
            return Err(TxRejection::Script {
                input: idx(i),
                reason: describe_consensus_error(&format!("{e:?}"), &coin.txout.script_pubkey),
            });
        }
    }
    Ok(())
}

fn describe_consensus_error(debug: &str, spk: &bitcoin::Script) -> String {
    let kind = if spk.is_p2wpkh() {
        "P2WPKH"
    } else if spk.is_p2wsh() {
        "P2WSH"
    } else if spk.is_p2pkh() {
        "P2PKH"
    } else if spk.is_p2sh() {
        "P2SH"
    } else {
        "bare"
    };
    // libbitcoinconsensus leaves its error code at 0 (ERR_SCRIPT) when the script itself
    // evaluates to false; other codes are malformed-call errors.
    let what = if debug.contains("ERR_SCRIPT") {
        "signature, witness or script conditions not satisfied"
    } else if debug.contains("ERR_TX_DESERIALIZE") {
        "transaction could not be deserialized"
    } else {
        debug
    };
    format!("libbitcoinconsensus rejected the spend of a {kind} output: {what}")
}
