//! Two in-memory parties driving `fulmen_channel::machine::Channel` through the rest of a
//! channel's life: cooperative close (HTLCs drained, fee negotiated), `update_fee`,
//! `update_fail_malformed_htlc`, `channel_reestablish` (lost-state detection, retransmission)
//! and the BOLT 2 dust exposure limit.
//!
//! Must never: depend on timing or an unseeded RNG.

mod two_party;
use two_party::*;

fn p2wpkh(n: u8) -> bitcoin::ScriptBuf {
    let secp = Secp256k1::new();
    let pk = bitcoin::secp256k1::PublicKey::from_secret_key(
        &secp,
        &SecretKey::from_slice(&[n; 32]).unwrap(),
    );
    bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::CompressedPublicKey(pk).wpubkey_hash())
}

#[test]
fn cooperative_close_drains_htlcs_then_negotiates_fee() {
    let (mut a, mut b) = open_pair(50, ChannelConfig::default()).unwrap();
    // One HTLC in flight when the close starts.
    let id =
        a.ch.add_htlc(7_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    run(&mut a, &mut b);
    // b initiates (the non-funder); a answers after the event.
    b.ch.shutdown(p2wpkh(0xb0)).unwrap();
    run(&mut a, &mut b);
    assert!(a.events.contains(&Event::ShutdownReceived));
    assert!(matches!(
        a.ch.add_htlc(1000, hash_of(&preimage(2)), 502, onion()),
        Err(ChannelError::Command(_))
    ));
    a.ch.shutdown(p2wpkh(0xa0)).unwrap();
    run(&mut a, &mut b);
    // Still open: the HTLC must resolve first.
    assert_eq!(a.ch.state().phase, Phase::Normal);
    let Some(Event::HtlcReceived { id: bid, .. }) = b
        .events
        .iter()
        .find(|e| matches!(e, Event::HtlcReceived { .. }))
        .cloned()
    else {
        panic!("no htlc")
    };
    assert_eq!(bid, id);
    b.ch.fulfill_htlc(bid, preimage(1)).unwrap();
    run(&mut a, &mut b);
    assert_eq!(a.ch.state().phase, Phase::Closed);
    assert_eq!(b.ch.state().phase, Phase::Closed);
    let ta = a.ch.poll_broadcast().expect("a's closing tx");
    let tb = b.ch.poll_broadcast().expect("b's closing tx");
    assert_eq!(ta.kind, BroadcastKind::Closing);
    assert_eq!(ta, tb, "both sides broadcast the same closing tx");
    let ta = ta.tx;
    let st = a.ch.state();
    let funding = fulmen_channel::funding::funding_output(
        &st.setup.local.basepoints.funding_pubkey,
        &st.setup.remote.unwrap().basepoints.funding_pubkey,
        bitcoin::Amount::from_sat(FUNDING_SAT),
    );
    funding
        .script_pubkey
        .verify(0, funding.value, &bitcoin::consensus::serialize(&ta))
        .unwrap();
    // b gets exactly its balance; a gets its balance minus the fee.
    let (a_us, b_us) = a.ch.balances_msat().unwrap();
    assert_eq!(b_us, PUSH_MSAT + 7_000_000);
    let out = |s: &bitcoin::ScriptBuf| {
        ta.output
            .iter()
            .find(|o| &o.script_pubkey == s)
            .unwrap()
            .value
            .to_sat()
    };
    assert_eq!(out(&p2wpkh(0xb0)), b_us / 1000);
    let fee = a_us / 1000 - out(&p2wpkh(0xa0));
    assert!(fee > 0 && fee < 2000, "fee {fee}");
    a.assert_restores();
    b.assert_restores();
    // This flow went through the persistence format with every kind of record but
    // `Reconnected` (covered by `reconnect_retransmits_a_lost_commitment`).
    let kinds = record_kinds(&[&a.log, &b.log]);
    for k in [
        "Created",
        "Accepted",
        "FundingOutpoint",
        "InitialCommitSigned",
        "FundingConfirmed",
        "ReadySent",
        "ReadyReceived",
        "LocalUpdate",
        "RemoteUpdate",
        "SentCommitment",
        "ReceivedCommitment",
        "ReceivedRevocation",
        "ShutdownSent",
        "ShutdownReceived",
        "Closed",
    ] {
        assert!(kinds.contains(k), "no {k} record in {kinds:?}");
    }
}

#[test]
fn update_fee_changes_the_commitment_feerate() {
    let (mut a, mut b) = open_pair(60, ChannelConfig::default()).unwrap();
    // Only the funder may.
    assert!(matches!(
        b.ch.update_fee(2000),
        Err(ChannelError::Command(_))
    ));
    a.ch.update_fee(2000).unwrap();
    run(&mut a, &mut b);
    for p in [&a, &b] {
        let st = p.ch.state();
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, 2000);
        assert_eq!(st.remote_commit.as_ref().unwrap().spec.feerate_per_kw, 2000);
    }
    check_mirror(&a, &b);
    // The fee of the signed commitment follows: 724 weight at 2000 sat/kw = 1448 sat.
    let tx = a.ch.signed_local_commitment().unwrap();
    let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(FUNDING_SAT - out, 1448);
    // An insane feerate from the funder fails the channel at the receiver.
    b.ch.handle_fee_estimate(1000);
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: b.ch.channel_id(),
        feerate_per_kw: 100_000,
        extra_tlvs: Default::default(),
    };
    assert!(matches!(
        b.ch.handle_message(&Message::UpdateFee(m.clone())),
        Err(ChannelError::Protocol(_))
    ));
    // And update_fee from the non-funder is refused by the funder.
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: a.ch.channel_id(),
        feerate_per_kw: 1000,
        extra_tlvs: Default::default(),
    };
    assert!(a.ch.handle_message(&Message::UpdateFee(m)).is_err());
}

