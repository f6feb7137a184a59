//! The encrypted justice blob: how a justice transaction for one revoked counterparty
//! commitment is sealed so that only someone who has seen that commitment's txid can read it.
//!
//! Owns the key, nonce and hint derivations, the plaintext and blob layouts and their
//! size limits. Must never do I/O and never panic on a blob that came from a peer.
//!
//! # Byte order of the txid
//!
//! Every derivation below uses the commitment txid's 32 bytes in **internal (consensus)
//! byte order**, i.e. [`Txid::to_byte_array`]: the order in which the txid appears inside a
//! transaction input's outpoint, the *reverse* of the hex string block explorers display.
//!
//! # Derivations
//!
//! - hint  = `txid[0..16]` (the first 16 bytes in internal order). The tower indexes blobs by
//!   it; the other 16 bytes (128 bits) stay unknown to it until the commitment is mined.
//! - key   = `SHA256(txid ‖ "fulmen-tower-key")` (a tagged hash; the tag separates it from any
//!   other use of a hash of the txid).
//! - nonce = `SHA256(txid ‖ "fulmen-tower-nonce")[0..12]`.
//!
//! A fixed, derived nonce is safe because every key seals exactly one message: the key is a
//! function of one commitment txid, a revoked commitment has exactly one justice backup, and
//! ChaCha20-Poly1305 only needs (key, nonce) never to be reused for *different* plaintexts.
//! Sealing the same justice transaction again gives the identical blob (which the tower
//! accepts as an idempotent re-store). The client must never seal a *different* justice
//! transaction for the same commitment (that would reuse the keystream and the Poly1305 key);
//! the tower refuses a second, different blob under the same hint from the same client
//! anyway, and [`crate::client::TowerClient`] refuses it while the first is still queued.
//!
//! # Layouts
//!
//! ```text
//! plaintext = PLAINTEXT_VERSION (1) ‖ tx_len (u16 BE) ‖ consensus(justice tx) ‖ zero padding
//! blob      = BLOB_VERSION (1) ‖ ChaCha20-Poly1305(key, nonce, aad = BLOB_VERSION, plaintext)
//! ```
//!
//! The plaintext is padded with zeros to a multiple of [`PAD_BLOCK`] bytes so that the blob
//! length only tells the tower the justice transaction's size to within 1 KiB (roughly
//! "to_local plus up to three HTLCs"), not the exact number of HTLCs in the channel. The
//! padded plaintext is at most [`MAX_PLAINTEXT_LEN`] bytes, so a justice transaction is at
//! most [`MAX_JUSTICE_TX_LEN`] bytes. The only cleartext byte is the blob version, which lets
//! the tower refuse garbage before storing it.

use bitcoin::consensus::encode;
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::{Transaction, Txid};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::fmt;

/// Version byte at the start of every blob (in clear). Blobs with another first byte are garbage.
pub const BLOB_VERSION: u8 = 1;
/// Version byte at the start of the plaintext (inside the encryption).
pub const PLAINTEXT_VERSION: u8 = 1;
/// The plaintext is zero-padded to a multiple of this many bytes.
pub const PAD_BLOCK: usize = 1024;
/// Largest padded plaintext.
pub const MAX_PLAINTEXT_LEN: usize = 16 * 1024;
/// Plaintext header: version byte and the u16 transaction length.
pub const PLAINTEXT_HEADER_LEN: usize = 3;
/// Largest consensus-encoded justice transaction a blob can carry.
pub const MAX_JUSTICE_TX_LEN: usize = MAX_PLAINTEXT_LEN - PLAINTEXT_HEADER_LEN;
/// Length of the Poly1305 authentication tag.
pub const TAG_LEN: usize = 16;
/// Shortest well-formed blob: version byte, one padding block, tag.
pub const MIN_BLOB_LEN: usize = 1 + PAD_BLOCK + TAG_LEN;
/// Longest well-formed blob.
pub const MAX_BLOB_LEN: usize = 1 + MAX_PLAINTEXT_LEN + TAG_LEN;
/// Length of a [`Hint`].
pub const HINT_LEN: usize = 16;

