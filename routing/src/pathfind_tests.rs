//! Tests of [`super`]: exact fee and CLTV accumulation, every limit, first hops, route
//! hints, the scorer's feedback, exclusions, and proptests of validity and completeness.
//!
//! Owns: the route checker the proptests share. Must never depend on timing.

// Test-only file (its `mod` is `#[cfg(test)]`); the attribute also tells tidy so.
#[cfg(test)]
use super::*;
use crate::change::{DirectedPolicy, GraphChange};
use crate::scorer::ScorerParams;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use proptest::prelude::*;

fn key(i: u8) -> PublicKey {
    let mut b = [0u8; 32];
    b[0] = 7;
    b[31] = i;
    PublicKey::from_secret_key(
        &Secp256k1::signing_only(),
        &SecretKey::from_slice(&b).unwrap(),
    )
}

fn scid(i: u64) -> ShortChannelId {
    ShortChannelId::from_u64(i)
}

fn pol(base: u32, ppm: u32, cltv: u16) -> DirectedPolicy {
    DirectedPolicy {
        fee_base_msat: base,
        fee_proportional_millionths: ppm,
        cltv_expiry_delta: cltv,
        htlc_minimum_msat: 1,
        htlc_maximum_msat: u64::MAX,
        enabled: true,
        timestamp: 1,
    }
}

/// Add channel `id` from `a` to `b` with capacity `cap_sat`; `a_pol` is what `a` charges
/// toward `b`, `b_pol` the reverse.
fn chan(
    g: &mut NetworkGraph,
    id: u64,
    a: PublicKey,
    b: PublicKey,
    cap_sat: u64,
    a_pol: Option<DirectedPolicy>,
    b_pol: Option<DirectedPolicy>,
) {
    g.apply(&GraphChange::ChannelAdded {
        short_channel_id: scid(id),
        node_1: a,
        node_2: b,
        capacity_sat: cap_sat,
    })
    .unwrap();
    for (from, to, p) in [(a, b, a_pol), (b, a, b_pol)] {
        if let Some(policy) = p {
            g.apply(&GraphChange::PolicyUpdated {
                short_channel_id: scid(id),
                direction: direction_between(&from, &to),
                policy,
            })
            .unwrap();
        }
    }
}

fn both(g: &mut NetworkGraph, id: u64, a: u8, b: u8, p: DirectedPolicy) {
    chan(g, id, key(a), key(b), 10_000_000, Some(p), Some(p));
}

fn scorer() -> ProbabilisticScorer {
    ProbabilisticScorer::new(ScorerParams::default())
}

fn scids(r: &Route) -> Vec<u64> {
    r.hops.iter().map(|h| h.short_channel_id.to_u64()).collect()
}

/// Check a route against the graph (plus first hops and hints) and the params: every
/// policy satisfied, amounts and expiries consistent, fees exact, limits kept.
fn check_route(g: &NetworkGraph, p: &RouteParams, r: &Route) {
    assert!(!r.hops.is_empty());
    assert!(r.hops.len() <= usize::from(p.max_hops));
    let last = r.hops.last().unwrap();
    assert_eq!(last.node_id, p.payee);
    assert_eq!(last.amount_msat, p.amount_msat);
    assert_eq!(last.expiry_delta, p.final_cltv_delta);
    assert_eq!(last.fee_msat, 0);
    assert_eq!(r.total_amount_msat, r.hops[0].amount_msat);
    assert_eq!(r.total_fee_msat, r.total_amount_msat - p.amount_msat);
    assert!(r.total_fee_msat <= p.effective_max_fee_msat());
    assert_eq!(r.total_cltv_delta, r.hops[0].expiry_delta);
    assert!(r.total_cltv_delta <= p.max_total_cltv);
    let mut seen = vec![p.payer];
    let mut prev = p.payer;
    for (i, hop) in r.hops.iter().enumerate() {
        assert!(!seen.contains(&hop.node_id), "node repeated");
        seen.push(hop.node_id);
        assert!(!p.excluded_channels.contains(&hop.short_channel_id));
        assert_eq!(hop.direction, direction_between(&prev, &hop.node_id));
        if i + 1 < r.hops.len() {
            assert!(!p.excluded_nodes.contains(&hop.node_id));
        }
        let policy = hop_policy(g, p, prev, hop);
        assert!(hop.amount_msat >= policy.htlc_minimum_msat);
        assert!(hop.amount_msat <= policy.htlc_maximum_msat);
        if i > 0 {
            let before = &r.hops[i - 1];
            let fee = forwarding_fee_msat(
                policy.fee_base_msat,
                policy.fee_proportional_millionths,
                hop.amount_msat,
            )
            .unwrap();
            assert_eq!(before.amount_msat, hop.amount_msat + fee);
            assert_eq!(before.fee_msat, fee);
            assert_eq!(
                before.expiry_delta,
                hop.expiry_delta + u32::from(policy.cltv_expiry_delta)
            );
        }
        prev = hop.node_id;
    }
}

