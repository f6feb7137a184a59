//! Typed rejections of the simulated chain.
//!
//! Owns: [`TxRejection`], [`BlockRejection`], [`FundError`] and [`ChainError`], each with a
//! stable snake_case `code()` for RPC clients. Every transaction rule has its own variant and
//! names the input (or output) index it concerns. Must never carry secrets or do I/O.

use bitcoin::{Amount, BlockHash, OutPoint, Txid};
use thiserror::Error;

/// Why a transaction was refused. `Display` names the input index (where there is one) and
/// the rule; [`TxRejection::code`] gives a stable snake_case rule name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TxRejection {
    /// The transaction has no inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// The transaction has no outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// A coinbase transaction was submitted or found outside a block's first position.
    #[error("input 0: coinbase transactions are only valid as the first transaction of a block")]
    Coinbase,
    /// The transaction is heavier than the limit.
    #[error("transaction weight {weight} exceeds the limit of {limit}")]
    TooHeavy {
        /// Weight of the transaction in weight units.
        weight: u64,
        /// The limit it exceeded.
        limit: u64,
    },
    /// Two inputs spend the same outpoint.
    #[error("input {input}: duplicate input, {outpoint} is already spent by input {first}")]
    DuplicateInput {
        /// Index of the repeated input.
        input: u32,
        /// Index of the first input spending the same outpoint.
        first: u32,
        /// The outpoint spent twice.
        outpoint: OutPoint,
    },
    /// An output value (or the sum of them) is above 21 million BTC.
    #[error("output {output}: value out of range")]
    OutputValueOutOfRange {
        /// Index of the offending output.
        output: u32,
    },
    /// An output below the dust threshold of its script (OP_RETURN outputs are exempt).
    #[error("output {output}: value {value} is dust (at least {minimum} required for its script)")]
    Dust {
        /// Index of the dust output.
        output: u32,
        /// Its value.
        value: Amount,
        /// The minimum non-dust value for its script.
        minimum: Amount,
    },
    /// The transaction is already in the mempool or confirmed.
    #[error("transaction {txid} is already {}", if *.confirmed { "confirmed" } else { "in the mempool" })]
    AlreadyKnown {
        /// Its txid.
        txid: Txid,
        /// True when it is confirmed, false when it waits in the mempool.
        confirmed: bool,
    },
    /// The outpoint does not exist (never created, or unknown).
    #[error("input {input}: {outpoint} does not exist or is already spent")]
    MissingOrSpent {
        /// Index of the input.
        input: u32,
        /// The outpoint it tries to spend.
        outpoint: OutPoint,
    },
    /// The outpoint was already spent by a confirmed transaction.
    #[error(
        "input {input}: {outpoint} is already spent by confirmed transaction {by} (block {height})"
    )]
    AlreadySpent {
        /// Index of the input.
        input: u32,
        /// The outpoint it tries to spend.
        outpoint: OutPoint,
        /// The confirmed transaction that spent it.
        by: Txid,
        /// Height of the block holding that transaction.
        height: u32,
    },
    /// Another mempool transaction already spends the outpoint (no replacement by fee).
    #[error("input {input}: {outpoint} is already spent by mempool transaction {by} (conflict, no replacement)")]
    MempoolConflict {
        /// Index of the input.
        input: u32,
        /// The outpoint it tries to spend.
        outpoint: OutPoint,
        /// The mempool transaction that spends it.
        by: Txid,
    },
    /// A coinbase output spent before it has `required` confirmations.
    #[error("input {input}: coinbase output {outpoint} is immature ({confirmations} confirmations in the next block, {required} required)")]
    ImmatureCoinbase {
        /// Index of the input.
        input: u32,
        /// The coinbase outpoint.
        outpoint: OutPoint,
        /// Its depth counting the block the spend would enter.
        confirmations: u32,
        /// The coinbase maturity.
        required: u32,
    },
    /// Outputs are worth more than inputs.
    #[error("outputs ({outputs}) exceed inputs ({inputs}): value would be created")]
    Overspend {
        /// Sum of the input values.
        inputs: Amount,
        /// Sum of the output values.
        outputs: Amount,
    },
    /// The fee is below the minimum relay feerate times the virtual size.
    #[error("fee {fee} is below the minimum relay fee {required} for {vsize} vbytes")]
    FeeTooLow {
        /// The fee paid.
        fee: Amount,
        /// The fee required.
        required: Amount,
        /// Virtual size of the transaction.
        vsize: u64,
    },
    /// Absolute locktime (by height) not yet reached for the block the transaction would enter.
    #[error("locktime {locktime} not reached: the next block is {next_height}, the transaction is valid from block {valid_from}")]
    LockTimeNotReached {
        /// The transaction's nLockTime (a height).
        locktime: u32,
        /// Height of the block the transaction would enter.
        next_height: u32,
        /// First height at which it is valid (locktime + 1).
        valid_from: u32,
    },
    /// A time-based absolute locktime, not below the median time past, with a non-final
    /// input; the simulated chain refuses time locks in the future (past ones are final).
    #[error("locktime {locktime} is time-based (>= 500000000) and not below the median time past: future time-based locktimes are not supported")]
    TimeLockUnsupported {
        /// The transaction's nLockTime.
        locktime: u32,
    },
    /// A BIP68 relative locktime (by height) not yet satisfied.
    #[error("input {input}: BIP68 relative lock of {blocks} blocks not satisfied (output confirmed at height {coin_height}, spendable from block {valid_from}, next block is {next_height})")]
    Bip68Immature {
        /// Index of the input.
        input: u32,
        /// The relative lock in blocks.
        blocks: u16,
        /// Height of the block that created the spent output (next block if unconfirmed).
        coin_height: u32,
        /// First block height at which the input may be spent.
        valid_from: u32,
        /// Height of the block the transaction would enter.
        next_height: u32,
    },
    /// A time-based BIP68 relative lock; the simulated chain refuses these.
    #[error("input {input}: time-based BIP68 relative locks (sequence {sequence:#010x}) are not supported, use a height-based lock")]
    RelativeTimeLockUnsupported {
        /// Index of the input.
        input: u32,
        /// The input's nSequence.
        sequence: u32,
    },
    /// The input spends a witness program version libbitcoinconsensus cannot verify (v1+).
    #[error("input {input}: spending witness version {version} outputs is not supported (cannot be verified)")]
    UnsupportedWitnessVersion {
        /// Index of the input.
        input: u32,
        /// The witness version of the spent output.
        version: u8,
    },
    /// libbitcoinconsensus refused the input's scripts.
    #[error("input {input}: script verification failed ({reason})")]
    Script {
        /// Index of the input.
        input: u32,
        /// What libbitcoinconsensus reported.
        reason: String,
    },
}

