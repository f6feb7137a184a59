//! BOLT 4 spec vectors: `bolt04/onion-test.json` (construction and peeling, byte for byte)
//! and `bolt04/onion-error-test.json` (error creation, wrapping and attribution).
//!
//! Counted and asserted: 1 onion built byte for byte and 5 hops peeled (shared secret,
//! payload and next packet per hop); for the error vector, 5 hop shared secrets, 5 `ammag`
//! keys, 1 `um` key, 1 failure payload, 1 final error packet byte for byte and 1
//! attribution. Not covered: the route-blinding and onion-message files in `bolt04/`
//! (no blinded paths here) and the markdown attributable-error vectors in
//! `bolt04-onion.json` (the node implements the legacy error format only).
//!
//! Reads the JSON from `<workspace>/testdata/vectors`; never writes anything.

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use fulmen_htlc::failure::FailureMessage;
use fulmen_htlc::onion::crypto::{generate_key, route_shared_secrets};
use fulmen_htlc::onion::error::error_payload;
use fulmen_htlc::onion::{
    construct_onion_raw, create_error_packet, decode_error_packet, peel_onion, wrap_error_packet,
    HopPayload, OnionPacket,
};
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = format!("{}/../testdata/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn onion_test_json_construct_and_peel_byte_for_byte() {
    let v = vectors("bolt04/onion-test.json");
    let secp = Secp256k1::new();
    let g = &v["generate"];
    let session = SecretKey::from_slice(&h(&g["session_key"])).unwrap();
    let assoc = h(&g["associated_data"]);
    let hops: Vec<PublicKey> = g["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| PublicKey::from_slice(&h(&x["pubkey"])).unwrap())
        .collect();
    let payloads: Vec<Vec<u8>> = g["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| h(&x["payload"]))
        .collect();
    let (packet, secrets) = construct_onion_raw(&secp, &session, &hops, &payloads, &assoc).unwrap();
    let expected = h(&v["onion"]);
    assert_eq!(
        hex::encode(packet.to_bytes()),
        hex::encode(&expected),
        "onion bytes"
    );

    // Peel with each node key in turn; every hop sees exactly its payload.
    let privs: Vec<SecretKey> = v["decode"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| SecretKey::from_slice(&h(x)).unwrap())
        .collect();
    assert_eq!(privs.len(), 5);
    let mut current = OnionPacket::from_bytes(&expected).unwrap();
    let mut counted = 0;
    for (i, sk) in privs.iter().enumerate() {
        let peeled = peel_onion(&secp, sk, &current, &assoc).unwrap();
        assert_eq!(peeled.shared_secret, secrets[i]);
        // The vector payloads carry their BigSize length prefix; ours is the stream only.
        let full = &payloads[i];
        assert!(full.ends_with(&peeled.payload));
        assert_eq!(
            full.len() - peeled.payload.len(),
            if i == 4 { 3 } else { 1 }
        );
        let typed = HopPayload::decode(&peeled.payload, i == 4).unwrap();
        if i < 4 {
            assert_eq!(typed.short_channel_id, Some(i as u64 + 1));
            current = peeled.next.expect("forwarding hop has a next packet");
        } else {
            assert!(peeled.next.is_none(), "last hop is final");
            let pd = typed.payment_data.expect("final hop has payment_data");
            assert_eq!(pd.total_msat, 10_000);
            assert_eq!(typed.amt_to_forward, 10_000);
            assert_eq!(typed.outgoing_cltv_value, 1000);
        }
        counted += 1;
    }
    assert_eq!(counted, 5);
}

#[test]
fn onion_error_test_json_byte_for_byte() {
    let v = vectors("bolt04/onion-error-test.json");
    let secp = Secp256k1::new();
    let g = &v["generate"];
    let session = SecretKey::from_slice(&h(&g["session_key"])).unwrap();
    let hops = g["hops"].as_array().unwrap();
    let keys: Vec<PublicKey> = hops
        .iter()
        .map(|x| PublicKey::from_slice(&h(&x["pubkey"])).unwrap())
        .collect();
    let route = route_shared_secrets(&secp, &session, &keys).unwrap();
    assert_eq!(hops.len(), 5, "the spec's error vector has 5 hops");
    let (mut secrets_checked, mut ammag_checked, mut um_checked) = (0, 0, 0);
    for (i, hop) in hops.iter().enumerate() {
        let ss = route[i].1;
        assert_eq!(
            hex::encode(ss),
            hop["hop_shared_secret"].as_str().unwrap(),
            "ss {i}"
        );
        secrets_checked += 1;
        assert_eq!(
            hex::encode(generate_key(b"ammag", &ss)),
            hop["ammag_key"].as_str().unwrap(),
            "ammag {i}"
        );
        ammag_checked += 1;
        if let Some(um) = hop.get("um_key") {
            assert_eq!(hex::encode(generate_key(b"um", &ss)), um.as_str().unwrap());
            um_checked += 1;
        }
    }
    assert_eq!((secrets_checked, ammag_checked, um_checked), (5, 5, 1));
    let failure = FailureMessage::decode(&h(&g["failure_message"])).unwrap();
    assert_eq!(failure, FailureMessage::TemporaryNodeFailure);
    assert_eq!(
        hex::encode(error_payload(&failure)),
        hops[4]["payload"].as_str().unwrap()
    );

    // Created at hop 4, wrapped by hops 3..0 on the way back.
    let secrets: Vec<[u8; 32]> = route.iter().map(|r| r.1).collect();
    let mut packet = create_error_packet(&secrets[4], &failure);
    for ss in secrets[..4].iter().rev() {
        wrap_error_packet(ss, &mut packet);
    }
    assert_eq!(hex::encode(&packet), v["errorpacket"].as_str().unwrap());

    // Attribution at the origin.
    let got = decode_error_packet(&secrets, &packet).unwrap();
    assert_eq!(got.hop_index, 4);
    assert_eq!(got.failure, FailureMessage::TemporaryNodeFailure);
}