/// The terms of the channel a hop crossed: the payer's first hop (its balance as maximum),
/// a graph direction (capacity folded into the maximum), or a hint hop.
fn hop_policy(
    g: &NetworkGraph,
    p: &RouteParams,
    prev: PublicKey,
    hop: &RouteHop,
) -> DirectedPolicy {
    if let (true, Some(first_hops)) = (prev == p.payer, &p.first_hops) {
        let fh = first_hops
            .iter()
            .find(|f| f.short_channel_id == hop.short_channel_id && f.peer == hop.node_id)
            .expect("a listed first hop");
        return DirectedPolicy {
            htlc_minimum_msat: fh.htlc_minimum_msat.unwrap_or(0),
            htlc_maximum_msat: fh.spendable_msat,
            ..pol(0, 0, 0)
        };
    }
    if let Some((from, to, w)) = g.directed_channel(hop.short_channel_id, hop.direction) {
        if (from, to) == (prev, hop.node_id) {
            let policy = w.usable_policy().expect("usable policy");
            return DirectedPolicy {
                htlc_maximum_msat: policy.htlc_maximum_msat.min(w.capacity_msat()),
                ..*policy
            };
        }
    }
    for hint in &p.route_hints {
        for (k, h) in hint.0.iter().enumerate() {
            let target = hint.0.get(k + 1).map_or(p.payee, |n| n.src_node_id);
            if h.src_node_id == prev
                && h.short_channel_id == hop.short_channel_id
                && target == hop.node_id
            {
                return DirectedPolicy {
                    fee_base_msat: h.fee_base_msat,
                    fee_proportional_millionths: h.fee_proportional_millionths,
                    cltv_expiry_delta: h.cltv_expiry_delta,
                    htlc_minimum_msat: h.htlc_minimum_msat.unwrap_or(0),
                    htlc_maximum_msat: h.htlc_maximum_msat.unwrap_or(u64::MAX),
                    enabled: true,
                    timestamp: 0,
                };
            }
        }
    }
    panic!(
        "hop {} from {prev} matches no channel",
        hop.short_channel_id
    );
}

/// A line 0 - 1 - 2 - 3 - 4 with distinct policies on the forward direction.
fn line5() -> NetworkGraph {
    let mut g = NetworkGraph::new();
    chan(&mut g, 1, key(0), key(1), 10_000, Some(pol(9, 9, 9)), None);
    chan(
        &mut g,
        2,
        key(1),
        key(2),
        10_000,
        Some(pol(1000, 100, 40)),
        None,
    );
    chan(
        &mut g,
        3,
        key(2),
        key(3),
        10_000,
        Some(pol(0, 2500, 80)),
        None,
    );
    chan(
        &mut g,
        4,
        key(3),
        key(4),
        10_000,
        Some(pol(500, 1, 144)),
        None,
    );
    g
}

