//! Multi-hop payments in-process (`fulmen_tests::network`): gossip announces every channel
//! (announcement depth 1), `pay` routes over the graph, intermediate nodes forward by the
//! rules of `fulmen_htlc::forward`. A 5-node line with every hop's fee exact to the msat; a
//! failure at hop k attributed to hop k; a payment at a fee the forwarder has just raised
//! fails with its new `channel_update` and the retry pays; a payment split over two paths
//! neither of which could carry it alone (basic MPP); a part whose set never completes,
//! failed back by the payee after the multi-part timeout; keysend over three hops; and a 20-node
//! random network with 1,000 random payments, the msat of every channel conserved.
//!
//! Amounts are real HTLCs (above the trim threshold) throughout.
//!
//! Must never: use an unseeded RNG or the wall clock.

use fulmen_manager::api::{InvoiceStatus, PaymentStatus};
use fulmen_manager::{Command, RequestId, Response, DEFAULT_POLICY, MAX_CHANNELS_SIGNED_PER_PASS};
use fulmen_tests::network::Network;
use fulmen_tests::sim::SimRng;

/// Fee a forwarder charges with the default policy (1,000 msat + 100 ppm).
fn fee(amount_msat: u64) -> u64 {
    u64::from(DEFAULT_POLICY.fee_base_msat)
        + amount_msat * u64::from(DEFAULT_POLICY.fee_ppm) / 1_000_000
}

/// Mine a block and let gossip settle until node `k` knows `channels` channels and both
/// directions' policies of each.
fn wait_for_graph(net: &mut Network, k: usize, channels: usize) {
    for _ in 0..30 {
        net.run_until_quiet();
        // Every channel known, with both directions' policies (each side's update).
        match net.call(k, Command::Graph { full: true }) {
            Ok(Response::Graph(g))
                if g.num_channels >= channels
                    && g.channels
                        .iter()
                        .all(|c| c.policy_1_to_2.is_some() && c.policy_2_to_1.is_some()) =>
            {
                return
            }
            _ => net.mine(1),
        }
    }
    panic!("node {k} never learned {channels} channels");
}

/// A line of `names.len()` nodes, each opening a channel to the next with `sats`.
fn line(seed: u64, names: &[&str], sats: u64) -> (Network, Vec<[u8; 32]>) {
    let mut net = Network::new(seed, names);
    for k in 0..names.len() - 1 {
        net.fund(k, sats + 500_000);
    }
    let mut ids = Vec::new();
    for k in 0..names.len() - 1 {
        ids.push(net.open_channel(k, k + 1, sats, 0));
    }
    for k in 0..names.len() {
        wait_for_graph(&mut net, k, names.len() - 1);
    }
    (net, ids)
}

#[test]
fn a_five_node_line_pays_with_every_fee_exact_to_the_msat() {
    let (mut net, ids) = line(11, &["a", "b", "c", "d", "e"], 1_000_000);
    let amount = 50_000_000;
    let inv = net.invoice(4, amount, "across");
    let p = net.pay_ok(0, &inv.bolt11);
    // Fees accumulate from the payee back: d forwards `amount`, c forwards d's input, ...
    let at_d = amount + fee(amount);
    let at_c = at_d + fee(at_d);
    let at_b = at_c + fee(at_c);
    assert_eq!(p.fee_msat, at_b - amount, "total fee");
    // Each channel moved exactly what its HTLC carried.
    let moved = [at_b, at_c, at_d, amount];
    for (k, id) in ids.iter().enumerate() {
        let (ours, theirs) = net.channel_balances(k, id);
        assert_eq!(theirs, moved[k], "channel {k}");
        assert_eq!(ours, 1_000_000_000 - moved[k], "channel {k}");
    }
    // `listpayments {last: 0}` is empty; `last: 5` of one payment is that payment.
    assert!(net.list_payments(0, Some(0)).payments.is_empty());
    assert_eq!(net.list_payments(0, Some(5)).payments.len(), 1);
    // `listpayments` shows the route it took, and no failure.
    let list = net.list_payments(0, None);
    let route: Vec<String> = (1..5).map(|k| net.nodes[k].id.to_string()).collect();
    assert_eq!(list.payments[0].route, route);
    assert_eq!(list.payments[0].failed_at, None);
    // Each forwarder earned its fee. A resolved forward lives in the store only (the
    // forwarders hold none in memory); `forwards` reads it back from there.
    for (k, earned) in [(1, at_b - at_c), (2, at_c - at_d), (3, at_d - amount)] {
        assert_eq!(net.nodes[k].m.forward_count(), 0, "node {k}");
        match net.call(k, Command::ListForwards) {
            Ok(Response::Forwards(f)) => {
                assert_eq!(f.fees_earned_msat, earned, "node {k}");
                assert_eq!(f.forwards.len(), 1);
                assert_eq!(f.forwards[0].status, "settled");
            }
            other => panic!("forwards: {other:?}"),
        }
    }
}

