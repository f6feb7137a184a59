//! Fuzz target: arbitrary bytes as `channel_announcement` / `node_announcement` /
//! `channel_update` fed to a `GossipStore` that already holds one real channel (fixed
//! keys), with UTXO answers (found, spent, missing, pending, resolved later) chosen by the
//! input. Besides raw messages, the input can have the harness *sign* messages whose
//! fields it chooses, so the checks behind the signatures (timestamps, HTLC limits,
//! directions, addresses, bounds, pending set) are reached.
//!
//! Oracles: nothing panics; every `GraphChange` the store emits applies to a
//! `NetworkGraph` fed only from the store; a raw message that is accepted re-encodes to
//! the input bytes; the pending set stays within its bound.
#![no_main]

use std::sync::OnceLock;

use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, ScriptBuf};
use fulmen_routing::gossip::funding_script_pubkey;
use fulmen_routing::gossip::own::{
    announcement_signatures, announcement_unsigned, combine, sign_channel_update,
    sign_node_announcement,
};
use fulmen_routing::{
    ChannelDirection, DirectedPolicy, GossipConfig, GossipStore, Handled, NetworkGraph, UtxoLookup,
    UtxoResult,
};
use fulmen_wire::codec::Reader;
use fulmen_wire::scid::ShortChannelId;
use fulmen_wire::{Features, Message};
use libfuzzer_sys::fuzz_target;

const CHAIN: [u8; 32] = [6; 32];
const NOW: u64 = 1_700_000_000;

struct Base {
    secp: Secp256k1<All>,
    keys: [SecretKey; 4],
    store: GossipStore,
    graph: NetworkGraph,
}

/// Node keys 0, 1 and funding keys 2, 3; one channel between nodes 0 and 1 at 100x1x0.
fn base() -> &'static Base {
    static B: OnceLock<Base> = OnceLock::new();
    B.get_or_init(|| {
        let secp = Secp256k1::new();
        let keys = [1u8, 2, 3, 4].map(|i| SecretKey::from_slice(&[i; 32]).expect("key"));
        let pk = |i: usize| PublicKey::from_secret_key(&secp, &keys[i]);
        let scid = ShortChannelId::new(100, 1, 0).expect("scid");
        let unsigned =
            announcement_unsigned(CHAIN, scid, Features::empty(), pk(0), pk(1), pk(2), pk(3));
        let a = announcement_signatures(&secp, &unsigned, [0; 32], &keys[0], &keys[2]);
        let b = announcement_signatures(&secp, &unsigned, [0; 32], &keys[1], &keys[3]);
        let ann = combine(&secp, &unsigned, &pk(0), &a, &b).expect("valid");
        let mut cfg = GossipConfig::new(CHAIN);
        cfg.max_pending = 4;
        cfg.max_channels = 8;
        let mut store = GossipStore::new(cfg);
        let mut graph = NetworkGraph::new();
        let mut utxo = Answers(vec![found(
            &ann.bitcoin_key_1,
            &ann.bitcoin_key_2,
            1_000_000,
        )]);
        if let Ok(Handled::Applied(c)) = store.handle_channel_announcement(&ann, &mut utxo, NOW) {
            for c in c {
                graph.apply(&c).expect("applies");
            }
        }
        store.take_broadcast_batch();
        Base {
            secp,
            keys,
            store,
            graph,
        }
    })
}

fn found(k1: &PublicKey, k2: &PublicKey, sat: u64) -> UtxoResult {
    UtxoResult::Found {
        script_pubkey: funding_script_pubkey(k1, k2),
        value: Amount::from_sat(sat),
    }
}

/// UTXO answers taken in order, then "missing".
struct Answers(Vec<UtxoResult>);

impl UtxoLookup for Answers {
    fn lookup(&mut self, _: ShortChannelId) -> UtxoResult {
        if self.0.is_empty() {
            UtxoResult::Missing
        } else {
            self.0.remove(0)
        }
    }
}

fn answer(r: &mut Reader<'_>, keys: (&PublicKey, &PublicKey)) -> UtxoResult {
    match r.u8().unwrap_or(0) % 5 {
        0 => UtxoResult::Pending,
        1 => UtxoResult::Spent,
        2 => UtxoResult::Missing,
        3 => UtxoResult::Found {
            script_pubkey: ScriptBuf::from_bytes(r.take(34).unwrap_or(&[]).to_vec()),
            value: Amount::from_sat(r.u64().unwrap_or(0)),
        },
        _ => found(keys.0, keys.1, r.u32().map(u64::from).unwrap_or(0)),
    }
}

fn feed(
    store: &mut GossipStore,
    graph: &mut NetworkGraph,
    h: Result<Handled, impl std::fmt::Debug>,
) {
    if let Ok(Handled::Applied(changes)) = h {
        for c in changes {
            if let Err(e) = graph.apply(&c) {
                panic!("store emitted a change the graph refuses: {c:?}: {e}");
            }
        }
    }
    assert!(store.pending_count() <= store.config().max_pending);
}

