//! BOLT 3 per-commitment secrets: generation from a seed (the sender side) and the
//! receiver's compact storage of the counterparty's revealed secrets (at most 49 entries),
//! which refuses a secret inconsistent with those already stored.
//!
//! Commitment indices count *down* from 2^48 - 1: the first commitment uses index
//! `2^48 - 1 - commitment_number`.
//!
//! Must never: do I/O, allocate beyond its fixed 49 slots, or accept a secret that does not
//! derive the ones it replaces (that would lose the ability to punish an old commitment).

use bitcoin::hashes::{sha256, Hash};

/// Highest valid commitment index (48 bits).
pub const MAX_INDEX: u64 = (1 << 48) - 1;

/// Number of storage slots: one per possible trailing-zero count (0..=48).
const SLOTS: usize = 49;

/// Errors of secret generation / storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShachainError {
    /// The index does not fit in 48 bits.
    #[error("commitment index {0} exceeds 48 bits")]
    IndexOutOfRange(u64),
    /// The secret does not derive a secret already stored (the peer lied or is broken).
    #[error("secret for index {index} does not derive the stored secret for index {stored_index}")]
    Inconsistent {
        /// Index of the refused secret.
        index: u64,
        /// Index of the stored secret it failed to derive.
        stored_index: u64,
    },
    /// Secrets must arrive in order: exactly one below the previous index.
    #[error("expected secret for index {expected}, got {got}")]
    OutOfOrder {
        /// The index that was expected next.
        expected: u64,
        /// The index received.
        got: u64,
    },
}

fn derive_secret(base: [u8; 32], bits: u32, index: u64) -> [u8; 32] {
    let mut p = base;
    for b in (0..bits).rev() {
        if index >> b & 1 == 1 {
            p[(b / 8) as usize] ^= 1 << (b % 8);
            p = sha256::Hash::hash(&p).to_byte_array();
        }
    }
    p
}

/// `generate_from_seed(seed, I)`: the per-commitment secret for index `index`.
pub fn generate_from_seed(seed: &[u8; 32], index: u64) -> Result<[u8; 32], ShachainError> {
    if index > MAX_INDEX {
        return Err(ShachainError::IndexOutOfRange(index));
    }
    Ok(derive_secret(*seed, 48, index))
}

/// Storage slot of an index: its count of trailing zeros (48 for index 0).
fn slot_of(index: u64) -> usize {
    if index == 0 {
        48
    } else {
        index.trailing_zeros().min(48) as usize
    }
}

/// The receiver's compact storage of the counterparty's per-commitment secrets.
/// Serialized (in a channel snapshot) as its slots and last index; decoding checks the slot
/// count and that each stored secret sits in its index's slot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "SecretStoreRepr", into = "SecretStoreRepr")]
pub struct SecretStore {
    known: [Option<(u64, [u8; 32])>; SLOTS],
    /// Index of the last secret inserted (None before the first insert).
    last_index: Option<u64>,
}

/// [`SecretStore`] as persisted.
#[derive(serde::Serialize, serde::Deserialize)]
struct SecretStoreRepr {
    known: Vec<Option<(u64, [u8; 32])>>,
    last_index: Option<u64>,
}

impl From<SecretStore> for SecretStoreRepr {
    fn from(s: SecretStore) -> Self {
        SecretStoreRepr {
            known: s.known.to_vec(),
            last_index: s.last_index,
        }
    }
}

impl TryFrom<SecretStoreRepr> for SecretStore {
    type Error = String;

    fn try_from(r: SecretStoreRepr) -> Result<Self, Self::Error> {
        let known: [Option<(u64, [u8; 32])>; SLOTS] = r
            .known
            .try_into()
            .map_err(|v: Vec<_>| format!("{} secret slots, expected {SLOTS}", v.len()))?;
        for (slot, entry) in known.iter().enumerate() {
            if let Some((index, _)) = entry {
                if *index > MAX_INDEX || slot_of(*index) != slot {
                    return Err(format!("secret {index} stored in slot {slot}"));
                }
            }
        }
        Ok(SecretStore {
            known,
            last_index: r.last_index,
        })
    }
}

impl Default for SecretStore {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> SecretStore {
        SecretStore {
            known: [None; SLOTS],
            last_index: None,
        }
    }

