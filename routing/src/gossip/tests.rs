//! Unit tests of the gossip store with real keys and signatures: acceptance, every refusal
//! reason, the pending UTXO set, newer-only updates, pruning and bounds.

// Test-only file (its `mod` is `#[cfg(test)]`); the attribute also tells tidy so.
#[cfg(test)]
use std::collections::HashMap;

use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, ScriptBuf};
use fulmen_wire::msgs::{ChannelAnnouncement, ChannelUpdate, NodeAnnouncement};
use fulmen_wire::scid::ShortChannelId;
use fulmen_wire::{Features, Message};

use super::own::{
    announcement_signatures, announcement_unsigned, combine, sign_channel_update,
    sign_node_announcement,
};
use super::*;
use crate::graph::NetworkGraph;

pub(super) const NOW: u64 = 1_700_000_000;
pub(super) const CHAIN: [u8; 32] = [6u8; 32];
pub(super) const CAPACITY: u64 = 1_000_000;

pub(super) fn secp() -> Secp256k1<All> {
    Secp256k1::new()
}

/// Node `i`'s node key (funding keys are `i + 100`).
pub(super) fn node_sk(i: u8) -> SecretKey {
    SecretKey::from_slice(&[i; 32]).expect("valid key")
}

pub(super) fn funding_sk(i: u8) -> SecretKey {
    SecretKey::from_slice(&[i + 100; 32]).expect("valid key")
}

pub(super) fn node_id(i: u8) -> PublicKey {
    PublicKey::from_secret_key(&secp(), &node_sk(i))
}

pub(super) fn scid(n: u32) -> ShortChannelId {
    ShortChannelId::new(100 + n, 1, 0).expect("valid scid")
}

/// The channel announcement between nodes `a` and `b`, built and signed as two real nodes
/// would (each side's `announcement_signatures`, then `combine`).
pub(super) fn announcement(a: u8, b: u8, id: ShortChannelId) -> ChannelAnnouncement {
    let s = secp();
    let unsigned = announcement_unsigned(
        CHAIN,
        id,
        Features::empty(),
        node_id(a),
        node_id(b),
        PublicKey::from_secret_key(&s, &funding_sk(a)),
        PublicKey::from_secret_key(&s, &funding_sk(b)),
    );
    let ours = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(a), &funding_sk(a));
    let theirs = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(b), &funding_sk(b));
    combine(&s, &unsigned, &node_id(a), &ours, &theirs).expect("valid signatures")
}

pub(super) fn funding_of(ann: &ChannelAnnouncement) -> UtxoResult {
    UtxoResult::Found {
        script_pubkey: funding_script_pubkey(&ann.bitcoin_key_1, &ann.bitcoin_key_2),
        value: Amount::from_sat(CAPACITY),
    }
}

/// A chain view answering from a map; anything else is missing.
#[derive(Default)]
pub(super) struct Utxos(pub HashMap<ShortChannelId, UtxoResult>);

impl Utxos {
    pub(super) fn with(anns: &[&ChannelAnnouncement]) -> Utxos {
        Utxos(
            anns.iter()
                .map(|a| (ShortChannelId::from_u64(a.short_channel_id), funding_of(a)))
                .collect(),
        )
    }
}

impl UtxoLookup for Utxos {
    fn lookup(&mut self, short_channel_id: ShortChannelId) -> UtxoResult {
        self.0
            .get(&short_channel_id)
            .cloned()
            .unwrap_or(UtxoResult::Missing)
    }
}

pub(super) fn policy(timestamp: u32, enabled: bool) -> DirectedPolicy {
    DirectedPolicy {
        fee_base_msat: 1000,
        fee_proportional_millionths: 100,
        cltv_expiry_delta: 40,
        htlc_minimum_msat: 1,
        htlc_maximum_msat: CAPACITY * 1000,
        enabled,
        timestamp,
    }
}

/// `signer`'s update of `direction` of the channel.
pub(super) fn update(
    ann: &ChannelAnnouncement,
    direction: ChannelDirection,
    timestamp: u32,
    signer: u8,
) -> ChannelUpdate {
    sign_channel_update(
        &secp(),
        CHAIN,
        ShortChannelId::from_u64(ann.short_channel_id),
        direction,
        &policy(timestamp, true),
        &node_sk(signer),
    )
}

