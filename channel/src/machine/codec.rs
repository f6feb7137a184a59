//! The persistence format of [`Record`]: [`Record::encode`] / [`Record::decode`].
//!
//! A record is stored in a binary envelope (`crate::envelope`): the version byte
//! [`RECORD_FORMAT_VERSION`], then the record in postcard over the serde derives of
//! [`Record`] and what it carries — keys as their 65-byte uncompressed form ([`key_hex`]:
//! read back without a square root), signatures DER, the onion as its 1,366 bytes, short
//! channel ids as `u64`, every other byte string as bytes. [`Record::decode`] reads it and
//! every older version, and refuses any other with [`RecordCodecError::UnsupportedVersion`]
//! (an old node refuses a newer record rather than misreading it: a build before version 3
//! reads only JSON, and a binary record is no JSON document).
//!
//! Versions:
//! - **3** (current): binary, the same records as version 2.
//! - **2**: one UTF-8 JSON object `{"v":2,"record":<record>}`: keys as hex strings (a key
//!   uncompressed, older records compressed; both are read), signatures as DER hex,
//!   outpoints as `"txid:vout"`, scripts as hex, the onion as a 2,732-character hex string,
//!   short channel ids as `"HEIGHTxINDEXxVOUT"`, other byte arrays (payment hashes and
//!   preimages included) as arrays of numbers. `Closed` carries a typed
//!   [`super::CloseReason`] (`{"Closed":{"MutualClose":{"fee_sat":1263}}}`);
//!   `FundingConfirmed` is `{"height":h,"short_channel_id":"HxIxV"}` (the funding output
//!   was verified).
//! - **1**: JSON as version 2, except `{"Closed":"free text"}` and `{"FundingConfirmed":h}`.
//!   Decoded by rewriting those two to version 2: the text becomes
//!   [`super::CloseReason::Legacy`], the confirmation gets `short_channel_id: null` (it was
//!   never verified; the channel has no short channel id). Everything else is unchanged.
//!
//! Why binary: JSON made a payment's records ≈ 4× larger (the onion alone 2,732 characters
//! per added HTLC) and their encoding a visible share of a forwarding node's CPU.
//!
//! Must never: panic or allocate beyond the input's size on garbage bytes (a stored file may
//! be corrupt); do I/O (the node writes the bytes where it wants).

use fulmen_wire::msgs::{OnionPacket, ONION_PACKET_LEN};
use serde::Deserialize;
use serde_json::Value;

use super::state::Record;
use crate::envelope::{self, Envelope, Read};

/// Current version of the record persistence format (the version byte).
pub const RECORD_FORMAT_VERSION: u32 = 3;

/// The oldest version [`Record::decode`] still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// The last version written as JSON.
const LAST_JSON_VERSION: u32 = 2;

/// Why stored record bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordCodecError {
    /// Not a well-formed record (bad JSON or bytes, missing or bad field, truncated).
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Written by an unknown version of the format.
    #[error("unsupported record format version {0}")]
    UnsupportedVersion(u32),
}

/// Whether stored record bytes — a channel record or a monitor record — are in one of the
/// JSON formats written before the binary one (channel versions 1–2, monitor versions 1–3):
/// still read, but slower to decode and ≈ 3–4× larger, so worth rewriting once.
pub fn is_json_record(bytes: &[u8]) -> bool {
    envelope::is_json(bytes)
}

impl Record {
    /// The persistence bytes of this record (format version [`RECORD_FORMAT_VERSION`]).
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: postcard into a Vec errors only on a Serialize impl that errors or
        // writes a sequence of unknown length; Record's derives and helpers do neither.
        let bytes = envelope::write(RECORD_FORMAT_VERSION as u8, self);
        // tidy: allow-unwrap (infallible, see above)
        bytes.expect("record serialization is infallible")
    }

    /// Decode bytes written by [`Record::encode`] of this or any older format version.
    /// Never panics on garbage.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordCodecError> {
        if !envelope::is_json(bytes) {
            let read =
                envelope::read_binary::<Record>(bytes).map_err(RecordCodecError::Malformed)?;
            return match read {
                Read::Parsed(RECORD_FORMAT_VERSION, record) => Ok(record),
                Read::Unparsed(RECORD_FORMAT_VERSION, e) => Err(RecordCodecError::Malformed(e)),
                read => Err(RecordCodecError::UnsupportedVersion(read.version())),
            };
        }
        let malformed = |e: serde_json::Error| RecordCodecError::Malformed(e.to_string());
        let read = envelope::read_json::<Record>(bytes).map_err(RecordCodecError::Malformed)?;
        match read {
            Read::Parsed(LAST_JSON_VERSION, record) => Ok(record),
            Read::Unparsed(LAST_JSON_VERSION, e) => Err(RecordCodecError::Malformed(e)),
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

/// Serde helper for an optional short channel id: `"HEIGHTxINDEXxVOUT"` or `null` in JSON,
/// an optional `u64` in the binary form (used with `#[serde(with = ...)]`).
pub mod scid_text {
    use fulmen_wire::ShortChannelId;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as the text form (or the number), or `null`.
    pub fn serialize<S: Serializer>(
        scid: &Option<ShortChannelId>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match scid {
            Some(id) if s.is_human_readable() => s.serialize_some(&id.to_string()),
            Some(id) => s.serialize_some(&id.to_u64()),
            None => s.serialize_none(),
        }
    }

    /// Deserialize from the text form (or the number) or `null`; anything else is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<ShortChannelId>, D::Error> {
        if !d.is_human_readable() {
            return Ok(Option::<u64>::deserialize(d)?.map(ShortChannelId::from_u64));
        }
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(D::Error::custom))
            .transpose()
    }
}

