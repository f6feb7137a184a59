//! Feature bit vectors (BOLT 1 / BOLT 9): big-endian bitfields where bit 0 is the least
//! significant bit of the last byte; even bits are "required", odd bits "optional".
//!
//! Owns: bit manipulation and the negotiation rule (a peer that requires a bit we do not
//! know is refused). Must never panic on peer bytes.

use crate::codec::{DecodeError, Field, LenBytes, Reader};
use crate::tlv::TlvValue;

/// `option_data_loss_protect` (required bit).
pub const DATA_LOSS_PROTECT: usize = 0;
/// `var_onion_optin` (required bit).
pub const VAR_ONION_OPTIN: usize = 8;
/// `option_static_remotekey` (required bit).
pub const STATIC_REMOTEKEY: usize = 12;
/// `payment_secret` (required bit).
pub const PAYMENT_SECRET: usize = 14;
/// `basic_mpp` (required bit).
pub const BASIC_MPP: usize = 16;
/// `option_support_large_channel` (required bit).
pub const LARGE_CHANNEL: usize = 18;
/// `option_channel_type` (required bit).
pub const CHANNEL_TYPE: usize = 44;

/// Feature pairs (even bit of each pair) this implementation understands.
pub const KNOWN_FEATURES: &[usize] = &[
    DATA_LOSS_PROTECT,
    VAR_ONION_OPTIN,
    STATIC_REMOTEKEY,
    PAYMENT_SECRET,
    BASIC_MPP,
    LARGE_CHANNEL,
    CHANNEL_TYPE,
];

/// A feature bit vector, kept byte-exact as received.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Features(pub Vec<u8>);

impl Features {
    /// Empty vector.
    pub fn empty() -> Self {
        Features(Vec::new())
    }

    /// The features this node advertises in `init`: the known set, all required except MPP
    /// and large channels, which are optional.
    pub fn ours() -> Self {
        let mut f = Features::empty();
        for &b in KNOWN_FEATURES {
            if b == BASIC_MPP || b == LARGE_CHANNEL {
                f.set(b + 1);
            } else {
                f.set(b);
            }
        }
        f
    }

    /// Is `bit` set?
    pub fn has(&self, bit: usize) -> bool {
        let byte = bit / 8;
        if byte >= self.0.len() {
            return false;
        }
        let idx = self.0.len() - 1 - byte;
        self.0[idx] & (1 << (bit % 8)) != 0
    }

    /// Is either bit of the pair containing `bit` set?
    pub fn supports(&self, bit: usize) -> bool {
        let even = bit & !1;
        self.has(even) || self.has(even + 1)
    }

    /// Sets `bit`, growing the vector as needed.
    pub fn set(&mut self, bit: usize) {
        let need = bit / 8 + 1;
        if self.0.len() < need {
            let mut v = vec![0u8; need - self.0.len()];
            v.extend_from_slice(&self.0);
            self.0 = v;
        }
        let idx = self.0.len() - 1 - bit / 8;
        self.0[idx] |= 1 << (bit % 8);
    }

    /// All set bit positions, ascending.
    pub fn bits(&self) -> Vec<usize> {
        (0..self.0.len() * 8).filter(|&b| self.has(b)).collect()
    }

    /// Bitwise OR (used to merge `init`'s legacy `globalfeatures` into `features`).
    pub fn or(&self, other: &Features) -> Features {
        let n = self.0.len().max(other.0.len());
        let mut out = vec![0u8; n];
        for (src, dst_off) in [(&self.0, n - self.0.len()), (&other.0, n - other.0.len())] {
            for (i, b) in src.iter().enumerate() {
                out[dst_off + i] |= b;
            }
        }
        Features(out)
    }

    /// The first required (even) bit set here that is not in `known` (each entry the even
    /// bit of a pair), if any. A peer requiring such a bit must be refused.
    pub fn unknown_required(&self, known: &[usize]) -> Option<usize> {
        self.bits()
            .into_iter()
            .find(|b| b % 2 == 0 && !known.contains(b))
    }

    /// Negotiates with a peer's `init` features: errors if the peer requires a feature we
    /// do not know, or if we require one the peer does not support.
    pub fn negotiate(&self, theirs: &Features) -> Result<Features, DecodeError> {
        if let Some(b) = theirs.unknown_required(KNOWN_FEATURES) {
            return Err(DecodeError::UnknownRequiredFeature(b));
        }
        for b in self.bits() {
            if b % 2 == 0 && !theirs.supports(b) {
                return Err(DecodeError::UnknownRequiredFeature(b));
            }
        }
        // The negotiated set: pairs both sides support, in optional form.
        let mut out = Features::empty();
        for &k in KNOWN_FEATURES {
            if self.supports(k) && theirs.supports(k) {
                out.set(k + 1);
            }
        }
        Ok(out)
    }
}

impl Field for Features {
    fn write(&self, w: &mut Vec<u8>) {
        LenBytes(self.0.clone()).write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Features(LenBytes::read(r)?.0))
    }
}

impl TlvValue for Features {
    fn to_value(&self) -> Vec<u8> {
        self.0.clone()
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        Ok(Features(b.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_negotiation() {
        let mut f = Features::empty();
        f.set(0);
        f.set(9);
        assert_eq!(f.0, vec![0x02, 0x01]);
        assert!(f.has(9) && f.has(0) && !f.has(1));
        assert_eq!(f.bits(), vec![0, 9]);
        let ours = Features::ours();
        assert!(ours.negotiate(&ours).is_ok());
        let mut weird = ours.clone();
        weird.set(100);
        assert_eq!(
            ours.negotiate(&weird),
            Err(DecodeError::UnknownRequiredFeature(100))
        );
        let mut odd = ours.clone();
        odd.set(101);
        assert!(ours.negotiate(&odd).is_ok());
        assert!(ours.negotiate(&Features::empty()).is_err());
        assert_eq!(Features(vec![1]).or(&Features(vec![2, 0])).0, vec![2, 1]);
    }
}