#[test]
fn a_failure_at_hop_k_is_attributed_to_hop_k() {
    let (mut net, _) = line(12, &["a", "b", "c", "d", "e"], 1_000_000);
    // c cannot reach d: c fails the HTLC (temporary_channel_failure), hop 1 of the route.
    net.partition(2, 3);
    net.run_until_quiet();
    let inv = net.invoice(4, 20_000_000, "blocked");
    let p = net.pay(0, &inv.bolt11);
    assert_eq!(p.status, PaymentStatus::Failed);
    let why = p.failure.unwrap_or_default();
    let c = net.nodes[2].id.to_string();
    assert!(why.contains("at hop 1") && why.contains(&c), "{why}");
    // c's link to d is down: its channel is disabled.
    assert!(why.contains("ChannelDisabled"), "{why}");
    // `listpayments` shows the route tried (b, c, d, e) and c (index 1) as where it failed.
    let list = net.list_payments(0, None);
    let p = list.payments.last().expect("the payment");
    let route: Vec<String> = (1..5).map(|k| net.nodes[k].id.to_string()).collect();
    assert_eq!(p.route, route);
    assert_eq!(p.failed_at, Some(1));
}

#[test]
fn a_fee_raised_since_the_last_update_fails_once_then_pays() {
    let (mut net, ids) = line(13, &["a", "b", "c", "d"], 1_000_000);
    // c raises its fee; a pays before the new update reaches it.
    let inv = net.invoice(3, 20_000_000, "fees");
    let cmd = Command::SetFees {
        channel_id: ids[2],
        base_msat: 5_000,
        ppm: 1_000,
        cltv_delta: None,
    };
    let r = net.command(2, cmd);
    assert!(matches!(
        net.take_reply(2, r),
        Some(Ok(Response::FeesSet(_)))
    ));
    let p = net.pay_ok(0, &inv.bolt11);
    assert_eq!(
        p.attempts, 2,
        "one failure with the new update, one success"
    );
    let at_c = 20_000_000 + 5_000 + 20_000_000 * 1_000 / 1_000_000;
    assert_eq!(p.fee_msat, at_c + fee(at_c) - 20_000_000);
}

/// Two paths a–b–e and a–c–e, each able to carry about 600,000 sat, known to every node;
/// the id of the b–e channel.
fn diamond(seed: u64) -> (Network, [u8; 32]) {
    let mut net = Network::new(seed, &["a", "b", "c", "e"]);
    for k in 0..3 {
        net.fund(k, 1_500_000);
    }
    net.open_channel(0, 1, 600_000, 0);
    net.open_channel(0, 2, 600_000, 0);
    let be = net.open_channel(1, 3, 600_000, 0);
    net.open_channel(2, 3, 600_000, 0);
    for k in 0..4 {
        wait_for_graph(&mut net, k, 4);
    }
    (net, be)
}

#[test]
fn a_payment_too_big_for_either_path_is_split_over_both() {
    let (mut net, _) = diamond(14);
    let amount = 900_000_000;
    let inv = net.invoice(3, amount, "big");
    let p = net.pay_ok(0, &inv.bolt11);
    assert!(p.attempts >= 2, "split: {p:?}");
    let invoices = net.list_invoices(3).invoices;
    let i = invoices
        .iter()
        .find(|i| i.bolt11 == inv.bolt11)
        .expect("invoice");
    assert_eq!(i.status, InvoiceStatus::Paid);
    assert_eq!(i.received_msat, Some(amount));
}

