//! Hostile peers scripted by hand against `fulmen_channel::machine::Channel` (the review's
//! [harden] defects 1, 2 and 5(a)): a peer that lies in `channel_reestablish` about how far
//! we are behind, a peer that withholds its `revoke_and_ack` so that a settlement and an
//! add funded by it wait together for our next commitment, and a funder that floods
//! `update_fee` without ever signing.
//!
//! Built on the shared [`fulmen_tests::pair`] harness: the peer is either an honest
//! `Channel` whose messages the test takes off the link and delivers, withholds or edits,
//! or raw messages built by the test. Must never: depend on timing or an unseeded RNG.

use fulmen_channel::machine::{
    BroadcastKind, Channel, ChannelConfig, ChannelError, CloseReason, Event, Record, SeedKeySource,
    Update,
};
use fulmen_tests::pair::*;
use fulmen_wire::msgs::{ChannelReestablish, Message, UpdateFee};

/// Pay `amount_msat` from `a` to `b` and settle it, so both commitment numbers move on.
fn pay(p: &mut Pair, n: u64, amount_msat: u64) {
    p.a.ch
        .add_htlc(amount_msat, hash_of(&preimage(n)), 500 + n as u32, onion())
        .unwrap();
    p.run();
    fulfill_received(&mut p.b);
    p.run();
    p.a.events.clear();
}

/// Flush side `from` (its batches acknowledged) and take every message it has in flight to
/// the other side off the link, undelivered: the test delivers, withholds or edits them.
fn take(p: &mut Pair, from: usize) -> Vec<Message> {
    p.flush(from);
    std::iter::from_fn(|| p.links.pop(from, 1 - from, u64::MAX))
        .map(|d| Message::decode(&d.bytes).expect("a message in flight decodes"))
        .collect()
}

/// Deliver every message side `from` has for the other side; returns how many.
fn deliver(p: &mut Pair, from: usize) -> usize {
    p.flush(from);
    let mut n = 0;
    while let Some(d) = p.links.pop(from, 1 - from, u64::MAX) {
        p.deliver(d).unwrap();
        n += 1;
    }
    n
}

/// Both sides drop the link and reconnect; returns (a's, b's) `channel_reestablish`, taken
/// off the link undelivered.
fn reconnect(p: &mut Pair) -> (ChannelReestablish, ChannelReestablish) {
    p.disconnect();
    p.reconnect();
    let mut one = |from| {
        let mut msgs = take(p, from);
        assert_eq!(msgs.len(), 1);
        let Some(Message::ChannelReestablish(m)) = msgs.pop() else {
            panic!("not channel_reestablish")
        };
        m
    };
    let a_msg = one(0);
    let b_msg = one(1);
    (a_msg, b_msg)
}

/// The opener restarted from `records` (a stale backup, or a log the test corrupted),
/// which become its durable records.
fn opener_from(records: Vec<Record>) -> Endpoint {
    let keys = SeedKeySource::new([1u8; 32]);
    let ch = Channel::restore(&keys, ChannelConfig::default(), &records).unwrap();
    let mut e = Endpoint::new("a", ch, keys, ChannelConfig::default());
    e.store.write(&records);
    e
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
        let mut p = open_pair(80 + i as u64, ChannelConfig::default()).unwrap();
        pay(&mut p, 1, 3_000_000);
        pay(&mut p, 2, 4_000_000);
        let lcn = p.a.ch.state().local_commit.as_ref().unwrap().number;
        assert!(lcn >= 2);
        let expected_tx = p.a.ch.signed_local_commitment().unwrap();
        let (_, mut from_b) = reconnect(&mut p);
        lie(&mut from_b, lcn);
        let err =
            p.a.ch
                .handle_message(&Message::ChannelReestablish(from_b))
                .unwrap_err();
        assert!(
            matches!(err, ChannelError::Protocol(_)),
            "{what}: expected a protocol violation, got {err:?}"
        );
        assert!(
            matches!(
                p.a.ch.close_reason(),
                Some(CloseReason::ProtocolViolation(_))
            ),
            "{what}: closed for {:?}",
            p.a.ch.close_reason()
        );
        let bc =
            p.a.ch
                .poll_broadcast()
                .unwrap_or_else(|| panic!("{what}: our commitment was not offered for broadcast"));
        assert_eq!(bc.kind, BroadcastKind::Commitment { number: lcn }, "{what}");
        assert_eq!(bc.tx, expected_tx, "{what}");
        assert!(
            p.a.outgoing()
                .iter()
                .any(|m| matches!(m, Message::Error(_))),
            "{what}: no error sent"
        );
        assert!(p.a.events.iter().any(|e| matches!(
            e,
            Event::Closed {
                reason: CloseReason::ProtocolViolation(_)
            }
        )));
        p.a.assert_restores();
    }
}