#[test]
fn exact_fees_and_cltv_on_a_line() {
    let g = line5();
    let p = RouteParams::new(key(0), key(4), 1_234_567, 0);
    let r = find_route(&g, &scorer(), &p).unwrap();
    check_route(&g, &p, &r);
    let amounts: Vec<u64> = r.hops.iter().map(|h| h.amount_msat).collect();
    // 3 charges 500 + floor(1,234,567 * 1 / 1e6) = 501; 2 charges floor(1,235,068 * 2500
    // / 1e6) = 3087; 1 charges 1000 + floor(1,238,155 * 100 / 1e6) = 1123.
    assert_eq!(amounts, vec![1_239_278, 1_238_155, 1_235_068, 1_234_567]);
    let fees: Vec<u64> = r.hops.iter().map(|h| h.fee_msat).collect();
    assert_eq!(fees, vec![1123, 3087, 501, 0]);
    let expiries: Vec<u32> = r.hops.iter().map(|h| h.expiry_delta).collect();
    assert_eq!(expiries, vec![282, 242, 162, 18]);
    assert_eq!(r.total_fee_msat, 4711);
    assert_eq!(r.total_cltv_delta, 282);
    assert_eq!(scids(&r), vec![1, 2, 3, 4]);
    let payloads = r.payloads();
    assert_eq!(payloads[0].node_id, key(1));
    assert_eq!(payloads[0].short_channel_id, Some(scid(2)));
    assert_eq!(payloads[0].amt_to_forward_msat, 1_238_155);
    assert_eq!(payloads[0].outgoing_cltv_delta, 242);
    assert_eq!(payloads[3].short_channel_id, None);
    assert_eq!(payloads[3].amt_to_forward_msat, 1_234_567);
    assert_eq!(payloads[3].outgoing_cltv_delta, 18);
    assert!(r.success_probability > 0.0 && r.success_probability <= 1.0);
    // The reverse direction has no policies: no route back.
    let back = RouteParams::new(key(4), key(0), 1000, 0);
    assert!(matches!(
        find_route(&g, &scorer(), &back),
        Err(RouteError::NoRoute { .. })
    ));
}

/// 0 → {1 (cheap), 2 (dear)} → 3. Returns the graph with the cheap leg built from `cheap`.
fn diamond(cheap: DirectedPolicy, cheap_cap_sat: u64) -> NetworkGraph {
    let mut g = NetworkGraph::new();
    let free = pol(0, 0, 10);
    chan(&mut g, 1, key(0), key(1), 1_000_000, Some(free), Some(free));
    chan(&mut g, 2, key(0), key(2), 1_000_000, Some(free), Some(free));
    chan(
        &mut g,
        3,
        key(1),
        key(3),
        cheap_cap_sat,
        Some(cheap),
        Some(free),
    );
    chan(
        &mut g,
        4,
        key(2),
        key(3),
        1_000_000,
        Some(pol(100, 1000, 40)),
        Some(free),
    );
    g
}

#[test]
fn limits_of_each_channel_are_respected() {
    let amt = 500_000;
    let p = RouteParams::new(key(0), key(3), amt, 0);
    let cheap = pol(1, 1, 10);
    let r = find_route(&diamond(cheap, 1_000_000), &scorer(), &p).unwrap();
    assert_eq!(scids(&r), vec![1, 3]);
    let cases = [
        (
            "htlc_min",
            diamond(
                DirectedPolicy {
                    htlc_minimum_msat: amt + 1,
                    ..cheap
                },
                1_000_000,
            ),
        ),
        (
            "htlc_max",
            diamond(
                DirectedPolicy {
                    htlc_maximum_msat: amt - 1,
                    ..cheap
                },
                1_000_000,
            ),
        ),
        ("capacity", diamond(cheap, amt / 1000 - 1)),
        (
            "disabled",
            diamond(
                DirectedPolicy {
                    enabled: false,
                    ..cheap
                },
                1_000_000,
            ),
        ),
    ];
    for (what, g) in cases {
        let r = find_route(&g, &scorer(), &p).unwrap();
        check_route(&g, &p, &r);
        assert_eq!(scids(&r), vec![2, 4], "{what}");
    }
    // A direction without a policy is unusable too.
    let mut g = NetworkGraph::new();
    chan(
        &mut g,
        1,
        key(0),
        key(1),
        1_000_000,
        None,
        Some(pol(0, 0, 10)),
    );
    assert!(find_route(&g, &scorer(), &RouteParams::new(key(0), key(1), 1000, 0)).is_err());
}

fn line(n: u8, p: DirectedPolicy) -> NetworkGraph {
    let mut g = NetworkGraph::new();
    for i in 0..n - 1 {
        both(&mut g, u64::from(i) + 1, i, i + 1, p);
    }
    g
}

