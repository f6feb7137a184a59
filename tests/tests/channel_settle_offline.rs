//! An HTLC that reaches us while the peer drops the link must still be settled ([harden]
//! defect 3): the payee fulfills (or fails) it while disconnected, the update is recorded
//! at once and goes out at `channel_reestablish` — also after a restart in between — and
//! the payer sees the payment complete exactly once.
//!
//! Must never: depend on timing or an unseeded RNG.

use fulmen_channel::machine::{ChannelConfig, Event};
use fulmen_tests::pair::*;

/// a offers an HTLC; it is irrevocably committed on b (b holds `HtlcReceived`) and the link
/// drops before b has settled it.
fn committed_then_disconnected(seed: u64) -> (Pair, u64) {
    let mut p = open_pair(seed, ChannelConfig::default()).unwrap();
    let id =
        p.a.ch
            .add_htlc(3_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    p.run();
    assert!(p
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::HtlcReceived { .. })));
    p.disconnect();
    (p, id)
}

fn count(a: &Endpoint, f: impl Fn(&Event) -> bool) -> usize {
    a.events.iter().filter(|e| f(e)).count()
}

fn reconnect_and_finish(p: &mut Pair, id: u64) {
    p.reconnect();
    p.run();
    let done = count(
        &p.a,
        |e| matches!(e, Event::HtlcFulfilled { id: i, .. } if *i == id),
    );
    assert_eq!(done, 1, "the payment completes exactly once");
    p.check_mirror();
    assert_eq!(p.b.ch.balances_msat().unwrap().0, PUSH_MSAT + 3_000_000);
}

#[test]
fn htlc_fulfilled_while_disconnected_goes_out_at_reestablish() {
    let (mut p, id) = committed_then_disconnected(301);
    // Same turn as the disconnect: the settlement must not be refused.
    fulfill_received(&mut p.b);
    p.flush(1);
    reconnect_and_finish(&mut p, id);
}

#[test]
fn htlc_fulfilled_while_disconnected_survives_a_restart() {
    let (mut p, id) = committed_then_disconnected(302);
    fulfill_received(&mut p.b);
    p.flush(1);
    p.b.restart(false);
    reconnect_and_finish(&mut p, id);
}

#[test]
fn htlc_failed_while_disconnected_goes_out_at_reestablish() {
    let (mut p, id) = committed_then_disconnected(303);
    let evs = std::mem::take(&mut p.b.events);
    let Some(Event::HtlcReceived { id: rid, .. }) = evs
        .into_iter()
        .find(|e| matches!(e, Event::HtlcReceived { .. }))
    else {
        panic!("no HtlcReceived")
    };
    p.b.ch.fail_htlc(rid, vec![0u8; 32]).unwrap();
    p.flush(1);
    p.reconnect();
    p.run();
    let failed = count(
        &p.a,
        |e| matches!(e, Event::HtlcFailed { id: i, .. } if *i == id),
    );
    assert_eq!(failed, 1);
    p.check_mirror();
}