/// Reads a byte string of the binary form and converts it with `convert` (`what` names the
/// value in errors). Shared by the binary arms of the serde helpers of both codecs.
pub(crate) fn bytes_with<'de, D, T>(
    d: D,
    what: &'static str,
    convert: impl FnOnce(&[u8]) -> Option<T>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Bytes<F>(&'static str, F);
    impl<T, F: FnOnce(&[u8]) -> Option<T>> serde::de::Visitor<'_> for Bytes<F> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "the bytes of {}", self.0)
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<T, E> {
            let what = self.0;
            (self.1)(v).ok_or_else(|| E::custom(format!("{} bytes: not {what}", v.len())))
        }
    }
    d.deserialize_bytes(Bytes(what, convert))
}

/// Serde helper for a public key in a record: written as its 65-byte uncompressed form (hex
/// in JSON, raw bytes in the binary form), read from either form (used with
/// `#[serde(with = ...)]`). A compressed key costs a field square root to parse (≈ 5 µs; a
/// channel's records and monitor hold dozens, a thousand channels' tens of thousands at
/// every start), an uncompressed one only a check that the point is on the curve. Readers
/// of older records, and older readers of these, take both forms (`PublicKey`'s own
/// `Deserialize`).
pub mod key_hex {
    use bitcoin::hex::DisplayHex as _;
    use bitcoin::secp256k1::PublicKey;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize the uncompressed form (its hex in JSON).
    pub fn serialize<S: Serializer>(key: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
        let raw = key.serialize_uncompressed();
        if s.is_human_readable() {
            s.serialize_str(&raw.to_lower_hex_string())
        } else {
            s.serialize_bytes(&raw)
        }
    }

    /// Deserialize from the compressed or the uncompressed form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        if d.is_human_readable() {
            PublicKey::deserialize(d)
        } else {
            super::bytes_with(d, "a public key", |b| PublicKey::from_slice(b).ok())
        }
    }
}

/// [`key_hex`] for an optional key (`null` when absent).
pub mod opt_key_hex {
    use bitcoin::secp256k1::PublicKey;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// A key written through [`super::key_hex`].
    struct Key(PublicKey);

    impl Serialize for Key {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::key_hex::serialize(&self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::key_hex::deserialize(d).map(Key)
        }
    }

    /// Serialize as [`super::key_hex`] does, or `null`.
    pub fn serialize<S: Serializer>(key: &Option<PublicKey>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => s.serialize_some(&Key(*k)),
            None => s.serialize_none(),
        }
    }

    /// Deserialize either form, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PublicKey>, D::Error> {
        Ok(Option::<Key>::deserialize(d)?.map(|k| k.0))
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
/// `2 * ONION_PACKET_LEN` characters in JSON, its `ONION_PACKET_LEN` bytes in the binary form
/// (used with `#[serde(with = ...)]`).
pub mod onion_hex {
    use super::*;
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    /// Serialize the onion (as hex in JSON).
    pub fn serialize<S: Serializer>(onion: &OnionPacket, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_bytes(&onion.0[..]);
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(2 * ONION_PACKET_LEN);
        for b in onion.0.iter() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s.serialize_str(&out)
    }

    /// Deserialize the onion; any other length, or a non-hex digit in JSON, is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OnionPacket, D::Error> {
        if !d.is_human_readable() {
            return bytes_with(d, "an onion", |b| {
                let raw: [u8; ONION_PACKET_LEN] = b.try_into().ok()?;
                Some(OnionPacket(Box::new(raw)))
            });
        }
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

    /// A record as version 2 wrote it (JSON): what older stores hold.
    fn v2(r: &Record) -> String {
        String::from_utf8(envelope::write_json(2, r).unwrap()).unwrap()
    }

