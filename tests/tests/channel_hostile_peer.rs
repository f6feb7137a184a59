//! Hostile peers scripted by hand against `fulmen_channel::machine::Channel` (the review's
//! [harden] defects 1, 2 and 5(a)): a peer that lies in `channel_reestablish` about how far
//! we are behind, a peer that withholds its `revoke_and_ack` so that a settlement and an
//! add funded by it wait together for our next commitment, and a funder that floods
//! `update_fee` without ever signing.
//!
//! The peer is either an honest `Channel` whose messages the test delivers, withholds or
//! edits, or raw messages built by the test. Must never: depend on timing or an unseeded RNG.

mod two_party;
use two_party::*;

use fulmen_channel::machine::Update;
use fulmen_wire::msgs::{ChannelReestablish, UpdateFee};

/// Pay `amount_msat` from `a` to `b` and settle it, so both commitment numbers move on.
fn pay(a: &mut Party, b: &mut Party, n: u64, amount_msat: u64) {
    a.ch.add_htlc(amount_msat, hash_of(&preimage(n)), 500 + n as u32, onion())
        .unwrap();
    run(a, b);
    fulfill_received(b);
    run(a, b);
    a.events.clear();
}

/// Both sides drop the link and reconnect; returns (a's, b's) `channel_reestablish`.
fn reconnect(a: &mut Party, b: &mut Party) -> (ChannelReestablish, ChannelReestablish) {
    let mut out = Vec::new();
    for p in [&mut *a, &mut *b] {
        p.ch.handle_disconnect();
        p.ch.handle_reconnect().unwrap();
        let mut msgs = p.outgoing();
        assert_eq!(msgs.len(), 1);
        let Some(Message::ChannelReestablish(m)) = msgs.pop() else {
            panic!("not channel_reestablish")
        };
        out.push(m);
    }
    let b_msg = out.pop().unwrap();
    let a_msg = out.pop().unwrap();
    (a_msg, b_msg)
}

/// Defect 1: a peer that claims we are behind without proving it (its
/// `your_last_per_commitment_secret` is not our secret for the number it claims) breaks the
/// protocol: we send `error` and offer our latest commitment, which is not revoked.
#[test]
fn reestablish_unproven_claim_that_we_are_behind_is_a_violation_and_we_broadcast() {
    // Each lie starts from b's honest channel_reestablish; `a_lcn` is a's commitment number.
    type Lie = fn(&mut ChannelReestablish, u64);
    let lies: [(&str, Lie); 5] = [
        ("high revocation number, bogus secret", |m, lcn| {
            m.next_revocation_number = lcn + 5;
            m.your_last_per_commitment_secret = [7u8; 32];
        }),
        ("revocation number one ahead, secret of zeros", |m, lcn| {
            m.next_revocation_number = lcn + 1;
            m.your_last_per_commitment_secret = [0u8; 32];
        }),
        (
            "high revocation number, replaying the last secret we did reveal",
            |m, lcn| {
                // m carries b's real secret for a's commitment lcn - 1 already.
                m.next_revocation_number = lcn + 3;
            },
        ),
        ("absurd revocation number", |m, _| {
            m.next_revocation_number = u64::MAX;
            m.your_last_per_commitment_secret = [1u8; 32];
        }),
        ("commitment number far ahead of what we signed", |m, _| {
            m.next_commitment_number += 40;
        }),
    ];
    for (i, (what, lie)) in lies.iter().enumerate() {
        let (mut a, mut b) = open_pair(80 + i as u64, ChannelConfig::default()).unwrap();
        pay(&mut a, &mut b, 1, 3_000_000);
        pay(&mut a, &mut b, 2, 4_000_000);
        let lcn = a.ch.state().local_commit.as_ref().unwrap().number;
        assert!(lcn >= 2);
        let expected_tx = a.ch.signed_local_commitment().unwrap();
        let (_, mut from_b) = reconnect(&mut a, &mut b);
        lie(&mut from_b, lcn);
        let err =
            a.ch.handle_message(&Message::ChannelReestablish(from_b))
                .unwrap_err();
        assert!(
            matches!(err, ChannelError::Protocol(_)),
            "{what}: expected a protocol violation, got {err:?}"
        );
        assert!(
            matches!(a.ch.close_reason(), Some(CloseReason::ProtocolViolation(_))),
            "{what}: closed for {:?}",
            a.ch.close_reason()
        );
        let bc =
            a.ch.poll_broadcast()
                .unwrap_or_else(|| panic!("{what}: our commitment was not offered for broadcast"));
        assert_eq!(bc.kind, BroadcastKind::Commitment { number: lcn }, "{what}");
        assert_eq!(bc.tx, expected_tx, "{what}");
        assert!(
            a.outgoing().iter().any(|m| matches!(m, Message::Error(_))),
            "{what}: no error sent"
        );
        assert!(a.events.iter().any(|e| matches!(
            e,
            Event::Closed {
                reason: CloseReason::ProtocolViolation(_)
            }
        )));
        a.assert_restores();
    }
}

