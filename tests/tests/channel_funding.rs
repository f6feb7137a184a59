//! Two in-memory parties: the funding confirmation is verified (the output at the funding
//! outpoint must be the agreed 2-of-2 P2WSH for exactly the capacity, or the channel fails
//! with `CloseReason::FundingMismatch` and broadcasts nothing), the short channel id is
//! derived from where it confirmed, stored, restored and sent in `channel_ready`; and the
//! peer's `error` closes with `CloseReason::PeerError`.
//!
//! Must never: depend on timing or an unseeded RNG.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, ScriptBuf, Transaction};
use fulmen_channel::machine::{
    BroadcastKind, Channel, ChannelConfig, ChannelError, CloseReason, Event, FundingMismatch,
    Phase, Record,
};
use fulmen_tests::pair::*;
use fulmen_wire::msgs::Message;
use fulmen_wire::ShortChannelId;

fn expected_scid() -> ShortChannelId {
    ShortChannelId::new(FUNDING_HEIGHT, FUNDING_TX_INDEX, FUNDING_VOUT as u16).unwrap()
}

/// The `channel_ready` messages in `msgs`.
fn readies(msgs: &[Message]) -> Vec<fulmen_wire::msgs::ChannelReady> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::ChannelReady(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn confirmation_derives_stores_and_sends_the_short_channel_id() {
    let (mut p, tx) = open_funded(
        20,
        ChannelConfig::default(),
        ChannelConfig::default(),
        funding_tx,
    )
    .unwrap();
    assert_eq!(p.a.ch.short_channel_id(), None);
    for e in [&mut p.a, &mut p.b] {
        e.ch.handle_funding_confirmed(FUNDING_HEIGHT, FUNDING_TX_INDEX, &tx)
            .unwrap();
        e.ch.handle_block(FUNDING_HEIGHT + 2).unwrap();
    }
    let scid = expected_scid();
    assert_eq!(scid.to_string(), "110x3x1");
    // channel_ready carries it (TLV 1), both ways.
    let from_a = p.a.outgoing();
    let from_b = p.b.outgoing();
    for msgs in [&from_a, &from_b] {
        let r = readies(msgs);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].short_channel_id, Some(scid));
    }
    for m in &from_a {
        p.b.ch.handle_message(m).unwrap();
    }
    for m in &from_b {
        p.a.ch.handle_message(m).unwrap();
    }
    p.run();
    assert_eq!(p.a.ch.state().phase, Phase::Normal);
    for e in [&mut p.a, &mut p.b] {
        assert_eq!(e.ch.short_channel_id(), Some(scid));
        // Stored in the confirmation record ...
        assert!(e.log().contains(&Record::FundingConfirmed {
            height: FUNDING_HEIGHT,
            short_channel_id: Some(scid),
        }));
        // ... so it survives a restart (also through the persistence format).
        e.assert_restores();
        let r = Channel::restore(&e.keys, ChannelConfig::default(), e.log()).unwrap();
        assert_eq!(r.short_channel_id(), Some(scid));
        // The basepoints come from the records: a key source without this channel's keys
        // (another seed) is refused instead of signing with keys the peer does not know.
        let other = fulmen_channel::machine::SeedKeySource::new([9u8; 32]);
        let wrong = Channel::restore(&other, ChannelConfig::default(), e.log());
        assert!(
            format!("{:?}", wrong.err()).contains("key source"),
            "restored with the wrong keys"
        );
    }
    // A retransmitted channel_ready (reconnection before any update) carries it too.
    for e in [&mut p.a, &mut p.b] {
        e.ch.handle_disconnect();
        e.ch.handle_reconnect().unwrap();
    }
    let (ra, rb) = (p.a.outgoing(), p.b.outgoing());
    for m in &ra {
        p.b.ch.handle_message(m).unwrap();
    }
    for m in &rb {
        p.a.ch.handle_message(m).unwrap();
    }
    let again = readies(&p.a.outgoing());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].short_channel_id, Some(scid));
    p.run();
    // A reorg confirming it elsewhere moves the short channel id.
    p.a.ch
        .handle_funding_confirmed(FUNDING_HEIGHT + 5, 0, &tx)
        .unwrap();
    let moved = ShortChannelId::new(FUNDING_HEIGHT + 5, 0, FUNDING_VOUT as u16);
    assert_eq!(p.a.ch.short_channel_id(), moved);
    p.a.assert_restores();
    // Payments flow as usual.
    p.a.ch
        .add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    p.run();
    fulfill_received(&mut p.b);
    p.run();
    p.check_mirror();
}

#[test]
fn another_transaction_is_refused_and_changes_nothing() {
    let (mut p, tx) = open_funded(
        21,
        ChannelConfig::default(),
        ChannelConfig::default(),
        funding_tx,
    )
    .unwrap();
    let mut other = tx.clone();
    other.lock_time = bitcoin::absolute::LockTime::from_height(1).unwrap();
    for e in [&mut p.a, &mut p.b] {
        let before = e.ch.state().clone();
        let err =
            e.ch.handle_funding_confirmed(FUNDING_HEIGHT, FUNDING_TX_INDEX, &other)
                .unwrap_err();
        assert!(matches!(err, ChannelError::Command(ref e) if e.contains("not the funding")));
        // A place that does not fit a short channel id (24-bit height / index).
        let err = e.ch.handle_funding_confirmed(1 << 24, 0, &tx).unwrap_err();
        assert!(matches!(err, ChannelError::Command(_)), "{err}");
        let err =
            e.ch.handle_funding_confirmed(FUNDING_HEIGHT, 1 << 24, &tx)
                .unwrap_err();
        assert!(matches!(err, ChannelError::Command(_)), "{err}");
        assert_eq!(e.ch.state(), &before);
        assert!(e.outgoing().is_empty());
        assert!(e.ch.poll_persist().is_none());
    }
}

