//! BOLT 4 failure messages: codes, flags and their byte layouts.
//!
//! Owns the typed [`FailureMessage`] and its strict codec. `channel_update` fields are kept
//! as opaque bytes (the BOLT 7 message is fulmen-wire's business). Decoding never panics and
//! never allocates more than the input.

use thiserror::Error;

use crate::onion::codec::{read_bigsize, write_bigsize, Reader};

/// Flag: the onion itself was unparsable (sent in `update_fail_malformed_htlc`).
pub const BADONION: u16 = 0x8000;
/// Flag: permanent failure (otherwise transient).
pub const PERM: u16 = 0x4000;
/// Flag: node failure (otherwise channel).
pub const NODE: u16 = 0x2000;
/// Flag: a `channel_update` is enclosed.
pub const UPDATE: u16 = 0x1000;

/// A BOLT 4 failure message (`failuremsg`), as created by the failing node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureMessage {
    /// `invalid_realm` (PERM|1).
    InvalidRealm,
    /// `temporary_node_failure` (NODE|2).
    TemporaryNodeFailure,
    /// `permanent_node_failure` (PERM|NODE|2).
    PermanentNodeFailure,
    /// `required_node_feature_missing` (PERM|NODE|3).
    RequiredNodeFeatureMissing,
    /// `invalid_onion_version` (BADONION|PERM|4).
    InvalidOnionVersion {
        /// SHA256 of the onion received.
        sha256_of_onion: [u8; 32],
    },
    /// `invalid_onion_hmac` (BADONION|PERM|5).
    InvalidOnionHmac {
        /// SHA256 of the onion received.
        sha256_of_onion: [u8; 32],
    },
    /// `invalid_onion_key` (BADONION|PERM|6).
    InvalidOnionKey {
        /// SHA256 of the onion received.
        sha256_of_onion: [u8; 32],
    },
    /// `temporary_channel_failure` (UPDATE|7).
    TemporaryChannelFailure {
        /// The outgoing channel's latest `channel_update` (raw message bytes).
        channel_update: Vec<u8>,
    },
    /// `permanent_channel_failure` (PERM|8).
    PermanentChannelFailure,
    /// `required_channel_feature_missing` (PERM|9).
    RequiredChannelFeatureMissing,
    /// `unknown_next_peer` (PERM|10).
    UnknownNextPeer,
    /// `amount_below_minimum` (UPDATE|11).
    AmountBelowMinimum {
        /// The HTLC amount received.
        htlc_msat: u64,
        /// The outgoing channel's `channel_update`.
        channel_update: Vec<u8>,
    },
    /// `fee_insufficient` (UPDATE|12).
    FeeInsufficient {
        /// The HTLC amount received.
        htlc_msat: u64,
        /// The outgoing channel's `channel_update`.
        channel_update: Vec<u8>,
    },
    /// `incorrect_cltv_expiry` (UPDATE|13).
    IncorrectCltvExpiry {
        /// The incoming HTLC's `cltv_expiry`.
        cltv_expiry: u32,
        /// The outgoing channel's `channel_update`.
        channel_update: Vec<u8>,
    },
    /// `expiry_too_soon` (UPDATE|14).
    ExpiryTooSoon {
        /// The outgoing channel's `channel_update`.
        channel_update: Vec<u8>,
    },
    /// `incorrect_or_unknown_payment_details` (PERM|15).
    IncorrectOrUnknownPaymentDetails {
        /// The HTLC amount received.
        htlc_msat: u64,
        /// The final node's current block height.
        height: u32,
    },
    /// `final_incorrect_cltv_expiry` (18).
    FinalIncorrectCltvExpiry {
        /// The incoming HTLC's `cltv_expiry`.
        cltv_expiry: u32,
    },
    /// `final_incorrect_htlc_amount` (19).
    FinalIncorrectHtlcAmount {
        /// The incoming HTLC amount.
        incoming_htlc_amt: u64,
    },
    /// `channel_disabled` (UPDATE|20).
    ChannelDisabled {
        /// `disabled_flags` (u16).
        disabled_flags: u16,
        /// The outgoing channel's `channel_update`.
        channel_update: Vec<u8>,
    },
    /// `expiry_too_far` (21).
    ExpiryTooFar,
    /// `invalid_onion_payload` (PERM|22).
    InvalidOnionPayload {
        /// The offending TLV type.
        typ: u64,
        /// Byte offset in the decrypted payload.
        offset: u16,
    },
    /// `mpp_timeout` (23).
    MppTimeout,
    /// `invalid_onion_blinding` (BADONION|PERM|24).
    InvalidOnionBlinding {
        /// SHA256 of the onion received.
        sha256_of_onion: [u8; 32],
    },
    /// A code this node does not know, with its data, kept so it can still be reported.
    Unknown {
        /// The failure code.
        code: u16,
        /// The bytes after the code.
        data: Vec<u8>,
    },
}