/// The status of node `k`'s invoice `bolt11`, if it has it.
fn invoice_status(net: &Network, k: usize, bolt11: &str) -> Option<InvoiceStatus> {
    net.list_invoices(k)
        .invoices
        .into_iter()
        .find(|i| i.bolt11 == bolt11)
        .map(|i| i.status)
}

/// A multi-part payment whose other part never arrives (its forwarder holds it): the payee
/// keeps the part it has for `MPP_TIMEOUT_SECS` (60 s) of the node's periodic tick, then
/// fails it back with `mpp_timeout` — not holding it until its CLTV expiry would force the
/// channel closed.
#[test]
fn a_part_whose_set_never_completes_is_failed_back_after_the_timeout() {
    let (mut net, be) = diamond(16);
    let before = net.channel_balances(3, &be);
    // c holds what it receives: the part routed through it never reaches e.
    net.hold_htlcs(2, true);
    let inv = net.invoice(3, 900_000_000, "never whole");
    net.start_pay(0, &inv.bolt11);
    net.run_until_quiet();
    let waiting = net.channel_balances(3, &be);
    assert_eq!(waiting.0, before.0, "e has not been paid");
    assert!(
        waiting.1 < before.1,
        "a part waits at e: {waiting:?} vs {before:?}"
    );
    net.tick(55);
    net.run_until_quiet();
    assert_eq!(
        net.channel_balances(3, &be),
        waiting,
        "still waiting within 60 s"
    );
    net.tick(10);
    net.run_until_quiet();
    assert_eq!(
        net.channel_balances(3, &be),
        before,
        "the part is failed back after 60 s"
    );
    assert_eq!(
        invoice_status(&net, 3, &inv.bolt11),
        Some(InvoiceStatus::Unpaid)
    );
    assert!(
        net.channel_info(3, &be).closing.is_none(),
        "no channel closed"
    );
}

/// A split payment one of whose parts cannot be offered after another went out (a's
/// channel from c: c funded it and pushed nearly all of it to a, so c could not pay the
/// commitment fee of one more HTLC — a limit route finding does not see). The payment is on
/// record and pending from the start, not refused with a part in flight that no payment
/// owns; a second `pay` of the same invoice is refused while it is.
#[test]
fn a_split_payment_whose_second_part_cannot_be_offered_stays_on_record() {
    let mut net = Network::new(21, &["a", "b", "c", "e"]);
    for k in 0..3 {
        net.fund(k, 1_500_000);
    }
    let ab = net.open_channel(0, 1, 600_000, 0);
    // c keeps its 6,000 sat reserve and 400 sat: the fee of its commitment (362 sat at
    // 500 sat/kw), not the 448 sat it would be with one HTLC on it.
    net.open_channel(2, 0, 600_000, 593_600_000);
    net.open_channel(1, 3, 600_000, 0);
    net.open_channel(2, 3, 600_000, 0);
    for k in 0..4 {
        wait_for_graph(&mut net, k, 4);
    }
    let inv = net.invoice(3, 900_000_000, "half cannot go");
    let before = net.channel_balances(0, &ab);
    let started = net.start_pay(0, &inv.bolt11);
    assert_eq!(started.status, PaymentStatus::Pending, "{started:?}");
    assert!(
        started
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("could not be sent")),
        "{started:?}"
    );
    let listed = net.list_payments(0, None).payments;
    assert!(
        listed
            .iter()
            .any(|p| p.payment_hash == started.payment_hash && p.status == PaymentStatus::Pending),
        "on record: {listed:?}"
    );
    let again = net.call(
        0,
        Command::Pay {
            invoice: inv.bolt11.clone(),
        },
    );
    assert!(again.is_err(), "a second pay is refused: {again:?}");
    // The payee fails the incomplete set back after its 60 s; the payment's own 60 s are
    // over by then, so it ends failed, and a has all its funds back.
    net.tick(65);
    net.run_until_quiet();
    let outcomes = net.payment_outcomes(0, &started.payment_hash);
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].status, PaymentStatus::Failed, "{outcomes:?}");
    assert_eq!(net.channel_balances(0, &ab), before, "the part came back");
    assert_eq!(
        invoice_status(&net, 3, &inv.bolt11),
        Some(InvoiceStatus::Unpaid)
    );
}