#[test]
fn hop_limit() {
    let g = line(22, pol(0, 0, 10));
    let ok = RouteParams::new(key(0), key(20), 1000, 0);
    let r = find_route(&g, &scorer(), &ok).unwrap();
    assert_eq!(r.hops.len(), 20);
    check_route(&g, &ok, &r);
    let far = RouteParams::new(key(0), key(21), 1000, 0);
    assert_eq!(
        find_route(&g, &scorer(), &far),
        Err(RouteError::NoRoute {
            by_fee: false,
            by_cltv: false,
            by_hops: true
        })
    );
    let short = RouteParams {
        max_hops: 3,
        ..RouteParams::new(key(0), key(4), 1000, 0)
    };
    assert!(find_route(&g, &scorer(), &short).is_err());
}

#[test]
fn cltv_limit() {
    let g = line(5, pol(0, 0, 700));
    // 18 + 3 * 700 = 2118 > 2016.
    let p = RouteParams::new(key(0), key(4), 1000, 0);
    assert_eq!(
        find_route(&g, &scorer(), &p),
        Err(RouteError::NoRoute {
            by_fee: false,
            by_cltv: true,
            by_hops: false
        })
    );
    let p = RouteParams {
        max_total_cltv: 2118,
        ..p
    };
    assert_eq!(
        find_route(&g, &scorer(), &p).unwrap().total_cltv_delta,
        2118
    );
}

#[test]
fn fee_limit() {
    let g = line(3, pol(60_000, 0, 10));
    let p = RouteParams::new(key(0), key(2), 1_000_000, 0);
    // Default limit: 10,000 + 50,000 = 60,000: exactly enough.
    assert_eq!(
        find_route(&g, &scorer(), &p).unwrap().total_fee_msat,
        60_000
    );
    let p = RouteParams {
        max_fee_msat: Some(59_999),
        ..p
    };
    assert_eq!(
        find_route(&g, &scorer(), &p),
        Err(RouteError::NoRoute {
            by_fee: true,
            by_cltv: false,
            by_hops: false
        })
    );
}

#[test]
fn first_hops_override_the_graph() {
    let g = diamond(pol(1, 1, 10), 1_000_000);
    let amt = 500_000;
    let base = RouteParams::new(key(0), key(3), amt, 0);
    let fh = |id, peer, spendable| FirstHop {
        short_channel_id: scid(id),
        peer: key(peer),
        spendable_msat: spendable,
        htlc_minimum_msat: None,
    };
    // The cheap leg's own channel cannot spend enough: the dear leg is used.
    let p = RouteParams {
        first_hops: Some(vec![fh(1, 1, amt - 1), fh(2, 2, amt + 10_000)]),
        ..base.clone()
    };
    let r = find_route(&g, &scorer(), &p).unwrap();
    assert_eq!(scids(&r), vec![2, 4]);
    // Only channel 1 listed (even though the graph has 2): channel 1 or nothing.
    let p = RouteParams {
        first_hops: Some(vec![fh(1, 1, amt - 1)]),
        ..base.clone()
    };
    assert!(find_route(&g, &scorer(), &p).is_err());
    // A private channel of the payer, to a peer (1) in the graph, under an unknown scid.
    let p = RouteParams {
        first_hops: Some(vec![fh(99, 1, 10 * amt)]),
        ..base.clone()
    };
    let r = find_route(&g, &scorer(), &p).unwrap();
    assert_eq!(scids(&r), vec![99, 3]);
    assert_eq!(r.hops[0].amount_msat, amt + 1); // 1 + floor(500,000 * 1 / 1e6)
                                                // An unknown payer with first hops works; without, it is refused.
    let p = RouteParams {
        payer: key(50),
        first_hops: Some(vec![fh(98, 2, 10 * amt)]),
        ..base.clone()
    };
    assert_eq!(scids(&find_route(&g, &scorer(), &p).unwrap()), vec![98, 4]);
    let p = RouteParams {
        payer: key(50),
        ..base
    };
    assert_eq!(find_route(&g, &scorer(), &p), Err(RouteError::UnknownPayer));
}

