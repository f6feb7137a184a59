//! Fuzz target: BOLT 11 invoice parsing (and the unverified payment-hash read). Must never
//! panic; owns nothing else.
//!
//! Two paths: (1) the input as a UTF-8 invoice string; (2) the input as
//! `[hrp_len][hrp][data…]` re-encoded as bech32 with a *valid* checksum, so the fuzzer
//! reaches the field and signature parsing instead of stopping at the checksum.
#![no_main]

use bech32::{Bech32, Hrp};
use fulmen_htlc::invoice::{parse_invoice, payment_hash_unverified, Invoice};
use libfuzzer_sys::fuzz_target;

fn touch(inv: &Invoice) {
    let _ = (
        inv.route_hints(),
        inv.feature_bits(),
        inv.description(),
        inv.payee(),
    );
    let _ = (
        inv.amount_msat(),
        inv.expiry_secs(),
        inv.fallback_addresses(),
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = core::str::from_utf8(data) {
        // The unverified hash read (history lookups before validation) must not panic
        // either, and must agree with a validated invoice.
        let hash = payment_hash_unverified(s);
        if let Ok(inv) = parse_invoice(s) {
            assert_eq!(hash.ok(), Some(inv.payment_hash()));
            touch(&inv);
        }
    }
    let Some((&hrp_len, rest)) = data.split_first() else {
        return;
    };
    let hrp_len = usize::from(hrp_len % 24);
    if rest.len() < hrp_len {
        return;
    }
    let (hrp, payload) = rest.split_at(hrp_len);
    let Ok(hrp) = core::str::from_utf8(hrp) else {
        return;
    };
    let Ok(hrp) = Hrp::parse(hrp) else { return };
    if let Ok(s) = bech32::encode::<Bech32>(hrp, payload) {
        let hash = payment_hash_unverified(&s);
        if let Ok(inv) = parse_invoice(&s) {
            assert_eq!(hash.ok(), Some(inv.payment_hash()));
            touch(&inv);
        }
    }
});
