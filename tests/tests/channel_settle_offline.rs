//! An HTLC that reaches us while the peer drops the link must still be settled ([harden]
//! defect 3): the payee fulfills (or fails) it while disconnected, the update is recorded
//! at once and goes out at `channel_reestablish` — also after a restart in between — and
//! the payer sees the payment complete exactly once.
//!
//! Must never: depend on timing or an unseeded RNG.

mod two_party;
use two_party::*;

/// a offers an HTLC; it is irrevocably committed on b (b holds `HtlcReceived`) and the link
/// drops before b has settled it.
fn committed_then_disconnected(seed: u64) -> (Party, Party, u64) {
    let (mut a, mut b) = open_pair(seed, ChannelConfig::default()).unwrap();
    let id =
        a.ch.add_htlc(3_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    run(&mut a, &mut b);
    assert!(b
        .events
        .iter()
        .any(|e| matches!(e, Event::HtlcReceived { .. })));
    for p in [&mut a, &mut b] {
        p.ch.handle_disconnect();
    }
    (a, b, id)
}

fn fulfilled(a: &Party, id: u64) -> usize {
    a.events
        .iter()
        .filter(|e| matches!(e, Event::HtlcFulfilled { id: i, .. } if *i == id))
        .count()
}

fn reconnect_and_finish(a: &mut Party, b: &mut Party, id: u64) {
    for p in [&mut *a, &mut *b] {
        p.ch.handle_reconnect().unwrap();
    }
    run(a, b);
    assert_eq!(fulfilled(a, id), 1, "the payment completes exactly once");
    check_mirror(a, b);
    assert_eq!(b.ch.balances_msat().unwrap().0, PUSH_MSAT + 3_000_000);
    assert!(b
        .ch
        .state()
        .local_commit
        .as_ref()
        .unwrap()
        .spec
        .offered_by_them
        .is_empty());
}

#[test]
fn htlc_fulfilled_while_disconnected_goes_out_at_reestablish() {
    let (mut a, mut b, id) = committed_then_disconnected(301);
    // Same turn as the disconnect: the settlement must not be refused.
    fulfill_received(&mut b);
    reconnect_and_finish(&mut a, &mut b, id);
}

#[test]
fn htlc_fulfilled_while_disconnected_survives_a_restart() {
    let (mut a, mut b, id) = committed_then_disconnected(302);
    fulfill_received(&mut b);
    b.persist();
    let ch = Channel::restore(&b.keys, ChannelConfig::default(), &b.log).unwrap();
    b.ch = ch;
    reconnect_and_finish(&mut a, &mut b, id);
}

#[test]
fn htlc_failed_while_disconnected_goes_out_at_reestablish() {
    let (mut a, mut b, id) = committed_then_disconnected(303);
    let evs = std::mem::take(&mut b.events);
    let Some(Event::HtlcReceived { id: rid, .. }) = evs
        .into_iter()
        .find(|e| matches!(e, Event::HtlcReceived { .. }))
    else {
        panic!("no HtlcReceived")
    };
    b.ch.fail_htlc(rid, vec![0u8; 32]).unwrap();
    for p in [&mut a, &mut b] {
        p.ch.handle_reconnect().unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(
        a.events
            .iter()
            .filter(|e| matches!(e, Event::HtlcFailed { id: i, .. } if *i == id))
            .count(),
        1
    );
    check_mirror(&a, &b);
}