    #[test]
    fn add_record_size_is_bounded() {
        // The heaviest record: the onion's bytes plus a few dozen (2,900 bytes in JSON).
        let n = samples()[0].encode().len();
        assert!(
            (ONION_PACKET_LEN..ONION_PACKET_LEN + 64).contains(&n),
            "{n} bytes"
        );
        assert!(v2(&samples()[0]).len() > 2 * ONION_PACKET_LEN);
    }

    #[test]
    fn version_is_checked() {
        let bytes = Record::Reconnected.encode();
        assert_eq!(bytes.first(), Some(&3));
        for v in [0u8, 1, 2, 4, 99, 0xff] {
            let mut other = bytes.clone();
            other[0] = v;
            assert_eq!(
                Record::decode(&other),
                Err(RecordCodecError::UnsupportedVersion(u32::from(v)))
            );
        }
        // A JSON envelope of a version that was never JSON (or never existed) is refused.
        let s = v2(&Record::Reconnected);
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
    fn bytes_after_a_record_are_refused() {
        for r in samples() {
            let mut bytes = r.encode();
            bytes.push(0);
            assert!(matches!(
                Record::decode(&bytes),
                Err(RecordCodecError::Malformed(_))
            ));
        }
    }

    #[test]
    fn version_2_records_still_decode() {
        for r in samples() {
            let doc = v2(&r);
            assert_eq!(Record::decode(doc.as_bytes()), Ok(r), "{doc}");
        }
    }

    #[test]
    fn typed_records_have_the_documented_shape() {
        // The JSON shapes version 2 wrote (and that are still read).
        let text = |r: &Record| v2(r);
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
        // The binary form: the version byte, the variant's index, its fields.
        assert_eq!(
            Record::Closed(CloseReason::MutualClose { fee_sat: 1263 }).encode(),
            samples()[14].encode()
        );
        let scid = ShortChannelId::new(812, 3, 1).unwrap().to_u64();
        let mut confirmed = samples()[11].encode();
        let tail = confirmed.split_off(confirmed.len() - 9);
        assert_eq!(tail[0], 1, "Some");
        assert_eq!(postcard::from_bytes::<u64>(&tail[1..]), Ok(scid));
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
            let v1 = v2(&r).replacen("\"v\":2", "\"v\":1", 1);
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
        // JSON (version 2): the hex of either form.
        let text = v2(&r);
        let long = pk.serialize_uncompressed().to_lower_hex_string();
        assert!(text.contains(&format!("\"{long}\"")), "{text}");
        let short = text.replace(&long, &pk.serialize().to_lower_hex_string());
        assert_eq!(Record::decode(short.as_bytes()), Ok(r.clone()));
        assert_eq!(Record::decode(text.as_bytes()), Ok(r.clone()));
        let cut = text.replace(&long, &long[..100]);
        assert!(Record::decode(cut.as_bytes()).is_err());
        let off = text.replace(&long, &format!("04{}", "11".repeat(64)));
        assert!(Record::decode(off.as_bytes()).is_err());
        // Binary: the 65 bytes after their length; the 33-byte form is read too.
        let bytes = r.encode();
        let key_at = bytes.len() - 66;
        assert_eq!(bytes[key_at], 65);
        assert_eq!(bytes[key_at + 1..], pk.serialize_uncompressed());
        let mut compressed = bytes[..key_at].to_vec();
        compressed.push(33);
        compressed.extend_from_slice(&pk.serialize());
        assert_eq!(Record::decode(&compressed), Ok(r.clone()));
        assert_eq!(Record::decode(&bytes), Ok(r));
        // Any other length, or a point off the curve, is refused.
        let mut odd = bytes[..key_at].to_vec();
        odd.push(32);
        odd.extend_from_slice(&pk.serialize()[1..]);
        assert!(Record::decode(&odd).is_err());
        let mut off = bytes[..=key_at].to_vec();
        off.push(4);
        off.extend_from_slice(&[0x11; 64]);
        assert!(Record::decode(&off).is_err());
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
        let s = v2(r);
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
        // Binary: the onion is the record's last field, its length a two-byte varint
        // (1366 = 0xd6 0x0a). One byte short, with its length saying so, is refused.
        let bytes = r.encode();
        let at = bytes.len() - ONION_PACKET_LEN - 2;
        assert_eq!(bytes[at..at + 2], [0xd6, 0x0a]);
        let mut short = bytes[..at].to_vec();
        short.extend_from_slice(&[0xd5, 0x0a]);
        short.extend_from_slice(&bytes[at + 2..bytes.len() - 1]);
        assert!(matches!(
            Record::decode(&short),
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