#[test]
fn keysend_pays_across_three_hops() {
    let (mut net, _) = line(15, &["a", "b", "c", "d"], 1_000_000);
    let node_id = net.nodes[3].id;
    let r = net.call(
        0,
        Command::Keysend {
            node_id,
            amount_msat: 30_000_000,
            max_fee_msat: None,
        },
    );
    let Ok(Response::PaymentStarted(p)) = r else {
        panic!("keysend: {r:?}")
    };
    net.run_until_quiet();
    assert_eq!(
        net.payment_status(0, &p.payment_hash),
        Some(PaymentStatus::Succeeded)
    );
    let invoices = net.list_invoices(3).invoices;
    assert!(invoices.iter().any(|i| i.description == "keysend"
        && i.status == InvoiceStatus::Paid
        && i.received_msat == Some(30_000_000)));
}

#[test]
fn twenty_random_nodes_make_a_thousand_payments_and_conserve_every_msat() {
    let n = 20;
    let names: Vec<String> = (0..n).map(|k| format!("n{k}")).collect();
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let mut net = Network::new(16, &refs);
    let mut rng = SimRng::derive(16, "random network");
    for k in 0..n {
        net.fund(k, 9_000_000);
    }
    // A ring (connected) plus random chords; half of each channel pushed to the other side.
    let mut pairs = Vec::new();
    for k in 0..n {
        pairs.push((k, (k + 1) % n));
    }
    while pairs.len() < 35 {
        let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
        if a != b
            && !pairs
                .iter()
                .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
        {
            pairs.push((a, b));
        }
    }
    let mut ids = Vec::new();
    for &(a, b) in &pairs {
        ids.push((a, b, net.open_channel(a, b, 1_000_000, 500_000_000)));
    }
    for k in 0..n {
        wait_for_graph(&mut net, k, pairs.len());
    }
    let (mut ok, mut failed) = (0, 0);
    for i in 0..1_000 {
        let payer = rng.below(n as u64) as usize;
        let mut payee = rng.below(n as u64) as usize;
        if payee == payer {
            payee = (payee + 1) % n;
        }
        let amount = 1_000_000 + rng.below(20_000_000);
        let inv = net.invoice(payee, amount, &format!("r{i}"));
        let p = net.pay(payer, &inv.bolt11);
        match p.status {
            PaymentStatus::Succeeded => ok += 1,
            _ => failed += 1,
        }
    }
    // Every channel still holds exactly its capacity (no HTLC left in flight).
    for &(a, b, id) in &ids {
        let (x, y) = net.channel_balances(a, &id);
        assert_eq!(x + y, 1_000_000_000, "channel {a}-{b}");
        let (y2, x2) = net.channel_balances(b, &id);
        assert_eq!((x, y), (x2, y2), "both ends agree on {a}-{b}");
    }
    println!("1000 random payments over 20 nodes: {ok} succeeded, {failed} failed");
    assert!(ok >= 900, "{ok} succeeded");
}

/// Starts a payment of `10_000_000 + n` msat from a to c (nodes 0 and 2 of a line) and lets
/// `n` deliveries happen; returns its payment hash, amount and the `pay` request.
fn pay_and_step(net: &mut Network, n: u64, label: &str) -> (String, u64, RequestId) {
    let amount = 10_000_000 + n;
    let inv = net.invoice(2, amount, &format!("{label} {n}"));
    let r = net.command(
        0,
        Command::Pay {
            invoice: inv.bolt11.clone(),
        },
    );
    for _ in 0..n {
        if !net.step() {
            break;
        }
    }
    (inv.payment_hash, amount, r)
}