/// Which of `a`, `b` is node 1 of their channel.
pub(super) fn ends(a: u8, b: u8) -> (u8, u8) {
    if node_id(a).serialize() < node_id(b).serialize() {
        (a, b)
    } else {
        (b, a)
    }
}

pub(super) fn node_ann(i: u8, timestamp: u32, addresses: Vec<u8>) -> NodeAnnouncement {
    sign_node_announcement(
        &secp(),
        &node_sk(i),
        Features::empty(),
        timestamp,
        [1, 2, 3],
        [b'n'; 32],
        addresses,
    )
}

pub(super) fn store() -> GossipStore {
    GossipStore::new(GossipConfig::new(CHAIN))
}

fn ts(offset: i64) -> u32 {
    u32::try_from(NOW as i64 + offset).expect("fits")
}

#[test]
fn valid_announcement_is_accepted_and_applies_to_the_graph() {
    let ann = announcement(1, 2, scid(1));
    let mut s = store();
    let got = s
        .handle_channel_announcement(&ann, &mut Utxos::with(&[&ann]), NOW)
        .unwrap();
    let (n1, n2) = ends(1, 2);
    let expected = GraphChange::ChannelAdded {
        short_channel_id: scid(1),
        node_1: node_id(n1),
        node_2: node_id(n2),
        capacity_sat: CAPACITY,
    };
    assert_eq!(got, Handled::Applied(vec![expected.clone()]));
    let mut g = NetworkGraph::new();
    g.apply(&expected).unwrap();
    assert_eq!(g.channel_count(), 1);
    assert_eq!(s.channel_count(), 1);
    assert_eq!(s.node_count(), 2);
    assert_eq!(
        s.take_broadcast_batch(),
        vec![Message::ChannelAnnouncement(ann.clone())]
    );
    assert!(s.take_broadcast_batch().is_empty());
    // The same announcement again changes nothing.
    assert_eq!(
        s.handle_channel_announcement(&ann, &mut Utxos::with(&[&ann]), NOW),
        Err(GossipError::Duplicate)
    );
}

/// A signature over `ann`'s hash by a key that is not one of its own.
fn wrong_signature(ann: &ChannelAnnouncement) -> bitcoin::secp256k1::ecdsa::Signature {
    secp().sign_ecdsa(
        &bitcoin::secp256k1::Message::from_digest(ann.signature_hash()),
        &node_sk(9),
    )
}

#[test]
fn each_bad_signature_is_refused_with_its_role() {
    let ann = announcement(1, 2, scid(1));
    let wrong = wrong_signature(&ann);
    type SetSig = fn(&mut ChannelAnnouncement, bitcoin::secp256k1::ecdsa::Signature);
    let cases: [(SetSig, SignatureRole); 4] = [
        (|a, w| a.node_signature_1 = w, SignatureRole::Node1),
        (|a, w| a.node_signature_2 = w, SignatureRole::Node2),
        (|a, w| a.bitcoin_signature_1 = w, SignatureRole::Bitcoin1),
        (|a, w| a.bitcoin_signature_2 = w, SignatureRole::Bitcoin2),
    ];
    for (set, role) in cases {
        let mut bad = ann.clone();
        set(&mut bad, wrong);
        let err = store()
            .handle_channel_announcement(&bad, &mut Utxos::with(&[&ann]), NOW)
            .unwrap_err();
        assert_eq!(err, GossipError::InvalidSignature(role));
        assert!(err.warn_peer());
    }
    // A signed field changed after signing breaks every signature (node 1's is checked
    // first).
    let mut bad = ann.clone();
    bad.features = Features(vec![0x02]);
    assert_eq!(
        store().handle_channel_announcement(&bad, &mut Utxos::with(&[&ann]), NOW),
        Err(GossipError::InvalidSignature(SignatureRole::Node1))
    );
}