impl TxRejection {
    /// Stable snake_case name of the violated rule, for RPC clients.
    pub fn code(&self) -> &'static str {
        match self {
            TxRejection::NoInputs => "no_inputs",
            TxRejection::NoOutputs => "no_outputs",
            TxRejection::Coinbase => "coinbase",
            TxRejection::TooHeavy { .. } => "too_heavy",
            TxRejection::DuplicateInput { .. } => "duplicate_input",
            TxRejection::OutputValueOutOfRange { .. } => "output_value_out_of_range",
            TxRejection::Dust { .. } => "dust",
            TxRejection::AlreadyKnown { .. } => "already_known",
            TxRejection::MissingOrSpent { .. } => "missing_or_spent",
            TxRejection::AlreadySpent { .. } => "already_spent",
            TxRejection::MempoolConflict { .. } => "mempool_conflict",
            TxRejection::ImmatureCoinbase { .. } => "coinbase_immature",
            TxRejection::Overspend { .. } => "overspend",
            TxRejection::FeeTooLow { .. } => "fee_too_low",
            TxRejection::LockTimeNotReached { .. } => "locktime",
            TxRejection::TimeLockUnsupported { .. } => "locktime_time_based",
            TxRejection::Bip68Immature { .. } => "bip68_immature",
            TxRejection::RelativeTimeLockUnsupported { .. } => "bip68_time_based",
            TxRejection::UnsupportedWitnessVersion { .. } => "unsupported_witness_version",
            TxRejection::Script { .. } => "script",
        }
    }

    /// The input index the rejection concerns, if it concerns one input.
    pub fn input_index(&self) -> Option<u32> {
        match self {
            TxRejection::DuplicateInput { input, .. }
            | TxRejection::MissingOrSpent { input, .. }
            | TxRejection::AlreadySpent { input, .. }
            | TxRejection::MempoolConflict { input, .. }
            | TxRejection::ImmatureCoinbase { input, .. }
            | TxRejection::Bip68Immature { input, .. }
            | TxRejection::RelativeTimeLockUnsupported { input, .. }
            | TxRejection::UnsupportedWitnessVersion { input, .. }
            | TxRejection::Script { input, .. } => Some(*input),
            TxRejection::Coinbase => Some(0),
            _ => None,
        }
    }
}