/// Defect 1, the other half: a peer whose `your_last_per_commitment_secret` is our real
/// secret for the number it claims proves we lost state: close without broadcasting (our
/// commitment may be revoked) and ask the peer to close with an `error`.
#[test]
fn reestablish_proven_lost_state_closes_without_broadcast() {
    let (mut a, mut b) = open_pair(90, ChannelConfig::default()).unwrap();
    pay(&mut a, &mut b, 1, 3_000_000);
    let stale_log = a.log.clone();
    pay(&mut a, &mut b, 2, 4_000_000);
    pay(&mut a, &mut b, 3, 5_000_000);
    // a restarts from a stale copy of its records (a backup): it lost state.
    let mut stale = Party {
        ch: Channel::restore(&a.keys, ChannelConfig::default(), &stale_log).unwrap(),
        keys: SeedKeySource::new([1u8; 32]),
        log: stale_log,
        events: vec![],
    };
    let stale_lcn = stale.ch.state().local_commit.as_ref().unwrap().number;
    let (_, from_b) = reconnect(&mut a, &mut b);
    stale.ch.handle_reconnect().unwrap();
    let _ = stale.outgoing();
    assert!(
        from_b.next_revocation_number > stale_lcn,
        "b is ahead of the stale a"
    );
    let res = stale
        .ch
        .handle_message(&Message::ChannelReestablish(from_b));
    assert!(matches!(res, Err(ChannelError::Closed)), "{res:?}");
    assert!(
        matches!(stale.ch.close_reason(), Some(CloseReason::LostState { .. })),
        "{:?}",
        stale.ch.close_reason()
    );
    assert!(
        stale.ch.poll_broadcast().is_none(),
        "must not broadcast a possibly revoked commitment"
    );
    assert!(stale
        .outgoing()
        .iter()
        .any(|m| matches!(m, Message::Error(_))));
}

/// Deliver every message `from` has for `to`; returns how many.
fn deliver(from: &mut Party, to: &mut Party) -> usize {
    let msgs = from.outgoing();
    for m in &msgs {
        to.ch.handle_message(m).unwrap();
    }
    to.persist();
    msgs.len()
}