/// Defect 1, the other half: a peer whose `your_last_per_commitment_secret` is our real
/// secret for the number it claims proves we lost state: close without broadcasting (our
/// commitment may be revoked) and ask the peer to close with an `error`.
#[test]
fn reestablish_proven_lost_state_closes_without_broadcast() {
    let mut p = open_pair(90, ChannelConfig::default()).unwrap();
    pay(&mut p, 1, 3_000_000);
    let stale_log = p.a.log().to_vec();
    pay(&mut p, 2, 4_000_000);
    pay(&mut p, 3, 5_000_000);
    // a restarts from a stale copy of its records (a backup): it lost state.
    let mut stale = opener_from(stale_log);
    let stale_lcn = stale.ch.state().local_commit.as_ref().unwrap().number;
    let (_, from_b) = reconnect(&mut p);
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

/// Defect 2, reproduced with a scripted peer: `b` fulfills our HTLC, then adds an HTLC that
/// only the fulfilled amount pays for, signs both, and withholds the `revoke_and_ack` that
/// would have let us sign in between. Both updates then wait together in our
/// `remote_changes.acked`, to be applied to b's *older* commitment, which lacks the credit.
/// Our next commitment must still be buildable (settlements before adds), and the channel
/// must settle everything afterwards.
#[test]
fn settlement_then_add_funded_by_it_with_withheld_revocation_still_signs() {
    let mut p = open_pair(100, ChannelConfig::default()).unwrap();
    // b holds PUSH_MSAT (100_000 sat). a pays b 500_000 sat, irrevocably committed.
    let big = 500_000_000;
    let pre0 = preimage(1);
    let h0 = p.a.ch.add_htlc(big, hash_of(&pre0), 501, onion()).unwrap();
    p.run();
    assert!(p
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::HtlcReceived { id, .. } if *id == h0)));
    p.b.events.clear();

    // 1. b adds a small HTLC and signs; a revokes and signs back (so a awaits b's
    //    revoke_and_ack); b revokes, but that revoke_and_ack is withheld.
    p.b.ch
        .add_htlc(2_000_000, hash_of(&preimage(2)), 502, onion())
        .unwrap();
    p.b.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut p, 1), 2); // update_add, commitment_signed
    assert_eq!(deliver(&mut p, 0), 1); // revoke_and_ack
    assert!(p.a.ch.can_send_commitment());
    p.a.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut p, 0), 1); // commitment_signed
    let withheld = take(&mut p, 1);
    assert!(matches!(withheld[..], [Message::RevokeAndAck(_)]));

    // 2. b fulfills a's HTLC and signs it; a revokes (a still cannot sign: it awaits the
    //    withheld revocation).
    p.b.ch.fulfill_htlc(h0, pre0).unwrap();
    p.b.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut p, 1), 2); // update_fulfill, commitment_signed
    assert_eq!(deliver(&mut p, 0), 1); // revoke_and_ack
    assert!(!p.a.ch.can_send_commitment());

    // 3. b adds an HTLC larger than its balance before the fulfill, funded by the credit,
    //    and signs it; a revokes.
    let funded = 300_000_000;
    assert!(funded > PUSH_MSAT);
    p.b.ch
        .add_htlc(funded, hash_of(&preimage(3)), 503, onion())
        .unwrap();
    p.b.ch.send_commitment().unwrap();
    assert_eq!(deliver(&mut p, 1), 2); // update_add, commitment_signed
    assert_eq!(deliver(&mut p, 0), 1); // revoke_and_ack
    assert_eq!(
        p.a.ch.state().remote_changes.acked.len(),
        2,
        "fulfill and add"
    );

    // 4. The withheld revocation finally arrives: a must be able to sign both updates.
    for m in &withheld {
        p.a.ch.handle_message(m).unwrap();
    }
    assert!(p.a.ch.can_send_commitment());
    p.a.ch
        .send_commitment()
        .expect("our next commitment must be buildable");
    assert!(!p.a.ch.can_send_commitment());

    // And the channel goes on: a settles b's two HTLCs, balances mirror and add up.
    p.run();
    fulfill_received(&mut p.a);
    p.run();
    p.check_mirror();
    assert_eq!(
        p.a.ch.balances_msat().unwrap().0,
        FUNDING_SAT * 1000 - PUSH_MSAT - big + 2_000_000 + funded
    );
}

