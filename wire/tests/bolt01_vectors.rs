//! BOLT 1 test vectors from `testdata/vectors/bolt01-tlv.json`: BigSize, TLV decoding
//! successes and failures in the spec's n1/n2 namespaces, stream-level failures, message
//! extensions on `init`, and minimal signed integers. Counts every vector it checks (111).
//!
//! Everything decodes through the product: BigSize through [`Reader::bigsize`], streams
//! through [`TlvStream::decode`], record values through the wire crate's `TlvValue` impls,
//! truncated-integer decoder and [`Reader`]. Every failure vector must fail with the error
//! its spec reason names (e.g. "not minimally encoded length" is `NonCanonicalBigSize` from
//! the stream decoder, "duplicate TLV type" is `TlvNotIncreasing` with equal types, a short
//! `tlv3` is `UnexpectedEof` from its value), not merely fail. The spec's two general rules
//! are checked over all pairs: each valid stream followed by each invalid one of the same
//! namespace fails (801 pairs), and each valid stream followed by a valid one whose types
//! are all higher decodes to the records of both (132 pairs).

use std::path::PathBuf;

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::codec::{
    decode_signed_minimal, decode_truncated, encode_signed_minimal, write_bigsize, DecodeError,
    Reader,
};
use fulmen_wire::tlv::{TlvStream, TlvValue, Tu64};
use fulmen_wire::Message;
use serde_json::Value;

fn vectors() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors/bolt01-tlv.json");
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap()
}

/// A decoded n1/n2 record, for comparison with the JSON `decoded` object.
#[derive(Debug, PartialEq)]
enum Rec {
    Amount(u64),
    Scid(u64),
    Tlv3(PublicKey, u64, u64),
    Cltv(u16),
    CltvExpiry(u32),
}

/// Where a stream was refused: by the product's TLV stream decoder, or by the product's
/// value decoder for one record.
#[derive(Debug)]
enum Failure {
    Stream(DecodeError),
    Value(u64, DecodeError),
}

/// Decodes a stream in namespace n1 or n2 with the product's decoders only: the record
/// layer is [`TlvStream::decode`]; values go through [`TlvValue`] impls (`Tu64`, `u64`
/// for a short channel id), [`decode_truncated`] and a [`Reader`] that must be consumed
/// exactly. This file adds no decoding logic of its own.
fn decode_ns(ns: &str, bytes: &[u8]) -> Result<Vec<Rec>, Failure> {
    let known: &[u64] = if ns == "n1" {
        &[1, 2, 3, 254]
    } else {
        &[0, 11]
    };
    let s = TlvStream::decode(bytes, |t| known.contains(&t)).map_err(Failure::Stream)?;
    let mut out = Vec::new();
    for r in &s.records {
        let v = &r.value[..];
        let rec = (|| {
            Ok(Some(match (ns, r.typ) {
                ("n1", 1) | ("n2", 0) => Rec::Amount(Tu64::from_value(v)?.0),
                ("n1", 2) => Rec::Scid(u64::from_value(v)?),
                ("n1", 3) => {
                    let mut rd = Reader::new(v);
                    let pk = PublicKey::from_value(rd.take(33)?)?;
                    let rec = Rec::Tlv3(pk, rd.u64()?, rd.u64()?);
                    rd.finish()?;
                    rec
                }
                ("n1", 254) => {
                    let mut rd = Reader::new(v);
                    let rec = Rec::Cltv(rd.u16()?);
                    rd.finish()?;
                    rec
                }
                ("n2", 11) => Rec::CltvExpiry(decode_truncated(v, 4)? as u32),
                _ => return Ok(None), // unknown odd: ignored
            }))
        })()
        .map_err(|e: DecodeError| Failure::Value(r.typ, e))?;
        out.extend(rec);
    }
    Ok(out)
}

