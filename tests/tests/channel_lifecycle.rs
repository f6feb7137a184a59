//! Two in-memory parties driving `fulmen_channel::machine::Channel` through the rest of a
//! channel's life: cooperative close (HTLCs drained, fee negotiated), `update_fee`,
//! `update_fail_malformed_htlc`, `channel_reestablish` (lost-state detection, retransmission)
//! and the BOLT 2 dust exposure limit.
//!
//! Must never: depend on timing or an unseeded RNG.

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use fulmen_channel::machine::{
    BroadcastKind, Channel, ChannelConfig, ChannelError, Event, Phase, Record,
};
use fulmen_tests::pair::*;
use fulmen_wire::msgs::Message;

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
    let mut p = open_pair(50, ChannelConfig::default()).unwrap();
    // One HTLC in flight when the close starts.
    let id =
        p.a.ch
            .add_htlc(7_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    p.run();
    // b initiates (the non-funder); a answers after the event.
    p.b.ch.shutdown(p2wpkh(0xb0)).unwrap();
    p.run();
    assert!(p.a.events.contains(&Event::ShutdownReceived));
    assert!(matches!(
        p.a.ch.add_htlc(1000, hash_of(&preimage(2)), 502, onion()),
        Err(ChannelError::Command(_))
    ));
    p.a.ch.shutdown(p2wpkh(0xa0)).unwrap();
    p.run();
    // Still open: the HTLC must resolve first.
    assert_eq!(p.a.ch.state().phase, Phase::Normal);
    let Some(Event::HtlcReceived { id: bid, .. }) =
        p.b.events
            .iter()
            .find(|e| matches!(e, Event::HtlcReceived { .. }))
            .cloned()
    else {
        panic!("no htlc")
    };
    assert_eq!(bid, id);
    p.b.ch.fulfill_htlc(bid, preimage(1)).unwrap();
    p.run();
    assert_eq!(p.a.ch.state().phase, Phase::Closed);
    assert_eq!(p.b.ch.state().phase, Phase::Closed);
    let ta = p.a.ch.poll_broadcast().expect("a's closing tx");
    let tb = p.b.ch.poll_broadcast().expect("b's closing tx");
    assert_eq!(ta.kind, BroadcastKind::Closing);
    assert_eq!(ta, tb, "both sides broadcast the same closing tx");
    let ta = ta.tx;
    let st = p.a.ch.state();
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
    let (a_us, b_us) = p.a.ch.balances_msat().unwrap();
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
    p.a.assert_restores();
    p.b.assert_restores();
    // This flow went through the persistence format with every kind of record but
    // `Reconnected` (covered by `reconnect_retransmits_a_lost_commitment`).
    let kinds = record_kinds(&[p.a.log(), p.b.log()]);
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
    let mut p = open_pair(60, ChannelConfig::default()).unwrap();
    // Only the funder may.
    assert!(matches!(
        p.b.ch.update_fee(2000),
        Err(ChannelError::Command(_))
    ));
    p.a.ch.update_fee(2000).unwrap();
    p.run();
    for e in [&p.a, &p.b] {
        let st = e.ch.state();
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, 2000);
        assert_eq!(st.remote_commit.as_ref().unwrap().spec.feerate_per_kw, 2000);
    }
    p.check_mirror();
    // The fee of the signed commitment follows: 724 weight at 2000 sat/kw = 1448 sat.
    let tx = p.a.ch.signed_local_commitment().unwrap();
    let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(FUNDING_SAT - out, 1448);
    // An insane feerate from the funder fails the channel at the receiver.
    p.b.ch.handle_fee_estimate(1000);
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: p.b.ch.channel_id(),
        feerate_per_kw: 100_000,
        extra_tlvs: Default::default(),
    };
    assert!(matches!(
        p.b.ch.handle_message(&Message::UpdateFee(m.clone())),
        Err(ChannelError::Protocol(_))
    ));
    // And update_fee from the non-funder is refused by the funder.
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: p.a.ch.channel_id(),
        feerate_per_kw: 1000,
        extra_tlvs: Default::default(),
    };
    assert!(p.a.ch.handle_message(&Message::UpdateFee(m)).is_err());
}