    /// Index of the last secret inserted.
    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }

    /// Insert the secret for `index`. Refuses it (leaving the store unchanged) when it is
    /// out of order or does not derive every stored secret it is meant to replace.
    pub fn insert(&mut self, index: u64, secret: [u8; 32]) -> Result<(), ShachainError> {
        if index > MAX_INDEX {
            return Err(ShachainError::IndexOutOfRange(index));
        }
        if let Some(last) = self.last_index {
            let expected = last.wrapping_sub(1);
            if last == 0 || index != expected {
                return Err(ShachainError::OutOfOrder {
                    expected,
                    got: index,
                });
            }
        }
        let slot = slot_of(index);
        for (stored_index, stored) in self.known.iter().take(slot).flatten() {
            if derive_secret(secret, slot as u32, *stored_index) != *stored {
                return Err(ShachainError::Inconsistent {
                    index,
                    stored_index: *stored_index,
                });
            }
        }
        self.known[slot] = Some((index, secret));
        self.last_index = Some(index);
        Ok(())
    }

    /// The secret for `index`, if it was inserted or can be derived from a stored one.
    pub fn get(&self, index: u64) -> Option<[u8; 32]> {
        for (b, entry) in self.known.iter().enumerate() {
            if let Some((stored_index, secret)) = entry {
                let mask = !((1u64 << b) - 1);
                if index & mask == *stored_index & mask {
                    return Some(derive_secret(*secret, b as u32, index));
                }
            }
        }
        None
    }

    /// Rebuild a store from persisted [`SecretStore::entries`] and [`SecretStore::last_index`].
    /// Refuses entries that do not sit in distinct slots, or that are inconsistent with one
    /// another (each entry must derive every lower-slot entry under its prefix).
    pub fn restore(
        entries: impl IntoIterator<Item = (u64, [u8; 32])>,
        last_index: Option<u64>,
    ) -> Result<SecretStore, ShachainError> {
        let mut store = SecretStore::new();
        for (index, secret) in entries {
            if index > MAX_INDEX {
                return Err(ShachainError::IndexOutOfRange(index));
            }
            let slot = slot_of(index);
            if store.known[slot].is_some() {
                return Err(ShachainError::Inconsistent {
                    index,
                    stored_index: store.known[slot].map(|e| e.0).unwrap_or(index),
                });
            }
            store.known[slot] = Some((index, secret));
        }
        for slot in 0..SLOTS {
            if let Some((index, secret)) = store.known[slot] {
                for (stored_index, stored) in store.known.iter().take(slot).flatten() {
                    // Only entries under this one's prefix are derivable from it.
                    if stored_index >> slot != index >> slot {
                        continue;
                    }
                    if derive_secret(secret, slot as u32, *stored_index) != *stored {
                        return Err(ShachainError::Inconsistent {
                            index,
                            stored_index: *stored_index,
                        });
                    }
                }
            }
        }
        store.last_index = last_index;
        Ok(store)
    }

    /// The stored `(index, secret)` entries (at most 49), for persistence.
    pub fn entries(&self) -> impl Iterator<Item = (u64, [u8; 32])> + '_ {
        self.known.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_derives_every_earlier_secret() {
        let seed = [0x42u8; 32];
        let mut store = SecretStore::new();
        for n in 0..300u64 {
            let idx = MAX_INDEX - n;
            store
                .insert(idx, generate_from_seed(&seed, idx).unwrap())
                .unwrap();
        }
        assert!(store.entries().count() <= 49);
        for n in 0..300u64 {
            let idx = MAX_INDEX - n;
            assert_eq!(
                store.get(idx),
                Some(generate_from_seed(&seed, idx).unwrap())
            );
        }
        assert_eq!(store.get(MAX_INDEX - 300), None);
    }

    #[test]
    fn restore_round_trips_and_refuses_tampering() {
        let seed = [7u8; 32];
        let mut store = SecretStore::new();
        for n in 0..77u64 {
            let idx = MAX_INDEX - n;
            store
                .insert(idx, generate_from_seed(&seed, idx).unwrap())
                .unwrap();
        }
        let entries: Vec<_> = store.entries().collect();
        let back = SecretStore::restore(entries.clone(), store.last_index()).unwrap();
        assert_eq!(back, store);
        let mut bad = entries;
        let last = bad.len() - 1;
        bad[last].1[0] ^= 1;
        assert!(SecretStore::restore(bad, store.last_index()).is_err());
    }

    #[test]
    fn refuses_out_of_order() {
        let seed = [1u8; 32];
        let mut store = SecretStore::new();
        store
            .insert(MAX_INDEX, generate_from_seed(&seed, MAX_INDEX).unwrap())
            .unwrap();
        let idx = MAX_INDEX - 2;
        assert!(matches!(
            store.insert(idx, generate_from_seed(&seed, idx).unwrap()),
            Err(ShachainError::OutOfOrder { .. })
        ));
    }
}