#[test]
fn fail_malformed_requires_badonion_and_returns_the_amount() {
    let (mut a, mut b) = open_pair(61, ChannelConfig::default()).unwrap();
    let before = a.ch.balances_msat().unwrap();
    let id =
        a.ch.add_htlc(5_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    run(&mut a, &mut b);
    assert!(matches!(
        b.ch.fail_malformed_htlc(id, [1; 32], 0x4005),
        Err(ChannelError::Command(_))
    ));
    b.ch.fail_malformed_htlc(id, [1; 32], 0xc005).unwrap();
    run(&mut a, &mut b);
    assert!(a.events.contains(&Event::HtlcFailedMalformed {
        id,
        sha256_of_onion: [1; 32],
        failure_code: 0xc005
    }));
    assert_eq!(a.ch.balances_msat().unwrap(), before);
    check_mirror(&a, &b);
}

#[test]
fn reestablish_detects_lost_state_and_never_broadcasts_it() {
    let (mut a, mut b) = open_pair(70, ChannelConfig::default()).unwrap();
    let old_log = b.log.clone();
    for n in 1..=3u64 {
        a.ch.add_htlc(1_000_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
        run(&mut a, &mut b);
    }
    // b restarts from a stale copy of its records (a backup): it lost state.
    let mut stale = Channel::restore(&b.keys, ChannelConfig::default(), &old_log).unwrap();
    a.ch.handle_disconnect();
    a.ch.handle_reconnect().unwrap();
    stale.handle_reconnect().unwrap();
    let from_a = a.outgoing();
    let mut from_stale = Vec::new();
    while let Some(bt) = stale.poll_persist() {
        stale.persisted(bt.id).unwrap();
    }
    while let Some(m) = stale.poll_message() {
        from_stale.push(m);
    }
    // The stale side learns it is behind: closes without broadcasting its old commitment.
    for m in &from_a {
        assert!(matches!(stale.handle_message(m), Err(ChannelError::Closed)));
    }
    assert_eq!(stale.state().phase, Phase::Closed);
    assert!(
        stale.poll_broadcast().is_none(),
        "must not broadcast a revoked state"
    );
    // The up-to-date side sees the peer is behind and fails, offering its own commitment.
    let err = a.ch.handle_message(&from_stale[0]).unwrap_err();
    assert!(err.to_string().contains("lost state"), "{err}");
    assert!(a.ch.poll_broadcast().is_some());
}

#[test]
fn reconnect_retransmits_a_lost_commitment() {
    let (mut a, mut b) = open_pair(71, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    a.ch.send_commitment().unwrap();
    let _lost = a.outgoing(); // the link drops with update_add + commitment_signed
    for p in [&mut a, &mut b] {
        p.ch.handle_disconnect();
        p.ch.handle_reconnect().unwrap();
    }
    run(&mut a, &mut b);
    let Some(Event::HtlcReceived { id, .. }) = b.events.pop() else {
        panic!("htlc not delivered after reestablish")
    };
    b.ch.fulfill_htlc(id, preimage(1)).unwrap();
    run(&mut a, &mut b);
    check_mirror(&a, &b);
    assert_eq!(b.ch.balances_msat().unwrap().0, PUSH_MSAT + 2_000_000);
}

#[test]
fn reconnected_record_goes_through_the_persistence_format() {
    let (mut a, mut b) = open_pair(72, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    // b receives the add but no commitment before the link drops: it forgets it.
    for m in a.outgoing() {
        b.ch.handle_message(&m).unwrap();
    }
    for p in [&mut a, &mut b] {
        p.ch.handle_disconnect();
        p.ch.handle_reconnect().unwrap();
    }
    b.assert_restores();
    assert!(record_kinds(&[&b.log]).contains("Reconnected"));
    // The channel goes on: whatever was re-offered settles, balances mirror.
    run(&mut a, &mut b);
    fulfill_received(&mut b);
    run(&mut a, &mut b);
    check_mirror(&a, &b);
}

fn dust_cfg(limit_msat: u64) -> ChannelConfig {
    ChannelConfig {
        max_dust_htlc_exposure_msat: limit_msat,
        ..ChannelConfig::default()
    }
}

// At the opening feerate 1000 sat/kw and dust limit 546 sat on both sides, an HTLC is
// trimmed below 546 + 663 = 1209 sat (offered by the broadcaster) or 546 + 703 = 1249 sat
// (received): a 1000-sat HTLC is dust on both commitments.

#[test]
fn dust_exposure_sender_refuses_limit_plus_one_accepts_the_limit() {
    let (mut a, mut b) = open_pair_with(80, dust_cfg(5_000_000), dust_cfg(u64::MAX)).unwrap();
    for n in 0..4u64 {
        let pre = preimage(n);
        a.ch.add_htlc(1_000_000, hash_of(&pre), 500 + n as u32, onion())
            .unwrap();
    }
    let pending = a.outgoing();
    let records = a.log.len();
    // 4_000_000 + 1_000_001 = limit + 1: refused, nothing changes.
    let before = a.ch.state().clone();
    let err =
        a.ch.add_htlc(1_000_001, hash_of(&preimage(4)), 504, onion())
            .unwrap_err();
    assert!(matches!(err, ChannelError::Command(ref e) if e.contains("dust exposure")));
    assert_eq!(a.ch.state(), &before);
    assert!(a.outgoing().is_empty());
    assert_eq!(a.log.len(), records);
    for m in pending {
        b.ch.handle_message(&m).unwrap();
    }
    // Exactly the limit is accepted.
    a.ch.add_htlc(1_000_000, hash_of(&preimage(4)), 504, onion())
        .unwrap();
    // A non-dust HTLC does not count.
    a.ch.add_htlc(2_000_000, hash_of(&preimage(5)), 505, onion())
        .unwrap();
    // Any further dust one is refused.
    assert!(a
        .ch
        .add_htlc(1_000, hash_of(&preimage(6)), 506, onion())
        .is_err());
    run(&mut a, &mut b);
    assert_eq!(
        b.events
            .iter()
            .filter(|e| matches!(e, Event::HtlcReceived { .. }))
            .count(),
        6
    );
    fulfill_received(&mut b);
    run(&mut a, &mut b);
    check_mirror(&a, &b);
}

#[test]
fn dust_exposure_receiver_reports_htlcs_over_the_limit_as_must_fail() {
    // The sender has no limit; the receiver allows 2.5 dust HTLCs of 1000 sat.
    let (mut a, mut b) = open_pair_with(81, dust_cfg(u64::MAX), dust_cfg(2_500_000)).unwrap();
    for n in 0..3u64 {
        a.ch.add_htlc(1_000_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
    }
    // The receiver accepts the updates (no protocol error) ...
    run(&mut a, &mut b);
    // ... and once irrevocably committed reports the one over the limit as must-fail.
    let must_fail: Vec<u64> = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::HtlcMustFail { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(must_fail, vec![2]);
    b.events
        .retain(|e| !matches!(e, Event::HtlcMustFail { .. }));
    b.ch.fail_htlc(2, vec![0x10, 0x07]).unwrap();
    fulfill_received(&mut b);
    run(&mut a, &mut b);
    assert!(a
        .events
        .iter()
        .any(|e| matches!(e, Event::HtlcFailed { id: 2, .. })));
    let (a_us, _) = a.ch.balances_msat().unwrap();
    assert_eq!(a_us, FUNDING_SAT * 1000 - PUSH_MSAT - 2_000_000);
    check_mirror(&a, &b);
}

#[test]
fn dust_exposure_limits_feerate_increases_we_send() {
    let (mut a, mut b) = open_pair_with(82, dust_cfg(5_000_000), dust_cfg(1_000_000)).unwrap();
    // Four 1300-sat HTLCs: not dust at 1000 sat/kw.
    for n in 0..4u64 {
        a.ch.add_htlc(1_300_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(
        b.events
            .iter()
            .filter(|e| matches!(e, Event::HtlcReceived { .. }))
            .count(),
        4
    );
    // At 2000 sat/kw they are trimmed (threshold 546 + 1326): 5_200_000 msat > limit.
    let before = a.ch.state().clone();
    let err = a.ch.update_fee(2000).unwrap_err();
    assert!(matches!(err, ChannelError::Command(ref e) if e.contains("dust exposure")));
    assert_eq!(a.ch.state(), &before);
    // At 1050 sat/kw (thresholds 1242 / 1284 sat) they are not: accepted.
    a.ch.update_fee(1050).unwrap();
    run(&mut a, &mut b);
    assert_eq!(
        b.ch.state()
            .local_commit
            .as_ref()
            .unwrap()
            .spec
            .feerate_per_kw,
        1050
    );
    // Received: an increase that puts the receiver over its own limit is accepted
    // (documented choice; BOLT 2 only says MAY fail the channel).
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: b.ch.channel_id(),
        feerate_per_kw: 2000,
        extra_tlvs: Default::default(),
    };
    b.ch.handle_message(&Message::UpdateFee(m)).unwrap();
    assert!(b.ch.is_connected());
}
