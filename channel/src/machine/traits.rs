//! What the state machine needs from the outside world: key material ([`KeySource`]),
//! randomness ([`Entropy`]) and a fee estimate ([`FeeEstimator`]), with their contracts.
//!
//! Must never: reach for a global RNG, a clock or any I/O — every implementation is supplied
//! by the embedding application.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey, Signing};

use crate::keys::ChannelBasepoints;

/// The secrets of one channel: its funding key, the four basepoint secrets and the
/// per-commitment seed (shachain root).
#[derive(Clone)]
pub struct ChannelSecrets {
    /// Secret of the 2-of-2 funding key.
    pub funding_key: SecretKey,
    /// Secret of the revocation basepoint.
    pub revocation_base: SecretKey,
    /// Secret of the payment basepoint (`to_remote` key under `option_static_remotekey`).
    pub payment_base: SecretKey,
    /// Secret of the delayed payment basepoint.
    pub delayed_payment_base: SecretKey,
    /// Secret of the HTLC basepoint.
    pub htlc_base: SecretKey,
    /// Seed of our per-commitment secrets (`generate_from_seed`).
    pub commitment_seed: [u8; 32],
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelSecrets(..)")
    }
}

impl ChannelSecrets {
    /// The public basepoints announced in `open_channel` / `accept_channel`.
    pub fn basepoints<C: Signing>(&self, secp: &Secp256k1<C>) -> ChannelBasepoints {
        ChannelBasepoints {
            funding_pubkey: PublicKey::from_secret_key(secp, &self.funding_key),
            revocation_basepoint: PublicKey::from_secret_key(secp, &self.revocation_base),
            payment_basepoint: PublicKey::from_secret_key(secp, &self.payment_base),
            delayed_payment_basepoint: PublicKey::from_secret_key(secp, &self.delayed_payment_base),
            htlc_basepoint: PublicKey::from_secret_key(secp, &self.htlc_base),
        }
    }

    /// Whether these are the secrets behind `basepoints` (stored in a channel's setup when
    /// it was created), checked on the funding key: one multiplication instead of the five
    /// of [`ChannelSecrets::basepoints`]. Restoring a thousand channels rebuilds their
    /// basepoints from the records and only checks this.
    pub fn are_behind<C: Signing>(
        &self,
        secp: &Secp256k1<C>,
        basepoints: &ChannelBasepoints,
    ) -> bool {
        PublicKey::from_secret_key(secp, &self.funding_key) == basepoints.funding_pubkey
    }
}

/// Source of channel key material.
///
/// Contract: `channel_secrets(id)` is a pure function of `id` — it returns the same secrets
/// every time it is asked (the channel is rebuilt from its records, which store only the
/// `key_id`), and different ids give independent keys. It must not fail: a key source that
/// cannot produce keys must not be handed to a channel.
pub trait KeySource {
    /// The secrets of the channel whose key id is `key_id`.
    fn channel_secrets(&self, key_id: &[u8; 32]) -> ChannelSecrets;
}

/// Randomness for ids (temporary channel ids, channel key ids).
///
/// Contract: output must be unpredictable to peers (a CSPRNG); tests pass a seeded one.
pub trait Entropy {
    /// Fill `dest` with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);
}

/// The current fee estimate.
///
/// Contract: returns the feerate (satoshi per 1000 weight) at which a commitment would
/// confirm in reasonable time; at least 253. It is consulted when opening a channel and to
/// judge whether a peer's proposed feerate is sane.
pub trait FeeEstimator {
    /// Feerate in sat per 1000 weight units.
    fn feerate_per_kw(&self) -> u32;
}

/// A [`KeySource`] deriving every channel's secrets from one 32-byte master seed:
/// `secret_i = SHA256(seed || key_id || i)` (re-hashed with a counter in the ~2^-128 case
/// that the hash is not a valid scalar).
#[derive(Clone)]
pub struct SeedKeySource {
    seed: [u8; 32],
}

impl SeedKeySource {
    /// A key source over `seed` (keep it secret: it controls every channel's funds).
    pub fn new(seed: [u8; 32]) -> SeedKeySource {
        SeedKeySource { seed }
    }

    fn derive(&self, key_id: &[u8; 32], tag: u8) -> [u8; 32] {
        let mut e = sha256::Hash::engine();
        e.input(&self.seed);
        e.input(key_id);
        e.input(&[tag]);
        sha256::Hash::from_engine(e).to_byte_array()
    }

    fn key(&self, key_id: &[u8; 32], tag: u8) -> SecretKey {
        let mut bytes = self.derive(key_id, tag);
        loop {
            if let Ok(k) = SecretKey::from_slice(&bytes) {
                return k;
            }
            bytes = sha256::Hash::hash(&bytes).to_byte_array();
        }
    }
}

impl KeySource for SeedKeySource {
    fn channel_secrets(&self, key_id: &[u8; 32]) -> ChannelSecrets {
        ChannelSecrets {
            funding_key: self.key(key_id, 0),
            revocation_base: self.key(key_id, 1),
            payment_base: self.key(key_id, 2),
            delayed_payment_base: self.key(key_id, 3),
            htlc_base: self.key(key_id, 4),
            commitment_seed: self.derive(key_id, 5),
        }
    }
}
