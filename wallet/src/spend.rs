//! Building and signing the wallet's transactions.
//!
//! Owns: paying to an address, funding an arbitrary output script (channel funding), with
//! BDK coin selection, change to the change keychain, feerates in sat/vB, and the mapping of
//! BDK's failures to [`WalletError`]. Must never broadcast or mark coins spent by itself (the
//! caller broadcasts, then feeds the transaction back), nor spend immature coinbase outputs.

use std::str::FromStr;

use bdk_wallet::error::CreateTxError;
use bdk_wallet::SignOptions;
use bitcoin::{Address, Amount, FeeRate, Network, ScriptBuf};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::types::BuiltTx;
use crate::{Wallet, WalletError};

/// Parse `address` and check it belongs to `network`.
pub fn parse_address(address: &str, network: Network) -> Result<Address, WalletError> {
    let unchecked = Address::from_str(address.trim()).map_err(|e| WalletError::InvalidAddress {
        address: address.to_string(),
        reason: e.to_string(),
    })?;
    if unchecked.is_valid_for_network(network) {
        return Ok(unchecked.assume_checked());
    }
    let found = [
        Network::Bitcoin,
        Network::Testnet,
        Network::Signet,
        Network::Regtest,
    ]
    .into_iter()
    .find(|n| unchecked.is_valid_for_network(*n))
    .map_or_else(|| "another network".to_string(), |n| n.to_string());
    Err(WalletError::WrongNetwork {
        address: address.to_string(),
        expected: network,
        found,
    })
}

/// Convert sat/vB to a [`FeeRate`], refusing zero and overflow.
pub fn feerate_from_sat_per_vb(sat_per_vb: u64) -> Result<FeeRate, WalletError> {
    if sat_per_vb == 0 {
        return Err(WalletError::InvalidFeeRate { sat_per_vb });
    }
    FeeRate::from_sat_per_vb(sat_per_vb).ok_or(WalletError::InvalidFeeRate { sat_per_vb })
}

impl Wallet {
    /// Build and sign a payment of `amount` to `address` (must be on the wallet's network) at
    /// `sat_per_vb`, change back to the wallet. Not broadcast, not applied (see [`BuiltTx`]).
    ///
    /// `aux_rand` (caller entropy, e.g. 32 bytes from the OS RNG) drives coin-selection
    /// tie-breaking and output shuffling; the same wallet state and bytes give the same tx.
    /// The fee is at least `sat_per_vb × vsize` (vsize rounded up, as Bitcoin Core does).
    pub fn pay_to_address(
        &mut self,
        address: &str,
        amount: Amount,
        sat_per_vb: u64,
        aux_rand: [u8; 32],
    ) -> Result<BuiltTx, WalletError> {
        let address = parse_address(address, self.params().network)?;
        self.fund_script(address.script_pubkey(), amount, sat_per_vb, aux_rand)
    }