/// Defect 2, the general guard: should our next commitment ever be impossible to build
/// (here: a corrupt record log settles an HTLC that does not exist), `can_send_commitment`
/// must not stay true for ever with `send_commitment` failing each time. The failure fails
/// the channel (our own fault, reported as such) and offers our commitment for broadcast.
#[test]
fn unbuildable_commitment_fails_the_channel_instead_of_staying_pending() {
    let mut p = open_pair(101, ChannelConfig::default()).unwrap();
    pay(&mut p, 1, 3_000_000);
    let mut log = p.a.log().to_vec();
    log.push(Record::LocalUpdate(Update::Fulfill {
        id: 999,
        preimage: preimage(999),
    }));
    let mut broken = opener_from(log);
    let lcn = broken.ch.state().local_commit.as_ref().unwrap().number;
    let (_, from_b) = reconnect(&mut p);
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
    let mut p = open_pair(110, ChannelConfig::default()).unwrap();
    p.b.ch.handle_fee_estimate(1000);
    // Snapshots (one per `snapshot_every` records) are not the flood's.
    let count = |log: &[Record]| {
        log.iter()
            .filter(|r| !matches!(r, Record::Snapshot(_)))
            .count()
    };
    let records_before = count(p.b.log());
    let mut failed_at = None;
    for i in 0..10_000u32 {
        let res = p.b.ch.handle_message(&fee_msg(&p.b.ch, 1000 + i % 500));
        p.b.persist();
        match res {
            Ok(()) => {
                let st = p.b.ch.state();
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
            count(p.b.log()) - records_before <= CAP + 1,
            "{} records after {i} update_fee",
            count(p.b.log()) - records_before
        );
    }
    assert_eq!(failed_at, Some(CAP as u32), "the update past the cap fails");
    assert!(matches!(
        p.b.ch.close_reason(),
        Some(CloseReason::ProtocolViolation(_))
    ));
    assert!(matches!(
        p.b.ch.poll_broadcast().map(|bc| bc.kind),
        Some(BroadcastKind::Commitment { .. })
    ));
    p.b.assert_restores();
}

/// Defect 5(a), the honest side of it: many `update_fee` commands before one
/// `commitment_signed` collapse to the last feerate on both sides, the signatures agree, and
/// the commitment carries that last feerate.
#[test]
fn many_update_fee_before_a_commitment_collapse_and_sign() {
    let mut p = open_pair(111, ChannelConfig::default()).unwrap();
    p.b.ch.handle_fee_estimate(1000);
    for i in 0..(CAP as u32 - 1) {
        p.a.ch.update_fee(1000 + i % 700).unwrap();
        assert_eq!(p.a.ch.state().local_changes.proposed.len(), 1);
    }
    let last = 1000 + (CAP as u32 - 2) % 700;
    let msgs = p.a.outgoing();
    assert_eq!(msgs.len(), CAP - 1);
    for m in &msgs {
        p.b.ch.handle_message(m).unwrap();
        assert_eq!(p.b.ch.state().remote_changes.proposed.len(), 1);
    }
    p.run();
    for e in [&p.a, &p.b] {
        let st = e.ch.state();
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, last);
        assert_eq!(st.remote_commit.as_ref().unwrap().spec.feerate_per_kw, last);
    }
    p.check_mirror();
    // The cap counts updates since the peer's last commitment_signed: after signing, the
    // funder may propose again.
    p.a.ch.update_fee(1500).unwrap();
    p.run();
    assert_eq!(
        p.b.ch
            .state()
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
    let mut p = open_pair(112, ChannelConfig::default()).unwrap();
    p.b.ch.handle_fee_estimate(1000);
    let mut last = 0;
    for i in 0..300u32 {
        last = 1000 + i % 400;
        p.a.ch.update_fee(last).unwrap();
        p.a.ch.send_commitment().unwrap();
        assert_eq!(deliver(&mut p, 0), 2); // update_fee, commitment_signed
        assert_eq!(deliver(&mut p, 1), 1); // revoke_and_ack; b does not sign
        assert_eq!(p.b.ch.state().remote_changes.acked, vec![Update::Fee(last)]);
        assert_eq!(p.a.ch.state().local_changes.acked, vec![Update::Fee(last)]);
    }
    p.b.assert_restores();
    p.a.assert_restores();
    p.run();
    for e in [&p.a, &p.b] {
        let st = e.ch.state();
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, last);
        assert_eq!(st.remote_commit.as_ref().unwrap().spec.feerate_per_kw, last);
    }
    p.check_mirror();
}
