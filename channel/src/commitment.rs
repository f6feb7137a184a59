//! BOLT 3 commitment transactions with `option_static_remotekey` and no anchors: the
//! obscured commitment number (locktime and sequence), HTLC trimming by dust limit and
//! feerate, the fee by weight, `to_local` (revocable, CSV-delayed) and `to_remote` (P2WPKH)
//! outputs, offered / received HTLC outputs, BIP69 output order with the CLTV tie-break,
//! the funding-input signature and witness, and the HTLC-timeout / HTLC-success
//! transactions of each untrimmed HTLC output.
//!
//! Must never: do I/O, create value (balances + HTLCs must fit in the funding amount), or
//! produce an output below the broadcaster's dust limit.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{ecdsa, PublicKey, Secp256k1, SecretKey, Signing};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness,
};
use fulmen_htlc::scripts::{
    offered_htlc_script, received_htlc_script, revocable_delayed_script, sign_p2wsh, ScriptError,
};
use fulmen_htlc::second_stage::{
    build_second_stage_tx, htlc_success_fee, htlc_timeout_fee, SecondStageKind, SecondStageParams,
};

use crate::funding::{funding_script, funding_witness};
use crate::keys::CommitmentKeys;

/// Weight of a commitment transaction without HTLC outputs (BOLT 3, no anchors).
pub const COMMITMENT_BASE_WEIGHT: u64 = 724;
/// Weight each untrimmed HTLC output adds.
pub const HTLC_OUTPUT_WEIGHT: u64 = 172;
/// The protocol's maximum number of HTLCs one side may offer (BOLT 2).
pub const MAX_HTLCS: usize = 483;

/// Errors building or signing a commitment transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    /// Balances and HTLCs add up to more than the funding output holds.
    #[error(
        "balances and HTLCs ({total_msat} msat) exceed the funding amount ({funding_sat} sat)"
    )]
    ExceedsFunding {
        /// Sum of both balances and all HTLC amounts.
        total_msat: u64,
        /// The funding amount.
        funding_sat: u64,
    },
    /// The commitment number does not fit in 48 bits.
    #[error("commitment number {0} exceeds 48 bits")]
    CommitmentNumberTooLarge(u64),
    /// An HTLC index does not refer to an HTLC of this commitment.
    #[error("no HTLC output for HTLC index {0}")]
    NoSuchHtlc(usize),
    /// Script-level failure (signing an absent input, fee above amount).
    #[error(transparent)]
    Script(#[from] ScriptError),
}

/// The 48-bit obscuring factor: the lower 48 bits of
/// `SHA256(opener_payment_basepoint || accepter_payment_basepoint)`.
pub fn obscuring_factor(
    opener_payment_basepoint: &PublicKey,
    accepter_payment_basepoint: &PublicKey,
) -> u64 {
    let mut e = sha256::Hash::engine();
    e.input(&opener_payment_basepoint.serialize());
    e.input(&accepter_payment_basepoint.serialize());
    let h = sha256::Hash::from_engine(e).to_byte_array();
    let mut low = [0u8; 8];
    low[2..].copy_from_slice(&h[26..32]);
    u64::from_be_bytes(low)
}

/// Recover the commitment number from a published commitment transaction (its locktime and
/// first input's sequence), as the on-chain monitor must to know which per-commitment secret
/// applies. `None` if the transaction does not carry the 0x20 / 0x80 markers.
pub fn commitment_number_of(tx: &Transaction, obscuring_factor: u64) -> Option<u64> {
    let lock = tx.lock_time.to_consensus_u32();
    let seq = tx.input.first()?.sequence.0;
    if lock >> 24 != 0x20 || seq >> 24 != 0x80 {
        return None;
    }
    let obscured = (u64::from(seq & 0xFF_FFFF) << 24) | u64::from(lock & 0xFF_FFFF);
    Some((obscured ^ obscuring_factor) & 0xFFFF_FFFF_FFFF)
}

/// Fee of a commitment transaction with `untrimmed_htlcs` HTLC outputs (rounded down).
pub fn commitment_fee(feerate_per_kw: u32, untrimmed_htlcs: usize) -> Amount {
    let weight = COMMITMENT_BASE_WEIGHT + HTLC_OUTPUT_WEIGHT * untrimmed_htlcs as u64;
    Amount::from_sat(u64::from(feerate_per_kw) * weight / 1000)
}

/// One HTLC in a commitment, from the broadcaster's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentHtlc {
    /// True if the broadcaster offered it (an offered-HTLC output, HTLC-timeout), false if
    /// the broadcaster received it (a received-HTLC output, HTLC-success).
    pub offered: bool,
    /// Amount in millisatoshi (the output carries it rounded down to satoshis).
    pub amount_msat: u64,
    /// CLTV expiry (block height).
    pub cltv_expiry: u32,
    /// `SHA256(payment_preimage)`.
    pub payment_hash: sha256::Hash,
}