/// Why failure-message bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FailureDecodeError {
    /// Shorter than its code's layout.
    #[error("failure message for code {0:#06x} is truncated")]
    Truncated(u16),
    /// Fewer than 2 bytes: no code.
    #[error("failure message has no code")]
    NoCode,
}

impl FailureMessage {
    /// The 2-byte failure code including its flags.
    pub fn code(&self) -> u16 {
        use FailureMessage::*;
        match self {
            InvalidRealm => PERM | 1,
            TemporaryNodeFailure => NODE | 2,
            PermanentNodeFailure => PERM | NODE | 2,
            RequiredNodeFeatureMissing => PERM | NODE | 3,
            InvalidOnionVersion { .. } => BADONION | PERM | 4,
            InvalidOnionHmac { .. } => BADONION | PERM | 5,
            InvalidOnionKey { .. } => BADONION | PERM | 6,
            TemporaryChannelFailure { .. } => UPDATE | 7,
            PermanentChannelFailure => PERM | 8,
            RequiredChannelFeatureMissing => PERM | 9,
            UnknownNextPeer => PERM | 10,
            AmountBelowMinimum { .. } => UPDATE | 11,
            FeeInsufficient { .. } => UPDATE | 12,
            IncorrectCltvExpiry { .. } => UPDATE | 13,
            ExpiryTooSoon { .. } => UPDATE | 14,
            IncorrectOrUnknownPaymentDetails { .. } => PERM | 15,
            FinalIncorrectCltvExpiry { .. } => 18,
            FinalIncorrectHtlcAmount { .. } => 19,
            ChannelDisabled { .. } => UPDATE | 20,
            ExpiryTooFar => 21,
            InvalidOnionPayload { .. } => PERM | 22,
            MppTimeout => 23,
            InvalidOnionBlinding { .. } => BADONION | PERM | 24,
            Unknown { code, .. } => *code,
        }
    }

    /// True for permanent failures (the PERM flag).
    pub fn is_permanent(&self) -> bool {
        self.code() & PERM != 0
    }

    /// True for node failures (the NODE flag).
    pub fn is_node_failure(&self) -> bool {
        self.code() & NODE != 0
    }

    /// True for BADONION failures, which go back in `update_fail_malformed_htlc`.
    pub fn is_bad_onion(&self) -> bool {
        self.code() & BADONION != 0
    }

    /// The enclosed `channel_update`, if this failure carries one.
    pub fn channel_update(&self) -> Option<&[u8]> {
        use FailureMessage::*;
        match self {
            TemporaryChannelFailure { channel_update }
            | AmountBelowMinimum { channel_update, .. }
            | FeeInsufficient { channel_update, .. }
            | IncorrectCltvExpiry { channel_update, .. }
            | ExpiryTooSoon { channel_update }
            | ChannelDisabled { channel_update, .. } => Some(channel_update),
            _ => None,
        }
    }

