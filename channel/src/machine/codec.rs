//! The persistence format of [`Record`]: [`Record::encode`] / [`Record::decode`].
//!
//! A record is stored as one UTF-8 JSON object `{"v":2,"record":<record>}` (serde_json over
//! the serde derives of [`Record`] and what it carries). `v` is the format version:
//! [`Record::encode`] writes [`RECORD_FORMAT_VERSION`]; [`Record::decode`] reads it and
//! every older version, and refuses any other with [`RecordCodecError::UnsupportedVersion`]
//! (an old node refuses a newer record rather than misreading it). Field encodings:
//! secp256k1 keys and signatures as hex strings (a key uncompressed — [`key_hex`]: read back
//! without a square root; older records hold compressed keys, both are read — a signature
//! DER), outpoints
//! as `"txid:vout"`, scripts as hex, the 1366-byte onion as a 2732-char hex string, short
//! channel ids as `"HEIGHTxINDEXxVOUT"`, other byte arrays (payment hashes and preimages
//! included) as JSON arrays of numbers.
//!
//! Versions:
//! - **2** (current): `Closed` carries a typed [`super::CloseReason`]
//!   (`{"Closed":{"MutualClose":{"fee_sat":1263}}}`); `FundingConfirmed` is
//!   `{"height":h,"short_channel_id":"HxIxV"}` (the funding output was verified).
//! - **1**: the same records except `{"Closed":"free text"}` and `{"FundingConfirmed":h}`.
//!   Decoded by rewriting those two to version 2: the text becomes
//!   [`super::CloseReason::Legacy`], the confirmation gets `short_channel_id: null` (it was
//!   never verified; the channel has no short channel id). Everything else is unchanged.
//!
//! Must never: panic or allocate beyond the input's size on garbage bytes (a stored file may
//! be corrupt); do I/O (the node writes the bytes where it wants).

use fulmen_wire::msgs::{OnionPacket, ONION_PACKET_LEN};
use serde::Deserialize;
use serde_json::Value;

use super::state::Record;
use crate::envelope::{self, Envelope, Read};

/// Current version of the record persistence format (the `v` field).
pub const RECORD_FORMAT_VERSION: u32 = 2;

/// The oldest version [`Record::decode`] still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

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

impl Record {
    /// The persistence bytes of this record (format version [`RECORD_FORMAT_VERSION`]).
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: serde_json to a Vec errors only on a map key that is not a string or an
        // integer, or on a Serialize impl that errors; Record's maps are keyed by u64 and
        // `onion_hex` only writes a string.
        // tidy: allow-unwrap (infallible, see above)
        envelope::write(RECORD_FORMAT_VERSION, self).expect("record serialization is infallible")
    }

    /// Decode bytes written by [`Record::encode`] of this or any older format version.
    /// Never panics on garbage.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordCodecError> {
        let malformed = |e: serde_json::Error| RecordCodecError::Malformed(e.to_string());
        let read = envelope::read::<Record>(bytes).map_err(RecordCodecError::Malformed)?;
        match read {
            Read::Parsed(RECORD_FORMAT_VERSION, record) => Ok(record),
            Read::Unparsed(RECORD_FORMAT_VERSION, e) => Err(RecordCodecError::Malformed(e)),
            // Version 1 is read through its upgrade, whether or not it parsed as is.
            read if read.version() == 1 => {
                let mut doc: Value = serde_json::from_slice(bytes).map_err(malformed)?;
                if let Some(rec) = doc.get_mut("record") {
                    upgrade_v1(rec);
                }
                let env: Envelope<Record> = serde_json::from_value(doc).map_err(malformed)?;
                Ok(env.record)
            }
            read => Err(RecordCodecError::UnsupportedVersion(read.version())),
        }
    }
}

/// Rewrite a version 1 record in place into its version 2 form (see the module doc).
fn upgrade_v1(record: &mut Value) {
    let Value::Object(map) = record else {
        return;
    };
    if let Some(closed) = map.get_mut("Closed") {
        if let Value::String(text) = closed {
            let text = std::mem::take(text);
            *closed = serde_json::json!({ "Legacy": text });
        }
    }
    if let Some(conf) = map.get_mut("FundingConfirmed") {
        if conf.is_number() {
            let height = conf.take();
            *conf = serde_json::json!({ "height": height, "short_channel_id": null });
        }
    }
}