fuzz_target!(|data: &[u8]| {
    let b = base();
    let mut store = b.store.clone();
    let mut graph = b.graph.clone();
    let pk = |i: usize| PublicKey::from_secret_key(&b.secp, &b.keys[i]);
    let mut r = Reader::new(data);
    // Up to 16 steps, each chosen by one byte.
    for _ in 0..16 {
        let Ok(op) = r.u8() else { break };
        let now = NOW + u64::from(r.u16().unwrap_or(0)) * 60;
        match op % 6 {
            // A raw message: type chosen among the three gossip types, u16 length.
            0 => {
                let ty = [256u16, 257, 258][usize::from(r.u8().unwrap_or(0) % 3)];
                let len = usize::from(r.u16().unwrap_or(0));
                let body = r.take(len.min(r.remaining())).unwrap_or(&[]);
                let mut bytes = ty.to_be_bytes().to_vec();
                bytes.extend_from_slice(body);
                let Ok(msg) = Message::decode(&bytes) else {
                    continue;
                };
                let mut utxo = Answers(vec![answer(&mut r, (&pk(2), &pk(3)))]);
                let h = store.handle_message(&msg, &mut utxo, now);
                if matches!(h, Ok(Handled::Applied(_)) | Ok(Handled::Held)) {
                    assert_eq!(msg.encode(), bytes, "accepted bytes do not round-trip");
                }
                feed(&mut store, &mut graph, h);
            }
            // A channel_update signed by the harness (either node key, either direction).
            1 => {
                let flags = r.u8().unwrap_or(0);
                let scid = if flags & 4 == 0 {
                    ShortChannelId::new(100, 1, 0).expect("scid")
                } else {
                    ShortChannelId::from_u64(r.u64().unwrap_or(0))
                };
                let direction = ChannelDirection::from_channel_flags(flags);
                let policy = DirectedPolicy {
                    fee_base_msat: r.u32().unwrap_or(0),
                    fee_proportional_millionths: r.u32().unwrap_or(0),
                    cltv_expiry_delta: r.u16().unwrap_or(0),
                    htlc_minimum_msat: r.u64().unwrap_or(0),
                    htlc_maximum_msat: r.u64().unwrap_or(0),
                    enabled: flags & 2 == 0,
                    timestamp: r.u32().unwrap_or(0),
                };
                let key = &b.keys[usize::from(flags >> 7)];
                let mut u = sign_channel_update(&b.secp, CHAIN, scid, direction, &policy, key);
                if flags & 8 != 0 {
                    u.message_flags = 0;
                }
                let h = store.handle_channel_update(&u, now);
                feed(&mut store, &mut graph, h);
            }
            // A node_announcement signed by the harness, features and addresses from input.
            2 => {
                let who = usize::from(r.u8().unwrap_or(0) % 4);
                let flen = usize::from(r.u8().unwrap_or(0));
                let features = Features(r.take(flen.min(r.remaining())).unwrap_or(&[]).to_vec());
                let alen = usize::from(r.u16().unwrap_or(0) % 1024);
                let addresses = r.take(alen.min(r.remaining())).unwrap_or(&[]).to_vec();
                let ts = r.u32().unwrap_or(0);
                let a = sign_node_announcement(
                    &b.secp,
                    &b.keys[who],
                    features,
                    ts,
                    [0; 3],
                    [0; 32],
                    addresses,
                );
                let h = store.handle_node_announcement(&a, now);
                feed(&mut store, &mut graph, h);
            }
            // A new channel between two of the keys, correctly signed, with a UTXO answer.
            3 => {
                let sel = r.u8().unwrap_or(0);
                let (x, y) = (usize::from(sel % 4), usize::from((sel >> 2) % 4));
                let (fx, fy) = (usize::from((sel >> 4) % 4), usize::from(sel >> 6));
                let scid = ShortChannelId::from_u64(r.u64().unwrap_or(0));
                let unsigned = announcement_unsigned(
                    CHAIN,
                    scid,
                    Features::empty(),
                    pk(x),
                    pk(y),
                    pk(fx),
                    pk(fy),
                );
                let sa =
                    announcement_signatures(&b.secp, &unsigned, [0; 32], &b.keys[x], &b.keys[fx]);
                let sb =
                    announcement_signatures(&b.secp, &unsigned, [0; 32], &b.keys[y], &b.keys[fy]);
                let Ok(ann) = combine(&b.secp, &unsigned, &pk(x), &sa, &sb) else {
                    continue;
                };
                let mut utxo = Answers(vec![answer(
                    &mut r,
                    (&ann.bitcoin_key_1, &ann.bitcoin_key_2),
                )]);
                let h = store.handle_channel_announcement(&ann, &mut utxo, now);
                feed(&mut store, &mut graph, h);
            }
            // Resolve a pending announcement (or one that is not pending).
            4 => {
                let scid = ShortChannelId::from_u64(r.u64().unwrap_or(0));
                let res = answer(&mut r, (&pk(2), &pk(3)));
                let h = store.utxo_resolved(scid, res, now);
                feed(&mut store, &mut graph, h);
            }
            // Spends, pruning, sync and broadcast.
            _ => {
                let scid = ShortChannelId::from_u64(r.u64().unwrap_or(0));
                for c in store.funding_spent(scid) {
                    graph.apply(&c).expect("removal applies");
                }
                for c in store.prune_stale(now + u64::from(r.u32().unwrap_or(0))) {
                    graph.apply(&c).expect("removal applies");
                }
                let _ = store.messages_since(r.u32().unwrap_or(0), r.u32().unwrap_or(0));
                let _ = store.take_broadcast_batch();
            }
        }
    }
    assert_eq!(store.channel_count(), graph.channel_count());
});