    /// Build and sign a transaction with one output of `amount` to `script` (e.g. a channel's
    /// 2-of-2 P2WSH funding script) plus change, at `sat_per_vb`. `output_index` in the result
    /// is the funding output's index. Not broadcast, not applied (see [`BuiltTx`]); call
    /// [`Wallet::cancel_tx`] if it will never be broadcast. Its coins stay locked — no other
    /// build chooses them — until it is applied ([`Wallet::apply_mempool_txs`]) or cancelled.
    /// `aux_rand` as in [`Wallet::pay_to_address`].
    pub fn fund_script(
        &mut self,
        script: ScriptBuf,
        amount: Amount,
        sat_per_vb: u64,
        aux_rand: [u8; 32],
    ) -> Result<BuiltTx, WalletError> {
        let feerate = feerate_from_sat_per_vb(sat_per_vb)?;
        if amount == Amount::ZERO {
            return Err(WalletError::ZeroAmount);
        }
        let minimum = script.minimal_non_dust();
        if amount < minimum {
            return Err(WalletError::DustOutput { amount, minimum });
        }
        let result = self.build_and_sign(&Target::Pay(script.clone(), amount), feerate, aux_rand);
        // Building may reveal a change address; keep that change even on failure.
        self.absorb();
        let (tx, fee) = result?;
        self.locked
            .extend(tx.input.iter().map(|i| i.previous_output));
        let output_index = tx
            .output
            .iter()
            .position(|o| o.script_pubkey == script && o.value == amount)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| WalletError::Extract("requested output missing".into()))?;
        let change = tx
            .output
            .iter()
            .enumerate()
            .find(|(i, o)| {
                u32::try_from(*i).ok() != Some(output_index)
                    && self
                        .inner
                        .derivation_of_spk(o.script_pubkey.clone())
                        .is_some()
            })
            .and_then(|(i, o)| u32::try_from(i).ok().map(|i| (i, o.value)));
        Ok(BuiltTx {
            txid: tx.compute_txid(),
            vsize: tx.vsize() as u64,
            fee,
            output_index,
            change,
            tx,
        })
    }

    /// Build and sign a transaction sending every spendable coin (confirmed, own unconfirmed
    /// change and unconfirmed receives; never immature coinbase outputs) to `address`, minus the
    /// fee at `sat_per_vb`; no change output. `output_index` is the single output.
    pub fn drain_to_address(
        &mut self,
        address: &str,
        sat_per_vb: u64,
        aux_rand: [u8; 32],
    ) -> Result<BuiltTx, WalletError> {
        let address = parse_address(address, self.params().network)?;
        let feerate = feerate_from_sat_per_vb(sat_per_vb)?;
        let result =
            self.build_and_sign(&Target::Drain(address.script_pubkey()), feerate, aux_rand);
        self.absorb();
        let (tx, fee) = result?;
        if tx.output.len() != 1 {
            return Err(WalletError::Extract(
                "drain produced more than one output".into(),
            ));
        }
        Ok(BuiltTx {
            txid: tx.compute_txid(),
            vsize: tx.vsize() as u64,
            fee,
            output_index: 0,
            change: None,
            tx,
        })
    }

    /// Build at `feerate`; if the signed transaction pays less than `feerate × vsize` (BDK
    /// prices weight exactly, Bitcoin Core rounds vsize up), rebuild with that fee as an
    /// absolute fee. Converges in at most a few rounds (vsize changes only with the inputs).
    fn build_and_sign(
        &mut self,
        target: &Target,
        feerate: FeeRate,
        aux_rand: [u8; 32],
    ) -> Result<(bitcoin::Transaction, Amount), WalletError> {
        let mut absolute_fee = None;
        for _ in 0..MAX_FEE_ROUNDS {
            let (tx, fee) = self.build_once(target, feerate, absolute_fee, aux_rand)?;
            let required =
                feerate
                    .fee_vb(tx.vsize() as u64)
                    .ok_or(WalletError::InvalidFeeRate {
                        sat_per_vb: feerate.to_sat_per_vb_ceil(),
                    })?;
            if fee >= required {
                return Ok((tx, fee));
            }
            // Discard this attempt: free its change index for the next one.
            self.inner.cancel_tx(&tx);
            absolute_fee = Some(required);
        }
        Err(WalletError::Extract(
            "fee did not converge to the requested feerate".into(),
        ))
    }

    fn build_once(
        &mut self,
        target: &Target,
        feerate: FeeRate,
        absolute_fee: Option<Amount>,
        aux_rand: [u8; 32],
    ) -> Result<(bitcoin::Transaction, Amount), WalletError> {
        let mut rng = ChaCha20Rng::from_seed(aux_rand);
        let mut builder = self.inner.build_tx();
        // Coins promised to a built, not yet broadcast transaction (a funding in progress).
        builder.unspendable(self.locked.iter().copied().collect());
        match target {
            Target::Pay(script, amount) => builder.add_recipient(script.clone(), *amount),
            Target::Drain(script) => builder.drain_wallet().drain_to(script.clone()),
        };
        match absolute_fee {
            Some(fee) => builder.fee_absolute(fee),
            None => builder.fee_rate(feerate),
        };
        let mut psbt = builder
            .finish_with_aux_rand(&mut rng)
            .map_err(map_create_error)?;
        let fee = psbt
            .fee()
            .map_err(|e| WalletError::Extract(e.to_string()))?;
        let finalized = self
            .inner
            .sign(&mut psbt, SignOptions::default())
            .map_err(WalletError::Sign)?;
        if !finalized {
            return Err(WalletError::NotFinalized);
        }
        let tx = psbt
            .extract_tx()
            .map_err(|e| WalletError::Extract(e.to_string()))?;
        Ok((tx, fee))
    }

    /// Give up on a built, never-broadcast transaction: its change address may be reused by
    /// the next build and its coins are unlocked. (Its inputs were never marked spent.)
    pub fn cancel_tx(&mut self, tx: &bitcoin::Transaction) {
        for i in &tx.input {
            self.locked.remove(&i.previous_output);
        }
        self.inner.cancel_tx(tx);
        self.absorb();
    }
}

/// What a built transaction must do.
enum Target {
    /// Pay this amount to this script, change back to the wallet.
    Pay(ScriptBuf, Amount),
    /// Send every spendable coin to this script, no change.
    Drain(ScriptBuf),
}

/// Rounds of [`Wallet::build_and_sign`] before giving up.
const MAX_FEE_ROUNDS: usize = 4;

fn map_create_error(e: CreateTxError) -> WalletError {
    match e {
        CreateTxError::CoinSelection(insufficient) => WalletError::InsufficientFunds {
            needed: insufficient.needed,
            available: insufficient.available,
            missing: insufficient
                .needed
                .checked_sub(insufficient.available)
                .unwrap_or(Amount::ZERO),
        },
        other => WalletError::Build(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_against_the_network() {
        let regtest = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
        assert!(parse_address(regtest, Network::Regtest).is_ok());
        match parse_address(regtest, Network::Bitcoin) {
            Err(WalletError::WrongNetwork {
                found, expected, ..
            }) => {
                assert_eq!(found, "regtest");
                assert_eq!(expected, Network::Bitcoin);
            }
            other => panic!("{other:?}"),
        }
        let testnet = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx";
        match parse_address(testnet, Network::Regtest) {
            Err(WalletError::WrongNetwork { found, .. }) => assert_eq!(found, "testnet"),
            other => panic!("{other:?}"),
        }
        // One character changed: bad checksum.
        let broken = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081";
        assert!(matches!(
            parse_address(broken, Network::Regtest),
            Err(WalletError::InvalidAddress { .. })
        ));
        assert!(matches!(
            parse_address("", Network::Regtest),
            Err(WalletError::InvalidAddress { .. })
        ));
    }

    #[test]
    fn feerates() {
        assert_eq!(
            feerate_from_sat_per_vb(1).unwrap(),
            FeeRate::from_sat_per_kwu(250)
        );
        assert!(matches!(
            feerate_from_sat_per_vb(0),
            Err(WalletError::InvalidFeeRate { sat_per_vb: 0 })
        ));
        assert!(feerate_from_sat_per_vb(u64::MAX).is_err());
    }

    #[test]
    fn wallet_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Wallet>();
        check::<WalletError>();
    }
}