#[test]
fn fail_malformed_requires_badonion_and_returns_the_amount() {
    let mut p = open_pair(61, ChannelConfig::default()).unwrap();
    let before = p.a.ch.balances_msat().unwrap();
    let id =
        p.a.ch
            .add_htlc(5_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    p.run();
    assert!(matches!(
        p.b.ch.fail_malformed_htlc(id, [1; 32], 0x4005),
        Err(ChannelError::Command(_))
    ));
    p.b.ch.fail_malformed_htlc(id, [1; 32], 0xc005).unwrap();
    p.run();
    assert!(p.a.events.contains(&Event::HtlcFailedMalformed {
        id,
        sha256_of_onion: [1; 32],
        failure_code: 0xc005
    }));
    assert_eq!(p.a.ch.balances_msat().unwrap(), before);
    p.check_mirror();
}

#[test]
fn reestablish_detects_lost_state_and_never_broadcasts_it() {
    let mut p = open_pair(70, ChannelConfig::default()).unwrap();
    let old_log = p.b.log().to_vec();
    for n in 1..=3u64 {
        p.a.ch
            .add_htlc(1_000_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
        p.run();
    }
    // b restarts from a stale copy of its records (a backup): it lost state.
    let mut stale = Channel::restore(&p.b.keys, ChannelConfig::default(), &old_log).unwrap();
    p.a.ch.handle_disconnect();
    p.a.ch.handle_reconnect().unwrap();
    stale.handle_reconnect().unwrap();
    let from_a = p.a.outgoing();
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
    let err = p.a.ch.handle_message(&from_stale[0]).unwrap_err();
    assert!(err.to_string().contains("lost state"), "{err}");
    assert!(p.a.ch.poll_broadcast().is_some());
}

#[test]
fn reconnect_retransmits_a_lost_commitment() {
    let mut p = open_pair(71, ChannelConfig::default()).unwrap();
    p.a.ch
        .add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    p.a.ch.send_commitment().unwrap();
    let _lost = p.a.outgoing(); // the link drops with update_add + commitment_signed
    for e in [&mut p.a, &mut p.b] {
        e.ch.handle_disconnect();
        e.ch.handle_reconnect().unwrap();
    }
    p.run();
    let Some(Event::HtlcReceived { id, .. }) = p.b.events.pop() else {
        panic!("htlc not delivered after reestablish")
    };
    p.b.ch.fulfill_htlc(id, preimage(1)).unwrap();
    p.run();
    p.check_mirror();
    assert_eq!(p.b.ch.balances_msat().unwrap().0, PUSH_MSAT + 2_000_000);
}

#[test]
fn reconnected_record_goes_through_the_persistence_format() {
    let mut p = open_pair(72, ChannelConfig::default()).unwrap();
    p.a.ch
        .add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    // b receives the add but no commitment before the link drops: it forgets it.
    for m in p.a.outgoing() {
        p.b.ch.handle_message(&m).unwrap();
    }
    for e in [&mut p.a, &mut p.b] {
        e.ch.handle_disconnect();
        e.ch.handle_reconnect().unwrap();
    }
    p.b.assert_restores();
    assert!(record_kinds(&[p.b.log()]).contains("Reconnected"));
    // The channel goes on: whatever was re-offered settles, balances mirror.
    p.run();
    fulfill_received(&mut p.b);
    p.run();
    p.check_mirror();
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
    let mut p = open_pair_with(80, dust_cfg(5_000_000), dust_cfg(u64::MAX)).unwrap();
    for n in 0..4u64 {
        let pre = preimage(n);
        p.a.ch
            .add_htlc(1_000_000, hash_of(&pre), 500 + n as u32, onion())
            .unwrap();
    }
    let pending = p.a.outgoing();
    let records = p.a.log().len();
    // 4_000_000 + 1_000_001 = limit + 1: refused, nothing changes.
    let before = p.a.ch.state().clone();
    let err =
        p.a.ch
            .add_htlc(1_000_001, hash_of(&preimage(4)), 504, onion())
            .unwrap_err();
    assert!(matches!(err, ChannelError::Command(ref e) if e.contains("dust exposure")));
    assert_eq!(p.a.ch.state(), &before);
    assert!(p.a.outgoing().is_empty());
    assert_eq!(p.a.log().len(), records);
    for m in pending {
        p.b.ch.handle_message(&m).unwrap();
    }
    // Exactly the limit is accepted.
    p.a.ch
        .add_htlc(1_000_000, hash_of(&preimage(4)), 504, onion())
        .unwrap();
    // A non-dust HTLC does not count.
    p.a.ch
        .add_htlc(2_000_000, hash_of(&preimage(5)), 505, onion())
        .unwrap();
    // Any further dust one is refused.
    assert!(p
        .a
        .ch
        .add_htlc(1_000, hash_of(&preimage(6)), 506, onion())
        .is_err());
    p.run();
    assert_eq!(
        p.b.events
            .iter()
            .filter(|e| matches!(e, Event::HtlcReceived { .. }))
            .count(),
        6
    );
    fulfill_received(&mut p.b);
    p.run();
    p.check_mirror();
}

#[test]
fn dust_exposure_receiver_reports_htlcs_over_the_limit_as_must_fail() {
    // The sender has no limit; the receiver allows 2.5 dust HTLCs of 1000 sat.
    let mut p = open_pair_with(81, dust_cfg(u64::MAX), dust_cfg(2_500_000)).unwrap();
    for n in 0..3u64 {
        p.a.ch
            .add_htlc(1_000_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
    }
    // The receiver accepts the updates (no protocol error) ...
    p.run();
    // ... and once irrevocably committed reports the one over the limit as must-fail.
    let must_fail: Vec<u64> =
        p.b.events
            .iter()
            .filter_map(|e| match e {
                Event::HtlcMustFail { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
    assert_eq!(must_fail, vec![2]);
    p.b.events
        .retain(|e| !matches!(e, Event::HtlcMustFail { .. }));
    p.b.ch.fail_htlc(2, vec![0x10, 0x07]).unwrap();
    fulfill_received(&mut p.b);
    p.run();
    assert!(p
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::HtlcFailed { id: 2, .. })));
    let (a_us, _) = p.a.ch.balances_msat().unwrap();
    assert_eq!(a_us, FUNDING_SAT * 1000 - PUSH_MSAT - 2_000_000);
    p.check_mirror();
}

#[test]
fn dust_exposure_limits_feerate_increases_we_send() {
    let mut p = open_pair_with(82, dust_cfg(5_000_000), dust_cfg(1_000_000)).unwrap();
    // Four 1300-sat HTLCs: not dust at 1000 sat/kw.
    for n in 0..4u64 {
        p.a.ch
            .add_htlc(1_300_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
    }
    p.run();
    assert_eq!(
        p.b.events
            .iter()
            .filter(|e| matches!(e, Event::HtlcReceived { .. }))
            .count(),
        4
    );
    // At 2000 sat/kw they are trimmed (threshold 546 + 1326): 5_200_000 msat > limit.
    let before = p.a.ch.state().clone();
    let err = p.a.ch.update_fee(2000).unwrap_err();
    assert!(matches!(err, ChannelError::Command(ref e) if e.contains("dust exposure")));
    assert_eq!(p.a.ch.state(), &before);
    // At 1050 sat/kw (thresholds 1242 / 1284 sat) they are not: accepted.
    p.a.ch.update_fee(1050).unwrap();
    p.run();
    assert_eq!(
        p.b.ch
            .state()
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
        channel_id: p.b.ch.channel_id(),
        feerate_per_kw: 2000,
        extra_tlvs: Default::default(),
    };
    p.b.ch.handle_message(&Message::UpdateFee(m)).unwrap();
    assert!(p.b.ch.is_connected());
}

/// Snapshots: every `snapshot_every` records a batch ends with the whole state; replaying
/// from the last snapshot alone (what the node's store keeps) gives the live state, through
/// the persistence format, and the channel goes on after restarting from it.
#[test]
fn a_channel_restores_from_its_last_snapshot_and_the_tail() {
    let cfg = ChannelConfig {
        snapshot_every: 5,
        ..ChannelConfig::default()
    };
    // a pays b one HTLC of `msat` with preimage `n`, settled.
    let pay = |p: &mut Pair, n: u64, msat: u64| {
        p.a.ch
            .add_htlc(msat, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
        p.a.ch.send_commitment().unwrap();
        p.run();
        fulfill_received(&mut p.b);
        p.run();
    };
    let mut p = open_pair_with(73, cfg.clone(), cfg.clone()).unwrap();
    for n in 0..6u64 {
        pay(&mut p, n, 2_000_000);
    }
    p.check_mirror();
    for e in [&mut p.a, &mut p.b] {
        e.persist();
        let log = e.log().to_vec();
        let last = log
            .iter()
            .rposition(|r| matches!(r, Record::Snapshot(_)))
            .expect("a snapshot in the log");
        assert!(
            log[..last].iter().any(|r| matches!(r, Record::Snapshot(_))),
            "one per 5 records"
        );
        let tail: Vec<Record> = log[last..]
            .iter()
            .map(|r| Record::decode(&r.encode()).unwrap())
            .collect();
        assert!(tail.len() <= 6, "tail of {} records", tail.len());
        let r = Channel::restore(&e.keys, cfg.clone(), &tail).unwrap();
        assert_eq!(r.state(), e.ch.state());
        e.assert_restores();
    }
    // A snapshot of another channel does not apply.
    let theirs =
        p.b.log()
            .iter()
            .find(|r| matches!(r, Record::Snapshot(_)))
            .cloned()
            .unwrap();
    let mut ours = p.a.log()[..1].to_vec();
    ours.push(theirs);
    assert!(Channel::restore(&p.a.keys, cfg.clone(), &ours).is_err());
    // Restarted from the durable records, both go on paying.
    p.a.restart(false);
    p.b.restart(false);
    for e in [&mut p.a, &mut p.b] {
        e.ch.handle_disconnect();
        e.ch.handle_reconnect().unwrap();
    }
    p.run();
    pay(&mut p, 9, 3_000_000);
    p.check_mirror();
}
