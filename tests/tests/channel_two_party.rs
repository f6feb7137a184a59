//! Two in-memory parties driving `fulmen_channel::machine::Channel`: open, pay in both
//! directions with several updates per commitment, balances conserved to the msat, bad
//! signatures / preimages / secrets refused, BOLT 2 opening checks, funding timeout,
//! persist-before-send, and every party rebuilt from its records (also after they went
//! through the `Record::encode` / `Record::decode` persistence format) equal to the original.
//! Closing, fees, reestablish and dust exposure are in `channel_lifecycle.rs`.
//!
//! Must never: depend on timing or an unseeded RNG.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message as SecpMsg, Secp256k1, SecretKey};
use bitcoin::{OutPoint, Txid};
use fulmen_channel::machine::SeedKeySource;
use fulmen_channel::machine::{
    BroadcastKind, Channel, ChannelConfig, ChannelError, CloseReason, Event, Phase, Record,
};
use fulmen_tests::pair::*;
use fulmen_tests::sim::{FixedFees, SimRng};
use fulmen_wire::msgs::Message;

#[test]
fn open_pay_both_ways_balances_conserved() {
    let mut p = open_pair(7, ChannelConfig::default()).unwrap();
    let mut expected_a = FUNDING_SAT * 1000 - PUSH_MSAT;
    let mut n = 0u64;
    // Rounds: a pays b k times (one commitment for all), then b pays a.
    for round in 0..4u64 {
        for (payer_is_a, k) in [(true, 1 + round), (false, 2 + round)] {
            let (payer, payee) = if payer_is_a { (0, 1) } else { (1, 0) };
            for _ in 0..k {
                n += 1;
                let amt = 1_000_000 + n * 12_345;
                let pre = preimage(n);
                p.end(payer)
                    .ch
                    .add_htlc(amt, hash_of(&pre), 500 + n as u32, onion())
                    .unwrap();
                if payer_is_a {
                    expected_a -= amt;
                } else {
                    expected_a += amt;
                }
            }
            p.run();
            fulfill_received(p.end(payee));
            p.run();
            let fulfilled = p
                .end(payer)
                .events
                .iter()
                .filter(|e| matches!(e, Event::HtlcFulfilled { .. }))
                .count();
            assert!(fulfilled as u64 >= k);
            p.end(payer).events.clear();
        }
        p.check_mirror();
        assert_eq!(p.a.ch.balances_msat().unwrap().0, expected_a);
    }
    // Several adds per commitment really happened: fewer SentCommitment records than adds.
    let adds =
        p.a.log()
            .iter()
            .filter(|r| matches!(r, Record::LocalUpdate(_)))
            .count();
    let commits =
        p.a.log()
            .iter()
            .filter(|r| matches!(r, Record::SentCommitment))
            .count();
    assert!(
        commits < adds,
        "{commits} commitments for {adds} local updates"
    );
    // Both sides agree on both commitments once quiet.
    assert_eq!(
        p.a.ch.state().local_commit.as_ref().unwrap().number,
        p.b.ch.state().remote_commit.as_ref().unwrap().number
    );
    // The latest commitment is fully signed and spends the funding outpoint.
    let tx = p.a.ch.signed_local_commitment().unwrap();
    assert_eq!(tx.input[0].witness.len(), 4);
    // libbitcoinconsensus accepts both funding signatures.
    let st = p.a.ch.state();
    let funding = fulmen_channel::funding::funding_output(
        &st.setup.local.basepoints.funding_pubkey,
        &st.setup.remote.unwrap().basepoints.funding_pubkey,
        bitcoin::Amount::from_sat(FUNDING_SAT),
    );
    funding
        .script_pubkey
        .verify(0, funding.value, &bitcoin::consensus::serialize(&tx))
        .unwrap();
}