impl CommitmentHtlc {
    /// The HTLC output's amount in whole satoshis.
    pub fn amount(&self) -> Amount {
        Amount::from_sat(self.amount_msat / 1000)
    }

    /// Whether BOLT 3 trims this HTLC (its amount minus its second-stage fee would be below
    /// the dust limit).
    pub fn is_trimmed(&self, dust_limit: Amount, feerate_per_kw: u32) -> bool {
        let fee = if self.offered {
            htlc_timeout_fee(feerate_per_kw)
        } else {
            htlc_success_fee(feerate_per_kw)
        };
        self.amount() < dust_limit + fee
    }

    /// The HTLC output's witness script under `keys`.
    pub fn witness_script(&self, keys: &CommitmentKeys) -> ScriptBuf {
        if self.offered {
            offered_htlc_script(
                &keys.revocation_key,
                &keys.broadcaster_htlc_key,
                &keys.countersignatory_htlc_key,
                &self.payment_hash,
            )
        } else {
            received_htlc_script(
                &keys.revocation_key,
                &keys.broadcaster_htlc_key,
                &keys.countersignatory_htlc_key,
                &self.payment_hash,
                self.cltv_expiry,
            )
        }
    }
}

/// The channel-level parameters of one commitment transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentParams {
    /// The funding outpoint.
    pub funding_outpoint: OutPoint,
    /// The funding output's value.
    pub funding_value: Amount,
    /// The commitment number (0 for the first commitment, counting up; 48 bits).
    pub commitment_number: u64,
    /// See [`obscuring_factor`] (computed with the *opener's* basepoint first).
    pub obscuring_factor: u64,
    /// The broadcaster's `to_self_delay` (chosen by the countersignatory).
    pub to_self_delay: u16,
    /// The broadcaster's dust limit.
    pub dust_limit: Amount,
    /// Feerate in satoshi per 1000 weight units.
    pub feerate_per_kw: u32,
    /// True if the broadcaster opened (funded) the channel and so pays the fee.
    pub broadcaster_is_funder: bool,
}

/// An untrimmed HTLC output of a built commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtlcOutput {
    /// Index of the HTLC in the slice given to [`build_commitment_tx`].
    pub htlc_index: usize,
    /// Output index in the commitment transaction.
    pub vout: u32,
    /// Output value.
    pub amount: Amount,
    /// The offered / received witness script.
    pub witness_script: ScriptBuf,
}

/// A built (unsigned) commitment transaction and what each output is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentTx {
    /// The transaction; its only input (the funding outpoint) has an empty witness.
    pub tx: Transaction,
    /// `to_local` output index and witness script, if not trimmed.
    pub to_local: Option<(u32, ScriptBuf)>,
    /// `to_remote` output index, if not trimmed.
    pub to_remote: Option<u32>,
    /// Untrimmed HTLC outputs, in output order.
    pub htlcs: Vec<HtlcOutput>,
    /// The fee the funder paid (trimmed HTLC amounts go to fees on top of it).
    pub fee: Amount,
}