/// Defect 2, reproduced with a scripted peer: `b` fulfills our HTLC, then adds an HTLC that
/// only the fulfilled amount pays for, signs both, and withholds the `revoke_and_ack` that
/// would have let us sign in between. Both updates then wait together in our
/// `remote_changes.acked`, to be applied to b's *older* commitment, which lacks the credit.
/// Our next commitment must still be buildable (settlements before adds), and the channel
/// must settle everything afterwards.
#[test]
fn settlement_then_add_funded_by_it_with_withheld_revocation_still_signs() {
    let (mut a, mut b) = open_pair(100, ChannelConfig::default()).unwrap();
    // b holds PUSH_MSAT (100_000 sat). a pays b 500_000 sat, irrevocably committed.
    let big = 500_000_000;
    let pre0 = preimage(1);
    let h0 = a.ch.add_htlc(big, hash_of(&pre0), 501, onion()).unwrap();
    run(&mut a, &mut b);
    assert!(b
        .events
        .iter()
        .any(|e| matches!(e, Event::HtlcReceived { id, .. } if *id == h0)));
    b.events.clear();

    // 1. b adds a small HTLC and signs; a revokes and signs back (so a awaits b's
    //    revoke_and_ack); b revokes, but that revoke_and_ack is withheld.
    b.ch.add_htlc(2_000_000, hash_of(&preimage(2)), 502, onion())
        .unwrap();
    b.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut b, &mut a), 2); // update_add, commitment_signed
    assert_eq!(deliver(&mut a, &mut b), 1); // revoke_and_ack
    assert!(a.ch.can_send_commitment());
    a.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut a, &mut b), 1); // commitment_signed
    let withheld = b.outgoing();
    assert!(matches!(withheld[..], [Message::RevokeAndAck(_)]));

    // 2. b fulfills a's HTLC and signs it; a revokes (a still cannot sign: it awaits the
    //    withheld revocation).
    b.ch.fulfill_htlc(h0, pre0).unwrap();
    b.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut b, &mut a), 2); // update_fulfill, commitment_signed
    assert_eq!(deliver(&mut a, &mut b), 1); // revoke_and_ack
    assert!(!a.ch.can_send_commitment());

    // 3. b adds an HTLC larger than its balance before the fulfill, funded by the credit,
    //    and signs it; a revokes.
    let funded = 300_000_000;
    assert!(funded > PUSH_MSAT);
    b.ch.add_htlc(funded, hash_of(&preimage(3)), 503, onion())
        .unwrap();
    b.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut b, &mut a), 2); // update_add, commitment_signed
    assert_eq!(deliver(&mut a, &mut b), 1); // revoke_and_ack
    assert_eq!(
        a.ch.state().remote_changes.acked.len(),
        2,
        "fulfill and add"
    );

    // 4. The withheld revocation finally arrives: a must be able to sign both updates.
    for m in &withheld {
        a.ch.handle_message(m).unwrap();
    }
    assert!(a.ch.can_send_commitment());
    a.ch.send_commitment()
        .expect("our next commitment must be buildable");
    assert!(!a.ch.can_send_commitment());

    // And the channel goes on: a settles b's two HTLCs, balances mirror and add up.
    run(&mut a, &mut b);
    fulfill_received(&mut a);
    run(&mut a, &mut b);
    check_mirror(&a, &b);
    assert_eq!(
        a.ch.balances_msat().unwrap().0,
        FUNDING_SAT * 1000 - PUSH_MSAT - big + 2_000_000 + funded
    );
}

/// Defect 2, the general guard: should our next commitment ever be impossible to build
/// (here: a corrupt record log settles an HTLC that does not exist), `can_send_commitment`
/// must not stay true for ever with `send_commitment` failing each time. The failure fails
/// the channel (our own fault, reported as such) and offers our commitment for broadcast.
#[test]
fn unbuildable_commitment_fails_the_channel_instead_of_staying_pending() {
    let (mut a, mut b) = open_pair(101, ChannelConfig::default()).unwrap();
    pay(&mut a, &mut b, 1, 3_000_000);
    let mut log = a.log.clone();
    log.push(Record::LocalUpdate(
        fulmen_channel::machine::Update::Fulfill {
            id: 999,
            preimage: preimage(999),
        },
    ));
    let mut broken = Party {
        ch: Channel::restore(&a.keys, ChannelConfig::default(), &log).unwrap(),
        keys: SeedKeySource::new([1u8; 32]),
        log,
        events: vec![],
    };
    let lcn = broken.ch.state().local_commit.as_ref().unwrap().number;
    let (_, from_b) = reconnect(&mut a, &mut b);
    broken.ch.handle_reconnect().unwrap();
    let _ = broken.outgoing();
    broken
        .ch
        .handle_message(&Message::ChannelReestablish(from_b))
        .unwrap();
    assert!(broken.ch.can_send_commitment());
    let err = broken.ch.send_commitment().unwrap_err();
    assert!(matches!(err, ChannelError::Internal(_)), "{err:?}");
    assert!(
        !broken.ch.can_send_commitment(),
        "a commitment that cannot be built must not stay pending"
    );
    assert!(matches!(
        broken.ch.close_reason(),
        Some(CloseReason::Internal(_))
    ));
    assert_eq!(
        broken.ch.poll_broadcast().map(|bc| bc.kind),
        Some(BroadcastKind::Commitment { number: lcn })
    );
    broken.persist();
    assert!(broken.events.iter().any(|e| matches!(
        e,
        Event::Closed {
            reason: CloseReason::Internal(_)
        }
    )));
}

/// The cap on a side's unsigned updates.
const CAP: usize = fulmen_channel::machine::params::MAX_UNSIGNED_UPDATES;

fn fee_msg(ch: &Channel, feerate_per_kw: u32) -> Message {
    Message::UpdateFee(UpdateFee {
        channel_id: ch.channel_id(),
        feerate_per_kw,
        extra_tlvs: Default::default(),
    })
}

