//! BOLT 1 test vectors from `testdata/vectors/bolt01-tlv.json`: BigSize, TLV decoding
//! successes and failures in the spec's n1/n2 namespaces, stream-level failures, message
//! extensions on `init`, and minimal signed integers. Counts every vector it checks.

use std::path::PathBuf;

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::codec::{
    decode_signed_minimal, decode_truncated, encode_signed_minimal, write_bigsize, DecodeError,
    Reader,
};
use fulmen_wire::tlv::TlvStream;
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

fn exact<const N: usize>(v: &[u8]) -> Result<[u8; N], DecodeError> {
    v.try_into().map_err(|_| DecodeError::BadTlvLength {
        typ: 0,
        len: v.len(),
    })
}

/// Decodes a stream in namespace n1 or n2, with the spec's record definitions.
fn decode_ns(ns: &str, bytes: &[u8]) -> Result<Vec<Rec>, DecodeError> {
    let known: &[u64] = if ns == "n1" {
        &[1, 2, 3, 254]
    } else {
        &[0, 11]
    };
    let s = TlvStream::decode(bytes, |t| known.contains(&t))?;
    let mut out = Vec::new();
    for r in &s.records {
        let v = &r.value[..];
        out.push(match (ns, r.typ) {
            ("n1", 1) | ("n2", 0) => Rec::Amount(decode_truncated(v, 8)?),
            ("n1", 2) => Rec::Scid(u64::from_be_bytes(exact::<8>(v)?)),
            ("n1", 3) => {
                let b = exact::<49>(v)?;
                let pk = PublicKey::from_slice(&b[..33]).map_err(|_| DecodeError::InvalidPoint)?;
                let mut rd = Reader::new(&b[33..]);
                Rec::Tlv3(pk, rd.u64()?, rd.u64()?)
            }
            ("n1", 254) => Rec::Cltv(u16::from_be_bytes(exact::<2>(v)?)),
            ("n2", 11) => Rec::CltvExpiry(decode_truncated(v, 4)? as u32),
            _ => continue, // unknown odd: ignored
        });
    }
    Ok(out)
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
        if v.get("exp_error").is_some() {
            assert!(got.is_err(), "{}", v["name"]);
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
                    .unwrap_or_else(|e| panic!("{ns} {}: {e}", v["stream_hex"]));
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
            for ns in namespaces(g["namespace"].as_str().unwrap()) {
                assert!(
                    decode_ns(ns, &bytes).is_err(),
                    "{ns} {} should fail: {}",
                    v["stream_hex"],
                    v["reason"]
                );
                invalid_streams.push((ns.to_string(), bytes.clone()));
            }
            count += 1;
        }
    }

    // General rule 1: a valid stream followed by an invalid one fails.
    for (ns, good) in &valid_streams {
        for (ns2, bad) in &invalid_streams {
            if ns != ns2 {
                continue;
            }
            let mut s = good.clone();
            s.extend_from_slice(bad);
            assert!(decode_ns(ns, &s).is_err(), "{ns} {good:02x?} + {bad:02x?}");
        }
    }

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