/// Serde helper for an optional short channel id: `"HEIGHTxINDEXxVOUT"` or `null` (used
/// with `#[serde(with = ...)]`).
pub mod scid_text {
    use fulmen_wire::ShortChannelId;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as the text form, or `null`.
    pub fn serialize<S: Serializer>(
        scid: &Option<ShortChannelId>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match scid {
            Some(id) => s.serialize_some(&id.to_string()),
            None => s.serialize_none(),
        }
    }

    /// Deserialize from the text form or `null`; anything else is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<ShortChannelId>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(D::Error::custom))
            .transpose()
    }
}

/// Serde helper for a public key in a record: written as the hex of its 65-byte uncompressed
/// form, read from either form (used with `#[serde(with = ...)]`). A compressed key costs a
/// field square root to parse (≈ 5 µs; a channel's records and monitor hold dozens, a
/// thousand channels' tens of thousands at every start), an uncompressed one only a check
/// that the point is on the curve. Readers of older records, and older readers of these,
/// take both forms (`PublicKey`'s own `Deserialize`).
pub mod key_hex {
    use bitcoin::hex::DisplayHex as _;
    use bitcoin::secp256k1::PublicKey;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as the uncompressed form's hex.
    pub fn serialize<S: Serializer>(key: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.serialize_uncompressed().to_lower_hex_string())
    }

    /// Deserialize from the hex of the compressed or the uncompressed form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        PublicKey::deserialize(d)
    }
}