/// The channels `ids` of a line (1,000,000 sat each) conserve their capacity with nothing in
/// flight, both ends agree, and the payee (node 2) holds exactly `paid` msat.
fn check_line(net: &Network, ids: &[[u8; 32]], paid: u64, at: &str) {
    for (k, id) in ids.iter().enumerate() {
        let (x, y) = net.channel_balances(k, id);
        assert_eq!(x + y, 1_000_000_000, "{at}, channel {k}");
        let (y2, x2) = net.channel_balances(k + 1, id);
        assert_eq!((x, y), (x2, y2), "{at}, channel {k}");
    }
    assert_eq!(net.channel_balances(2, &ids[1]).0, paid, "{at}");
}

/// In a line a–b–c, `victim` loses its next batch after each of the first 24 deliveries of
/// a payment, and restarts: every payment ends once, nothing is lost, c is paid exactly what
/// succeeded. Returns the victim.
fn crash_at_every_point(seed: u64, victim: usize) -> fulmen_tests::network::Node {
    let (mut net, ids) = line(seed, &["a", "b", "c"], 1_000_000);
    let mut paid = 0u64;
    for n in 0..24 {
        // Let `n` deliveries happen, then the victim loses its next batch and restarts.
        let (hash, amount, r) = pay_and_step(&mut net, n, "crash");
        net.arm_crash(victim);
        net.run_until_quiet();
        net.disarm();
        // Give the payment time to end (HTLCs retransmitted at reestablish).
        net.run_until_quiet();
        let started = net.take_reply(0, r);
        assert!(
            matches!(started, Some(Ok(Response::PaymentStarted(_)))),
            "{started:?}"
        );
        let outcomes = net.payment_outcomes(0, &hash);
        assert_eq!(outcomes.len(), 1, "crash point {n}: one outcome");
        if outcomes[0].status == PaymentStatus::Succeeded {
            paid += amount;
        }
        check_line(&net, &ids, paid, &format!("crash point {n}"));
    }
    assert!(paid > 0);
    let v = net.nodes.swap_remove(victim);
    println!(
        "{} crashed {} times, losing {} batches ({} messages had left before theirs)",
        v.name, v.restarts, v.lost_batches, v.sent_before_lost
    );
    v
}

#[test]
fn a_forwarder_crashing_at_any_point_loses_nothing_and_pays_nothing_twice() {
    let b = crash_at_every_point(17, 1);
    assert!(b.lost_batches >= 12, "the crashes hit the forward");
    // Some crash lost the batch of a turn whose fulfill had already gone upstream.
    assert!(b.sent_before_lost > 0, "no early fulfill was lost");
}

#[test]
fn a_payee_crashing_at_any_point_is_paid_once() {
    let c = crash_at_every_point(18, 2);
    assert!(c.lost_batches >= 12, "the crashes hit the payee");
    // Some crash lost the batch of the turn whose fulfill had already left.
    assert!(c.sent_before_lost > 0, "no early fulfill was lost");
}

/// Power loss: a batch nobody waits on (a `revoke_and_ack` received with nothing to
/// answer) is written without an fsync, so power loss can take it, with every such batch
/// since the last synced one. In a line a–b–c, each node in turn loses power after each of
/// the first 24 deliveries of a payment: every payment ends once, nothing is lost, c is paid
/// exactly what succeeded — and some of those power losses did take unsynced batches.
#[test]
fn power_loss_at_any_point_takes_only_what_nobody_saw() {
    let mut took_unsynced = 0;
    for victim in 0..3 {
        let (mut net, ids) = line(40 + victim as u64, &["a", "b", "c"], 1_000_000);
        let mut paid = 0u64;
        for n in 0..24 {
            let (hash, amount, r) = pay_and_step(&mut net, n, "power");
            if net.nodes[victim].store.unsynced_len() > 0 {
                took_unsynced += 1;
            }
            net.power_loss(victim);
            net.run_until_quiet();
            let started = net.take_reply(0, r);
            let outcomes = net.payment_outcomes(0, &hash);
            if victim == 0 && started.is_none() {
                // The payer lost power before its reply: no payment, or one that ended.
                assert!(outcomes.len() <= 1, "victim a, point {n}: {outcomes:?}");
            } else {
                assert_eq!(outcomes.len(), 1, "victim {victim}, point {n}: one outcome");
            }
            if outcomes
                .first()
                .is_some_and(|o| o.status == PaymentStatus::Succeeded)
            {
                paid += amount;
            }
            check_line(&net, &ids, paid, &format!("victim {victim}, point {n}"));
        }
        assert!(paid > 0);
    }
    println!("{took_unsynced} of 72 power losses took unsynced batches");
    assert!(took_unsynced > 0, "no power loss took an unsynced batch");
}

