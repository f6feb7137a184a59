//! Our BOLT 11 validation ([`parse_invoice`], which checks the rules itself instead of
//! through `lightning-invoice`'s `Bolt11Invoice::from_signed`) against `lightning-invoice`:
//! on invoices with any number of `p`, `d`/`h` and `s` fields, with or without features
//! (known, unknown, odd, even), with amounts that are or are not whole millisatoshis, with a
//! correct, a wrong or no `n` field, both accept the same invoices, refuse the others with
//! the same error, and read the same fields.
//!
//! Deterministic: proptest's default seeded runner; no I/O.

use std::str::FromStr;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use fulmen_htlc::invoice::{parse_invoice, InvoiceDescription, InvoiceError};
use lightning_invoice::{
    Bolt11Invoice, Bolt11InvoiceDescriptionRef, Currency, Description, ExpiryTime,
    MinFinalCltvExpiryDelta, ParseOrSemanticError, PayeePubKey, PositiveTimestamp,
    RawBolt11Invoice, RawDataPart, RawHrp, RawTaggedField, Sha256, SiPrefix, TaggedField,
};
use lightning_types::features::Bolt11InvoiceFeatures;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Which `n` field the invoice carries.
#[derive(Debug, Clone, Copy)]
enum PayeeField {
    None,
    Signer,
    Other,
}

#[derive(Debug, Clone)]
struct Shape {
    hashes: usize,
    descriptions: Vec<bool>,
    secrets: usize,
    features: Option<Vec<u8>>,
    pico: Option<u64>,
    payee: PayeeField,
    expiry: Option<u64>,
    cltv: Option<u64>,
    key: [u8; 32],
}

fn arb_shape() -> impl Strategy<Value = Shape> {
    // Mostly one of each required field, so that a good share of the invoices are valid.
    let count = || prop_oneof![3 => Just(1usize), 1 => 0usize..3];
    (
        count(),
        prop_oneof![
            3 => any::<bool>().prop_map(|d| vec![d]),
            1 => proptest::collection::vec(any::<bool>(), 0..3),
        ],
        count(),
        proptest::option::weighted(
            0.9,
            prop_oneof![
                // Payment secret required (bit 14) or optional (15), with var_onion (8).
                Just(vec![0x00, 0x41]),
                Just(vec![0x00, 0x81, 0x02]),
                proptest::collection::vec(any::<u8>(), 0..5),
            ],
        ),
        proptest::option::of(prop_oneof![
            (1u64..1_000_000_000).prop_map(|msat| msat * 10),
            1u64..10_000_000_000,
        ]),
        prop_oneof![
            Just(PayeeField::None),
            Just(PayeeField::Signer),
            Just(PayeeField::Other)
        ],
        proptest::option::of(0u64..100_000),
        proptest::option::of(0u64..1000),
        any::<[u8; 32]>().prop_filter("a valid key", |k| SecretKey::from_slice(k).is_ok()),
    )
        .prop_map(
            |(hashes, descriptions, secrets, features, pico, payee, expiry, cltv, key)| Shape {
                hashes,
                descriptions,
                secrets,
                features,
                pico,
                payee,
                expiry,
                cltv,
                key,
            },
        )
}

/// The invoice string of `shape`, signed by its key.
fn encode(shape: &Shape) -> (String, PublicKey) {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&shape.key).unwrap();
    let signer = PublicKey::from_secret_key(&secp, &key);
    let known = |f| RawTaggedField::KnownSemantics(f);
    let mut fields = Vec::new();
    for i in 0..shape.hashes {
        fields.push(known(TaggedField::PaymentHash(Sha256(
            sha256::Hash::from_byte_array([i as u8 + 1; 32]),
        ))));
    }
    for (i, direct) in shape.descriptions.iter().enumerate() {
        fields.push(known(if *direct {
            TaggedField::Description(Description::new(format!("coffee {i}")).unwrap())
        } else {
            TaggedField::DescriptionHash(Sha256(sha256::Hash::from_byte_array([9; 32])))
        }));
    }
    for i in 0..shape.secrets {
        fields.push(known(TaggedField::PaymentSecret(
            lightning_invoice::PaymentSecret([i as u8 + 5; 32]),
        )));
    }
    if let Some(le) = &shape.features {
        fields.push(known(TaggedField::Features(
            Bolt11InvoiceFeatures::from_le_bytes(le.clone()),
        )));
    }
    if let Some(x) = shape.expiry {
        fields.push(known(TaggedField::ExpiryTime(ExpiryTime::from_seconds(x))));
    }
    if let Some(c) = shape.cltv {
        fields.push(known(TaggedField::MinFinalCltvExpiryDelta(
            MinFinalCltvExpiryDelta(c),
        )));
    }
    let other = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[7; 32]).unwrap());
    match shape.payee {
        PayeeField::None => {}
        PayeeField::Signer => fields.push(known(TaggedField::PayeePubKey(PayeePubKey(signer)))),
        PayeeField::Other => fields.push(known(TaggedField::PayeePubKey(PayeePubKey(other)))),
    }
    let raw = RawBolt11Invoice {
        hrp: RawHrp {
            currency: Currency::Regtest,
            raw_amount: shape.pico,
            si_prefix: shape.pico.map(|_| SiPrefix::Pico),
        },
        data: RawDataPart {
            timestamp: PositiveTimestamp::from_unix_timestamp(1_700_000_000).unwrap(),
            tagged_fields: fields,
        },
    };
    let signed = raw
        .sign::<_, ()>(|msg| Ok(secp.sign_ecdsa_recoverable(msg, &key)))
        .unwrap();
    (signed.to_string(), signer)
}