    /// Serializes: 2-byte code, then the code's fields.
    pub fn encode(&self) -> Vec<u8> {
        use FailureMessage::*;
        let mut out = Vec::with_capacity(2 + 64);
        out.extend_from_slice(&self.code().to_be_bytes());
        let put_update = |out: &mut Vec<u8>, u: &[u8]| {
            let len = u16::try_from(u.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&u[..usize::from(len)]);
        };
        match self {
            InvalidOnionVersion { sha256_of_onion }
            | InvalidOnionHmac { sha256_of_onion }
            | InvalidOnionKey { sha256_of_onion }
            | InvalidOnionBlinding { sha256_of_onion } => out.extend_from_slice(sha256_of_onion),
            TemporaryChannelFailure { channel_update } | ExpiryTooSoon { channel_update } => {
                put_update(&mut out, channel_update)
            }
            AmountBelowMinimum {
                htlc_msat,
                channel_update,
            }
            | FeeInsufficient {
                htlc_msat,
                channel_update,
            } => {
                out.extend_from_slice(&htlc_msat.to_be_bytes());
                put_update(&mut out, channel_update);
            }
            IncorrectCltvExpiry {
                cltv_expiry,
                channel_update,
            } => {
                out.extend_from_slice(&cltv_expiry.to_be_bytes());
                put_update(&mut out, channel_update);
            }
            IncorrectOrUnknownPaymentDetails { htlc_msat, height } => {
                out.extend_from_slice(&htlc_msat.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
            }
            FinalIncorrectCltvExpiry { cltv_expiry } => {
                out.extend_from_slice(&cltv_expiry.to_be_bytes())
            }
            FinalIncorrectHtlcAmount { incoming_htlc_amt } => {
                out.extend_from_slice(&incoming_htlc_amt.to_be_bytes())
            }
            ChannelDisabled {
                disabled_flags,
                channel_update,
            } => {
                out.extend_from_slice(&disabled_flags.to_be_bytes());
                put_update(&mut out, channel_update);
            }
            InvalidOnionPayload { typ, offset } => {
                write_bigsize(*typ, &mut out);
                out.extend_from_slice(&offset.to_be_bytes());
            }
            Unknown { data, .. } => out.extend_from_slice(data),
            InvalidRealm
            | TemporaryNodeFailure
            | PermanentNodeFailure
            | RequiredNodeFeatureMissing
            | PermanentChannelFailure
            | RequiredChannelFeatureMissing
            | UnknownNextPeer
            | ExpiryTooFar
            | MppTimeout => {}
        }
        out
    }

    /// Decodes a failure message. Trailing bytes (a failure TLV extension) are ignored; an
    /// unknown code becomes [`FailureMessage::Unknown`].
    pub fn decode(bytes: &[u8]) -> Result<Self, FailureDecodeError> {
        use FailureMessage::*;
        let mut r = Reader::new(bytes);
        let code = r.u16().map_err(|_| FailureDecodeError::NoCode)?;
        let t = |_| FailureDecodeError::Truncated(code);
        let msg = match code {
            c if c == PERM | 1 => InvalidRealm,
            c if c == NODE | 2 => TemporaryNodeFailure,
            c if c == PERM | NODE | 2 => PermanentNodeFailure,
            c if c == PERM | NODE | 3 => RequiredNodeFeatureMissing,
            c if c == BADONION | PERM | 4 => InvalidOnionVersion {
                sha256_of_onion: r.array32().map_err(t)?,
            },
            c if c == BADONION | PERM | 5 => InvalidOnionHmac {
                sha256_of_onion: r.array32().map_err(t)?,
            },
            c if c == BADONION | PERM | 6 => InvalidOnionKey {
                sha256_of_onion: r.array32().map_err(t)?,
            },
            c if c == UPDATE | 7 => TemporaryChannelFailure {
                channel_update: r.u16_prefixed().map_err(t)?.to_vec(),
            },
            c if c == PERM | 8 => PermanentChannelFailure,
            c if c == PERM | 9 => RequiredChannelFeatureMissing,
            c if c == PERM | 10 => UnknownNextPeer,
            c if c == UPDATE | 11 => AmountBelowMinimum {
                htlc_msat: r.u64().map_err(t)?,
                channel_update: r.u16_prefixed().map_err(t)?.to_vec(),
            },
            c if c == UPDATE | 12 => FeeInsufficient {
                htlc_msat: r.u64().map_err(t)?,
                channel_update: r.u16_prefixed().map_err(t)?.to_vec(),
            },
            c if c == UPDATE | 13 => IncorrectCltvExpiry {
                cltv_expiry: r.u32().map_err(t)?,
                channel_update: r.u16_prefixed().map_err(t)?.to_vec(),
            },
            c if c == UPDATE | 14 => ExpiryTooSoon {
                channel_update: r.u16_prefixed().map_err(t)?.to_vec(),
            },
            c if c == PERM | 15 => IncorrectOrUnknownPaymentDetails {
                htlc_msat: r.u64().map_err(t)?,
                height: r.u32().map_err(t)?,
            },
            18 => FinalIncorrectCltvExpiry {
                cltv_expiry: r.u32().map_err(t)?,
            },
            19 => FinalIncorrectHtlcAmount {
                incoming_htlc_amt: r.u64().map_err(t)?,
            },
            c if c == UPDATE | 20 => ChannelDisabled {
                disabled_flags: r.u16().map_err(t)?,
                channel_update: r.u16_prefixed().map_err(t)?.to_vec(),
            },
            21 => ExpiryTooFar,
            c if c == PERM | 22 => {
                let (typ, n) = read_bigsize(r.rest()).map_err(t)?;
                r.take(n).map_err(t)?;
                InvalidOnionPayload {
                    typ,
                    offset: r.u16().map_err(t)?,
                }
            }
            23 => MppTimeout,
            c if c == BADONION | PERM | 24 => InvalidOnionBlinding {
                sha256_of_onion: r.array32().map_err(t)?,
            },
            code => Unknown {
                code,
                data: r.rest().to_vec(),
            },
        };
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<FailureMessage> {
        use FailureMessage::*;
        let u = vec![1u8, 2, 3];
        vec![
            InvalidRealm,
            TemporaryNodeFailure,
            PermanentNodeFailure,
            RequiredNodeFeatureMissing,
            InvalidOnionVersion {
                sha256_of_onion: [1; 32],
            },
            InvalidOnionHmac {
                sha256_of_onion: [2; 32],
            },
            InvalidOnionKey {
                sha256_of_onion: [3; 32],
            },
            TemporaryChannelFailure {
                channel_update: u.clone(),
            },
            PermanentChannelFailure,
            RequiredChannelFeatureMissing,
            UnknownNextPeer,
            AmountBelowMinimum {
                htlc_msat: 5,
                channel_update: u.clone(),
            },
            FeeInsufficient {
                htlc_msat: 6,
                channel_update: u.clone(),
            },
            IncorrectCltvExpiry {
                cltv_expiry: 7,
                channel_update: u.clone(),
            },
            ExpiryTooSoon {
                channel_update: u.clone(),
            },
            IncorrectOrUnknownPaymentDetails {
                htlc_msat: 8,
                height: 9,
            },
            FinalIncorrectCltvExpiry { cltv_expiry: 10 },
            FinalIncorrectHtlcAmount {
                incoming_htlc_amt: 11,
            },
            ChannelDisabled {
                disabled_flags: 0,
                channel_update: u,
            },
            ExpiryTooFar,
            InvalidOnionPayload {
                typ: 300,
                offset: 12,
            },
            MppTimeout,
            InvalidOnionBlinding {
                sha256_of_onion: [4; 32],
            },
            Unknown {
                code: 0x0063,
                data: vec![9, 9],
            },
        ]
    }

    #[test]
    fn codes_match_bolt4() {
        assert_eq!(
            FailureMessage::IncorrectOrUnknownPaymentDetails {
                htlc_msat: 0,
                height: 0
            }
            .code(),
            0x400f
        );
        assert_eq!(FailureMessage::TemporaryNodeFailure.code(), 0x2002);
        assert_eq!(
            FailureMessage::InvalidOnionHmac {
                sha256_of_onion: [0; 32]
            }
            .code(),
            0xc005
        );
        assert_eq!(FailureMessage::MppTimeout.code(), 23);
        assert_eq!(FailureMessage::UnknownNextPeer.code(), 0x400a);
    }

    #[test]
    fn round_trip_every_variant() {
        for m in all() {
            assert_eq!(FailureMessage::decode(&m.encode()), Ok(m.clone()), "{m:?}");
            let enc = m.encode();
            // Every strict prefix that cuts into a field fails or yields a different message.
            for cut in 0..enc.len() {
                if let Ok(d) = FailureMessage::decode(&enc[..cut]) {
                    assert_ne!(d, m);
                }
            }
        }
    }
}