/// Gossip after a restart: the restarted node asks its peers for their whole gossip (its
/// graph is empty) and learns every channel again; its peers, which had its gossip before,
/// ask it only for what is newer than when they lost it, so the rest of the graph does not
/// cross the links again towards them (only its own channels, whose updates are new).
#[test]
fn a_restarted_node_resyncs_the_graph_and_its_peers_do_not() {
    let names = ["a", "b", "c", "d", "e"];
    let (mut net, _) = line(13, &names, 1_000_000);
    // Long after the last gossip (the resync margin is 10 minutes), and b and d know it
    // (a manager's clock is its last input's).
    net.clock.advance(3_600);
    for k in [1, 3] {
        net.call(k, Command::GetInfo).expect("getinfo");
    }
    // The short channel id of the channel between nodes i and j.
    let scid = |net: &Network, i: usize, j: usize| -> u64 {
        let peer = net.nodes[j].id;
        net.nodes[i]
            .m
            .channels()
            .find(|e| e.peer == peer)
            .and_then(|e| e.ch.short_channel_id())
            .map(|s| s.to_u64())
            .expect("an announced channel")
    };
    let (ab, de) = (scid(&net, 0, 1), scid(&net, 3, 4));
    let start = net.announcements.len();
    net.restart(2, false);
    wait_for_graph(&mut net, 2, names.len() - 1);
    let sent = |net: &Network, from: usize, to: usize| -> std::collections::BTreeSet<u64> {
        net.announcements[start..]
            .iter()
            .filter(|(f, t, _)| (*f, *t) == (from, to))
            .map(|(_, _, s)| *s)
            .collect()
    };
    // c asked b and d for everything: each sent it the four channels.
    assert_eq!(sent(&net, 1, 2).len(), 4);
    assert_eq!(sent(&net, 3, 2).len(), 4);
    // b and d asked c only for what is new: at most c's own two channels (b–c, c–d: their
    // updates are new) went back, never a–b or d–e.
    for peer in [1, 3] {
        let back = sent(&net, 2, peer);
        assert!(back.len() <= 2, "{back:?}");
        assert!(!back.contains(&ab) && !back.contains(&de), "{back:?}");
    }
    // And everyone can still pay across c.
    let inv = net.invoice(4, 5_000_000, "after the restart");
    net.pay_ok(0, &inv.bolt11);
}

/// A node with more announced channels than one pass signs for
/// ([`MAX_CHANNELS_SIGNED_PER_PASS`]): after a restart, with every peer back at once, it signs
/// its `announcement_signatures` again in passes of at most that many (a turn stays short, an
/// RPC call does not wait behind them all), the next pass in the next turn, until every
/// channel's have gone out; and it still pays over them.
#[test]
fn a_restarted_node_signs_its_announcements_in_passes() {
    let n = MAX_CHANNELS_SIGNED_PER_PASS + 8;
    let mut net = Network::new(41, &["a", "b"]);
    net.fund(0, n as u64 * 300_000 + 1_000_000);
    for _ in 0..n {
        net.open_channel(0, 1, 200_000, 0);
    }
    wait_for_graph(&mut net, 1, n);
    let before = net.nodes[0].announcement_signatures;
    assert_eq!(before.total, n, "one announcement_signatures per channel");
    net.restart(0, false);
    net.run_until_quiet();
    let after = net.nodes[0].announcement_signatures;
    assert_eq!(
        after.total - before.total,
        n,
        "each channel's signatures again"
    );
    assert_eq!(after.most_in_one_pass, MAX_CHANNELS_SIGNED_PER_PASS);
    assert!(!net.nodes[0].m.has_deferred_work());
    let inv = net.invoice(1, 5_000_000, "after the restart");
    net.pay_ok(0, &inv.bolt11);
}