const KEY_TAG: &[u8] = b"fulmen-tower-key";
const NONCE_TAG: &[u8] = b"fulmen-tower-nonce";

/// The first 16 bytes of a commitment txid (internal byte order): what the tower indexes a
/// blob by, and what it looks for in every transaction of every block.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hint(pub [u8; HINT_LEN]);

impl Hint {
    /// The hint of a commitment txid: its first 16 bytes in internal byte order.
    pub fn from_txid(txid: &Txid) -> Hint {
        let bytes = txid.to_byte_array();
        let mut hint = [0u8; HINT_LEN];
        hint.copy_from_slice(&bytes[..HINT_LEN]);
        Hint(hint)
    }

    /// The hint's bytes.
    pub fn as_bytes(&self) -> &[u8; HINT_LEN] {
        &self.0
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hint({self})")
    }
}

/// Why a justice transaction could not be sealed, or a blob could not be opened or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The justice transaction is larger than [`MAX_JUSTICE_TX_LEN`] once encoded.
    #[error("justice transaction is {len} bytes, at most {max} fit in a blob")]
    TxTooLarge {
        /// Encoded length of the transaction.
        len: usize,
        /// [`MAX_JUSTICE_TX_LEN`].
        max: usize,
    },
    /// The blob's first byte is not [`BLOB_VERSION`].
    #[error("unknown blob version {0}")]
    UnknownVersion(u8),
    /// The blob's length is not `1 + k * PAD_BLOCK + TAG_LEN` for some `k ≥ 1`.
    #[error("malformed blob length {0}")]
    BadLength(usize),
    /// The blob is longer than [`MAX_BLOB_LEN`].
    #[error("blob of {len} bytes exceeds the maximum of {max}")]
    Oversize {
        /// Length of the blob.
        len: usize,
        /// [`MAX_BLOB_LEN`].
        max: usize,
    },
    /// Authentication failed: the blob was not sealed with the key of this txid, or was altered.
    #[error("blob does not decrypt with this txid's key")]
    Decrypt,
    /// Decrypted, but the plaintext does not hold a well-formed justice transaction.
    #[error("decrypted plaintext is malformed: {0}")]
    BadPlaintext(&'static str),
}

/// Checks the cleartext shape of a blob (version, length bounds, padding granularity)
/// without decrypting it. What a tower can verify before a breach.
pub fn check_blob_shape(blob: &[u8]) -> Result<(), BlobError> {
    let Some(&version) = blob.first() else {
        return Err(BlobError::BadLength(0));
    };
    if version != BLOB_VERSION {
        return Err(BlobError::UnknownVersion(version));
    }
    if blob.len() > MAX_BLOB_LEN {
        return Err(BlobError::Oversize {
            len: blob.len(),
            max: MAX_BLOB_LEN,
        });
    }
    if blob.len() < MIN_BLOB_LEN || (blob.len() - 1 - TAG_LEN) % PAD_BLOCK != 0 {
        return Err(BlobError::BadLength(blob.len()));
    }
    Ok(())
}

fn tagged(txid: &Txid, tag: &[u8]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(&txid.to_byte_array());
    engine.input(tag);
    sha256::Hash::from_engine(engine).to_byte_array()
}

fn cipher_and_nonce(txid: &Txid) -> (ChaCha20Poly1305, [u8; 12]) {
    let key = tagged(txid, KEY_TAG);
    let nonce_full = tagged(txid, NONCE_TAG);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&nonce_full[..12]);
    (ChaCha20Poly1305::new(Key::from_slice(&key)), nonce)
}