/// Build the commitment transaction of the broadcaster whose keys are `keys`.
/// `to_broadcaster_msat` / `to_countersignatory_msat` are the balances before the fee.
pub fn build_commitment_tx(
    params: &CommitmentParams,
    keys: &CommitmentKeys,
    to_broadcaster_msat: u64,
    to_countersignatory_msat: u64,
    htlcs: &[CommitmentHtlc],
) -> Result<CommitmentTx, CommitmentError> {
    if params.commitment_number > crate::shachain::MAX_INDEX {
        return Err(CommitmentError::CommitmentNumberTooLarge(
            params.commitment_number,
        ));
    }
    let total_msat = htlcs
        .iter()
        .try_fold(
            to_broadcaster_msat.checked_add(to_countersignatory_msat),
            |acc, h| Some(acc?.checked_add(h.amount_msat)),
        )
        .flatten();
    let funding_msat = params.funding_value.to_sat().saturating_mul(1000);
    match total_msat {
        Some(t) if t <= funding_msat => {}
        _ => {
            return Err(CommitmentError::ExceedsFunding {
                total_msat: total_msat.unwrap_or(u64::MAX),
                funding_sat: params.funding_value.to_sat(),
            })
        }
    }

    let obscured = (params.commitment_number ^ params.obscuring_factor) & 0xFFFF_FFFF_FFFF;
    let lock_time = LockTime::from_consensus((0x20 << 24) | (obscured & 0xFF_FFFF) as u32);
    let sequence = Sequence((0x80 << 24) | ((obscured >> 24) & 0xFF_FFFF) as u32);

    // (value, script_pubkey, cltv tie-break, what)
    enum Kind {
        ToLocal(ScriptBuf),
        ToRemote,
        Htlc(usize, ScriptBuf),
    }
    let mut outs: Vec<(Amount, ScriptBuf, u32, Kind)> = Vec::with_capacity(htlcs.len() + 2);
    for (i, h) in htlcs.iter().enumerate() {
        if h.is_trimmed(params.dust_limit, params.feerate_per_kw) {
            continue;
        }
        let ws = h.witness_script(keys);
        outs.push((h.amount(), ws.to_p2wsh(), h.cltv_expiry, Kind::Htlc(i, ws)));
    }
    let fee = commitment_fee(params.feerate_per_kw, outs.len());
    let mut to_local = Amount::from_sat(to_broadcaster_msat / 1000);
    let mut to_remote = Amount::from_sat(to_countersignatory_msat / 1000);
    if params.broadcaster_is_funder {
        to_local = to_local.checked_sub(fee).unwrap_or(Amount::ZERO);
    } else {
        to_remote = to_remote.checked_sub(fee).unwrap_or(Amount::ZERO);
    }
    if to_local >= params.dust_limit {
        let ws = revocable_delayed_script(
            &keys.revocation_key,
            params.to_self_delay,
            &keys.broadcaster_delayed_key,
        );
        outs.push((to_local, ws.to_p2wsh(), 0, Kind::ToLocal(ws)));
    }
    if to_remote >= params.dust_limit {
        let spk = ScriptBuf::new_p2wpkh(
            &CompressedPublicKey(keys.countersignatory_payment_key).wpubkey_hash(),
        );
        outs.push((to_remote, spk, 0, Kind::ToRemote));
    }
    outs.sort_by(|a, b| (a.0, a.1.as_bytes(), a.2).cmp(&(b.0, b.1.as_bytes(), b.2)));

    let mut result = CommitmentTx {
        tx: Transaction {
            version: Version::TWO,
            lock_time,
            input: vec![TxIn {
                previous_output: params.funding_outpoint,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            }],
            output: Vec::with_capacity(outs.len()),
        },
        to_local: None,
        to_remote: None,
        htlcs: Vec::new(),
        fee,
    };
    for (vout, (value, spk, _, kind)) in outs.into_iter().enumerate() {
        let vout = vout as u32;
        match kind {
            Kind::ToLocal(ws) => result.to_local = Some((vout, ws)),
            Kind::ToRemote => result.to_remote = Some(vout),
            Kind::Htlc(i, ws) => result.htlcs.push(HtlcOutput {
                htlc_index: i,
                vout,
                amount: value,
                witness_script: ws,
            }),
        }
        result.tx.output.push(TxOut {
            value,
            script_pubkey: spk,
        });
    }
    Ok(result)
}

impl CommitmentTx {
    /// The commitment's txid.
    pub fn txid(&self) -> Txid {
        self.tx.compute_txid()
    }

    /// Sign the funding input with one side's funding key (SIGHASH_ALL).
    pub fn sign<C: Signing>(
        &self,
        secp: &Secp256k1<C>,
        params: &CommitmentParams,
        local_funding_key: &PublicKey,
        remote_funding_key: &PublicKey,
        funding_secret: &SecretKey,
    ) -> Result<ecdsa::Signature, CommitmentError> {
        let script = funding_script(local_funding_key, remote_funding_key);
        Ok(sign_p2wsh(
            secp,
            &self.tx,
            0,
            &script,
            params.funding_value,
            funding_secret,
        )?)
    }

    /// The fully signed transaction, ready to broadcast.
    pub fn signed_tx(
        &self,
        key_a: &PublicKey,
        sig_a: &ecdsa::Signature,
        key_b: &PublicKey,
        sig_b: &ecdsa::Signature,
    ) -> Transaction {
        let mut tx = self.tx.clone();
        if let Some(input) = tx.input.first_mut() {
            input.witness = funding_witness(key_a, sig_a, key_b, sig_b);
        }
        tx
    }

    /// Parameters of the second-stage (HTLC-timeout or HTLC-success) tx of one untrimmed
    /// HTLC output.
    pub fn second_stage_params(
        &self,
        params: &CommitmentParams,
        keys: &CommitmentKeys,
        htlcs: &[CommitmentHtlc],
        output: &HtlcOutput,
    ) -> Result<SecondStageParams, CommitmentError> {
        second_stage_params_at(self.txid(), params, keys, htlcs, output)
    }