/// `pay` commands arriving together, as the node's shell hands them over
/// ([`fulmen_manager::Manager::handle_commands`]): the invoices parsed as its RPC handler does.
fn pay_together(net: &mut Network, k: usize, invoices: &[String]) -> Vec<RequestId> {
    let cmds = invoices
        .iter()
        .map(|b| Command::PayInvoice {
            invoice: Box::new(fulmen_htlc::invoice::parse_invoice(b).expect("our invoice")),
            max_fee_msat: None,
            timeout_secs: None,
        })
        .collect();
    net.commands(k, cmds)
}

/// Twelve payments across three hops started in one batch (their onions built together)
/// all succeed, each with the exact fee, and the payee is paid every one.
#[test]
fn payments_started_together_all_arrive_across_three_hops() {
    let (mut net, _) = line(31, &["a", "b", "c", "d"], 1_000_000);
    let amount = 2_000_000;
    let invoices: Vec<String> = (0..12)
        .map(|i| net.invoice(3, amount, &format!("batch {i}")).bolt11)
        .collect();
    let ids = pay_together(&mut net, 0, &invoices);
    net.run_until_quiet();
    for r in ids {
        match net.take_reply(0, r) {
            Some(Ok(Response::PaymentStarted(_))) => {}
            other => panic!("request {r}: {other:?}"),
        }
    }
    let at_c = amount + fee(amount);
    let at_b = at_c + fee(at_c);
    let payments = net.list_payments(0, None).payments;
    assert_eq!(payments.len(), 12);
    for p in &payments {
        assert_eq!(p.status, PaymentStatus::Succeeded, "{p:?}");
        assert_eq!(p.fee_msat, at_b - amount, "{p:?}");
    }
    let paid = net.list_invoices(3).invoices;
    assert!(
        paid.iter().all(|i| i.status == InvoiceStatus::Paid),
        "{paid:?}"
    );
}

/// A batch asking for more than the channel holds ends as the same `pay`s one after the
/// other would: the first ones go out, the rest are refused for lack of a route; a second
/// `pay` of an invoice in the same batch is refused. Run both ways on the same network.
#[test]
fn a_batch_of_payments_ends_as_the_same_payments_one_by_one() {
    let outcomes = |together: bool| {
        let (mut net, ids) = line(32, &["a", "b"], 100_000);
        let mut invoices: Vec<String> = (0..5)
            .map(|i| net.invoice(1, 30_000_000, &format!("big {i}")).bolt11)
            .collect();
        invoices.insert(2, invoices[1].clone());
        let requests = if together {
            pay_together(&mut net, 0, &invoices)
        } else {
            invoices
                .iter()
                .map(|b| pay_together(&mut net, 0, std::slice::from_ref(b))[0])
                .collect()
        };
        net.run_until_quiet();
        let replies: Vec<String> = requests
            .iter()
            .map(|&r| match net.take_reply(0, r) {
                Some(Ok(Response::PaymentStarted(_))) => "started".to_string(),
                Some(Err(e)) if e.message.starts_with("no route") => "no route".to_string(),
                Some(Err(e)) => format!("refused: {}", e.message),
                other => panic!("request {r}: {other:?}"),
            })
            .collect();
        (replies, net.channel_balances(0, &ids[0]))
    };
    let (together, balances) = outcomes(true);
    assert_eq!(
        together[..4],
        [
            "started",
            "started",
            "refused: a payment of this invoice is in flight",
            "started"
        ],
        "{together:?}"
    );
    assert_eq!(together[4..], ["no route", "no route"], "{together:?}");
    assert_eq!((together, balances), outcomes(false));
}