#[test]
fn htlc_failed_returns_the_amount() {
    let mut p = open_pair(8, ChannelConfig::default()).unwrap();
    let before = p.a.ch.balances_msat().unwrap();
    let id =
        p.a.ch
            .add_htlc(5_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    p.run();
    let Some(Event::HtlcReceived { id: bid, .. }) = p.b.events.pop() else {
        panic!("no htlc received")
    };
    assert_eq!(bid, id);
    p.b.ch.fail_htlc(bid, vec![1, 2, 3]).unwrap();
    p.run();
    assert!(p.a.events.contains(&Event::HtlcFailed {
        id,
        reason: vec![1, 2, 3]
    }));
    assert_eq!(p.a.ch.balances_msat().unwrap(), before);
    p.check_mirror();
}

#[test]
fn messages_wait_for_persistence() {
    let mut p = open_pair(9, ChannelConfig::default()).unwrap();
    p.a.ch
        .add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    p.a.ch.send_commitment().unwrap();
    assert!(p.a.ch.poll_message().is_none(), "released before persisted");
    let b1 = p.a.ch.poll_persist().unwrap();
    let b2 = p.a.ch.poll_persist().unwrap();
    // Acknowledging the later batch alone releases nothing (order is kept).
    p.a.ch.persisted(b2.id).unwrap();
    assert!(p.a.ch.poll_message().is_none());
    p.a.ch.persisted(b1.id).unwrap();
    assert!(matches!(
        p.a.ch.poll_message(),
        Some(Message::UpdateAddHtlc(_))
    ));
    assert!(matches!(
        p.a.ch.poll_message(),
        Some(Message::CommitmentSigned(_))
    ));
    p.a.store.write(&b1.records);
    p.a.store.write(&b2.records);
    assert!(p.a.ch.persisted(99).is_err());
}

/// [`ChannelConfig::early_fulfill`]: the payee's `update_fulfill_htlc` leaves before its
/// record is durable, while the `commitment_signed` after it still waits. If the payee then
/// crashes and loses that record, the payer (which learned the preimage) forgets the
/// uncommitted fulfill at the reconnection, the payee fulfills again from its durable state,
/// and the HTLC settles once. With the option off, the fulfill waits for its batch.
#[test]
fn a_fulfill_leaves_before_its_record_and_survives_losing_it() {
    for early in [true, false] {
        let cfg = ChannelConfig {
            early_fulfill: early,
            ..ChannelConfig::default()
        };
        let mut p = open_pair(41, cfg).unwrap();
        let (a_before, b_before) = p.a.ch.balances_msat().unwrap();
        let pre = preimage(1);
        p.a.ch
            .add_htlc(2_000_000, hash_of(&pre), 501, onion())
            .unwrap();
        p.run();
        let Some(Event::HtlcReceived { id, .. }) = p.b.events.pop() else {
            panic!("no htlc received")
        };
        p.b.ch.fulfill_htlc(id, pre).unwrap();
        p.b.ch.send_commitment().unwrap();
        let released = p.b.ch.poll_message();
        if !early {
            assert!(released.is_none(), "released before persisted");
            p.run();
        } else {
            let Some(fulfill @ Message::UpdateFulfillHtlc(_)) = released else {
                panic!("the fulfill did not leave early: {released:?}")
            };
            assert!(p.b.ch.poll_message().is_none(), "the signature waits");
            p.a.ch.handle_message(&fulfill).unwrap();
            p.flush(0);
            assert!(p
                .a
                .events
                .contains(&Event::HtlcFulfilled { id, preimage: pre }));
            // The payee crashes before its batch is durable: the fulfill is forgotten.
            p.b.hand_out();
            assert!(p.b.restart(true) >= 1, "the fulfill's batch was lost");
            p.disconnect();
            p.reconnect();
            p.run();
            assert_eq!(
                p.a.ch.balances_msat().unwrap(),
                (a_before - 2_000_000, b_before)
            );
            p.b.ch.fulfill_htlc(id, pre).unwrap();
            p.run();
        }
        assert_eq!(
            p.a.ch.balances_msat().unwrap(),
            (a_before - 2_000_000, b_before + 2_000_000),
            "early = {early}"
        );
        assert_eq!(
            p.b.ch.balances_msat().unwrap(),
            (b_before + 2_000_000, a_before - 2_000_000)
        );
        p.check_mirror();
    }
}

#[test]
fn bad_commitment_signature_fails_channel_and_offers_commitment() {
    let mut p = open_pair(10, ChannelConfig::default()).unwrap();
    p.a.ch
        .add_htlc(3_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    p.a.ch.send_commitment().unwrap();
    let msgs = p.a.outgoing();
    let secp = Secp256k1::new();
    let k = SecretKey::from_slice(&[5u8; 32]).unwrap();
    let forged = secp.sign_ecdsa(&SecpMsg::from_digest([1u8; 32]), &k);
    for m in msgs {
        match m {
            Message::CommitmentSigned(mut cs) => {
                cs.signature = forged;
                let err =
                    p.b.ch
                        .handle_message(&Message::CommitmentSigned(cs))
                        .unwrap_err();
                assert!(matches!(err, ChannelError::Protocol(_)), "{err}");
            }
            other => p.b.ch.handle_message(&other).unwrap(),
        }
    }
    assert_eq!(p.b.ch.state().phase, Phase::Closed);
    let out = p.b.outgoing();
    assert!(matches!(out.last(), Some(Message::Error(_))));
    let bc = p.b.ch.poll_broadcast().expect("latest commitment offered");
    // A force close with our current commitment, never called a closing transaction.
    let number = p.b.ch.state().local_commit.as_ref().unwrap().number;
    assert_eq!(bc.kind, BroadcastKind::Commitment { number });
    let tx = bc.tx;
    assert_eq!(
        tx.input[0].previous_output,
        p.b.ch.state().funding_outpoint.unwrap()
    );
    assert!(p.b.events.iter().any(|e| matches!(
        e,
        Event::Closed {
            reason: CloseReason::ProtocolViolation(r)
        } if r.contains("invalid commitment signature")
    )));
    assert!(matches!(
        p.b.ch.handle_block(500),
        Err(ChannelError::Closed)
    ));
    p.b.assert_restores();
}

#[test]
fn bad_htlc_signature_refused() {
    let mut p = open_pair(11, ChannelConfig::default()).unwrap();
    p.a.ch
        .add_htlc(30_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    p.a.ch.send_commitment().unwrap();
    let mut saw = false;
    for m in p.a.outgoing() {
        match m {
            Message::CommitmentSigned(mut cs) => {
                assert_eq!(cs.htlc_signatures.len(), 1, "one untrimmed htlc");
                cs.htlc_signatures[0] = cs.signature;
                let err =
                    p.b.ch
                        .handle_message(&Message::CommitmentSigned(cs))
                        .unwrap_err();
                assert!(err.to_string().contains("htlc signature"), "{err}");
                saw = true;
            }
            other => p.b.ch.handle_message(&other).unwrap(),
        }
    }
    assert!(saw);
}

#[test]
fn wrong_preimage_refused() {
    let mut p = open_pair(12, ChannelConfig::default()).unwrap();
    let id =
        p.a.ch
            .add_htlc(4_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    p.run();
    // The command is refused without changing anything.
    assert!(matches!(
        p.b.ch.fulfill_htlc(id, preimage(2)),
        Err(ChannelError::Command(_))
    ));
    // A peer sending a wrong preimage fails the channel.
    let m = fulmen_wire::msgs::UpdateFulfillHtlc {
        channel_id: p.a.ch.channel_id(),
        id,
        payment_preimage: preimage(2).0,
        extra_tlvs: Default::default(),
    };
    let err =
        p.a.ch
            .handle_message(&Message::UpdateFulfillHtlc(m))
            .unwrap_err();
    assert!(err.to_string().contains("wrong preimage"), "{err}");
    assert_eq!(p.a.ch.state().phase, Phase::Closed);
}

#[test]
fn bad_revocation_secret_refused() {
    let mut p = open_pair(13, ChannelConfig::default()).unwrap();
    p.a.ch
        .add_htlc(4_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    p.a.ch.send_commitment().unwrap();
    for m in p.a.outgoing() {
        p.b.ch.handle_message(&m).unwrap();
    }
    let mut saw = false;
    for m in p.b.outgoing() {
        if let Message::RevokeAndAck(mut r) = m {
            r.per_commitment_secret[0] ^= 1;
            let err =
                p.a.ch
                    .handle_message(&Message::RevokeAndAck(r))
                    .unwrap_err();
            assert!(err.to_string().contains("does not match"), "{err}");
            saw = true;
        }
    }
    assert!(saw);
}

#[test]
fn unexpected_and_out_of_order_messages_refused() {
    let mut p = open_pair(14, ChannelConfig::default()).unwrap();
    // HTLC id must be the next one.
    p.a.ch
        .add_htlc(4_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    let mut msgs = p.a.outgoing();
    let Some(Message::UpdateAddHtlc(mut add)) = msgs.pop() else {
        panic!()
    };
    add.id = 5;
    assert!(p.b.ch.handle_message(&Message::UpdateAddHtlc(add)).is_err());
    // commitment_signed with no updates.
    let mut q = open_pair(15, ChannelConfig::default()).unwrap();
    let cs = fulmen_wire::msgs::CommitmentSigned {
        channel_id: q.a.ch.channel_id(),
        signature: Secp256k1::new().sign_ecdsa(
            &SecpMsg::from_digest([1u8; 32]),
            &SecretKey::from_slice(&[3u8; 32]).unwrap(),
        ),
        htlc_signatures: vec![],
        extra_tlvs: Default::default(),
    };
    assert!(q
        .a
        .ch
        .handle_message(&Message::CommitmentSigned(cs))
        .is_err());
    let _ = q.a.outgoing();
}

#[test]
fn sender_limits_refuse_commands() {
    let cfg_b = ChannelConfig {
        max_accepted_htlcs: 2,
        htlc_minimum_msat: 1000,
        ..ChannelConfig::default()
    };
    let mut p = open_pair(16, cfg_b).unwrap();
    assert!(matches!(
        p.a.ch.add_htlc(999, hash_of(&preimage(1)), 501, onion()),
        Err(ChannelError::Command(_))
    ));
    assert!(p
        .a
        .ch
        .add_htlc(0, hash_of(&preimage(1)), 501, onion())
        .is_err());
    assert!(p
        .a
        .ch
        .add_htlc(1000, hash_of(&preimage(1)), 500_000_000, onion())
        .is_err());
    p.a.ch
        .add_htlc(1000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    p.a.ch
        .add_htlc(1000, hash_of(&preimage(2)), 502, onion())
        .unwrap();
    assert!(p
        .a
        .ch
        .add_htlc(1000, hash_of(&preimage(3)), 503, onion())
        .is_err());
    // b has 100_000 sat and must keep a 10_000 sat reserve.
    assert!(p
        .b
        .ch
        .add_htlc(90_000_001, hash_of(&preimage(4)), 504, onion())
        .is_err());
    p.b.ch
        .add_htlc(90_000_000, hash_of(&preimage(4)), 504, onion())
        .unwrap();
    // A refused command changed nothing: ids continue from 2.
    assert_eq!(p.a.ch.state().next_local_htlc_id, 2);
    p.run();
}

/// What route finding is told it can send ([`Channel::spendable_msat`]) honours the peer's
/// count and in-flight limits, so a route is not chosen over a channel that must refuse it.
#[test]
fn spendable_honours_the_peers_htlc_limits() {
    let cfg_b = ChannelConfig {
        max_accepted_htlcs: 2,
        max_htlc_value_in_flight_msat: 5_000_000,
        ..ChannelConfig::default()
    };
    let mut p = open_pair(17, cfg_b).unwrap();
    assert_eq!(
        p.a.ch.spendable_msat(),
        5_000_000,
        "capped by the in-flight limit"
    );
    p.a.ch
        .add_htlc(3_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    assert_eq!(p.a.ch.spendable_msat(), 2_000_000, "what is left under it");
    assert!(p
        .a
        .ch
        .add_htlc(2_000_001, hash_of(&preimage(2)), 502, onion())
        .is_err());
    p.a.ch
        .add_htlc(1_000_000, hash_of(&preimage(2)), 502, onion())
        .unwrap();
    assert_eq!(p.a.ch.spendable_msat(), 0, "max_accepted_htlcs offered");
    assert!(p
        .a
        .ch
        .add_htlc(1_000, hash_of(&preimage(3)), 503, onion())
        .is_err());
    p.run();
}

fn open_msg(seed: u64) -> (SeedKeySource, SimRng, fulmen_wire::msgs::OpenChannel) {
    let mut rng = SimRng::new(seed);
    let ka = SeedKeySource::new([1u8; 32]);
    let mut a = Channel::new_outbound(
        &ka,
        &mut rng,
        &FixedFees(1000),
        ChannelConfig::default(),
        CHAIN,
        FUNDING_SAT,
        0,
        1,
    )
    .unwrap();
    let b = a.poll_persist().unwrap();
    a.persisted(b.id).unwrap();
    let Some(Message::OpenChannel(o)) = a.poll_message() else {
        panic!()
    };
    (SeedKeySource::new([2u8; 32]), rng, o)
}

type Mutate = Box<dyn Fn(&mut fulmen_wire::msgs::OpenChannel)>;

#[test]
fn open_channel_parameter_checks() {
    let cases: Vec<(&str, Mutate)> = vec![
        (
            "max_accepted_htlcs",
            Box::new(|o| o.max_accepted_htlcs = 484),
        ),
        ("dust_limit", Box::new(|o| o.dust_limit_satoshis = 353)),
        ("to_self_delay", Box::new(|o| o.to_self_delay = 5000)),
        ("feerate", Box::new(|o| o.feerate_per_kw = 100)),
        ("feerate", Box::new(|o| o.feerate_per_kw = 1_000_000)),
        ("push", Box::new(|o| o.push_msat = FUNDING_SAT * 1000 + 1)),
        ("2^24", Box::new(|o| o.funding_satoshis = 1 << 24)),
        (
            "reserve",
            Box::new(|o| o.channel_reserve_satoshis = 300_000),
        ),
        ("dust_limit", Box::new(|o| o.dust_limit_satoshis = 10_001)),
        ("chain", Box::new(|o| o.chain_hash = [0u8; 32])),
    ];
    for (what, f) in cases {
        let (kb, mut rng, mut o) = open_msg(20);
        f(&mut o);
        let r = Channel::new_inbound(
            &kb,
            &mut rng,
            &FixedFees(1000),
            ChannelConfig::default(),
            CHAIN,
            &o,
            1,
        );
        assert!(
            matches!(r, Err(ChannelError::Protocol(_))),
            "{what} accepted"
        );
    }
    let (kb, mut rng, o) = open_msg(20);
    assert!(Channel::new_inbound(
        &kb,
        &mut rng,
        &FixedFees(1000),
        ChannelConfig::default(),
        CHAIN,
        &o,
        1
    )
    .is_ok());
}

#[test]
fn accept_channel_parameter_checks() {
    for bad in 0..3 {
        let mut rng = SimRng::new(30);
        let ka = SeedKeySource::new([1u8; 32]);
        let mut a = Channel::new_outbound(
            &ka,
            &mut rng,
            &FixedFees(1000),
            ChannelConfig::default(),
            CHAIN,
            FUNDING_SAT,
            0,
            1,
        )
        .unwrap();
        let b0 = a.poll_persist().unwrap();
        a.persisted(b0.id).unwrap();
        let Some(Message::OpenChannel(o)) = a.poll_message() else {
            panic!()
        };
        let mut b = Channel::new_inbound(
            &SeedKeySource::new([2u8; 32]),
            &mut rng,
            &FixedFees(1000),
            ChannelConfig::default(),
            CHAIN,
            &o,
            1,
        )
        .unwrap();
        let b1 = b.poll_persist().unwrap();
        b.persisted(b1.id).unwrap();
        let Some(Message::AcceptChannel(mut acc)) = b.poll_message() else {
            panic!()
        };
        match bad {
            0 => acc.minimum_depth = 1000,
            1 => acc.max_accepted_htlcs = 484,
            _ => acc.channel_reserve_satoshis = 100,
        }
        assert!(matches!(
            a.handle_message(&Message::AcceptChannel(acc)),
            Err(ChannelError::Protocol(_))
        ));
        assert_eq!(a.state().phase, Phase::Closed);
    }
}

#[test]
fn unconfirmed_funding_times_out_for_the_acceptor() {
    let mut rng = SimRng::new(40);
    let ka = SeedKeySource::new([1u8; 32]);
    let kb = SeedKeySource::new([2u8; 32]);
    let ch = Channel::new_outbound(
        &ka,
        &mut rng,
        &FixedFees(1000),
        ChannelConfig::default(),
        CHAIN,
        FUNDING_SAT,
        0,
        100,
    )
    .unwrap();
    let mut a = Endpoint::new("a", ch, ka, ChannelConfig::default());
    let Some(Message::OpenChannel(o)) = a.outgoing().pop() else {
        panic!()
    };
    let ch = Channel::new_inbound(
        &kb,
        &mut rng,
        &FixedFees(1000),
        ChannelConfig::default(),
        CHAIN,
        &o,
        100,
    )
    .unwrap();
    let b = Endpoint::new("b", ch, kb, ChannelConfig::default());
    let mut p = Pair::new(a, b, 40);
    p.run();
    p.a.ch
        .handle_funding_tx(OutPoint {
            txid: Txid::from_byte_array([3u8; 32]),
            vout: 0,
        })
        .unwrap();
    p.run();
    p.b.ch.handle_block(2115).unwrap();
    assert_eq!(p.b.ch.state().phase, Phase::AwaitingReady);
    p.b.ch.handle_block(2116).unwrap();
    p.b.persist();
    assert_eq!(p.b.ch.state().phase, Phase::Closed);
    let timeout = CloseReason::FundingTimeout {
        created_height: 100,
        height: 2116,
    };
    assert!(p.b.events.contains(&Event::Closed {
        reason: timeout.clone()
    }));
    assert_eq!(p.b.ch.close_reason(), Some(&timeout));
    // Nothing of ours is at stake: nothing to broadcast, nothing to tell the peer.
    assert!(p.b.ch.poll_broadcast().is_none());
    assert!(p.b.outgoing().is_empty());
    p.b.assert_restores();
}
