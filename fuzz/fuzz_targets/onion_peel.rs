//! Fuzz target: peel onion packets with a fixed node key. Must never panic; owns nothing
//! else. Three paths: (1) the input as a whole packet (length, version, key, HMAC checks);
//! (2) the input as the raw `hop_payloads` entry of a correctly authenticated one-hop
//! onion, so the post-HMAC length parsing and payload decoding see arbitrary bytes;
//! (3) the input straight into the TLV payload decoder.
#![no_main]

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use fulmen_htlc::onion::{construct_onion_raw, process_onion, HopPayload};
use fulmen_htlc::PaymentHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[0x41; 32]).expect("valid key");
    let hash = PaymentHash([0x42; 32]);
    let _ = process_onion(&secp, &sk, data, &hash);

    let node = PublicKey::from_secret_key(&secp, &sk);
    let session = SecretKey::from_slice(&[0x43; 32]).expect("valid key");
    if let Ok((packet, _)) =
        construct_onion_raw(&secp, &session, &[node], &[data.to_vec()], &hash.0)
    {
        let _ = process_onion(&secp, &sk, &packet.to_bytes(), &hash);
    }

    let _ = HopPayload::decode(data, data.first().is_some_and(|b| b & 1 == 0));
});
