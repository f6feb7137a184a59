//! [`ShortChannelId`]: the BOLT 7 short channel id, which names a channel by where its
//! funding output sits on chain: `block height << 40 | tx index << 16 | output index`
//! (3, 3 and 2 bytes). Carried by `channel_ready` (TLV 1), gossip and onion hop payloads.
//!
//! Owns: the packing, its bounds and the `HEIGHTxINDEXxVOUT` text form. Must never panic on
//! any `u64` or string from a peer or a user.

use core::fmt;
use core::str::FromStr;

use crate::codec::DecodeError;
use crate::tlv::TlvValue;

/// Largest block height or transaction index a short channel id can hold (3 bytes).
pub const MAX_SCID_BLOCK_OR_TX: u32 = (1 << 24) - 1;

/// A BOLT 7 short channel id: block height (24 bits), transaction index in the block
/// (24 bits), output index (16 bits), packed big-endian into a `u64`.
///
/// Every `u64` is a valid short channel id (the three fields cover all 64 bits), so
/// [`ShortChannelId::from_u64`] cannot fail; [`ShortChannelId::new`] refuses fields out of
/// range. Displayed (and parsed) as `HEIGHTxINDEXxVOUT`, e.g. `812x3x0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortChannelId(u64);

impl ShortChannelId {
    /// The id of output `output_index` of the `tx_index`-th transaction of the block at
    /// `block_height`; `None` if the height or the index does not fit in 24 bits.
    pub fn new(block_height: u32, tx_index: u32, output_index: u16) -> Option<ShortChannelId> {
        if block_height > MAX_SCID_BLOCK_OR_TX || tx_index > MAX_SCID_BLOCK_OR_TX {
            return None;
        }
        Some(ShortChannelId(
            (u64::from(block_height) << 40) | (u64::from(tx_index) << 16) | u64::from(output_index),
        ))
    }

    /// The id with this packed value.
    pub const fn from_u64(value: u64) -> ShortChannelId {
        ShortChannelId(value)
    }

    /// The packed value (as on the wire).
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// Height of the block holding the funding transaction.
    pub const fn block_height(self) -> u32 {
        (self.0 >> 40) as u32
    }

    /// Index of the funding transaction in its block.
    pub const fn tx_index(self) -> u32 {
        ((self.0 >> 16) & 0xff_ffff) as u32
    }

    /// Index of the funding output in its transaction.
    pub const fn output_index(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl From<ShortChannelId> for u64 {
    fn from(s: ShortChannelId) -> u64 {
        s.0
    }
}

impl fmt::Display for ShortChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{}",
            self.block_height(),
            self.tx_index(),
            self.output_index()
        )
    }
}

/// Why a string is not a `HEIGHTxINDEXxVOUT` short channel id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a short channel id (HEIGHTxINDEXxVOUT, 24/24/16 bits): {0:?}")]
pub struct ParseShortChannelIdError(pub String);

impl FromStr for ShortChannelId {
    type Err = ParseShortChannelIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseShortChannelIdError(s.chars().take(64).collect());
        let mut parts = s.split('x');
        let (Some(h), Some(t), Some(o), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        // Digits only: `u32::from_str` would accept a leading '+'.
        let num = |p: &str| -> Option<u32> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let (h, t, o) = (num(h), num(t), num(o));
        let (Some(h), Some(t), Some(o)) = (h, t, o) else {
            return Err(bad());
        };
        let o = u16::try_from(o).map_err(|_| bad())?;
        ShortChannelId::new(h, t, o).ok_or_else(bad)
    }
}

/// Exactly 8 big-endian bytes (the BOLT `short_channel_id` type).
impl TlvValue for ShortChannelId {
    fn to_value(&self) -> Vec<u8> {
        self.0.to_value()
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        u64::from_value(b).map(ShortChannelId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_per_bolt7() {
        let s = ShortChannelId::new(539_268, 845, 1).unwrap();
        assert_eq!(s.to_u64(), (539_268u64 << 40) | (845 << 16) | 1);
        assert_eq!(
            (s.block_height(), s.tx_index(), s.output_index()),
            (539_268, 845, 1)
        );
        assert_eq!(s.to_string(), "539268x845x1");
        assert_eq!("539268x845x1".parse::<ShortChannelId>(), Ok(s));
        assert_eq!(ShortChannelId::from_u64(s.to_u64()), s);
        let max = ShortChannelId::new(MAX_SCID_BLOCK_OR_TX, MAX_SCID_BLOCK_OR_TX, u16::MAX);
        assert_eq!(max.map(u64::from), Some(u64::MAX));
    }

    #[test]
    fn refuses_out_of_range_fields_and_bad_text() {
        assert_eq!(ShortChannelId::new(1 << 24, 0, 0), None);
        assert_eq!(ShortChannelId::new(0, 1 << 24, 0), None);
        for s in [
            "",
            "1x2",
            "1x2x3x4",
            "1x2x65536",
            "16777216x0x0",
            "+1x2x3",
            "1x-2x3",
            "axbxc",
            "1 x2x3",
        ] {
            assert!(s.parse::<ShortChannelId>().is_err(), "{s}");
        }
    }

    #[test]
    fn tlv_value_is_eight_bytes() {
        let s = ShortChannelId::new(100, 2, 1).unwrap();
        assert_eq!(s.to_value(), s.to_u64().to_be_bytes().to_vec());
        assert_eq!(ShortChannelId::from_value(&s.to_value()), Ok(s));
        assert!(ShortChannelId::from_value(&[0; 7]).is_err());
        assert!(ShortChannelId::from_value(&[0; 9]).is_err());
    }

    #[test]
    fn channel_ready_carries_it_in_tlv_1() {
        use crate::msgs::{ChannelReady, Message};
        use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
        let secp = Secp256k1::new();
        let point = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[3; 32]).unwrap());
        let scid = ShortChannelId::new(812, 3, 1).unwrap();
        let m = Message::ChannelReady(ChannelReady {
            channel_id: [7; 32],
            second_per_commitment_point: point,
            short_channel_id: Some(scid),
            extra_tlvs: Default::default(),
        });
        let bytes = m.encode();
        // type 36, channel id, point, then TLV type 1, length 8, the packed id.
        let mut tail = vec![1u8, 8];
        tail.extend_from_slice(&scid.to_u64().to_be_bytes());
        assert_eq!(bytes.len(), 2 + 32 + 33 + 10);
        assert!(bytes.ends_with(&tail));
        assert_eq!(Message::decode(&bytes), Ok(m));
        // A TLV 1 of another length is refused.
        let mut bad = bytes[..bytes.len() - 10].to_vec();
        bad.extend_from_slice(&[1, 7, 0, 0, 0, 0, 0, 0, 0]);
        assert!(Message::decode(&bad).is_err());
    }
}
