//! Seed and key handling: BIP39 mnemonic from caller entropy, BIP32 master key, BIP84 descriptors.
//!
//! Owns: turning entropy into a mnemonic and a mnemonic into the wallet's two BIP84 P2WPKH
//! descriptors (`m/84'/1'/0'/0/*` receive, `m/84'/1'/0'/1/*` change on test networks).
//! Must never: create randomness (entropy is an argument), write the mnemonic anywhere, or put
//! secrets into `Debug`/`Display` output.
//!
//! # Storage contract (for the node)
//! The mnemonic is the only secret. The node generates 32 bytes of entropy from the OS RNG on
//! first start, calls [`mnemonic_from_entropy`], and writes [`Seed::phrase`] to a file in its
//! data directory created with mode 0600 (owner read/write only) before the wallet hands out any
//! address. On later starts it reads that file back with [`Seed::from_phrase`]. The change sets
//! ([`crate::ChangeSet`]) contain only public descriptors, never private keys, so they may live
//! in the sqlite database.

use std::fmt;

use bdk_wallet::bip39::{Language, Mnemonic};
use bdk_wallet::bitcoin::bip32::Xpriv;
use bdk_wallet::bitcoin::Network;
use bdk_wallet::template::Bip84;
use bdk_wallet::KeychainKind;

use crate::WalletError;

/// A BIP39 mnemonic (English word list, empty BIP39 passphrase).
///
/// `Debug` prints `Seed(<redacted>)`; the words are only available through [`Seed::phrase`].
#[derive(Clone, PartialEq, Eq)]
pub struct Seed {
    mnemonic: Mnemonic,
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

/// Create a new seed from caller-provided entropy (16 bytes = 12 words … 32 bytes = 24 words).
///
/// The caller must supply uniformly random bytes (the node uses the OS RNG); tests pass fixed
/// bytes for determinism.
pub fn mnemonic_from_entropy(entropy: &[u8]) -> Result<Seed, WalletError> {
    if !matches!(entropy.len(), 16 | 20 | 24 | 28 | 32) {
        return Err(WalletError::InvalidEntropy { len: entropy.len() });
    }
    let mnemonic = Mnemonic::from_entropy_in(Language::English, entropy)
        .map_err(|e| WalletError::InvalidMnemonic(e.to_string()))?;
    Ok(Seed { mnemonic })
}

impl Seed {
    /// Parse a space-separated English mnemonic (checksum verified).
    pub fn from_phrase(phrase: &str) -> Result<Seed, WalletError> {
        let normalized = phrase
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mnemonic = Mnemonic::parse_in_normalized(Language::English, &normalized)
            .map_err(|e| WalletError::InvalidMnemonic(e.to_string()))?;
        Ok(Seed { mnemonic })
    }

    /// The words, space separated. This is the secret to store (mode 0600).
    pub fn phrase(&self) -> String {
        self.mnemonic.to_string()
    }

    /// Number of words (12, 15, 18, 21 or 24).
    pub fn word_count(&self) -> usize {
        self.mnemonic.word_count()
    }

    /// BIP32 master private key for `network` (BIP39 seed with an empty passphrase).
    pub(crate) fn master_key(&self, network: Network) -> Result<Xpriv, WalletError> {
        let seed = self.mnemonic.to_seed("");
        Xpriv::new_master(network, &seed).map_err(|e| WalletError::KeyDerivation(e.to_string()))
    }
}

/// The BIP84 descriptor templates (with private keys) for both keychains.
pub(crate) fn descriptors(master: Xpriv) -> (Bip84<Xpriv>, Bip84<Xpriv>) {
    (
        Bip84(master, KeychainKind::External),
        Bip84(master, KeychainKind::Internal),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_lengths() {
        assert_eq!(mnemonic_from_entropy(&[7u8; 16]).unwrap().word_count(), 12);
        assert_eq!(mnemonic_from_entropy(&[7u8; 32]).unwrap().word_count(), 24);
        assert!(matches!(
            mnemonic_from_entropy(&[7u8; 15]),
            Err(WalletError::InvalidEntropy { len: 15 })
        ));
    }

    #[test]
    fn bip39_vector_and_round_trip() {
        // BIP39 English test vector: 16 zero bytes.
        let seed = mnemonic_from_entropy(&[0u8; 16]).unwrap();
        assert_eq!(
            seed.phrase(),
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
        );
        let parsed = Seed::from_phrase(&seed.phrase()).unwrap();
        assert_eq!(parsed, seed);
        assert_eq!(format!("{parsed:?}"), "Seed(<redacted>)");
    }

    #[test]
    fn bad_phrase_is_rejected() {
        let err = Seed::from_phrase("abandon abandon abandon").unwrap_err();
        assert!(matches!(err, WalletError::InvalidMnemonic(_)));
        // Valid words, wrong checksum.
        let err = Seed::from_phrase(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon",
        )
        .unwrap_err();
        assert!(matches!(err, WalletError::InvalidMnemonic(_)));
    }
}