/// Seals `justice_tx` for the revoked commitment `commitment_txid`. Deterministic: the same
/// inputs give the same blob. Does not check that the transaction spends the commitment (see
/// [`crate::client::check_spends_commitment`]).
pub fn seal(commitment_txid: &Txid, justice_tx: &Transaction) -> Result<Vec<u8>, BlobError> {
    let tx_bytes = encode::serialize(justice_tx);
    if tx_bytes.len() > MAX_JUSTICE_TX_LEN {
        return Err(BlobError::TxTooLarge {
            len: tx_bytes.len(),
            max: MAX_JUSTICE_TX_LEN,
        });
    }
    let unpadded = PLAINTEXT_HEADER_LEN + tx_bytes.len();
    let padded = unpadded.div_ceil(PAD_BLOCK) * PAD_BLOCK;
    let mut plaintext = Vec::with_capacity(padded);
    plaintext.push(PLAINTEXT_VERSION);
    // Fits: tx_bytes.len() <= MAX_JUSTICE_TX_LEN < 65536.
    plaintext.extend_from_slice(&(tx_bytes.len() as u16).to_be_bytes());
    plaintext.extend_from_slice(&tx_bytes);
    plaintext.resize(padded, 0);

    let (cipher, nonce) = cipher_and_nonce(commitment_txid);
    let aad = [BLOB_VERSION];
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        // ChaCha20-Poly1305 only fails to encrypt beyond 256 GiB; the plaintext is ≤ 16 KiB.
        .map_err(|_| BlobError::BadPlaintext("encryption failed"))?;
    let mut blob = Vec::with_capacity(1 + sealed.len());
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Opens a blob with the key of `commitment_txid` and returns the justice transaction in it.
///
/// Fails with [`BlobError::Decrypt`] when the blob was sealed for another txid (e.g. a hint
/// collision) or tampered with; never panics on arbitrary bytes.
pub fn open(commitment_txid: &Txid, blob: &[u8]) -> Result<Transaction, BlobError> {
    check_blob_shape(blob)?;
    let (cipher, nonce) = cipher_and_nonce(commitment_txid);
    let aad = [BLOB_VERSION];
    let plaintext = cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: blob.get(1..).unwrap_or_default(),
                aad: &aad,
            },
        )
        .map_err(|_| BlobError::Decrypt)?;
    parse_plaintext(&plaintext)
}