/// Our own messages skip the signature check and nothing else: a peer's copy with a bad
/// signature is refused, the same bytes as our own are taken; a wrong chain is refused
/// either way.
#[test]
fn own_messages_skip_only_the_signature_check() {
    let ann = announcement(1, 2, scid(1));
    let wrong = wrong_signature(&ann);
    let mut unsigned_ok = ann.clone();
    unsigned_ok.node_signature_1 = wrong;
    let msg = Message::ChannelAnnouncement(unsigned_ok.clone());
    assert_eq!(
        store().handle_message(&msg, &mut Utxos::with(&[&ann]), NOW),
        Err(GossipError::InvalidSignature(SignatureRole::Node1))
    );
    let mut st = store();
    assert!(matches!(
        st.handle_own_message(&msg, &mut Utxos::with(&[&ann]), NOW),
        Ok(Handled::Applied(_))
    ));
    let mut other_chain = unsigned_ok;
    other_chain.chain_hash = [7; 32];
    assert_eq!(
        store().handle_own_message(
            &Message::ChannelAnnouncement(other_chain),
            &mut Utxos::with(&[&ann]),
            NOW
        ),
        Err(GossipError::WrongChain)
    );
    // An update signed by the wrong node: refused from a peer, taken as our own; a
    // duplicate (not newer) is refused either way.
    let (n1, _) = ends(1, 2);
    let mut u = update(&ann, ChannelDirection::FromNode1, ts(-10), n1);
    u.signature = wrong;
    let upd = Message::ChannelUpdate(u);
    assert_eq!(
        st.handle_message(&upd, &mut Utxos::with(&[&ann]), NOW),
        Err(GossipError::InvalidSignature(SignatureRole::Origin))
    );
    assert!(st
        .handle_own_message(&upd, &mut Utxos::with(&[&ann]), NOW)
        .is_ok());
    assert!(st
        .handle_own_message(&upd, &mut Utxos::with(&[&ann]), NOW)
        .is_err());
}

#[test]
fn wrong_chain_and_unordered_nodes_are_refused() {
    let ann = announcement(1, 2, scid(1));
    let mut other = ann.clone();
    other.chain_hash = [7; 32];
    let err = store()
        .handle_channel_announcement(&other, &mut Utxos::with(&[&ann]), NOW)
        .unwrap_err();
    assert_eq!(err, GossipError::WrongChain);
    assert!(!err.warn_peer());
    let mut swapped = ann.clone();
    std::mem::swap(&mut swapped.node_id_1, &mut swapped.node_id_2);
    assert_eq!(
        store().handle_channel_announcement(&swapped, &mut Utxos::with(&[&ann]), NOW),
        Err(GossipError::NodeIdsNotOrdered)
    );
}

#[test]
fn unknown_required_channel_feature_and_oversize_fields_are_refused() {
    let mut ann = announcement(1, 2, scid(1));
    ann.features = Features(vec![0x01, 0x00]); // bit 8, required, unknown
    assert_eq!(
        store().handle_channel_announcement(&ann, &mut Utxos::with(&[&ann]), NOW),
        Err(GossipError::UnknownRequiredFeature(8))
    );
    ann.features = Features(vec![0; MAX_FEATURES_LEN + 1]);
    assert!(matches!(
        store().handle_channel_announcement(&ann, &mut Utxos::with(&[&ann]), NOW),
        Err(GossipError::FieldTooLong {
            field: "features",
            ..
        })
    ));
}

#[test]
fn funding_output_must_be_the_announced_unspent_2_of_2() {
    let ann = announcement(1, 2, scid(1));
    let id = scid(1);
    let answer = |r: UtxoResult| Utxos([(id, r)].into_iter().collect());
    // The 2-of-2 of other keys.
    let other = funding_script_pubkey(&node_id(3), &node_id(4));
    let cases = [
        (
            UtxoResult::Found {
                script_pubkey: other,
                value: Amount::from_sat(CAPACITY),
            },
            GossipError::FundingScriptMismatch(id),
        ),
        (
            UtxoResult::Found {
                script_pubkey: ScriptBuf::new(),
                value: Amount::from_sat(CAPACITY),
            },
            GossipError::FundingScriptMismatch(id),
        ),
        (UtxoResult::Spent, GossipError::FundingSpent(id)),
        (UtxoResult::Missing, GossipError::FundingMissing(id)),
    ];
    for (r, want) in cases {
        let mut s = store();
        assert_eq!(
            s.handle_channel_announcement(&ann, &mut answer(r), NOW),
            Err(want)
        );
        assert_eq!(s.channel_count(), 0);
    }
    // The key order inside the script is sorted, whichever way the announcement lists them.
    let swapped = funding_script_pubkey(&ann.bitcoin_key_2, &ann.bitcoin_key_1);
    let got = store()
        .handle_channel_announcement(
            &ann,
            &mut answer(UtxoResult::Found {
                script_pubkey: swapped,
                value: Amount::from_sat(12_345),
            }),
            NOW,
        )
        .unwrap();
    // The capacity is the output's value.
    assert!(matches!(
        &got,
        Handled::Applied(c) if matches!(c[0], GraphChange::ChannelAdded { capacity_sat: 12_345, .. })
    ));
}

