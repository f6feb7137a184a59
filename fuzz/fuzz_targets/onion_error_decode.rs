//! Fuzz target: attribute and decode an arbitrary error packet at the origin, and decode
//! arbitrary failure-message bytes. Must never panic; owns nothing else.
#![no_main]

use fulmen_htlc::failure::FailureMessage;
use fulmen_htlc::onion::decode_error_packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let secrets: Vec<[u8; 32]> = (1u8..=5).map(|i| [i; 32]).collect();
    let _ = decode_error_packet(&secrets, data);
    if let Ok(f) = FailureMessage::decode(data) {
        let _ = f.encode();
    }
});