    /// The unsigned second-stage transactions of every untrimmed HTLC output, in output
    /// order (the order of `commitment_signed`'s `htlc_signature`s).
    pub fn htlc_txs(
        &self,
        params: &CommitmentParams,
        keys: &CommitmentKeys,
        htlcs: &[CommitmentHtlc],
    ) -> Result<Vec<Transaction>, CommitmentError> {
        let txid = self.txid();
        self.htlcs
            .iter()
            .map(|o| {
                let p = second_stage_params_at(txid, params, keys, htlcs, o)?;
                Ok(build_second_stage_tx(&p)?)
            })
            .collect()
    }
}

fn second_stage_params_at(
    txid: Txid,
    params: &CommitmentParams,
    keys: &CommitmentKeys,
    htlcs: &[CommitmentHtlc],
    output: &HtlcOutput,
) -> Result<SecondStageParams, CommitmentError> {
    let h = htlcs
        .get(output.htlc_index)
        .ok_or(CommitmentError::NoSuchHtlc(output.htlc_index))?;
    Ok(SecondStageParams {
        htlc_outpoint: OutPoint {
            txid,
            vout: output.vout,
        },
        htlc_amount: output.amount,
        kind: if h.offered {
            SecondStageKind::Timeout {
                cltv_expiry: h.cltv_expiry,
            }
        } else {
            SecondStageKind::Success
        },
        feerate_per_kw: params.feerate_per_kw,
        to_self_delay: params.to_self_delay,
        revocation_key: keys.revocation_key,
        broadcaster_delayed_key: keys.broadcaster_delayed_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::CommitmentKeys;
    use bitcoin::secp256k1::SecretKey;

    fn keys() -> CommitmentKeys {
        let secp = Secp256k1::new();
        let pk =
            |n: u8| PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[n; 32]).unwrap());
        CommitmentKeys {
            per_commitment_point: pk(1),
            revocation_key: pk(2),
            broadcaster_htlc_key: pk(3),
            countersignatory_htlc_key: pk(4),
            broadcaster_delayed_key: pk(5),
            countersignatory_payment_key: pk(6),
        }
    }

    fn params(funder: bool) -> CommitmentParams {
        CommitmentParams {
            funding_outpoint: OutPoint::null(),
            funding_value: Amount::from_sat(1_000_000),
            commitment_number: 3,
            obscuring_factor: 0xabcdef123456,
            to_self_delay: 144,
            dust_limit: Amount::from_sat(546),
            feerate_per_kw: 1000,
            broadcaster_is_funder: funder,
        }
    }

    #[test]
    fn commitment_number_round_trips() {
        for n in [0u64, 1, 42, (1 << 24) + 5, (1 << 48) - 1] {
            let mut p = params(true);
            p.commitment_number = n;
            let c = build_commitment_tx(&p, &keys(), 600_000_000, 400_000_000, &[]).unwrap();
            assert_eq!(commitment_number_of(&c.tx, p.obscuring_factor), Some(n));
        }
        let mut p = params(true);
        p.commitment_number = 1 << 48;
        assert!(build_commitment_tx(&p, &keys(), 1, 1, &[]).is_err());
    }

    #[test]
    fn non_funder_broadcaster_does_not_pay_fee() {
        let c =
            build_commitment_tx(&params(false), &keys(), 600_000_000, 400_000_000, &[]).unwrap();
        let fee = commitment_fee(1000, 0);
        let (lv, _) = c.to_local.clone().unwrap();
        assert_eq!(c.tx.output[lv as usize].value, Amount::from_sat(600_000));
        let rv = c.to_remote.unwrap();
        assert_eq!(
            c.tx.output[rv as usize].value,
            Amount::from_sat(400_000) - fee
        );
    }

    #[test]
    fn refuses_value_creation_and_trims_small_htlcs() {
        let h = |msat| CommitmentHtlc {
            offered: true,
            amount_msat: msat,
            cltv_expiry: 100,
            payment_hash: sha256::Hash::hash(b"x"),
        };
        assert!(matches!(
            build_commitment_tx(&params(true), &keys(), 600_000_000, 400_000_000, &[h(1)]),
            Err(CommitmentError::ExceedsFunding { .. })
        ));
        // 546 + 663 = 1209 sat threshold at 1000 sat/kw.
        let c = build_commitment_tx(
            &params(true),
            &keys(),
            597_000_000,
            400_000_000,
            &[h(1_208_999), h(1_209_000)],
        )
        .unwrap();
        assert_eq!(c.htlcs.len(), 1);
        assert_eq!(c.htlcs[0].htlc_index, 1);
        assert_eq!(c.fee, commitment_fee(1000, 1));
    }
}