#[test]
fn route_hints_reach_a_private_payee() {
    let g = line5();
    let private = key(60);
    let hidden = key(61);
    let hint = RouteHint(vec![
        RouteHintHop {
            src_node_id: key(4),
            short_channel_id: scid(70),
            fee_base_msat: 10,
            fee_proportional_millionths: 1000,
            cltv_expiry_delta: 30,
            htlc_minimum_msat: None,
            htlc_maximum_msat: None,
        },
        RouteHintHop {
            src_node_id: hidden,
            short_channel_id: scid(71),
            fee_base_msat: 5,
            fee_proportional_millionths: 0,
            cltv_expiry_delta: 20,
            htlc_minimum_msat: None,
            htlc_maximum_msat: Some(2_000_000),
        },
    ]);
    let p = RouteParams::new(key(0), private, 1_000_000, 0);
    assert_eq!(find_route(&g, &scorer(), &p), Err(RouteError::UnknownPayee));
    let p = RouteParams {
        route_hints: vec![hint.clone()],
        ..p
    };
    let r = find_route(&g, &scorer(), &p).unwrap();
    assert_eq!(scids(&r), vec![1, 2, 3, 4, 70, 71]);
    let amounts: Vec<u64> = r.hops.iter().map(|h| h.amount_msat).collect();
    // hidden: +5; node 4: 10 + floor(1,000,005 * 1000 / 1e6) = 1010.
    assert_eq!(amounts[3..], [1_001_015, 1_000_005, 1_000_000]);
    assert_eq!(r.hops[4].node_id, hidden);
    assert_eq!(r.hops[5].node_id, private);
    let expiries: Vec<u32> = r.hops.iter().map(|h| h.expiry_delta).collect();
    assert_eq!(expiries[3..], [68, 38, 18]);
    // A payer known only from the hint (its private channel to the payee) pays no fee.
    let direct = RouteParams {
        route_hints: vec![RouteHint(vec![RouteHintHop {
            src_node_id: key(62),
            ..hint.0[1]
        }])],
        ..RouteParams::new(key(62), private, 1000, 0)
    };
    let r = find_route(&g, &scorer(), &direct).unwrap();
    assert_eq!((scids(&r), r.total_fee_msat), (vec![71], 0));
    // The hint's htlc_maximum is honoured.
    let p = RouteParams {
        amount_msat: 2_000_001,
        ..p
    };
    assert!(find_route(&g, &scorer(), &p).is_err());
}

#[test]
fn scorer_failure_steers_the_next_query_and_decay_restores() {
    // Two identical legs 0 → 1 → 3 and 0 → 2 → 3.
    let mut g = NetworkGraph::new();
    let p0 = pol(0, 100, 40);
    both(&mut g, 1, 0, 1, p0);
    both(&mut g, 2, 0, 2, p0);
    both(&mut g, 3, 1, 3, p0);
    both(&mut g, 4, 2, 3, p0);
    let mut s = ProbabilisticScorer::new(ScorerParams {
        half_life_secs: 3600,
        ..ScorerParams::default()
    });
    let p = RouteParams::new(key(0), key(3), 3_000_000, 1_000);
    let first = find_route(&g, &s, &p).unwrap();
    let failed_scid = first.hops[1].short_channel_id;
    s.payment_path_failed(&first, 1, 1_000);
    let second = find_route(&g, &s, &p).unwrap();
    check_route(&g, &p, &second);
    assert_ne!(second.hops[1].short_channel_id, failed_scid);
    assert!(second.success_probability > 0.0);
    // Make the other leg slightly dearer so the restored leg wins once forgotten.
    let later = RouteParams {
        now: 1_000 + 3600 * 40,
        ..p.clone()
    };
    s.payment_failed_at(
        second.hops[1].short_channel_id,
        second.hops[1].direction,
        9_000_000,
        later.now,
    );
    let third = find_route(&g, &s, &later).unwrap();
    assert_eq!(third.hops[1].short_channel_id, failed_scid);
}

#[test]
fn excluded_channels_and_nodes() {
    let g = diamond(pol(1, 1, 10), 1_000_000);
    let p = RouteParams::new(key(0), key(3), 1000, 0);
    let r = find_route(&g, &scorer(), &p).unwrap();
    assert_eq!(scids(&r), vec![1, 3]);
    let p2 = RouteParams {
        excluded_channels: vec![scid(3)],
        ..p.clone()
    };
    let r = find_route(&g, &scorer(), &p2).unwrap();
    check_route(&g, &p2, &r);
    assert_eq!(scids(&r), vec![2, 4]);
    let p3 = RouteParams {
        excluded_nodes: vec![key(2)],
        excluded_channels: vec![scid(1)],
        ..p
    };
    assert!(find_route(&g, &scorer(), &p3).is_err());
}

