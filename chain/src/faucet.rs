//! The faucet: the chain's own key, paid by coinbases, that funds addresses on request.
//!
//! Owns: [`Chain::fund`] (coin selection over mature faucet coins and unconfirmed faucet
//! change, P2WPKH signing, submission) and [`Chain::faucet_balance`]. Must never sign
//! anything but faucet spends, expose the faucet key, or do I/O.

use bitcoin::ecdsa;
use bitcoin::secp256k1::Message;
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::{predict_weight, InputWeightPrediction};
use bitcoin::{
    absolute, transaction, Address, Amount, FeeRate, OutPoint, Sequence, Transaction, TxIn, TxOut,
    Txid, Witness,
};

use crate::chain::Chain;
use crate::error::FundError;
use crate::params::fee_for_vsize;

impl Chain {
    /// Faucet outputs spendable in the next block and not spent in the mempool: mature
    /// confirmed coins (largest first), then unconfirmed faucet outputs in the mempool.
    fn faucet_candidates(&self) -> Vec<(OutPoint, TxOut)> {
        let next_height = self.height() + 1;
        let maturity = self.params.coinbase_maturity;
        let mut confirmed: Vec<(OutPoint, TxOut)> = self
            .faucet_coins
            .iter()
            .filter(|op| self.mempool.spender(op).is_none())
            .filter_map(|op| {
                let coin = self.utxos.get(op)?;
                let mature =
                    !coin.is_coinbase || next_height.saturating_sub(coin.height) >= maturity;
                mature.then(|| (*op, coin.txout.clone()))
            })
            .collect();
        confirmed.sort_by(|a, b| b.1.value.cmp(&a.1.value).then(a.0.cmp(&b.0)));
        for (txid, entry) in self.mempool.entries() {
            for (vout, out) in entry.tx.output.iter().enumerate() {
                let op = OutPoint::new(*txid, vout as u32);
                if out.script_pubkey == self.faucet_spk && self.mempool.spender(&op).is_none() {
                    confirmed.push((op, out.clone()));
                }
            }
        }
        confirmed
    }

    /// Spendable faucet balance: mature confirmed faucet coins and unconfirmed faucet change,
    /// minus whatever the mempool already spends.
    pub fn faucet_balance(&self) -> Amount {
        self.faucet_candidates()
            .iter()
            .fold(Amount::ZERO, |acc, (_, o)| {
                acc.checked_add(o.value).unwrap_or(acc)
            })
    }

    fn faucet_fee(rate: FeeRate, inputs: usize, outputs: &[usize]) -> Amount {
        let weight = predict_weight(
            std::iter::repeat_n(InputWeightPrediction::P2WPKH_MAX, inputs),
            outputs.iter().copied(),
        );
        let vsize = weight.to_wu().div_ceil(4);
        fee_for_vsize(rate, vsize).unwrap_or(Amount::MAX_MONEY)
    }

    /// Pay `amount` to `address` from spendable faucet coins (signed P2WPKH), change back to
    /// the faucet, fee at [`Chain::fee_estimate`]; submitted to the mempool. Returns the txid.
    pub fn fund(&mut self, address: &Address, amount: Amount) -> Result<Txid, FundError> {
        let payee = address.script_pubkey();
        if !payee.is_op_return() {
            let minimum = payee.minimal_non_dust_custom(self.params.dust_relay_feerate);
            if amount < minimum {
                return Err(FundError::Dust { amount, minimum });
            }
        }
        let rate = self.fee_estimate();
        let change_dust = self
            .faucet_spk
            .minimal_non_dust_custom(self.params.dust_relay_feerate);
        let with_change = [payee.len(), self.faucet_spk.len()];
        let candidates = self.faucet_candidates();
        let available = candidates.iter().fold(Amount::ZERO, |acc, (_, o)| {
            acc.checked_add(o.value).unwrap_or(acc)
        });
        let mut chosen: Vec<(OutPoint, TxOut)> = Vec::new();
        let mut total = Amount::ZERO;
        let mut plan: Option<Option<Amount>> = None; // Some(Some(change)) or Some(None)
        for cand in candidates {
            total = total.checked_add(cand.1.value).unwrap_or(total);
            chosen.push(cand);
            let fee = Self::faucet_fee(rate, chosen.len(), &with_change);
            if let Some(change) = total
                .checked_sub(amount)
                .and_then(|rest| rest.checked_sub(fee))
            {
                if change >= change_dust {
                    plan = Some(Some(change));
                    break;
                }
                let fee_alone = Self::faucet_fee(rate, chosen.len(), &[payee.len()]);
                if total
                    .checked_sub(amount)
                    .is_some_and(|rest| rest >= fee_alone)
                {
                    plan = Some(None);
                    break;
                }
            }
        }
        let Some(change) = plan else {
            let fee = Self::faucet_fee(rate, chosen.len().max(1), &with_change);
            return Err(FundError::InsufficientFaucetFunds {
                needed: amount.checked_add(fee).unwrap_or(Amount::MAX_MONEY),
                available,
            });
        };
        let mut output = vec![TxOut {
            value: amount,
            script_pubkey: payee,
        }];
        if let Some(change) = change {
            output.push(TxOut {
                value: change,
                script_pubkey: self.faucet_spk.clone(),
            });
        }
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: chosen
                .iter()
                .map(|(op, _)| TxIn {
                    previous_output: *op,
                    sequence: Sequence::MAX,
                    ..TxIn::default()
                })
                .collect(),
            output,
        };
        self.sign_faucet_inputs(&mut tx, &chosen)?;
        Ok(self.submit_transaction(tx)?)
    }

    /// Signs every input of `tx` (spending `spent[i]`, all faucet P2WPKH) with SIGHASH_ALL.
    fn sign_faucet_inputs(
        &self,
        tx: &mut Transaction,
        spent: &[(OutPoint, TxOut)],
    ) -> Result<(), FundError> {
        let mut witnesses = Vec::with_capacity(spent.len());
        {
            let mut cache = SighashCache::new(&*tx);
            for (i, (_, out)) in spent.iter().enumerate() {
                let sighash = cache
                    .p2wpkh_signature_hash(i, &out.script_pubkey, out.value, EcdsaSighashType::All)
                    .map_err(|e| FundError::Signing(e.to_string()))?;
                let msg = Message::from(sighash);
                let signature = self.secp.sign_ecdsa(&msg, &self.faucet_key);
                let sig = ecdsa::Signature {
                    signature,
                    sighash_type: EcdsaSighashType::All,
                };
                witnesses.push(Witness::p2wpkh(&sig, &self.faucet_pubkey.0));
            }
        }
        for (input, w) in tx.input.iter_mut().zip(witnesses) {
            input.witness = w;
        }
        Ok(())
    }
}