/// [`key_hex`] for an optional key (`null` when absent).
pub mod opt_key_hex {
    use bitcoin::secp256k1::PublicKey;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as the uncompressed form's hex, or `null`.
    pub fn serialize<S: Serializer>(key: &Option<PublicKey>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => super::key_hex::serialize(k, s),
            None => s.serialize_none(),
        }
    }

    /// Deserialize from either form's hex, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PublicKey>, D::Error> {
        Option::<PublicKey>::deserialize(d)
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
    use crate::funding::FundingMismatch;
    use crate::machine::close::CloseReason;
    use crate::machine::state::{HtlcInfo, Update};
    use bitcoin::hex::DisplayHex as _;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use bitcoin::{OutPoint, ScriptBuf};
    use fulmen_htlc::{PaymentHash, PaymentPreimage};
    use fulmen_wire::ShortChannelId;
    use proptest::prelude::*;

    /// Number of [`samples`].
    const SAMPLES: usize = 15;

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
                    payment_hash: PaymentHash([1u8; 32]),
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
            Record::Closed(CloseReason::Legacy("because \"quoted\" ✓".into())),
            Record::Reconnected,
            Record::LocalUpdate(Update::Fulfill {
                id: 4,
                preimage: PaymentPreimage([8u8; 32]),
            }),
            Record::FundingConfirmed {
                height: 812,
                short_channel_id: ShortChannelId::new(812, 3, 1),
            },
            Record::FundingConfirmed {
                height: 700,
                short_channel_id: None,
            },
            Record::Closed(CloseReason::FundingMismatch(FundingMismatch::WrongScript {
                vout: 1,
                expected: ScriptBuf::from_bytes(vec![0, 32, 9]),
                found: ScriptBuf::from_bytes(vec![0, 20, 1]),
            })),
            Record::Closed(CloseReason::MutualClose { fee_sat: 1263 }),
        ]
    }

    #[test]
    fn samples_count() {
        assert_eq!(samples().len(), SAMPLES);
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
        assert!(s.starts_with("{\"v\":2,"), "{s}");
        for v in [0, 3, 99] {
            let other = s.replacen("\"v\":2", &format!("\"v\":{v}"), 1);
            assert_eq!(
                Record::decode(other.as_bytes()),
                Err(RecordCodecError::UnsupportedVersion(v))
            );
        }
    }

    #[test]
    fn typed_records_have_the_documented_shape() {
        let text = |r: &Record| String::from_utf8(r.encode()).unwrap();
        assert_eq!(
            text(&samples()[12]),
            r#"{"v":2,"record":{"FundingConfirmed":{"height":700,"short_channel_id":null}}}"#
        );
        assert!(text(&samples()[11]).contains(r#""short_channel_id":"812x3x1""#));
        assert_eq!(
            text(&samples()[14]),
            r#"{"v":2,"record":{"Closed":{"MutualClose":{"fee_sat":1263}}}}"#
        );
        // Payment hashes and preimages keep the version 1 shape: 32 numbers.
        assert!(text(&samples()[10]).contains(&format!(r#""preimage":[{}8]"#, "8,".repeat(31))));
        assert!(text(&samples()[0]).contains(&format!(r#""payment_hash":[{}1]"#, "1,".repeat(31))));
    }

    #[test]
    fn version_1_records_still_decode() {
        // Exactly as the version 1 encoder wrote them.
        let closed = br#"{"v":1,"record":{"Closed":"mutual close, fee 1263 sat"}}"#;
        assert_eq!(
            Record::decode(closed),
            Ok(Record::Closed(CloseReason::Legacy(
                "mutual close, fee 1263 sat".into()
            )))
        );
        let conf = br#"{"v":1,"record":{"FundingConfirmed":110}}"#;
        assert_eq!(
            Record::decode(conf),
            Ok(Record::FundingConfirmed {
                height: 110,
                short_channel_id: None
            })
        );
        // Every other record is unchanged between the versions.
        for r in samples() {
            let v2 = String::from_utf8(r.encode()).unwrap();
            let v1 = v2.replacen("\"v\":2", "\"v\":1", 1);
            assert_eq!(Record::decode(v1.as_bytes()), Ok(r), "{v1}");
        }
        // Version 1 documents stay strict: bad shapes are refused, never panic.
        for bad in [
            &br#"{"v":1,"record":{"FundingConfirmed":-1}}"#[..],
            br#"{"v":1,"record":{"FundingConfirmed":4294967296}}"#,
            br#"{"v":1,"record":{"Closed":7}}"#,
            br#"{"v":1,"record":{"Closed":"x"},"extra":1}"#,
            br#"{"v":1}"#,
            br#"{"v":1,"record":"Nope"}"#,
        ] {
            assert!(
                matches!(Record::decode(bad), Err(RecordCodecError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn keys_are_written_uncompressed_and_read_in_both_forms() {
        let pk = SecretKey::from_slice(&[7u8; 32])
            .unwrap()
            .public_key(&Secp256k1::new());
        let r = Record::ReceivedRevocation {
            secret: [3u8; 32],
            next_point: pk,
        };
        let text = String::from_utf8(r.encode()).unwrap();
        let long = pk.serialize_uncompressed().to_lower_hex_string();
        assert!(text.contains(&format!("\"{long}\"")), "{text}");
        // As records written before: the compressed form.
        let short = text.replace(&long, &pk.serialize().to_lower_hex_string());
        assert_eq!(Record::decode(short.as_bytes()), Ok(r.clone()));
        assert_eq!(Record::decode(text.as_bytes()), Ok(r));
        // Neither form's length, or a point off the curve, is refused.
        let cut = text.replace(&long, &long[..100]);
        assert!(Record::decode(cut.as_bytes()).is_err());
        let off = text.replace(&long, &format!("04{}", "11".repeat(64)));
        assert!(Record::decode(off.as_bytes()).is_err());
    }

    #[test]
    fn bad_short_channel_id_refused() {
        for scid in ["\"812x3\"", "\"16777216x0x0\"", "812", "\"\""] {
            let doc = format!(
                r#"{{"v":2,"record":{{"FundingConfirmed":{{"height":812,"short_channel_id":{scid}}}}}}}"#
            );
            assert!(
                matches!(
                    Record::decode(doc.as_bytes()),
                    Err(RecordCodecError::Malformed(_))
                ),
                "{doc}"
            );
        }
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
        fn truncated_never_decodes(which in 0usize..SAMPLES, cut in 0usize..4000) {
            let bytes = samples()[which].encode();
            let cut = cut % bytes.len();
            prop_assert!(Record::decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Record::decode(&bytes);
        }

        #[test]
        fn mutated_never_panics(which in 0usize..SAMPLES, pos in any::<usize>(), byte in any::<u8>()) {
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
