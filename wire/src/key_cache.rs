//! Parsing compressed public keys from peer bytes, with a small per-thread cache of the keys
//! parsed last.
//!
//! A compressed key costs a field square root to parse (≈ 5 µs, the largest part of decoding
//! a `channel_announcement`), and gossip repeats the same keys: every announcement of a node's
//! channels names that node, and a restarted node's peers each send it the same graph. A key
//! whose 33 bytes are in the cache is returned without the square root.
//!
//! Owns: the cache — direct-mapped (a slot keeps the last key whose bytes map to it), a fixed
//! [`SLOTS`] entries per thread, allocated on the thread's first parse. Must never: return a
//! key for bytes other than its own (a hit compares all 33 bytes), hold an invalid key (only
//! successful parses are kept), or grow.

use std::cell::RefCell;

use bitcoin::secp256k1::PublicKey;

/// Entries per thread (≈ 100 bytes each).
pub const SLOTS: usize = 1024;

type Slot = Option<([u8; 33], PublicKey)>;

thread_local! {
    static CACHE: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// The slot of a key's bytes: from its x coordinate, which is uniform for real keys (a peer
/// choosing colliding keys only evicts its own entries).
fn slot_of(bytes: &[u8; 33]) -> usize {
    let x = u64::from_le_bytes([
        bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
    ]);
    (x % SLOTS as u64) as usize
}

/// `PublicKey::from_slice` for a 33-byte compressed key, answered from the cache when the same
/// bytes were parsed on this thread recently. Any other length, or bytes that are not a
/// point, is an error, as for `from_slice`.
pub fn parse_compressed(bytes: &[u8]) -> Result<PublicKey, bitcoin::secp256k1::Error> {
    let Ok(key) = <[u8; 33]>::try_from(bytes) else {
        return Err(bitcoin::secp256k1::Error::InvalidPublicKey);
    };
    let slot = slot_of(&key);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.is_empty() {
            cache.resize(SLOTS, None);
        }
        if let Some(Some((k, pk))) = cache.get(slot) {
            if *k == key {
                return Ok(*pk);
            }
        }
        let pk = PublicKey::from_slice(&key)?;
        if let Some(entry) = cache.get_mut(slot) {
            *entry = Some((key, pk));
        }
        Ok(pk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use proptest::prelude::*;

    fn key(i: u32) -> PublicKey {
        let mut b = [1u8; 32];
        b[..4].copy_from_slice(&i.to_be_bytes());
        SecretKey::from_slice(&b)
            .unwrap()
            .public_key(&Secp256k1::new())
    }

    #[test]
    fn hits_misses_and_collisions_give_the_key_of_the_bytes() {
        // More keys than slots: every slot is overwritten, some several times.
        let keys: Vec<PublicKey> = (0..(SLOTS as u32 * 3)).map(key).collect();
        for _ in 0..2 {
            for k in &keys {
                assert_eq!(parse_compressed(&k.serialize()), Ok(*k));
            }
        }
    }

    #[test]
    fn invalid_bytes_are_refused_and_not_kept() {
        let good = key(7).serialize();
        let mut bad = good;
        bad[0] = 0x05;
        assert!(parse_compressed(&bad).is_err());
        assert!(parse_compressed(&good[..32]).is_err());
        assert!(parse_compressed(&[good.as_slice(), &[0]].concat()).is_err());
        // Same slot as `good` (same x bytes), then `good` itself: each gets its own answer.
        assert!(parse_compressed(&bad).is_err());
        assert_eq!(parse_compressed(&good), Ok(key(7)));
        assert!(parse_compressed(&bad).is_err());
    }

    proptest! {
        #[test]
        fn same_answer_as_from_slice(bytes in proptest::collection::vec(any::<u8>(), 0..40),
                                     prefix in 0u8..5) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() {
                *b = prefix;
            }
            let want = PublicKey::from_slice(&bytes).ok().filter(|_| bytes.len() == 33);
            prop_assert_eq!(parse_compressed(&bytes).ok(), want);
            // Again, possibly from the cache.
            prop_assert_eq!(parse_compressed(&bytes).ok(), want);
        }
    }
}