#[test]
fn funding_script_is_bolt3_p2wsh_2_of_2() {
    // BOLT 3 appendix: funding pubkeys and the resulting witness script hash.
    let k1 = PublicKey::from_slice(&hex(
        "023da092f6980e58d2c037173180e9a465476026ee50f96695963e8efe436f54eb",
    ))
    .unwrap();
    let k2 = PublicKey::from_slice(&hex(
        "030e9f7b623d2ccc7c9bd44d66d5ce21ce504c0acf6385a132cec6d3c39fa711c1",
    ))
    .unwrap();
    let spk = funding_script_pubkey(&k1, &k2);
    assert_eq!(
        spk.as_bytes(),
        &hex("0020c015c4a6be010e21657068fc2e6a9d02b27ebe4d490a25846f7237f104d1a3cd")[..]
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn pending_utxo_resolved_found_adds_the_channel_with_held_gossip() {
    let ann = announcement(1, 2, scid(1));
    let (n1, n2) = ends(1, 2);
    let mut pending = Utxos([(scid(1), UtxoResult::Pending)].into_iter().collect());
    let mut s = store();
    assert_eq!(
        s.handle_channel_announcement(&ann, &mut pending, NOW),
        Ok(Handled::Held)
    );
    assert!(s.is_pending(scid(1)));
    assert_eq!(
        s.handle_channel_announcement(&ann, &mut pending, NOW),
        Err(GossipError::AlreadyPending)
    );
    // Updates and a node announcement arriving meanwhile are checked and held.
    let u = update(&ann, ChannelDirection::FromNode1, ts(0), n1);
    assert_eq!(s.handle_channel_update(&u, NOW), Ok(Handled::Held));
    let bad = update(&ann, ChannelDirection::FromNode2, ts(0), n1);
    assert_eq!(
        s.handle_channel_update(&bad, NOW),
        Err(GossipError::InvalidSignature(SignatureRole::Origin))
    );
    let na = node_ann(n2, ts(0), vec![]);
    assert_eq!(s.handle_node_announcement(&na, NOW), Ok(Handled::Held));
    assert!(s.take_broadcast_batch().is_empty());
    assert_eq!(
        s.utxo_resolved(scid(1), UtxoResult::Pending, NOW),
        Ok(Handled::Held)
    );

    let got = s.utxo_resolved(scid(1), funding_of(&ann), NOW + 5).unwrap();
    let Handled::Applied(changes) = got else {
        panic!("{got:?}")
    };
    assert_eq!(changes.len(), 3);
    assert!(matches!(changes[0], GraphChange::ChannelAdded { .. }));
    assert!(matches!(
        changes[1],
        GraphChange::PolicyUpdated {
            direction: ChannelDirection::FromNode1,
            ..
        }
    ));
    assert!(
        matches!(changes[2], GraphChange::NodeAnnounced { node_id: n, .. } if n == node_id(n2))
    );
    assert_eq!(s.pending_count(), 0);
    assert_eq!(
        s.take_broadcast_batch(),
        vec![
            Message::ChannelAnnouncement(ann),
            Message::ChannelUpdate(u),
            Message::NodeAnnouncement(na)
        ]
    );
    assert_eq!(
        s.utxo_resolved(scid(1), UtxoResult::Missing, NOW),
        Err(GossipError::UnknownChannel(scid(1)))
    );
}

#[test]
fn pending_utxo_resolved_missing_drops_everything_held() {
    let ann = announcement(1, 2, scid(1));
    let (n1, _) = ends(1, 2);
    let mut pending = Utxos([(scid(1), UtxoResult::Pending)].into_iter().collect());
    let mut s = store();
    assert_eq!(
        s.handle_channel_announcement(&ann, &mut pending, NOW),
        Ok(Handled::Held)
    );
    let u = update(&ann, ChannelDirection::FromNode1, ts(0), n1);
    assert_eq!(s.handle_channel_update(&u, NOW), Ok(Handled::Held));
    assert_eq!(
        s.handle_node_announcement(&node_ann(n1, ts(0), vec![]), NOW),
        Ok(Handled::Held)
    );
    assert_eq!(
        s.utxo_resolved(scid(1), UtxoResult::Missing, NOW),
        Err(GossipError::FundingMissing(scid(1)))
    );
    assert_eq!(
        (s.pending_count(), s.channel_count(), s.node_count()),
        (0, 0, 0)
    );
    assert!(s.take_broadcast_batch().is_empty());
    // The node is unknown again.
    assert_eq!(
        s.handle_node_announcement(&node_ann(n1, ts(1), vec![]), NOW),
        Err(GossipError::UnknownNode(node_id(n1)))
    );
    assert_eq!(
        s.handle_channel_update(&u, NOW),
        Err(GossipError::UnknownChannel(scid(1)))
    );
}

#[test]
fn pending_set_is_bounded_and_expires() {
    let mut cfg = GossipConfig::new(CHAIN);
    cfg.max_pending = 2;
    let mut s = GossipStore::new(cfg);
    let anns: Vec<_> = (0..3).map(|i| announcement(1, 2, scid(i))).collect();
    let mut pending = Utxos((0..3).map(|i| (scid(i), UtxoResult::Pending)).collect());
    assert_eq!(
        s.handle_channel_announcement(&anns[0], &mut pending, NOW),
        Ok(Handled::Held)
    );
    assert_eq!(
        s.handle_channel_announcement(&anns[1], &mut pending, NOW),
        Ok(Handled::Held)
    );
    let err = s
        .handle_channel_announcement(&anns[2], &mut pending, NOW)
        .unwrap_err();
    assert_eq!(err, GossipError::PendingFull { max: 2 });
    assert!(!err.warn_peer());
    assert_eq!(
        err.to_string(),
        "2 announcements already wait for their funding outputs"
    );
    // Unanswered for too long: dropped, and room again.
    assert!(s.prune_stale(NOW + PENDING_TIMEOUT_SECS + 1).is_empty());
    assert_eq!(s.pending_count(), 0);
    assert_eq!(
        s.handle_channel_announcement(&anns[2], &mut pending, NOW),
        Ok(Handled::Held)
    );
}

#[test]
fn channel_and_per_node_bounds() {
    let mut cfg = GossipConfig::new(CHAIN);
    cfg.max_channels_per_node = 2;
    cfg.max_channels = 3;
    let mut s = GossipStore::new(cfg);
    let a = [
        announcement(1, 2, scid(1)),
        announcement(1, 3, scid(2)),
        announcement(1, 4, scid(3)),
        announcement(2, 3, scid(4)),
        announcement(5, 6, scid(5)),
    ];
    let refs: Vec<&ChannelAnnouncement> = a.iter().collect();
    let mut utxos = Utxos::with(&refs);
    assert!(s
        .handle_channel_announcement(&a[0], &mut utxos, NOW)
        .is_ok());
    assert!(s
        .handle_channel_announcement(&a[1], &mut utxos, NOW)
        .is_ok());
    assert_eq!(
        s.handle_channel_announcement(&a[2], &mut utxos, NOW),
        Err(GossipError::TooManyChannelsForNode {
            node_id: node_id(1),
            max: 2
        })
    );
    assert!(s
        .handle_channel_announcement(&a[3], &mut utxos, NOW)
        .is_ok());
    assert_eq!(
        s.handle_channel_announcement(&a[4], &mut utxos, NOW),
        Err(GossipError::TooManyChannels { max: 3 })
    );
}

#[test]
fn channel_update_is_newer_only_and_signed_by_its_direction() {
    let ann = announcement(1, 2, scid(1));
    let (n1, n2) = ends(1, 2);
    let mut s = store();
    s.handle_channel_announcement(&ann, &mut Utxos::with(&[&ann]), NOW)
        .unwrap();
    s.take_broadcast_batch();
    // Direction 0 must be signed by node 1, direction 1 by node 2.
    for (dir, wrong) in [
        (ChannelDirection::FromNode1, n2),
        (ChannelDirection::FromNode2, n1),
    ] {
        let err = s
            .handle_channel_update(&update(&ann, dir, ts(0), wrong), NOW)
            .unwrap_err();
        assert_eq!(err, GossipError::InvalidSignature(SignatureRole::Origin));
        assert!(err.warn_peer());
    }
    let u1 = update(&ann, ChannelDirection::FromNode1, ts(-10), n1);
    let got = s.handle_channel_update(&u1, NOW).unwrap();
    assert_eq!(
        got,
        Handled::Applied(vec![GraphChange::PolicyUpdated {
            short_channel_id: scid(1),
            direction: ChannelDirection::FromNode1,
            policy: policy(ts(-10), true),
        }])
    );
    assert_eq!(
        s.handle_channel_update(&u1, NOW),
        Err(GossipError::Duplicate)
    );
    let older = update(&ann, ChannelDirection::FromNode1, ts(-20), n1);
    assert_eq!(
        s.handle_channel_update(&older, NOW),
        Err(GossipError::Outdated {
            held: ts(-10),
            got: ts(-20)
        })
    );
    // Same timestamp, other content: not newer.
    let mut same_ts = policy(ts(-10), true);
    same_ts.fee_base_msat = 7;
    let same_ts = sign_channel_update(
        &secp(),
        CHAIN,
        scid(1),
        ChannelDirection::FromNode1,
        &same_ts,
        &node_sk(n1),
    );
    assert!(matches!(
        s.handle_channel_update(&same_ts, NOW),
        Err(GossipError::Outdated { .. })
    ));
    // The other direction is independent.
    let u2 = update(&ann, ChannelDirection::FromNode2, ts(-30), n2);
    assert!(s.handle_channel_update(&u2, NOW).is_ok());
    let newer = update(&ann, ChannelDirection::FromNode1, ts(0), n1);
    assert!(s.handle_channel_update(&newer, NOW).is_ok());
    assert_eq!(
        s.channel_update(scid(1), ChannelDirection::FromNode1),
        Some(&newer)
    );
    assert_eq!(
        s.take_broadcast_batch(),
        vec![
            Message::ChannelUpdate(u1),
            Message::ChannelUpdate(u2),
            Message::ChannelUpdate(newer)
        ]
    );
}

#[test]
fn disable_bit_and_field_rules_of_channel_update() {
    let ann = announcement(1, 2, scid(1));
    let (n1, _) = ends(1, 2);
    let mut s = store();
    s.handle_channel_announcement(&ann, &mut Utxos::with(&[&ann]), NOW)
        .unwrap();
    let sign = |p: DirectedPolicy| {
        sign_channel_update(
            &secp(),
            CHAIN,
            scid(1),
            ChannelDirection::FromNode1,
            &p,
            &node_sk(n1),
        )
    };
    let disabled = sign(policy(ts(0), false));
    assert_eq!(disabled.channel_flags, 0b10);
    let Ok(Handled::Applied(c)) = s.handle_channel_update(&disabled, NOW) else {
        panic!()
    };
    assert!(matches!(c[0], GraphChange::PolicyUpdated { policy, .. } if !policy.enabled));

    let mut no_max = sign(policy(ts(1), true));
    no_max.message_flags = 0;
    assert_eq!(
        s.handle_channel_update(&no_max, NOW),
        Err(GossipError::MissingHtlcMaximum)
    );
    let mut p = policy(ts(1), true);
    p.htlc_maximum_msat = CAPACITY * 1000 + 1;
    assert!(matches!(
        s.handle_channel_update(&sign(p), NOW),
        Err(GossipError::BadHtlcLimits { .. })
    ));
    let mut p = policy(ts(1), true);
    p.htlc_minimum_msat = p.htlc_maximum_msat + 1;
    assert!(matches!(
        s.handle_channel_update(&sign(p), NOW),
        Err(GossipError::BadHtlcLimits { .. })
    ));
    assert_eq!(
        s.handle_channel_update(&sign(policy(ts(90_000), true)), NOW),
        Err(GossipError::TooFarInFuture {
            timestamp: ts(90_000)
        })
    );
    let old = ts(-(STALE_AFTER_SECS as i64) - 1);
    assert_eq!(
        s.handle_channel_update(&sign(policy(old, true)), NOW),
        Err(GossipError::TooOld { timestamp: old })
    );
    let mut other_chain = sign(policy(ts(1), true));
    other_chain.chain_hash = [0; 32];
    assert_eq!(
        s.handle_channel_update(&other_chain, NOW),
        Err(GossipError::WrongChain)
    );
    let unknown = update(
        &announcement(1, 2, scid(9)),
        ChannelDirection::FromNode1,
        ts(0),
        n1,
    );
    assert_eq!(
        s.handle_channel_update(&unknown, NOW),
        Err(GossipError::UnknownChannel(scid(9)))
    );
}

#[test]
fn node_announcement_needs_a_known_node_and_is_newer_only() {
    let mut s = store();
    assert_eq!(
        s.handle_node_announcement(&node_ann(1, ts(0), vec![]), NOW),
        Err(GossipError::UnknownNode(node_id(1)))
    );
    let ann = announcement(1, 2, scid(1));
    s.handle_channel_announcement(&ann, &mut Utxos::with(&[&ann]), NOW)
        .unwrap();
    // IPv4 127.0.0.1:9735 then an unknown type (kept, not parsed).
    let addrs = vec![1, 127, 0, 0, 1, 0x26, 0x07, 42, 0xff];
    let a = node_ann(1, ts(0), addrs);
    assert_eq!(
        s.handle_node_announcement(&a, NOW),
        Ok(Handled::Applied(vec![GraphChange::NodeAnnounced {
            node_id: node_id(1),
            alias: [b'n'; 32],
            timestamp: ts(0)
        }]))
    );
    assert_eq!(
        s.handle_node_announcement(&a, NOW),
        Err(GossipError::Duplicate)
    );
    assert!(matches!(
        s.handle_node_announcement(&node_ann(1, ts(-1), vec![]), NOW),
        Err(GossipError::Outdated { .. })
    ));
    let mut forged = node_ann(1, ts(5), vec![]);
    forged.rgb_color = [9, 9, 9];
    assert_eq!(
        s.handle_node_announcement(&forged, NOW),
        Err(GossipError::InvalidSignature(SignatureRole::Origin))
    );
    assert!(s
        .handle_node_announcement(&node_ann(1, ts(5), vec![]), NOW)
        .is_ok());
    assert_eq!(
        s.node_announcement(&node_id(1)).map(|a| a.timestamp),
        Some(ts(5))
    );
    // Truncated IPv6 descriptor; oversize addresses.
    let err = s
        .handle_node_announcement(&node_ann(1, ts(6), vec![2, 0, 0]), NOW)
        .unwrap_err();
    assert_eq!(err, GossipError::BadAddresses);
    assert!(err.warn_peer());
    assert!(matches!(
        s.handle_node_announcement(&node_ann(1, ts(6), vec![0; MAX_ADDRESSES_LEN + 1]), NOW),
        Err(GossipError::FieldTooLong {
            field: "addresses",
            ..
        })
    ));
    assert_eq!(
        s.handle_node_announcement(&node_ann(1, ts(90_000), vec![]), NOW),
        Err(GossipError::TooFarInFuture {
            timestamp: ts(90_000)
        })
    );
}

#[test]
fn spent_funding_removes_the_channel_and_its_lonely_nodes() {
    let a = announcement(1, 2, scid(1));
    let b = announcement(2, 3, scid(2));
    let mut s = store();
    let mut utxos = Utxos::with(&[&a, &b]);
    s.handle_channel_announcement(&a, &mut utxos, NOW).unwrap();
    s.handle_channel_announcement(&b, &mut utxos, NOW).unwrap();
    s.handle_node_announcement(&node_ann(1, ts(0), vec![]), NOW)
        .unwrap();
    assert_eq!(
        s.funding_spent(scid(1)),
        vec![GraphChange::ChannelRemoved {
            short_channel_id: scid(1)
        }]
    );
    assert!(s.funding_spent(scid(1)).is_empty());
    assert_eq!((s.channel_count(), s.node_count()), (1, 2));
    assert!(s.node_announcement(&node_id(1)).is_none());
    assert!(s.channel_announcement(scid(2)).is_some());
    // A spend of a waiting announcement's output drops it.
    let c = announcement(4, 5, scid(3));
    let mut pending = Utxos([(scid(3), UtxoResult::Pending)].into_iter().collect());
    s.handle_channel_announcement(&c, &mut pending, NOW)
        .unwrap();
    assert!(s.funding_spent(scid(3)).is_empty());
    assert_eq!(s.pending_count(), 0);
}

#[test]
fn stale_channels_are_pruned_when_both_directions_are_old() {
    let a = announcement(1, 2, scid(1));
    let b = announcement(3, 4, scid(2));
    let c = announcement(5, 6, scid(3));
    let (a1, a2) = ends(1, 2);
    let (b1, _) = ends(3, 4);
    let mut s = store();
    let mut utxos = Utxos::with(&[&a, &b, &c]);
    for x in [&a, &b, &c] {
        s.handle_channel_announcement(x, &mut utxos, NOW).unwrap();
    }
    // a: both directions updated at NOW - 10 and NOW - 100000.
    s.handle_channel_update(&update(&a, ChannelDirection::FromNode1, ts(-10), a1), NOW)
        .unwrap();
    s.handle_channel_update(
        &update(&a, ChannelDirection::FromNode2, ts(-100_000), a2),
        NOW,
    )
    .unwrap();
    // b: only one direction, recent.
    s.handle_channel_update(
        &update(&b, ChannelDirection::FromNode1, ts(100_000), b1),
        NOW + 100_000,
    )
    .unwrap();
    // c: no update at all (accepted at NOW).
    // a's newest update is NOW - 10: exactly two weeks later it is not stale yet.
    assert!(s.prune_stale(NOW + STALE_AFTER_SECS - 10).is_empty());
    let pruned = s.prune_stale(NOW + STALE_AFTER_SECS + 1);
    assert_eq!(
        pruned,
        vec![
            GraphChange::ChannelRemoved {
                short_channel_id: scid(1)
            },
            GraphChange::ChannelRemoved {
                short_channel_id: scid(3)
            },
        ]
    );
    assert_eq!(s.channel_count(), 1);
    assert_eq!(
        s.prune_stale(NOW + STALE_AFTER_SECS + 100_001),
        vec![GraphChange::ChannelRemoved {
            short_channel_id: scid(2)
        }]
    );
    assert_eq!((s.channel_count(), s.node_count()), (0, 0));
}

#[test]
fn combine_checks_the_peers_signatures_and_scid() {
    let s = secp();
    let (a, b) = (1u8, 2u8);
    let unsigned = announcement_unsigned(
        CHAIN,
        scid(1),
        Features::empty(),
        node_id(a),
        node_id(b),
        PublicKey::from_secret_key(&s, &funding_sk(a)),
        PublicKey::from_secret_key(&s, &funding_sk(b)),
    );
    let ours = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(a), &funding_sk(a));
    // The peer signed with the wrong funding key.
    let bad = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(b), &funding_sk(9));
    let err = combine(&s, &unsigned, &node_id(a), &ours, &bad).unwrap_err();
    assert!(matches!(
        err,
        GossipError::InvalidSignature(SignatureRole::Bitcoin1 | SignatureRole::Bitcoin2)
    ));
    // The same from node 2's side: node 1's bad signature is found.
    let ours_b = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(b), &funding_sk(b));
    let bad_a = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(9), &funding_sk(a));
    let a_role = if unsigned.node_id_1 == node_id(a) {
        SignatureRole::Node1
    } else {
        SignatureRole::Node2
    };
    assert_eq!(
        combine(&s, &unsigned, &node_id(b), &ours_b, &bad_a),
        Err(GossipError::InvalidSignature(a_role))
    );
    let mut other = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(b), &funding_sk(b));
    other.short_channel_id += 1;
    assert_eq!(
        combine(&s, &unsigned, &node_id(a), &ours, &other),
        Err(GossipError::ShortChannelIdMismatch)
    );
    let theirs = announcement_signatures(&s, &unsigned, [1; 32], &node_sk(b), &funding_sk(b));
    assert_eq!(
        combine(&s, &unsigned, &node_id(7), &ours, &theirs),
        Err(GossipError::NotOurChannel)
    );
    // Both sides combine to the same announcement, whose hash is the unsigned one's.
    let x = combine(&s, &unsigned, &node_id(a), &ours, &theirs).unwrap();
    let y = combine(&s, &unsigned, &node_id(b), &theirs, &ours).unwrap();
    assert_eq!(x, y);
    assert_eq!(x.signature_hash(), unsigned.signature_hash());
    assert_eq!(x.signed_bytes(), unsigned.signed_bytes());
}

#[test]
fn non_gossip_messages_are_refused_by_handle_message() {
    let ping = Message::Ping(fulmen_wire::msgs::Ping {
        num_pong_bytes: 1,
        ignored: fulmen_wire::codec::LenBytes(vec![]),
        extra_tlvs: Default::default(),
    });
    assert_eq!(
        store().handle_message(&ping, &mut Utxos::default(), NOW),
        Err(GossipError::NotGossip(18))
    );
    let ann = announcement(1, 2, scid(1));
    assert!(store()
        .handle_message(
            &Message::ChannelAnnouncement(ann.clone()),
            &mut Utxos::with(&[&ann]),
            NOW
        )
        .is_ok());
}