/// Why a block was refused by [`crate::Chain::connect_block`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BlockRejection {
    /// The block does not build on the current tip.
    #[error("block {hash} builds on {prev}, not on the tip {tip}")]
    BadPrevBlock {
        /// Hash of the refused block.
        hash: BlockHash,
        /// Its prev_blockhash.
        prev: BlockHash,
        /// The current tip.
        tip: BlockHash,
    },
    /// The header's difficulty bits are not the regtest bits.
    #[error("block difficulty bits {bits:#010x} are not the regtest bits 0x207fffff")]
    BadBits {
        /// The header's bits.
        bits: u32,
    },
    /// The header hash does not meet its target.
    #[error("block {hash} does not meet the proof-of-work target")]
    BadProofOfWork {
        /// Hash of the refused block.
        hash: BlockHash,
    },
    /// The block time is not after the median of the previous 11 blocks.
    #[error("block time {time} is not after the median time past {median_time_past}")]
    TimeTooOld {
        /// The header time.
        time: u32,
        /// Median time of the previous blocks.
        median_time_past: u32,
    },
    /// The block holds no transactions or its first is not a coinbase.
    #[error("the first transaction of the block is not a coinbase")]
    NoCoinbase,
    /// A transaction other than the first is a coinbase.
    #[error("transaction {index} is a second coinbase")]
    ExtraCoinbase {
        /// Position of the extra coinbase in the block.
        index: usize,
    },
    /// The coinbase scriptSig does not start with the block height (BIP34) or has a bad length.
    #[error("coinbase scriptSig does not start with the block height {height} (BIP34) or is not 2..=100 bytes")]
    BadCoinbaseHeight {
        /// Height the block would have.
        height: u32,
    },
    /// The coinbase pays more than subsidy plus fees.
    #[error("coinbase pays {paid}, more than subsidy plus fees {allowed}")]
    BadCoinbaseValue {
        /// What the coinbase outputs sum to.
        paid: Amount,
        /// Subsidy plus fees of the block.
        allowed: Amount,
    },
    /// The header's merkle root does not match the transactions.
    #[error("merkle root does not match the block's transactions")]
    BadMerkleRoot,
    /// Segwit transactions without a valid witness commitment (BIP141).
    #[error("witness commitment missing or wrong (BIP141)")]
    BadWitnessCommitment,
    /// The block exceeds the weight limit.
    #[error("block weight {weight} exceeds the limit of 4000000")]
    TooHeavy {
        /// The block's weight.
        weight: u64,
    },
    /// The block repeats a transaction already in the chain or in the same block.
    #[error("transaction {index} ({txid}) is already in the chain")]
    DuplicateTransaction {
        /// Position in the block.
        index: usize,
        /// Its txid.
        txid: Txid,
    },
    /// A transaction of the block breaks a rule.
    #[error("transaction {index} ({txid}): {rejection}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Its txid.
        txid: Txid,
        /// The rule it breaks.
        rejection: TxRejection,
    },
}

impl BlockRejection {
    /// Stable snake_case name of the violated rule (a transaction's own code for
    /// [`BlockRejection::Transaction`]).
    pub fn code(&self) -> &'static str {
        match self {
            BlockRejection::BadPrevBlock { .. } => "bad_prev_block",
            BlockRejection::BadBits { .. } => "bad_bits",
            BlockRejection::BadProofOfWork { .. } => "bad_pow",
            BlockRejection::TimeTooOld { .. } => "time_too_old",
            BlockRejection::NoCoinbase => "no_coinbase",
            BlockRejection::ExtraCoinbase { .. } => "extra_coinbase",
            BlockRejection::BadCoinbaseHeight { .. } => "bad_coinbase_height",
            BlockRejection::BadCoinbaseValue { .. } => "bad_coinbase_value",
            BlockRejection::BadMerkleRoot => "bad_merkle_root",
            BlockRejection::BadWitnessCommitment => "bad_witness_commitment",
            BlockRejection::TooHeavy { .. } => "block_too_heavy",
            BlockRejection::DuplicateTransaction { .. } => "duplicate_transaction",
            BlockRejection::Transaction { rejection, .. } => rejection.code(),
        }
    }
}

/// Why the faucet could not pay.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FundError {
    /// Not enough mature faucet coins for the amount plus the fee.
    #[error("insufficient faucet funds: need {needed}, have {available} spendable")]
    InsufficientFaucetFunds {
        /// Amount plus fee.
        needed: Amount,
        /// Spendable faucet balance.
        available: Amount,
    },
    /// The requested amount is below the dust threshold of the address's script.
    #[error("amount {amount} is dust for this address (at least {minimum})")]
    Dust {
        /// Requested amount.
        amount: Amount,
        /// Minimum non-dust amount.
        minimum: Amount,
    },
    /// The transaction built by the faucet was refused (a bug if it ever happens).
    #[error("faucet transaction refused: {0}")]
    Rejected(#[from] TxRejection),
    /// Signing failed (a bug if it ever happens).
    #[error("faucet signing failed: {0}")]
    Signing(String),
}

impl FundError {
    /// Stable snake_case name of the failure, for RPC clients.
    pub fn code(&self) -> &'static str {
        match self {
            FundError::InsufficientFaucetFunds { .. } => "insufficient_faucet_funds",
            FundError::Dust { .. } => "dust",
            FundError::Rejected(r) => r.code(),
            FundError::Signing(_) => "signing",
        }
    }
}

/// Errors of chain-level operations other than validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A reorg deeper than the chain (the genesis block cannot be disconnected).
    #[error("cannot disconnect {requested} blocks: the chain height is {height}")]
    ReorgTooDeep {
        /// Blocks requested.
        requested: u32,
        /// Current height.
        height: u32,
    },
}

impl ChainError {
    /// Stable snake_case name of the failure, for RPC clients.
    pub fn code(&self) -> &'static str {
        match self {
            ChainError::ReorgTooDeep { .. } => "reorg_too_deep",
        }
    }
}