/// Checks that a refusal is the one the spec's `reason` names (for this stream).
fn assert_reason(reason: &str, stream: &[u8], got: &Failure) {
    use DecodeError as E;
    use Failure::{Stream, Value};
    let ok = match reason {
        "type truncated" | "missing length" | "(length truncated)" => {
            matches!(got, Stream(E::UnexpectedEof { .. }))
        }
        "not minimally encoded type" | "not minimally encoded length" => {
            matches!(got, Stream(E::NonCanonicalBigSize))
        }
        "missing value" | "value truncated" => matches!(got, Stream(E::TlvLengthOverflow(_))),
        "unknown even type." | "unknown even field for `n1`s namespace." => {
            // The type is the stream's first BigSize.
            let typ = Reader::new(stream).bigsize().unwrap();
            matches!(got, Stream(E::UnknownEvenTlv(t)) if *t == typ)
        }
        r if r.contains("invalid ordering") => {
            matches!(got, Stream(E::TlvNotIncreasing { typ, prev }) if typ < prev)
        }
        r if r.starts_with("duplicate TLV type") => {
            matches!(got, Stream(E::TlvNotIncreasing { typ, prev }) if typ == prev)
        }
        // A tu64 longer than 8 bytes, or with a leading zero: the truncated-int rule.
        "greater than encoding length for `n1`s `tlv1`." => {
            matches!(got, Value(1, E::NonMinimalTruncatedInt))
        }
        "encoding for `n1`s `tlv1`s `amount_msat` is not minimal" => {
            matches!(got, Value(1, E::NonMinimalTruncatedInt))
        }
        // short_channel_id is exactly 8 bytes.
        "less than encoding length for `n1`s `tlv2`."
        | "greater than encoding length for `n1`s `tlv2`." => {
            matches!(got, Value(2, E::BadTlvLength { len, .. }) if *len != 8)
        }
        // point || u64 || u64, read field by field: short runs out, long leaves bytes.
        "less than encoding length for `n1`s `tlv3`." => {
            matches!(got, Value(3, E::UnexpectedEof { .. }))
        }
        "greater than encoding length for `n1`s `tlv3`." => {
            matches!(got, Value(3, E::TrailingBytes(_)))
        }
        "`n1`s `node_id` is not a valid point." => matches!(got, Value(3, E::InvalidPoint)),
        "less than encoding length for `n1`s `tlv4`." => {
            matches!(got, Value(254, E::UnexpectedEof { .. }))
        }
        "greater than encoding length for `n1`s `tlv4`." => {
            matches!(got, Value(254, E::TrailingBytes(_)))
        }
        other => panic!("no expected error for reason {other:?}"),
    };
    assert!(
        ok,
        "{}: reason {reason:?}, got {got:?}",
        hex::encode(stream)
    );
}

/// Highest and lowest record type of a valid stream (its first and last BigSize types).
fn type_range(bytes: &[u8]) -> Option<(u64, u64)> {
    let s = TlvStream::decode(bytes, |_| true).unwrap();
    Some((s.records.first()?.typ, s.records.last()?.typ))
}

fn namespaces(ns: &str) -> Vec<&'static str> {
    match ns {
        "n1" => vec!["n1"],
        "n2" => vec!["n2"],
        _ => vec!["n1", "n2"],
    }
}

fn expected(decoded: &Value) -> Option<Rec> {
    if decoded.is_null() {
        return None;
    }
    let v = &decoded["values"];
    Some(match decoded["record"].as_str().unwrap() {
        "tlv1" => Rec::Amount(v["amount_msat"].as_u64().unwrap()),
        "tlv2" => {
            let parts: Vec<u64> = v["scid"]
                .as_str()
                .unwrap()
                .split('x')
                .map(|p| p.parse().unwrap())
                .collect();
            Rec::Scid(parts[0] << 40 | parts[1] << 16 | parts[2])
        }
        "tlv3" => Rec::Tlv3(
            v["node_id"].as_str().unwrap().parse().unwrap(),
            v["amount_msat_1"].as_u64().unwrap(),
            v["amount_msat_2"].as_u64().unwrap(),
        ),
        "tlv4" => Rec::Cltv(v["cltv_delta"].as_u64().unwrap() as u16),
        other => panic!("unexpected record {other}"),
    })
}

