//! The persistence format of [`Record`]: [`Record::encode`] / [`Record::decode`].
//!
//! A record is stored as one UTF-8 JSON object `{"v":1,"record":<record>}` (serde_json over
//! the serde derives of [`Record`] and what it carries). `v` is the format version:
//! [`RECORD_FORMAT_VERSION`]; a decoder refuses any other version with
//! [`RecordCodecError::UnsupportedVersion`], so the format can evolve by bumping it and
//! keeping a reader for the old one. Field encodings: secp256k1 keys and signatures as hex
//! strings (compressed key, DER signature), outpoints as `"txid:vout"`, scripts as hex, the
//! 1366-byte onion as a 2732-char hex string, other byte arrays as JSON arrays of numbers.
//!
//! Must never: panic or allocate beyond the input's size on garbage bytes (a stored file may
//! be corrupt); do I/O (the node writes the bytes where it wants).

use fulmen_wire::msgs::{OnionPacket, ONION_PACKET_LEN};
use serde::{Deserialize, Serialize};

use super::state::Record;

/// Current version of the record persistence format (the `v` field).
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// Why stored record bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordCodecError {
    /// Not a well-formed record document (bad JSON, missing or bad field, truncated).
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Written by an unknown version of the format.
    #[error("unsupported record format version {0}")]
    UnsupportedVersion(u32),
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    v: u32,
    record: &'a Record,
}

#[derive(Deserialize)]
struct Head {
    v: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[allow(dead_code)]
    v: u32,
    record: Record,
}

impl Record {
    /// The persistence bytes of this record (format version [`RECORD_FORMAT_VERSION`]).
    pub fn encode(&self) -> Vec<u8> {
        let env = EnvelopeRef {
            v: RECORD_FORMAT_VERSION,
            record: self,
        };
        // Cannot fail: serde_json to a Vec errors only on a map key that is not a string or an
        // integer, or on a Serialize impl that errors; Record's maps are keyed by u64 and
        // `onion_hex` only writes a string.
        // tidy: allow-unwrap (infallible, see above)
        serde_json::to_vec(&env).expect("record serialization is infallible")
    }

    /// Decode bytes written by [`Record::encode`]. Never panics on garbage.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordCodecError> {
        let head: Head = serde_json::from_slice(bytes)
            .map_err(|e| RecordCodecError::Malformed(e.to_string()))?;
        if head.v != RECORD_FORMAT_VERSION {
            return Err(RecordCodecError::UnsupportedVersion(head.v));
        }
        let env: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| RecordCodecError::Malformed(e.to_string()))?;
        Ok(env.record)
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Serde helper for the fixed-size onion: a lowercase hex string of exactly
/// `2 * ONION_PACKET_LEN` characters (used with `#[serde(with = ...)]`).
pub mod onion_hex {
    use super::*;
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    /// Serialize the onion as hex.
    pub fn serialize<S: Serializer>(onion: &OnionPacket, s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(2 * ONION_PACKET_LEN);
        for b in onion.0.iter() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s.serialize_str(&out)
    }

    /// Deserialize the onion from hex; any other length or a non-hex digit is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OnionPacket, D::Error> {
        let s = String::deserialize(d)?;
        let raw = s.as_bytes();
        if raw.len() != 2 * ONION_PACKET_LEN {
            return Err(D::Error::custom(format!(
                "onion: {} hex chars, expected {}",
                raw.len(),
                2 * ONION_PACKET_LEN
            )));
        }
        let mut buf = Box::new([0u8; ONION_PACKET_LEN]);
        for (out, pair) in buf.iter_mut().zip(raw.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [h, l] => (hex_digit(*h), hex_digit(*l)),
                _ => (None, None),
            };
            match (hi, lo) {
                (Some(h), Some(l)) => *out = (h << 4) | l,
                _ => return Err(D::Error::custom("onion: not hex")),
            }
        }
        Ok(OnionPacket(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::state::{HtlcInfo, Update};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use bitcoin::{OutPoint, ScriptBuf};
    use proptest::prelude::*;

    fn samples() -> Vec<Record> {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pk = sk.public_key(&secp);
        let msg = bitcoin::secp256k1::Message::from_digest([9u8; 32]);
        let sig = secp.sign_ecdsa(&msg, &sk);
        let mut onion = [0u8; ONION_PACKET_LEN];
        for (i, b) in onion.iter_mut().enumerate() {
            *b = (i * 31 % 256) as u8;
        }
        vec![
            Record::LocalUpdate(Update::Add {
                id: 3,
                htlc: HtlcInfo {
                    amount_msat: 5_000,
                    payment_hash: [1u8; 32],
                    cltv_expiry: 700_000,
                },
                onion: OnionPacket(Box::new(onion)),
            }),
            Record::RemoteUpdate(Update::Fail {
                id: 1,
                reason: vec![1, 2, 3],
            }),
            Record::RemoteUpdate(Update::FailMalformed {
                id: 2,
                sha256_of_onion: [4u8; 32],
                failure_code: 0x8000 | 5,
            }),
            Record::LocalUpdate(Update::Fee(2_500)),
            Record::ReceivedCommitment {
                sig,
                htlc_sigs: vec![sig, sig],
            },
            Record::ReceivedRevocation {
                secret: [5u8; 32],
                next_point: pk,
            },
            Record::FundingOutpoint(OutPoint::null()),
            Record::ShutdownSent(ScriptBuf::from_bytes(vec![0, 20, 1, 2])),
            Record::Closed("because \"quoted\" ✓".into()),
            Record::Reconnected,
        ]
    }

    #[test]
    fn samples_round_trip() {
        for r in samples() {
            let bytes = r.encode();
            assert_eq!(Record::decode(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn add_record_size_is_bounded() {
        // The heaviest record: 2732 hex chars of onion plus a small envelope.
        let n = samples()[0].encode().len();
        assert!((2 * ONION_PACKET_LEN..3000).contains(&n), "{n} bytes");
    }

    #[test]
    fn version_is_checked() {
        let bytes = Record::Reconnected.encode();
        let s = String::from_utf8(bytes).unwrap();
        assert!(s.starts_with("{\"v\":1,"), "{s}");
        let other = s.replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(
            Record::decode(other.as_bytes()),
            Err(RecordCodecError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn bad_onion_refused() {
        let r = &samples()[0];
        let s = String::from_utf8(r.encode()).unwrap();
        // Non-hex digit inside the onion string.
        let i = s.find("\"onion\":\"").unwrap() + 9;
        let mut bad = s.clone().into_bytes();
        bad[i + 10] = b'z';
        assert!(matches!(
            Record::decode(&bad),
            Err(RecordCodecError::Malformed(_))
        ));
        // One byte short.
        let mut short = s.clone();
        short.replace_range(i..i + 2, "");
        assert!(matches!(
            Record::decode(short.as_bytes()),
            Err(RecordCodecError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn truncated_never_decodes(which in 0usize..10, cut in 0usize..4000) {
            let bytes = samples()[which].encode();
            let cut = cut % bytes.len();
            prop_assert!(Record::decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Record::decode(&bytes);
        }

        #[test]
        fn mutated_never_panics(which in 0usize..10, pos in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = samples()[which].encode();
            let p = pos % bytes.len();
            bytes[p] = byte;
            if let Ok(r) = Record::decode(&bytes) {
                // Whatever decodes re-encodes and decodes to the same record.
                prop_assert_eq!(Record::decode(&r.encode()).unwrap(), r);
            }
        }
    }
}