fn parse_plaintext(plaintext: &[u8]) -> Result<Transaction, BlobError> {
    let (header, rest) = plaintext
        .split_at_checked(PLAINTEXT_HEADER_LEN)
        .ok_or(BlobError::BadPlaintext("shorter than its header"))?;
    if header[0] != PLAINTEXT_VERSION {
        return Err(BlobError::BadPlaintext("unknown plaintext version"));
    }
    let tx_len = u16::from_be_bytes([header[1], header[2]]) as usize;
    let (tx_bytes, padding) = rest
        .split_at_checked(tx_len)
        .ok_or(BlobError::BadPlaintext(
            "transaction length beyond plaintext",
        ))?;
    if padding.iter().any(|&b| b != 0) {
        return Err(BlobError::BadPlaintext("non-zero padding"));
    }
    encode::deserialize(tx_bytes).map_err(|_| BlobError::BadPlaintext("not a transaction"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{commitment_tx, justice_tx};

    #[test]
    fn seal_open_round_trip() {
        let commitment = commitment_tx(1);
        let txid = commitment.compute_txid();
        let justice = justice_tx(&commitment, 2);
        let blob = seal(&txid, &justice).unwrap();
        assert_eq!(blob[0], BLOB_VERSION);
        check_blob_shape(&blob).unwrap();
        assert_eq!(open(&txid, &blob).unwrap(), justice);
        // Deterministic.
        assert_eq!(seal(&txid, &justice).unwrap(), blob);
    }

    #[test]
    fn another_txid_does_not_open() {
        let a = commitment_tx(1);
        let b = commitment_tx(2);
        let blob = seal(&a.compute_txid(), &justice_tx(&a, 2)).unwrap();
        assert_eq!(open(&b.compute_txid(), &blob), Err(BlobError::Decrypt));
    }

    #[test]
    fn tampered_blob_does_not_open() {
        let a = commitment_tx(1);
        let txid = a.compute_txid();
        let mut blob = seal(&txid, &justice_tx(&a, 2)).unwrap();
        let mid = blob.len() / 2;
        blob[mid] ^= 1;
        assert_eq!(open(&txid, &blob), Err(BlobError::Decrypt));
    }

    #[test]
    fn padding_hides_exact_size() {
        let a = commitment_tx(1);
        let txid = a.compute_txid();
        let small = seal(&txid, &justice_tx(&a, 0)).unwrap();
        let typical = seal(&txid, &justice_tx(&a, 2)).unwrap();
        assert_eq!((small.len() - 1 - TAG_LEN) % PAD_BLOCK, 0);
        assert_eq!(small.len(), typical.len());
    }

    #[test]
    fn oversize_tx_refused() {
        let a = commitment_tx(1);
        let txid = a.compute_txid();
        let huge = justice_tx(&a, 200);
        assert!(matches!(
            seal(&txid, &huge),
            Err(BlobError::TxTooLarge { .. })
        ));
    }

    #[test]
    fn shape_checks() {
        assert_eq!(check_blob_shape(&[]), Err(BlobError::BadLength(0)));
        assert_eq!(
            check_blob_shape(&[2; MIN_BLOB_LEN]),
            Err(BlobError::UnknownVersion(2))
        );
        assert_eq!(check_blob_shape(&[1; 20]), Err(BlobError::BadLength(20)));
        assert_eq!(
            check_blob_shape(&[1; MIN_BLOB_LEN + 1]),
            Err(BlobError::BadLength(MIN_BLOB_LEN + 1))
        );
        assert!(matches!(
            check_blob_shape(&vec![1; MAX_BLOB_LEN + PAD_BLOCK]),
            Err(BlobError::Oversize { .. })
        ));
        check_blob_shape(&[1; MIN_BLOB_LEN]).unwrap();
        check_blob_shape(&vec![1; MAX_BLOB_LEN]).unwrap();
    }

    #[test]
    fn garbage_never_panics() {
        let txid = commitment_tx(1).compute_txid();
        let mut state = 0x1234_5678_u32;
        for len in [
            0,
            1,
            17,
            MIN_BLOB_LEN,
            MIN_BLOB_LEN + PAD_BLOCK,
            MAX_BLOB_LEN + 3,
        ] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8
                })
                .collect();
            assert!(open(&txid, &bytes).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trip_any_size(seed in 0u64..1000, htlcs in 0u32..=56) {
            let c = commitment_tx(seed);
            let txid = c.compute_txid();
            let j = justice_tx(&c, htlcs);
            let blob = seal(&txid, &j).unwrap();
            proptest::prop_assert!(check_blob_shape(&blob).is_ok());
            proptest::prop_assert_eq!(open(&txid, &blob).unwrap(), j);
        }

        #[test]
        fn well_shaped_garbage_never_opens(
            blocks in 1usize..=3,
            fill in proptest::collection::vec(proptest::prelude::any::<u8>(), 64),
        ) {
            let len = 1 + blocks * PAD_BLOCK + TAG_LEN;
            let mut blob: Vec<u8> = fill.iter().cycle().take(len).copied().collect();
            blob[0] = BLOB_VERSION;
            proptest::prop_assert_eq!(
                open(&commitment_tx(1).compute_txid(), &blob),
                Err(BlobError::Decrypt)
            );
        }
    }

    #[test]
    fn hint_is_first_16_internal_bytes() {
        let txid = commitment_tx(3).compute_txid();
        let hint = Hint::from_txid(&txid);
        assert_eq!(&hint.0[..], &txid.to_byte_array()[..16]);
        assert_eq!(hint.to_string().len(), 32);
    }
}