/// Open with a funding transaction from `make_tx`, confirm it on both sides, and check both
/// fail with `FundingMismatch(expected)`: the acceptor (pointed at it by the opener) with a
/// protocol error, the opener (its own funding) with an internal one; an `error` goes to
/// the peer, nothing is broadcast, the reason is durable.
fn mismatch_fails_both_sides(
    seed: u64,
    make_tx: impl FnOnce(ScriptBuf, Amount) -> Transaction,
    expected: impl Fn(&ScriptBuf) -> FundingMismatch,
) {
    let (mut p, tx) = open_funded(
        seed,
        ChannelConfig::default(),
        ChannelConfig::default(),
        make_tx,
    )
    .unwrap();
    let st = p.a.ch.state();
    let funding_script = fulmen_channel::funding::funding_output(
        &st.setup.local.basepoints.funding_pubkey,
        &st.setup.remote.unwrap().basepoints.funding_pubkey,
        Amount::from_sat(FUNDING_SAT),
    )
    .script_pubkey;
    let reason = CloseReason::FundingMismatch(expected(&funding_script));
    for (e, is_opener) in [(&mut p.a, true), (&mut p.b, false)] {
        let err =
            e.ch.handle_funding_confirmed(FUNDING_HEIGHT, FUNDING_TX_INDEX, &tx)
                .unwrap_err();
        let text = reason.to_string();
        assert!(text.starts_with("funding output mismatch: "), "{text}");
        if is_opener {
            assert_eq!(err, ChannelError::Internal(text));
        } else {
            assert_eq!(err, ChannelError::Protocol(text));
        }
        assert_eq!(e.ch.state().phase, Phase::Closed);
        assert_eq!(e.ch.close_reason(), Some(&reason));
        assert_eq!(e.ch.short_channel_id(), None);
        assert_eq!(e.ch.state().funding_confirmed_height, None);
        assert!(
            e.ch.poll_broadcast().is_none(),
            "nothing of ours to broadcast"
        );
        let out = e.outgoing();
        assert!(
            matches!(out.as_slice(), [Message::Error(e)] if e.data.0 == reason.to_string().into_bytes()),
            "{out:?}"
        );
        assert!(e.events.contains(&Event::Closed {
            reason: reason.clone()
        }));
        assert!(e.log().contains(&Record::Closed(reason.clone())));
        e.assert_restores();
        assert!(matches!(
            e.ch.handle_block(FUNDING_HEIGHT + 10),
            Err(ChannelError::Closed)
        ));
        assert!(matches!(
            e.ch.add_htlc(1000, hash_of(&preimage(1)), 501, onion()),
            Err(ChannelError::Closed)
        ));
    }
}

#[test]
fn funding_output_paying_another_script_fails_the_channel() {
    // Right amount, but a P2WSH of some other script: a channel that holds nothing.
    let other = ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([0x77; 32]));
    let found = other.clone();
    mismatch_fails_both_sides(
        22,
        |_, value| funding_tx(other, value),
        |expected| FundingMismatch::WrongScript {
            vout: FUNDING_VOUT,
            expected: expected.clone(),
            found: found.clone(),
        },
    );
}

#[test]
fn funding_output_with_another_amount_fails_the_channel() {
    mismatch_fails_both_sides(
        23,
        |script, value| funding_tx(script, value - Amount::from_sat(1)),
        |_| FundingMismatch::WrongAmount {
            vout: FUNDING_VOUT,
            expected_sat: FUNDING_SAT,
            found_sat: FUNDING_SAT - 1,
        },
    );
}

#[test]
fn funding_transaction_without_the_output_fails_the_channel() {
    mismatch_fails_both_sides(
        24,
        |script, value| {
            let mut tx = funding_tx(script, value);
            tx.output.truncate(FUNDING_VOUT as usize);
            tx
        },
        |_| FundingMismatch::MissingOutput {
            vout: FUNDING_VOUT,
            outputs: FUNDING_VOUT as usize,
        },
    );
}

#[test]
fn peer_error_closes_with_its_text_and_offers_our_commitment() {
    let mut p = open_pair(25, ChannelConfig::default()).unwrap();
    let long = format!("boom {}", "x".repeat(1000));
    let err_msg = fulmen_wire::msgs::Error::text(p.b.ch.channel_id(), &long);
    let err = p.b.ch.handle_message(&Message::Error(err_msg)).unwrap_err();
    assert!(matches!(err, ChannelError::Protocol(ref e) if e.contains("peer sent error: boom")));
    let Some(CloseReason::PeerError(text)) = p.b.ch.close_reason().cloned() else {
        panic!("{:?}", p.b.ch.close_reason())
    };
    // The peer's text is kept, bounded.
    assert!(
        text.starts_with("boom x") && text.len() < 300,
        "{}",
        text.len()
    );
    let bc = p.b.ch.poll_broadcast().expect("our commitment");
    assert_eq!(bc.kind, BroadcastKind::Commitment { number: 0 });
    assert!(p.b.outgoing().is_empty(), "no error sent back for an error");
    assert!(p.b.events.iter().any(|e| matches!(
        e,
        Event::Closed {
            reason: CloseReason::PeerError(_)
        }
    )));
    p.b.assert_restores();
}
