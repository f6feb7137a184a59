//! Payment identifiers: [`PaymentHash`], [`PaymentPreimage`] and [`PaymentSecret`].
//!
//! Owns the 32-byte newtypes and their derivations (hash of a preimage). Secrets
//! (preimage, payment secret) are compared in constant time and never printed in full by
//! `Debug`. Must never do I/O or generate entropy itself: fresh values come in as bytes.
//!
//! Serde: [`PaymentHash`] and [`PaymentPreimage`] serialize as their bare 32-byte array (a
//! JSON array of 32 numbers), exactly as the `[u8; 32]` they replace in stored channel
//! records — changing that shape changes `fulmen-channel`'s record format.

use bitcoin::hashes::{sha256, Hash};
use core::fmt;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// SHA-256 of a [`PaymentPreimage`]; identifies a payment and locks its HTLCs.
///
/// Public information (it appears on chain in HTLC scripts), so ordinary comparison is fine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentHash(pub [u8; 32]);

/// The 32-byte secret whose SHA-256 is the [`PaymentHash`]; revealing it settles the HTLC.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentPreimage(pub [u8; 32]);

/// The BOLT 11 `payment_secret` (`s` field), echoed in the final hop's `payment_data`.
///
/// Stops intermediate nodes from probing the payee; compared in constant time.
#[derive(Clone, Copy)]
pub struct PaymentSecret(pub [u8; 32]);

impl PaymentPreimage {
    /// The payment hash this preimage unlocks: `SHA256(preimage)`.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(sha256::Hash::hash(&self.0).to_byte_array())
    }

    /// True if `SHA256(self) == hash`.
    pub fn matches(&self, hash: &PaymentHash) -> bool {
        // The hash is public, but compare in constant time anyway: cheap and uniform.
        bool::from(self.payment_hash().0.ct_eq(&hash.0))
    }
}

impl PartialEq for PaymentPreimage {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}
impl Eq for PaymentPreimage {}

impl PartialEq for PaymentSecret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}
impl Eq for PaymentSecret {}

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash({})", hex32(&self.0))
    }
}

impl fmt::Display for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex32(&self.0))
    }
}

impl fmt::Debug for PaymentPreimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaymentPreimage(<redacted>)")
    }
}

impl fmt::Debug for PaymentSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaymentSecret(<redacted>)")
    }
}

/// Lowercase hex of 32 bytes (no external hex dependency in the library).
pub(crate) fn hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preimage_hashes_to_payment_hash() {
        let pre = PaymentPreimage([0u8; 32]);
        // SHA256 of 32 zero bytes.
        assert_eq!(
            pre.payment_hash().to_string(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert!(pre.matches(&pre.payment_hash()));
        assert!(!PaymentPreimage([1u8; 32]).matches(&pre.payment_hash()));
    }

    #[test]
    fn secrets_compare_and_redact() {
        assert_eq!(PaymentSecret([7; 32]), PaymentSecret([7; 32]));
        assert_ne!(PaymentSecret([7; 32]), PaymentSecret([8; 32]));
        assert_ne!(PaymentPreimage([7; 32]), PaymentPreimage([6; 32]));
        assert!(!format!("{:?}", PaymentSecret([7; 32])).contains("07"));
    }

    #[test]
    fn serde_shape_is_the_bare_array() {
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes[31] = 255;
        let raw = serde_json::to_string(&bytes).unwrap();
        assert_eq!(serde_json::to_string(&PaymentHash(bytes)).unwrap(), raw);
        assert_eq!(serde_json::to_string(&PaymentPreimage(bytes)).unwrap(), raw);
        assert_eq!(
            serde_json::from_str::<PaymentHash>(&raw).unwrap(),
            PaymentHash(bytes)
        );
        assert_eq!(
            serde_json::from_str::<PaymentPreimage>(&raw).unwrap(),
            PaymentPreimage(bytes)
        );
        assert!(serde_json::from_str::<PaymentHash>("[1,2,3]").is_err());
    }
}