#[test]
fn all_bolt01_vectors_pass() {
    let d = vectors();
    let mut count = 0usize;

    for v in d["bigsize_decoding"].as_array().unwrap() {
        let bytes = hex::decode(v["bytes"].as_str().unwrap()).unwrap();
        let mut r = Reader::new(&bytes);
        let got = r.bigsize();
        if let Some(reason) = v.get("exp_error") {
            let want_eof = reason.as_str().unwrap().ends_with("EOF");
            match got {
                Err(DecodeError::UnexpectedEof { .. }) if want_eof => {}
                Err(DecodeError::NonCanonicalBigSize) if !want_eof => {}
                other => panic!("{}: expected {reason}, got {other:?}", v["name"]),
            }
        } else {
            assert_eq!(got.unwrap(), v["value"].as_u64().unwrap(), "{}", v["name"]);
            r.finish().unwrap();
        }
        count += 1;
    }
    for v in d["bigsize_encoding"].as_array().unwrap() {
        let mut w = Vec::new();
        write_bigsize(v["value"].as_u64().unwrap(), &mut w);
        assert_eq!(
            hex::encode(w),
            v["bytes"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        count += 1;
    }

    let mut valid_streams: Vec<(String, Vec<u8>)> = Vec::new();
    for g in d["tlv_decoding_successes"].as_array().unwrap() {
        for v in g["vectors"].as_array().unwrap() {
            let bytes = hex::decode(v["stream_hex"].as_str().unwrap()).unwrap();
            for ns in namespaces(g["namespace"].as_str().unwrap()) {
                let recs = decode_ns(ns, &bytes)
                    .unwrap_or_else(|e| panic!("{ns} {}: {e:?}", v["stream_hex"]));
                if ns == "n1" {
                    assert_eq!(recs.into_iter().next(), expected(&v["decoded"]));
                }
                valid_streams.push((ns.to_string(), bytes.clone()));
            }
            count += 1;
        }
    }

    let mut invalid_streams: Vec<(String, Vec<u8>)> = Vec::new();
    let failures = d["tlv_decoding_failures"].as_array().unwrap().iter().chain(
        d["tlv_stream_decoding_failure"]["groups"]
            .as_array()
            .unwrap(),
    );
    for g in failures {
        for v in g["vectors"].as_array().unwrap() {
            let bytes = hex::decode(v["stream_hex"].as_str().unwrap()).unwrap();
            let reason = v["reason"].as_str().unwrap();
            for ns in namespaces(g["namespace"].as_str().unwrap()) {
                match decode_ns(ns, &bytes) {
                    Ok(recs) => panic!("{ns} {} should fail ({reason}): {recs:?}", v["stream_hex"]),
                    Err(e) => assert_reason(reason, &bytes, &e),
                }
                invalid_streams.push((ns.to_string(), bytes.clone()));
            }
            count += 1;
        }
    }

    // General rule 1: a valid stream followed by an invalid one fails.
    let mut appended_invalid = 0usize;
    for (ns, good) in &valid_streams {
        for (ns2, bad) in &invalid_streams {
            if ns != ns2 {
                continue;
            }
            let mut s = good.clone();
            s.extend_from_slice(bad);
            assert!(decode_ns(ns, &s).is_err(), "{ns} {good:02x?} + {bad:02x?}");
            appended_invalid += 1;
        }
    }
    // n1: 19 valid × 37 invalid; n2: 7 valid × 14 invalid.
    assert_eq!(appended_invalid, 801, "valid+invalid pairs");

    // General rule 2: a valid stream followed by a valid stream whose types are all higher
    // still decodes, to the records of both in order.
    let mut appended_valid = 0usize;
    for (ns, low) in &valid_streams {
        for (ns2, high) in &valid_streams {
            let (Some((_, low_last)), Some((high_first, _))) = (type_range(low), type_range(high))
            else {
                continue;
            };
            if ns != ns2 || high_first <= low_last {
                continue;
            }
            let mut s = low.clone();
            s.extend_from_slice(high);
            let mut want = decode_ns(ns, low).unwrap();
            want.extend(decode_ns(ns, high).unwrap());
            let got = decode_ns(ns, &s)
                .unwrap_or_else(|e| panic!("{ns} {low:02x?} + {high:02x?}: {e:?}"));
            assert_eq!(got, want, "{ns} {low:02x?} + {high:02x?}");
            appended_valid += 1;
        }
    }
    // Every ordered pair of non-empty valid streams in one namespace whose types ascend.
    assert_eq!(appended_valid, 132, "valid+valid pairs");

    for v in d["message_extension"]["valid"].as_array().unwrap() {
        let bytes = hex::decode(v["message_hex"].as_str().unwrap()).unwrap();
        let m = Message::decode(&bytes).unwrap();
        assert!(matches!(m, Message::Init(_)));
        assert_eq!(m.encode(), bytes, "init re-encodes byte for byte");
        count += 1;
    }
    for v in d["message_extension"]["invalid"].as_array().unwrap() {
        let bytes = hex::decode(v["message_hex"].as_str().unwrap()).unwrap();
        assert!(Message::decode(&bytes).is_err(), "{}", v["explanation"]);
        count += 1;
    }

    for v in d["signed_integers"].as_array().unwrap() {
        let val = v["value"].as_i64().unwrap();
        let bytes = hex::decode(v["bytes"].as_str().unwrap()).unwrap();
        assert_eq!(encode_signed_minimal(val), bytes, "{val}");
        assert_eq!(decode_signed_minimal(&bytes).unwrap(), val);
        count += 1;
    }

    // 18 + 8 BigSize, 19 TLV successes, 33 TLV failures + 5 stream failures,
    // 2 + 3 message extensions, 23 signed integers.
    assert_eq!(count, 111, "vector count changed");
    println!("BOLT 1 vectors passed: {count}");
}
