//! Two in-memory parties: the funding confirmation is verified (the output at the funding
//! outpoint must be the agreed 2-of-2 P2WSH for exactly the capacity, or the channel fails
//! with `CloseReason::FundingMismatch` and broadcasts nothing), the short channel id is
//! derived from where it confirmed, stored, restored and sent in `channel_ready`; and the
//! peer's `error` closes with `CloseReason::PeerError`.
//!
//! Must never: depend on timing or an unseeded RNG.

mod two_party;
use two_party::*;

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
    let (mut a, mut b, tx) = open_funded(
        20,
        ChannelConfig::default(),
        ChannelConfig::default(),
        funding_tx,
    )
    .unwrap();
    assert_eq!(a.ch.short_channel_id(), None);
    for p in [&mut a, &mut b] {
        p.ch.handle_funding_confirmed(FUNDING_HEIGHT, FUNDING_TX_INDEX, &tx)
            .unwrap();
        p.ch.handle_block(FUNDING_HEIGHT + 2).unwrap();
    }
    let scid = expected_scid();
    assert_eq!(scid.to_string(), "110x3x1");
    // channel_ready carries it (TLV 1), both ways.
    let from_a = a.outgoing();
    let from_b = b.outgoing();
    for msgs in [&from_a, &from_b] {
        let r = readies(msgs);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].short_channel_id, Some(scid));
    }
    for m in &from_a {
        b.ch.handle_message(m).unwrap();
    }
    for m in &from_b {
        a.ch.handle_message(m).unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(a.ch.state().phase, Phase::Normal);
    for p in [&mut a, &mut b] {
        assert_eq!(p.ch.short_channel_id(), Some(scid));
        // Stored in the confirmation record ...
        assert!(p.log.contains(&Record::FundingConfirmed {
            height: FUNDING_HEIGHT,
            short_channel_id: Some(scid),
        }));
        // ... so it survives a restart (also through the persistence format).
        p.assert_restores();
        let r = Channel::restore(&p.keys, ChannelConfig::default(), &p.log).unwrap();
        assert_eq!(r.short_channel_id(), Some(scid));
    }
    // A retransmitted channel_ready (reconnection before any update) carries it too.
    for p in [&mut a, &mut b] {
        p.ch.handle_disconnect();
        p.ch.handle_reconnect().unwrap();
    }
    let (ra, rb) = (a.outgoing(), b.outgoing());
    for m in &ra {
        b.ch.handle_message(m).unwrap();
    }
    for m in &rb {
        a.ch.handle_message(m).unwrap();
    }
    let again = readies(&a.outgoing());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].short_channel_id, Some(scid));
    run(&mut a, &mut b);
    // A reorg confirming it elsewhere moves the short channel id.
    a.ch.handle_funding_confirmed(FUNDING_HEIGHT + 5, 0, &tx)
        .unwrap();
    let moved = ShortChannelId::new(FUNDING_HEIGHT + 5, 0, FUNDING_VOUT as u16);
    assert_eq!(a.ch.short_channel_id(), moved);
    a.assert_restores();
    // Payments flow as usual.
    a.ch.add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    run(&mut a, &mut b);
    fulfill_received(&mut b);
    run(&mut a, &mut b);
    check_mirror(&a, &b);
}