#[test]
fn graph_changes_after_a_query_are_seen() {
    let mut g = diamond(pol(1, 1, 10), 1_000_000);
    let p = RouteParams::new(key(0), key(3), 1000, 0);
    let mut pf = PathFinder::new();
    assert_eq!(
        scids(&pf.find_route(&g, &scorer(), &p).unwrap()),
        vec![1, 3]
    );
    // A policy update patches the search index in place.
    g.apply(&GraphChange::PolicyUpdated {
        short_channel_id: scid(3),
        direction: direction_between(&key(1), &key(3)),
        policy: DirectedPolicy {
            enabled: false,
            timestamp: 2,
            ..pol(1, 1, 10)
        },
    })
    .unwrap();
    assert_eq!(
        scids(&pf.find_route(&g, &scorer(), &p).unwrap()),
        vec![2, 4]
    );
    // Removing and adding channels rebuilds it.
    g.apply(&GraphChange::ChannelRemoved {
        short_channel_id: scid(4),
    })
    .unwrap();
    assert!(pf.find_route(&g, &scorer(), &p).is_err());
    chan(
        &mut g,
        5,
        key(0),
        key(3),
        1_000_000,
        Some(pol(0, 0, 10)),
        None,
    );
    assert_eq!(scids(&pf.find_route(&g, &scorer(), &p).unwrap()), vec![5]);
}

#[test]
fn trivial_refusals() {
    let g = line5();
    let s = scorer();
    assert_eq!(
        find_route(&g, &s, &RouteParams::new(key(0), key(0), 1, 0)),
        Err(RouteError::SelfPayment)
    );
    assert_eq!(
        find_route(&g, &s, &RouteParams::new(key(0), key(4), 0, 0)),
        Err(RouteError::ZeroAmount)
    );
    // A reused PathFinder gives the same answers as fresh ones.
    let mut pf = PathFinder::new();
    for _ in 0..3 {
        let p = RouteParams::new(key(0), key(4), 1_234_567, 0);
        assert_eq!(pf.find_route(&g, &s, &p), find_route(&g, &s, &p));
    }
}

/// A random small graph: (a, b, capacity_sat, policy a→b, policy b→a).
type Spec = Vec<(u8, u8, u64, Option<DirectedPolicy>, Option<DirectedPolicy>)>;

fn arb_policy(zero_fee: bool) -> impl Strategy<Value = Option<DirectedPolicy>> {
    let base = if zero_fee { 0..1u32 } else { 0..3000u32 };
    let ppm = if zero_fee { 0..1u32 } else { 0..5000u32 };
    prop::option::weighted(
        0.9,
        (
            base,
            ppm,
            0..200u16,
            0..3_000_000u64,
            0..6_000_000u64,
            prop::bool::weighted(0.9),
        ),
    )
    .prop_map(|o| {
        o.map(|(b, p, c, lo, span, en)| DirectedPolicy {
            fee_base_msat: b,
            fee_proportional_millionths: p,
            cltv_expiry_delta: c,
            htlc_minimum_msat: lo / 4,
            htlc_maximum_msat: lo / 4 + span,
            enabled: en,
            timestamp: 1,
        })
    })
}

fn arb_graph(nodes: u8, zero_fee: bool) -> impl Strategy<Value = Spec> {
    prop::collection::vec(
        (
            0..nodes,
            0..nodes,
            1_000..5_000u64,
            arb_policy(zero_fee),
            arb_policy(zero_fee),
        ),
        1..30,
    )
}

fn build(spec: &Spec) -> NetworkGraph {
    let mut g = NetworkGraph::new();
    for (i, (a, b, cap, pa, pb)) in spec.iter().enumerate() {
        if a != b {
            chan(&mut g, i as u64 + 1, key(*a), key(*b), *cap, *pa, *pb);
        }
    }
    g
}