/// Defect 5(a): a funder that floods `update_fee` without signing. The fee updates collapse
/// (only the last one is kept), so the state stays bounded; the records stay bounded too,
/// because a flood beyond the cap on unsigned updates fails the channel.
#[test]
fn update_fee_flood_is_collapsed_bounded_and_fails_the_channel_past_the_cap() {
    let (_a, mut b) = open_pair(110, ChannelConfig::default()).unwrap();
    b.ch.handle_fee_estimate(1000);
    let records_before = b.log.len();
    let mut failed_at = None;
    for i in 0..10_000u32 {
        let res = b.ch.handle_message(&fee_msg(&b.ch, 1000 + i % 500));
        b.persist();
        match res {
            Ok(()) => {
                let st = b.ch.state();
                assert_eq!(st.remote_changes.proposed.len(), 1, "fee updates collapse");
            }
            Err(ChannelError::Protocol(e)) => {
                failed_at.get_or_insert(i);
                assert!(e.contains("unsigned updates"), "{e}");
            }
            Err(ChannelError::Closed) => assert!(failed_at.is_some()),
            Err(e) => panic!("update_fee {i}: {e:?}"),
        }
        // The records written for the flood stay bounded by the cap.
        assert!(
            b.log.len() - records_before <= CAP + 1,
            "{} records after {i} update_fee",
            b.log.len() - records_before
        );
    }
    assert_eq!(failed_at, Some(CAP as u32), "the update past the cap fails");
    assert!(matches!(
        b.ch.close_reason(),
        Some(CloseReason::ProtocolViolation(_))
    ));
    assert!(matches!(
        b.ch.poll_broadcast().map(|bc| bc.kind),
        Some(BroadcastKind::Commitment { .. })
    ));
    b.assert_restores();
}

/// Defect 5(a), the honest side of it: many `update_fee` commands before one
/// `commitment_signed` collapse to the last feerate on both sides, the signatures agree, and
/// the commitment carries that last feerate.
#[test]
fn many_update_fee_before_a_commitment_collapse_and_sign() {
    let (mut a, mut b) = open_pair(111, ChannelConfig::default()).unwrap();
    b.ch.handle_fee_estimate(1000);
    for i in 0..(CAP as u32 - 1) {
        a.ch.update_fee(1000 + i % 700).unwrap();
        assert_eq!(a.ch.state().local_changes.proposed.len(), 1);
    }
    let last = 1000 + (CAP as u32 - 2) % 700;
    let msgs = a.outgoing();
    assert_eq!(msgs.len(), CAP - 1);
    for m in &msgs {
        b.ch.handle_message(m).unwrap();
        assert_eq!(b.ch.state().remote_changes.proposed.len(), 1);
    }
    run(&mut a, &mut b);
    for p in [&a, &b] {
        let st = p.ch.state();
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, last);
        assert_eq!(st.remote_commit.as_ref().unwrap().spec.feerate_per_kw, last);
    }
    check_mirror(&a, &b);
    // The cap counts updates since the peer's last commitment_signed: after signing, the
    // funder may propose again.
    a.ch.update_fee(1500).unwrap();
    run(&mut a, &mut b);
    assert_eq!(
        b.ch.state()
            .local_commit
            .as_ref()
            .unwrap()
            .spec
            .feerate_per_kw,
        1500
    );
}

/// Defect 5(a), across commitments: a funder that signs each `update_fee` while we never
/// sign back leaves its fee updates waiting in our `remote_changes.acked` (and its own
/// `local_changes.acked`): they collapse there too, so that list stays bounded as well.
#[test]
fn signed_fee_updates_waiting_for_our_signature_collapse_too() {
    let (mut a, mut b) = open_pair(112, ChannelConfig::default()).unwrap();
    b.ch.handle_fee_estimate(1000);
    let mut last = 0;
    for i in 0..300u32 {
        last = 1000 + i % 400;
        a.ch.update_fee(last).unwrap();
        a.ch.send_commitment().unwrap();
        assert_eq!(deliver(&mut a, &mut b), 2); // update_fee, commitment_signed
        assert_eq!(deliver(&mut b, &mut a), 1); // revoke_and_ack; b does not sign
        assert_eq!(b.ch.state().remote_changes.acked, vec![Update::Fee(last)]);
        assert_eq!(a.ch.state().local_changes.acked, vec![Update::Fee(last)]);
    }
    b.assert_restores();
    a.assert_restores();
    run(&mut a, &mut b);
    for p in [&a, &b] {
        let st = p.ch.state();
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, last);
        assert_eq!(st.remote_commit.as_ref().unwrap().spec.feerate_per_kw, last);
    }
    check_mirror(&a, &b);
}