#[test]
fn another_transaction_is_refused_and_changes_nothing() {
    let (mut a, mut b, tx) = open_funded(
        21,
        ChannelConfig::default(),
        ChannelConfig::default(),
        funding_tx,
    )
    .unwrap();
    let mut other = tx.clone();
    other.lock_time = bitcoin::absolute::LockTime::from_height(1).unwrap();
    for p in [&mut a, &mut b] {
        let before = p.ch.state().clone();
        let err =
            p.ch.handle_funding_confirmed(FUNDING_HEIGHT, FUNDING_TX_INDEX, &other)
                .unwrap_err();
        assert!(matches!(err, ChannelError::Command(ref e) if e.contains("not the funding")));
        // A place that does not fit a short channel id (24-bit height / index).
        let err = p.ch.handle_funding_confirmed(1 << 24, 0, &tx).unwrap_err();
        assert!(matches!(err, ChannelError::Command(_)), "{err}");
        let err =
            p.ch.handle_funding_confirmed(FUNDING_HEIGHT, 1 << 24, &tx)
                .unwrap_err();
        assert!(matches!(err, ChannelError::Command(_)), "{err}");
        assert_eq!(p.ch.state(), &before);
        assert!(p.outgoing().is_empty());
        assert!(p.ch.poll_persist().is_none());
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
    let (mut a, mut b, tx) = open_funded(
        seed,
        ChannelConfig::default(),
        ChannelConfig::default(),
        make_tx,
    )
    .unwrap();
    let st = a.ch.state();
    let funding_script = fulmen_channel::funding::funding_output(
        &st.setup.local.basepoints.funding_pubkey,
        &st.setup.remote.unwrap().basepoints.funding_pubkey,
        Amount::from_sat(FUNDING_SAT),
    )
    .script_pubkey;
    let reason = CloseReason::FundingMismatch(expected(&funding_script));
    for (p, is_opener) in [(&mut a, true), (&mut b, false)] {
        let err =
            p.ch.handle_funding_confirmed(FUNDING_HEIGHT, FUNDING_TX_INDEX, &tx)
                .unwrap_err();
        let text = reason.to_string();
        assert!(text.starts_with("funding output mismatch: "), "{text}");
        if is_opener {
            assert_eq!(err, ChannelError::Internal(text));
        } else {
            assert_eq!(err, ChannelError::Protocol(text));
        }
        assert_eq!(p.ch.state().phase, Phase::Closed);
        assert_eq!(p.ch.close_reason(), Some(&reason));
        assert_eq!(p.ch.short_channel_id(), None);
        assert_eq!(p.ch.state().funding_confirmed_height, None);
        assert!(
            p.ch.poll_broadcast().is_none(),
            "nothing of ours to broadcast"
        );
        let out = p.outgoing();
        assert!(
            matches!(out.as_slice(), [Message::Error(e)] if e.data.0 == reason.to_string().into_bytes()),
            "{out:?}"
        );
        assert!(p.events.contains(&Event::Closed {
            reason: reason.clone()
        }));
        assert!(p.log.contains(&Record::Closed(reason.clone())));
        p.assert_restores();
        assert!(matches!(
            p.ch.handle_block(FUNDING_HEIGHT + 10),
            Err(ChannelError::Closed)
        ));
        assert!(matches!(
            p.ch.add_htlc(1000, hash_of(&preimage(1)), 501, onion()),
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
    let (mut a, mut b) = open_pair(25, ChannelConfig::default()).unwrap();
    let long = format!("boom {}", "x".repeat(1000));
    let err_msg = fulmen_wire::msgs::Error::text(b.ch.channel_id(), &long);
    let err = b.ch.handle_message(&Message::Error(err_msg)).unwrap_err();
    assert!(matches!(err, ChannelError::Protocol(ref e) if e.contains("peer sent error: boom")));
    let Some(CloseReason::PeerError(text)) = b.ch.close_reason().cloned() else {
        panic!("{:?}", b.ch.close_reason())
    };
    // The peer's text is kept, bounded.
    assert!(
        text.starts_with("boom x") && text.len() < 300,
        "{}",
        text.len()
    );
    let bc = b.ch.poll_broadcast().expect("our commitment");
    assert_eq!(bc.kind, BroadcastKind::Commitment { number: 0 });
    assert!(b.outgoing().is_empty(), "no error sent back for an error");
    assert!(b.events.iter().any(|e| matches!(
        e,
        Event::Closed {
            reason: CloseReason::PeerError(_)
        }
    )));
    b.assert_restores();
    let _ = &mut a;
}