/// Is the payee reachable over directions that can carry `amt` unchanged (zero fees)?
fn reachable(g: &NetworkGraph, from: PublicKey, to: PublicKey, amt: u64) -> bool {
    let mut seen = vec![from];
    let mut frontier = vec![from];
    while let Some(x) = frontier.pop() {
        for (id, peer) in g.channels_of(&x) {
            let Some((_, _, w)) = g.directed_channel(id, direction_between(&x, &peer)) else {
                continue;
            };
            let ok = w
                .usable_policy()
                .is_some_and(|p| amt >= p.htlc_minimum_msat && amt <= p.htlc_maximum_msat)
                && amt <= w.capacity_msat();
            if ok && !seen.contains(&peer) {
                if peer == to {
                    return true;
                }
                seen.push(peer);
                frontier.push(peer);
            }
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_route_is_valid(spec in arb_graph(7, false), amt in 1..1_000_000u64,
                            from in 0..7u8, to in 0..7u8, fee in prop::option::of(0..5000u64)) {
        let g = build(&spec);
        prop_assume!(from != to && g.node(&key(from)).is_some() && g.node(&key(to)).is_some());
        let p = RouteParams { max_fee_msat: fee, max_total_cltv: 400, ..RouteParams::new(key(from), key(to), amt, 0) };
        if let Ok(r) = find_route(&g, &scorer(), &p) {
            check_route(&g, &p, &r);
        }
    }

    #[test]
    fn zero_fee_search_is_complete(spec in arb_graph(7, true), amt in 1..1_000_000u64,
                                   from in 0..7u8, to in 0..7u8) {
        let g = build(&spec);
        prop_assume!(from != to && g.node(&key(from)).is_some() && g.node(&key(to)).is_some());
        // Six channels at most (7 nodes) of CLTV < 200 each: the CLTV and hop limits never bind.
        let p = RouteParams::new(key(from), key(to), amt, 0);
        let found = find_route(&g, &scorer(), &p);
        prop_assert_eq!(found.is_ok(), reachable(&g, key(from), key(to), amt));
        if let Ok(r) = found {
            check_route(&g, &p, &r);
        }
    }

    #[test]
    fn routes_with_first_hops_hints_and_exclusions_are_valid(
        spec in arb_graph(7, false),
        amt in 1..1_000_000u64,
        from in 0..8u8,
        private_payee in prop::bool::ANY,
        to in 0..7u8,
        first_hops in prop::option::of(prop::collection::vec((0..8u8, 0..2_000_000u64, prop::option::of(0..1000u64)), 0..4)),
        hint in prop::collection::vec((0..9u8, 0..3000u32, 0..5000u32, 0..200u16, prop::option::of(0..2_000_000u64)), 0..3),
        excluded_channel in 0..40u64,
        excluded_node in 0..8u8,
    ) {
        let g = build(&spec);
        // Node 7 is never in the graph (a private payer); 8 is a private hint node; 9 a
        // private payee.
        let payee = if private_payee { key(9) } else { key(to) };
        prop_assume!(key(from) != payee);
        let p = RouteParams {
            first_hops: first_hops.map(|v| v.into_iter().enumerate().map(|(i, (peer, spendable, min))| FirstHop {
                short_channel_id: scid(2000 + i as u64),
                peer: key(peer),
                spendable_msat: spendable,
                htlc_minimum_msat: min,
            }).filter(|f| f.peer != key(from)).collect()),
            route_hints: vec![RouteHint(hint.into_iter().enumerate().map(|(i, (src, base, ppm, cltv, max))| RouteHintHop {
                src_node_id: key(src),
                short_channel_id: scid(1000 + i as u64),
                fee_base_msat: base,
                fee_proportional_millionths: ppm,
                cltv_expiry_delta: cltv,
                htlc_minimum_msat: None,
                htlc_maximum_msat: max,
            }).collect())],
            excluded_channels: vec![scid(excluded_channel)],
            excluded_nodes: vec![key(excluded_node)],
            max_total_cltv: 500,
            ..RouteParams::new(key(from), payee, amt, 0)
        };
        match find_route(&g, &scorer(), &p) {
            Ok(r) => check_route(&g, &p, &r),
            Err(RouteError::UnknownPayer) => prop_assert!(p.first_hops.is_none() && g.node(&key(from)).is_none()),
            Err(RouteError::UnknownPayee) => prop_assert!(g.node(&payee).is_none()),
            Err(_) => {}
        }
    }
}