/// The checks agree on `s`: same verdict, same error, same fields.
fn assert_agree(s: &str) {
    let ours = parse_invoice(s);
    let theirs = Bolt11Invoice::from_str(s);
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => {
            assert_eq!(ours.payee(), theirs.get_payee_pub_key());
            assert_eq!(ours.payment_hash().0, theirs.payment_hash().to_byte_array());
            assert_eq!(ours.payment_secret().0, theirs.payment_secret().0);
            assert_eq!(ours.amount_msat(), theirs.amount_milli_satoshis());
            assert_eq!(ours.expiry_secs(), theirs.expiry_time().as_secs());
            assert_eq!(
                ours.min_final_cltv_expiry_delta(),
                theirs.min_final_cltv_expiry_delta()
            );
            assert_eq!(
                ours.timestamp_secs(),
                theirs.duration_since_epoch().as_secs()
            );
            let description = match theirs.description() {
                Bolt11InvoiceDescriptionRef::Direct(d) => {
                    InvoiceDescription::Direct(d.as_inner().0.clone())
                }
                Bolt11InvoiceDescriptionRef::Hash(h) => {
                    InvoiceDescription::Hash(h.0.to_byte_array())
                }
            };
            assert_eq!(ours.description(), description);
            let fallbacks: Vec<String> = theirs
                .fallback_addresses()
                .iter()
                .map(|a| a.to_string())
                .collect();
            assert_eq!(ours.fallback_addresses(), fallbacks);
        }
        (Err(InvoiceError::Semantic(ours)), Err(ParseOrSemanticError::SemanticError(theirs))) => {
            assert_eq!(ours, theirs, "{s}")
        }
        (ours, theirs) => panic!("disagree on {s}: ours {ours:?}, lightning-invoice {theirs:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn our_checks_agree_with_lightning_invoice(shape in arb_shape()) {
        let (s, signer) = encode(&shape);
        assert_agree(&s);
        // A well-formed invoice names its signer (or the `n` it carries and verifies).
        if let Ok(inv) = parse_invoice(&s) {
            prop_assert_eq!(inv.payee(), signer);
        }
    }
}

#[test]
fn a_complete_invoice_is_accepted_by_both_and_a_wrong_n_by_neither() {
    let mut shape = Shape {
        hashes: 1,
        descriptions: vec![true],
        secrets: 1,
        features: Some(vec![0x00, 0x41]),
        pico: Some(20_000),
        payee: PayeeField::None,
        expiry: Some(600),
        cltv: Some(40),
        key: [3; 32],
    };
    for payee in [PayeeField::None, PayeeField::Signer] {
        shape.payee = payee;
        let (s, signer) = encode(&shape);
        assert_agree(&s);
        let inv = parse_invoice(&s).unwrap();
        assert_eq!((inv.payee(), inv.amount_msat()), (signer, Some(2_000)));
    }
    shape.payee = PayeeField::Other;
    let (s, _) = encode(&shape);
    assert_agree(&s);
    assert!(matches!(
        parse_invoice(&s),
        Err(InvoiceError::Semantic(
            lightning_invoice::Bolt11SemanticError::InvalidSignature
        ))
    ));
}

#[test]
fn a_good_share_of_the_generated_invoices_are_valid() {
    // Guards the property test above against only ever comparing two refusals.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let shapes = arb_shape();
    let valid = (0..200)
        .filter(|_| {
            let shape = shapes.new_tree(&mut runner).unwrap().current();
            parse_invoice(&encode(&shape).0).is_ok()
        })
        .count();
    // 35 of 200 with the deterministic runner.
    assert!((20..=180).contains(&valid), "{valid} of 200 valid");
}
