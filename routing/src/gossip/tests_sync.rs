//! Tests of the initial sync (`gossip_timestamp_filter`) order and a proptest that byte
//! mutations of valid signed gossip never panic and are refused unless byte-identical.

// Test-only file (its `mod` is `#[cfg(test)]`); the attribute also tells tidy so.
#[cfg(test)]
use fulmen_wire::msgs::GossipTimestampFilter;
use fulmen_wire::Message;
use proptest::prelude::*;

use super::tests::*;
use super::*;

/// Two channels a(1–2) and b(2–3); every update at `NOW - 100`, except a's direction 2
/// at `NOW - 5000`; node announcements for 1 (NOW - 50) and 3 (NOW - 7000).
fn synced_store() -> (GossipStore, Vec<Message>) {
    let a = announcement(1, 2, scid(1));
    let b = announcement(2, 3, scid(2));
    let (a1, a2) = ends(1, 2);
    let (b1, b2) = ends(2, 3);
    let mut s = store();
    let mut utxos = Utxos::with(&[&a, &b]);
    let t = |o: u64| u32::try_from(NOW - o).expect("fits");
    let msgs = vec![
        Message::ChannelAnnouncement(a.clone()),
        Message::ChannelAnnouncement(b.clone()),
        Message::ChannelUpdate(update(&a, ChannelDirection::FromNode1, t(100), a1)),
        Message::ChannelUpdate(update(&a, ChannelDirection::FromNode2, t(5000), a2)),
        Message::ChannelUpdate(update(&b, ChannelDirection::FromNode1, t(100), b1)),
        Message::ChannelUpdate(update(&b, ChannelDirection::FromNode2, t(100), b2)),
        Message::NodeAnnouncement(node_ann(1, t(50), vec![])),
        Message::NodeAnnouncement(node_ann(3, t(7000), vec![])),
    ];
    for m in &msgs {
        s.handle_message(m, &mut utxos, NOW).expect("valid gossip");
    }
    (s, msgs)
}

#[test]
fn timestamp_filter_sends_announcements_then_updates_then_nodes() {
    let (s, m) = synced_store();
    // Everything: a, its updates, node 1 (after a), b, its updates, node 3 (after b).
    let all = s.messages_since(0, u32::MAX);
    assert_eq!(
        all,
        vec![
            m[0].clone(),
            m[2].clone(),
            m[3].clone(),
            m[6].clone(),
            m[1].clone(),
            m[4].clone(),
            m[5].clone(),
            m[7].clone()
        ]
    );
    // The last 1000 s: a with its recent update, node 1, b with both.
    let recent = s.messages_since(u32::try_from(NOW - 1000).unwrap(), 2000);
    assert_eq!(
        recent,
        vec![
            m[0].clone(),
            m[2].clone(),
            m[6].clone(),
            m[1].clone(),
            m[4].clone(),
            m[5].clone()
        ]
    );
    // A window with only a's old update and node 3's announcement (its channel b is not
    // in the window, so node 3 comes at the end).
    let old = s.messages_since(u32::try_from(NOW - 7500).unwrap(), 3000);
    assert_eq!(old, vec![m[0].clone(), m[3].clone(), m[7].clone()]);
    // The window is half-open.
    let exact = s.messages_since(u32::try_from(NOW - 100).unwrap(), 0);
    assert!(exact.is_empty());
    assert!(s
        .messages_since(u32::try_from(NOW).unwrap(), 100)
        .is_empty());
}

/// A relayed message is judged by the timestamp the sync uses: its own, or for a channel
/// announcement its newest update's (none without updates).
#[test]
fn filter_timestamps_are_the_syncs() {
    let (mut s, m) = synced_store();
    let t = |o: u64| u32::try_from(NOW - o).expect("fits");
    assert_eq!(s.filter_timestamp(&m[0]), Some(t(100)));
    assert_eq!(s.filter_timestamp(&m[3]), Some(t(5000)));
    assert_eq!(s.filter_timestamp(&m[7]), Some(t(7000)));
    let c = announcement(4, 5, scid(3));
    s.handle_channel_announcement(&c, &mut Utxos::with(&[&c]), NOW)
        .unwrap();
    assert_eq!(s.filter_timestamp(&Message::ChannelAnnouncement(c)), None);
    assert!(in_filter_window(10, 5, 10) && in_filter_window(10, 5, 14));
    assert!(!in_filter_window(10, 5, 15) && !in_filter_window(10, 5, 9));
    assert!(in_filter_window(u32::MAX, u32::MAX, u32::MAX));
}

#[test]
fn timestamp_filter_of_another_chain_is_refused() {
    let (s, _) = synced_store();
    let f = GossipTimestampFilter {
        chain_hash: [0; 32],
        first_timestamp: 0,
        timestamp_range: u32::MAX,
        extra_tlvs: Default::default(),
    };
    assert_eq!(s.handle_timestamp_filter(&f), Err(GossipError::WrongChain));
    let f = GossipTimestampFilter {
        chain_hash: CHAIN,
        ..f
    };
    assert_eq!(s.handle_timestamp_filter(&f).unwrap().len(), 8);
}

#[test]
fn a_channel_without_updates_is_not_synced_and_pruning_removes_from_sync() {
    let (mut s, _) = synced_store();
    let c = announcement(4, 5, scid(3));
    s.handle_channel_announcement(&c, &mut Utxos::with(&[&c]), NOW)
        .unwrap();
    assert_eq!(s.messages_since(0, u32::MAX).len(), 8);
    s.funding_spent(scid(1));
    // a, its updates and node 1 (no channel left) are gone.
    assert_eq!(s.messages_since(0, u32::MAX).len(), 4);
}

/// The three kinds of valid signed gossip about one channel, encoded.
fn valid_gossip() -> Vec<Vec<u8>> {
    let (n1, _) = ends(1, 2);
    let ann = announcement(1, 2, scid(1));
    vec![
        Message::ChannelAnnouncement(ann.clone()).encode(),
        Message::ChannelUpdate(update(
            &ann,
            ChannelDirection::FromNode1,
            u32::try_from(NOW).unwrap(),
            n1,
        ))
        .encode(),
        Message::NodeAnnouncement(node_ann(
            1,
            u32::try_from(NOW).unwrap(),
            vec![1, 127, 0, 0, 1, 0, 1],
        ))
        .encode(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Mutated bytes of valid gossip never panic the decoder or the store; whatever the
    /// store accepts is byte-identical to the original message.
    #[test]
    fn mutated_gossip_is_refused_unless_identical(
        which in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
    ) {
        let originals = valid_gossip();
        let original = &originals[which];
        let mut bytes = original.clone();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len().max(1));
            match kind {
                0 | 1 if i < bytes.len() => bytes[i] ^= byte.max(1),
                2 => bytes.insert(i.min(bytes.len()), byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let Ok(msg) = Message::decode(&bytes) else {
            return Ok(());
        };
        // A store that knows the channel, so updates and node announcements get as far as
        // their signature checks.
        let ann = announcement(1, 2, scid(1));
        let mut s = store();
        let mut utxos = Utxos::with(&[&ann]);
        if which != 0 {
            s.handle_channel_announcement(&ann, &mut utxos, NOW).expect("valid");
        }
        match s.handle_message(&msg, &mut utxos, NOW) {
            Ok(_) => prop_assert_eq!(&bytes, original, "accepted a changed message"),
            Err(e) => {
                // The only acceptable "refusal" of the original itself.
                prop_assert!(bytes != *original, "refused the original: {e}");
            }
        }
    }
}
