//! `fulmen-manager` driven through the in-process network harness (`fulmen_tests::network`),
//! one behaviour per test: opening (funding confirmed, both ends ready, balances), paying
//! (exact amounts, invoice and payment rows), closing cooperatively (each side paid on
//! chain), restarting in the middle of a payment (clean, and a crash that loses the batch
//! handed out), every view unchanged by a restart, and refused commands (unknown channel,
//! paying our own invoice, opening without the funds or without a connection, paying while
//! the peer is disconnected, paying twice, a malformed invoice), and a commitment that only
//! settles the peer's updates held back for the next payment.
//!
//! Must never: use an unseeded RNG or the wall clock.

use fulmen_manager::api::{InvoiceStatus, PaymentInfo, PaymentStatus};
use fulmen_manager::{CmdError, Command, NodeEvent, RequestId, Response};
use fulmen_tests::network::Network;

const A: usize = 0;
const B: usize = 1;

/// alice and bob, alice funded with 2,000,000 sat.
fn pair(seed: u64) -> Network {
    let mut net = Network::new(seed, &["alice", "bob"]);
    net.fund(A, 2_000_000);
    net
}

/// `openchannel` of `sats` to `node_id`, nothing pushed.
fn open_cmd(node_id: bitcoin::secp256k1::PublicKey, sats: u64) -> Command {
    Command::Open {
        node_id,
        sats,
        push_msat: 0,
    }
}

fn refused(res: Result<Response, CmdError>) -> CmdError {
    match res {
        Err(e) => e,
        Ok(r) => panic!("accepted: {r:?}"),
    }
}

/// The payment `pay` request `r` to node `k` started (its reply taken).
fn started(net: &mut Network, k: usize, r: RequestId) -> PaymentInfo {
    match net.take_reply(k, r) {
        Some(Ok(Response::PaymentStarted(p))) => p,
        other => panic!("payment {r} did not start: {other:?}"),
    }
}

fn channels(net: &mut Network, k: usize) -> Vec<fulmen_manager::api::ChannelInfo> {
    match net.call(k, Command::ListChannels) {
        Ok(Response::Channels(c)) => c.channels,
        other => panic!("listchannels: {other:?}"),
    }
}

#[test]
fn open_confirms_the_funding_and_readies_both_ends() {
    let mut net = pair(1);
    let before = net.balance(A).onchain.confirmed_sat;
    let id = net.open_channel(A, B, 500_000, 20_000_000);
    let (a, b) = (channels(&mut net, A), channels(&mut net, B));
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a[0].channel_id, b[0].channel_id);
    assert_eq!(hex::decode(&a[0].channel_id).unwrap(), id.to_vec());
    assert!(a[0].initiator && !b[0].initiator);
    assert_eq!(
        (a[0].state.as_str(), b[0].state.as_str()),
        ("active", "active")
    );
    assert_eq!(a[0].local_msat, 500_000_000 - 20_000_000);
    assert_eq!(b[0].local_msat, 20_000_000);
    // The funding transaction is on chain with the channel's output.
    let txid = a[0].funding_txid.clone().unwrap().parse().unwrap();
    let tx = net.chain.transaction(&txid).expect("funding on chain");
    assert!(tx.confirmations >= 3);
    let vout = a[0].funding_output.unwrap() as usize;
    assert_eq!(tx.tx.output[vout].value.to_sat(), 500_000);
    // The opener paid the capacity plus a fee from its wallet.
    let after = net.balance(A);
    let spent = before - after.onchain.confirmed_sat;
    assert!(spent > 500_000 && spent < 502_000, "spent {spent}");
    assert_eq!(after.channels_local_msat, 480_000_000);
}

#[test]
fn pay_moves_the_exact_amount_and_records_both_rows() {
    let mut net = pair(2);
    let id = net.open_channel(A, B, 1_000_000, 0);
    for (n, amount) in [2_000_000u64, 31_337, 5_000_000].into_iter().enumerate() {
        let inv = net.invoice(B, amount, &format!("item {n}"));
        let p = net.pay_ok(A, &inv.bolt11);
        assert_eq!(p.amount_msat, amount);
        let pre = hex::decode(p.preimage.unwrap()).unwrap();
        use bitcoin::hashes::{sha256, Hash};
        assert_eq!(
            hex::encode(sha256::Hash::hash(&pre).to_byte_array()),
            inv.payment_hash
        );
        assert!(net.nodes[B]
            .events
            .iter()
            .any(|e| matches!(e, NodeEvent::InvoicePaid(i) if i.payment_hash == inv.payment_hash)));
    }
    let total = 2_000_000 + 31_337 + 5_000_000;
    assert_eq!(net.channel_balances(A, &id), (1_000_000_000 - total, total));
    assert_eq!(net.channel_balances(B, &id), (total, 1_000_000_000 - total));
    let inv = net.list_invoices(B);
    assert!(inv.invoices.iter().all(|i| i.status == InvoiceStatus::Paid));
    let ps = net.list_payments(A, None);
    assert_eq!(ps.payments.len(), 3);
    assert!(ps
        .payments
        .iter()
        .all(|p| p.status == PaymentStatus::Succeeded));
}

#[test]
fn cooperative_close_pays_each_side_its_balance_on_chain() {
    let mut net = pair(3);
    let id = net.open_channel(A, B, 800_000, 0);
    let inv = net.invoice(B, 123_456_789, "big");
    net.pay_ok(A, &inv.bolt11);
    let (a_msat, b_msat) = net.channel_balances(A, &id);
    let txid = net.close(B, &id);
    let tx = net.chain.transaction(&txid).unwrap().tx;
    let paid: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    // bob (not the funder) gets exactly his balance; alice pays the fee.
    assert_eq!(net.balance(B).onchain.confirmed_sat, b_msat / 1000);
    assert_eq!(tx.output.len(), 2);
    assert!(tx.output.iter().any(|o| o.value.to_sat() == b_msat / 1000));
    let fee = a_msat / 1000 - (paid - b_msat / 1000);
    assert!(fee > 0 && fee < 2_000, "fee {fee}");
    for k in [A, B] {
        assert_eq!(channels(&mut net, k)[0].state, "closed");
        assert!(net.nodes[k].events.iter().any(
            |e| matches!(e, NodeEvent::ChannelClosed { channel_id, .. } if *channel_id == id)
        ));
    }
}

/// Deliver `n` messages, then let `victim` restart (`crash`: at its next handed-out batch,
/// losing it) and finish: the payment still succeeds exactly once.
fn restart_mid_payment(seed: u64, victim: usize, crash: bool, n: u32) {
    let mut net = pair(seed);
    let id = net.open_channel(A, B, 1_000_000, 0);
    let inv = net.invoice(B, 3_000_000, "mid-payment");
    let r = net.command(
        A,
        Command::Pay {
            invoice: inv.bolt11.clone(),
        },
    );
    for _ in 0..n {
        net.step();
    }
    let lost = net.nodes[victim].lost_batches;
    if crash {
        net.arm_crash(victim);
    } else {
        net.restart(victim, false);
    }
    net.run_until_quiet();
    assert!(net.disarm().is_empty(), "the crash did not happen");
    if crash {
        assert!(net.nodes[victim].lost_batches > lost, "nothing lost");
    }
    assert!(matches!(
        net.take_reply(A, r),
        Some(Ok(Response::PaymentStarted(_)))
    ));
    let outcomes = net.payment_outcomes(A, &inv.payment_hash);
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, PaymentStatus::Succeeded);
    assert_eq!(
        net.channel_balances(A, &id),
        (1_000_000_000 - 3_000_000, 3_000_000)
    );
    let paid = net.nodes[B]
        .events
        .iter()
        .filter(|e| matches!(e, NodeEvent::InvoicePaid(_)))
        .count();
    assert_eq!(paid, 1);
}

#[test]
fn clean_restart_mid_payment_resumes() {
    for n in 0..6 {
        restart_mid_payment(10 + u64::from(n), A, false, n);
        restart_mid_payment(20 + u64::from(n), B, false, n);
    }
}

#[test]
fn crash_mid_payment_loses_a_batch_and_resumes() {
    for n in 0..6 {
        restart_mid_payment(30 + u64::from(n), A, true, n);
        restart_mid_payment(40 + u64::from(n), B, true, n);
    }
}

#[test]
fn restart_changes_no_view() {
    let mut net = pair(5);
    net.open_channel(A, B, 600_000, 1_000_000);
    let inv = net.invoice(B, 4_000_000, "x");
    net.pay_ok(A, &inv.bolt11);
    net.invoice(B, 5_000, "unpaid");
    let views = |net: &mut Network, k: usize| {
        let answers = [Command::ListChannels, Command::Balance]
            .into_iter()
            .map(|c| net.call(k, c))
            .collect::<Vec<_>>();
        (answers, net.list_payments(k, None), net.list_invoices(k))
    };
    for k in [A, B] {
        let before = views(&mut net, k);
        net.restart(k, false);
        net.run_until_quiet();
        assert_eq!(views(&mut net, k), before, "{} changed", net.nodes[k].name);
    }
}

/// A payment leaves the manager's memory once its outcome is durable (the store serves it
/// from then on), and paying the same invoice again is refused before and after a restart.
#[test]
fn settled_payments_live_in_the_store_and_are_not_paid_twice() {
    let mut net = pair(7);
    let id = net.open_channel(A, B, 1_000_000, 0);
    let inv = net.invoice(B, 4_000_000, "once");
    net.pay_ok(A, &inv.bolt11);
    assert_eq!(net.nodes[A].m.open_payment_count(), 0);
    let again = |net: &mut Network| {
        let cmd = Command::Pay {
            invoice: inv.bolt11.clone(),
        };
        refused(net.call(A, cmd))
    };
    let e = again(&mut net);
    assert!(e.message.contains("already paid"), "{e}");
    net.restart(A, false);
    net.run_until_quiet();
    let e = again(&mut net);
    assert!(e.message.contains("already paid"), "{e}");
    let listed = net.list_payments(A, None);
    assert_eq!(listed.payments.len(), 1);
    assert_eq!(listed.payments[0].status, PaymentStatus::Succeeded);
    // Only the channel's balance moved once.
    assert_eq!(
        net.channel_balances(A, &id),
        (1_000_000_000 - 4_000_000, 4_000_000)
    );
}

/// `PayInvoice` (the invoice parsed by the caller, as the daemon's RPC handler does) pays
/// like `Pay`, and a second one is refused while the first is in memory and once it is only
/// in the store.
#[test]
fn a_parsed_invoice_pays_once() {
    use fulmen_htlc::invoice::parse_invoice;
    let mut net = pair(9);
    let id = net.open_channel(A, B, 1_000_000, 0);
    let inv = net.invoice(B, 3_000_000, "parsed");
    let parsed = || Command::PayInvoice {
        invoice: Box::new(parse_invoice(&inv.bolt11).expect("a valid invoice")),
        max_fee_msat: None,
        timeout_secs: None,
    };
    // Two in the same turn: the second sees the first in the manager's memory.
    let first = net.command(A, parsed());
    let second = net.command(A, parsed());
    net.run_until_quiet();
    let p = started(&mut net, A, first);
    assert_eq!(p.payment_hash, inv.payment_hash);
    let e = refused(net.take_reply(A, second).expect("a reply"));
    assert!(e.message.contains("in flight"), "{e}");
    assert_eq!(net.nodes[A].m.open_payment_count(), 0);
    let e = refused(net.call(A, parsed()));
    assert!(e.message.contains("already paid"), "{e}");
    assert_eq!(
        net.channel_balances(A, &id),
        (1_000_000_000 - 3_000_000, 3_000_000)
    );
}

/// Forty real HTLCs on one commitment: their signatures are made and checked on several
/// threads (`fulmen_channel::parallel`), and every payment settles exactly.
#[test]
fn forty_htlcs_on_one_commitment_all_settle() {
    let mut net = pair(10);
    let id = net.open_channel(A, B, 1_000_000, 0);
    net.hold_htlcs(B, true);
    let requests: Vec<_> = (0..40)
        .map(|i| {
            let inv = net.invoice(B, 2_000_000 + i * 1_000, "batch");
            net.command(
                A,
                Command::Pay {
                    invoice: inv.bolt11,
                },
            )
        })
        .collect();
    net.run_until_quiet();
    let st = net.channel(A, &id).expect("the channel").ch.state().clone();
    let local = st.local_commit.expect("a commitment");
    assert_eq!(
        local.spec.offered_by_us.len(),
        40,
        "every HTLC on one commitment"
    );
    assert_eq!(local.htlc_sigs.len(), 40, "and one signature each");
    net.hold_htlcs(B, false);
    net.run_until_quiet();
    for r in requests {
        started(&mut net, A, r);
    }
    let paid: u64 = (0..40).map(|i| 2_000_000 + i * 1_000).sum();
    assert_eq!(net.channel_balances(A, &id), (1_000_000_000 - paid, paid));
}

/// A commitment that only settles the peer's updates is held back: after B fulfils A's
/// payment, A revokes but does not sign B's next commitment until its own next update — the
/// next payment's `update_add_htlc` and one `commitment_signed` covering both then leave in
/// A's turn at once, with no `revoke_and_ack` to wait for — or until the wake-up (the
/// daemon's after `COMMIT_DELAY_MS`; the harness's once nothing is in flight).
#[test]
fn a_commitment_that_only_settles_waits_for_the_next_update() {
    let mut net = pair(11);
    let id = net.open_channel(A, B, 1_000_000, 0);
    let first = net.invoice(B, 2_000_000, "first");
    let second = net.invoice(B, 3_000_000, "second");
    let r1 = net.command(
        A,
        Command::Pay {
            invoice: first.bolt11,
        },
    );
    let mut steps = 0;
    while !net.nodes[A].m.has_held_commitments() {
        assert!(
            net.step(),
            "the payment ended without A holding a commitment back"
        );
        steps += 1;
        assert!(steps < 100, "A never held a commitment back");
    }
    let st = net.channel(A, &id).expect("the channel").ch.state().clone();
    assert!(
        st.remote_next.is_none(),
        "no commitment of B's awaiting revocation"
    );
    let settled = st.remote_changes.acked.len();
    assert_eq!(settled, 1, "B's fulfil, acknowledged and not yet signed");
    let r2 = net.command(
        A,
        Command::Pay {
            invoice: second.bolt11,
        },
    );
    // A's turn ran: the add and a commitment covering it and the settlement went out.
    assert!(!net.nodes[A].m.has_held_commitments());
    let st = net.channel(A, &id).expect("the channel").ch.state().clone();
    let next = st.remote_next.expect("a commitment signed at once");
    assert_eq!(next.spec.offered_by_us.len(), 1, "only the second HTLC");
    assert_eq!(
        next.spec
            .offered_by_us
            .values()
            .next()
            .map(|h| h.amount_msat),
        Some(3_000_000)
    );
    net.run_until_quiet();
    for r in [r1, r2] {
        started(&mut net, A, r);
    }
    assert_eq!(
        net.channel_balances(A, &id),
        (1_000_000_000 - 5_000_000, 5_000_000)
    );
    assert!(!net.nodes[A].m.has_held_commitments());
    assert!(
        net.is_quiet(),
        "nothing held back once the network is quiet"
    );
}

/// A channel's monitor restores only with the key source behind the basepoints its records
/// hold (they are taken from the records, checked on the funding key).
#[test]
fn a_monitor_restores_only_with_its_own_keys() {
    use fulmen_channel::machine::SeedKeySource;
    use fulmen_channel::monitor::ChannelMonitor;
    let mut net = pair(8);
    net.open_channel(A, B, 1_000_000, 0);
    let stored = net.nodes[A].store.durable().channels[0].clone();
    assert!(!stored.monitor_records.is_empty());
    let own = net.nodes[A].key_source();
    assert!(ChannelMonitor::restore(&own, &stored.monitor_records).is_ok());
    let other = SeedKeySource::new([42u8; 32]);
    let err = ChannelMonitor::restore(&other, &stored.monitor_records).unwrap_err();
    assert!(err.to_string().contains("key source"), "{err}");
}

#[test]
fn refused_commands_change_nothing() {
    let mut net = pair(6);
    let bob = net.nodes[B].id;
    // Opening to a peer we are not connected to.
    let e = refused(net.call(A, open_cmd(bob, 100_000)));
    assert!(e.message.contains("not connected"), "{e}");
    net.connect(A, B);
    net.run_until_quiet();
    // Opening with more than the wallet holds.
    let e = refused(net.call(A, open_cmd(bob, 5_000_000)));
    assert!(e.message.contains("insufficient on-chain funds"), "{e}");
    assert!(channels(&mut net, A).is_empty());
    let id = net.open_channel(A, B, 1_000_000, 0);
    // Closing an unknown channel.
    let e = refused(net.call(
        A,
        Command::Close {
            channel_id: [7; 32],
        },
    ));
    assert_eq!(e.code, -32602);
    assert!(e.message.contains("unknown channel"), "{e}");
    // Paying our own invoice.
    let own = net.invoice(A, 10_000, "own");
    let e = refused(net.call(
        A,
        Command::Pay {
            invoice: own.bolt11,
        },
    ));
    assert!(e.message.contains("own invoice"), "{e}");
    // A malformed invoice.
    let e = refused(net.call(
        A,
        Command::Pay {
            invoice: "lnbcrt1nonsense".into(),
        },
    ));
    assert!(e.message.contains("bad invoice"), "{e}");
    // Paying while the peer is disconnected.
    let inv = net.invoice(B, 2_000_000, "later");
    net.partition(A, B);
    let e = refused(net.call(
        A,
        Command::Pay {
            invoice: inv.bolt11.clone(),
        },
    ));
    assert!(e.message.contains("not connected"), "{e}");
    assert_eq!(net.channel_balances(A, &id), (1_000_000_000, 0));
    // Once reconnected it pays; paying it again is refused.
    net.heal(A, B);
    net.run_until_quiet();
    net.pay_ok(A, &inv.bolt11);
    let e = refused(net.call(
        A,
        Command::Pay {
            invoice: inv.bolt11,
        },
    ));
    assert!(e.message.contains("already paid"), "{e}");
    assert_eq!(
        net.channel_balances(A, &id),
        (1_000_000_000 - 2_000_000, 2_000_000)
    );
}

/// alice opens to bob and `victim` crashes after `n` deliveries, losing a batch; whatever
/// the opening became, a retry gives exactly one channel and alice's wallet pays for one
/// funding transaction only.
fn crash_during_open(seed: u64, victim: usize, n: u32) {
    let mut net = pair(seed);
    net.connect(A, B);
    net.run_until_quiet();
    let before = net.balance(A).onchain.confirmed_sat;
    let bob = net.nodes[B].id;
    let open = open_cmd(bob, 400_000);
    let r = net.command(A, open.clone());
    for _ in 0..n {
        net.step();
    }
    net.arm_crash(victim);
    net.run_until_quiet();
    net.disarm();
    let opened = match net.take_reply(A, r) {
        Some(Ok(Response::Opened(o))) => Some(o),
        _ => None,
    };
    let id = match opened {
        Some(o) => hex::decode(&o.channel_id).unwrap().try_into().unwrap(),
        None => {
            // Lost or abandoned: nothing was broadcast; open again.
            net.mine(1);
            net.run_until_quiet();
            let o = match net.call(A, open) {
                Ok(Response::Opened(o)) => o,
                other => panic!("second open: {other:?}"),
            };
            hex::decode(&o.channel_id).unwrap().try_into().unwrap()
        }
    };
    for _ in 0..5 {
        net.mine(1);
        net.run_until_quiet();
    }
    for k in [A, B] {
        let normal = net.nodes[k]
            .m
            .channels()
            .filter(|e| e.ch.state().phase == fulmen_channel::machine::Phase::Normal)
            .count();
        assert_eq!(normal, 1, "{} normal channels", net.nodes[k].name);
        assert!(net.channel(k, &id).is_some());
    }
    let spent = before - net.balance(A).onchain.confirmed_sat;
    assert!(spent > 400_000 && spent < 402_000, "alice spent {spent}");
}

#[test]
fn crash_during_open_opens_exactly_one_channel() {
    for n in 0..8 {
        crash_during_open(50 + u64::from(n), A, n);
        crash_during_open(60 + u64::from(n), B, n);
    }
}

/// `closer` closes and `victim` crashes after `n` deliveries, losing a batch; closing
/// again if the answer was lost. The closing transaction confirms, both ends know it, and
/// bob (who funded nothing) has exactly his balance on chain. Returns whether both channel
/// machines ended closed and the close was answered.
fn crash_during_close(seed: u64, closer: usize, victim: usize, n: u32) -> bool {
    let mut net = pair(seed);
    let id = net.open_channel(A, B, 300_000, 50_000_000);
    let r = net.command(closer, Command::Close { channel_id: id });
    for _ in 0..n {
        net.step();
    }
    net.arm_crash(victim);
    net.run_until_quiet();
    net.disarm();
    let first = matches!(net.take_reply(closer, r), Some(Ok(Response::Closed(_))));
    // A close whose record was lost is answered at the latest when the closing transaction
    // (which the peer broadcast) confirms and spends the funding.
    let again = (!first).then(|| net.command(closer, Command::Close { channel_id: id }));
    net.run_until_quiet();
    net.mine(1);
    net.run_until_quiet();
    let answered = first
        || again
            .is_some_and(|r| matches!(net.take_reply(closer, r), Some(Ok(Response::Closed(_)))));
    let mut closed = answered;
    for k in [A, B] {
        let e = net.channel(k, &id).expect("known");
        closed &= e.ch.state().phase == fulmen_channel::machine::Phase::Closed;
        let txid = e.closing_tx.as_ref().expect("closing tx").compute_txid();
        assert!(
            net.chain
                .transaction(&txid)
                .expect("on chain")
                .confirmations
                >= 1
        );
    }
    assert_eq!(net.balance(B).onchain.confirmed_sat, 50_000);
    closed
}

#[test]
fn crash_during_close_still_closes_on_chain() {
    for n in 0..10 {
        crash_during_close(70 + u64::from(n), A, A, n);
        crash_during_close(80 + u64::from(n), A, B, n);
        crash_during_close(90 + u64::from(n), B, A, n);
        crash_during_close(100 + u64::from(n), B, B, n);
    }
}

/// When one side crashes losing the batch that records the mutual close after the peer
/// completed it, its channel stays `Normal` until the closing transaction (broadcast by the
/// peer) confirms: the funding spend then closes the channel machine
/// (`CloseReason::FundingSpent`) and answers the `close` that waits.
#[test]
fn crash_losing_the_mutual_close_record_still_closes_both_ends() {
    for n in 0..10 {
        for (seed, closer, victim) in [(70, A, A), (80, A, B), (90, B, A), (100, B, B)] {
            assert!(
                crash_during_close(seed + u64::from(n), closer, victim, n),
                "closer {closer}, victim {victim}, {n} deliveries: not closed at both ends"
            );
        }
    }
}

/// [harden] 6(a): the harness checks at every broadcast that a transaction spending a
/// channel's funding is already durable in that channel's row; a cooperative close by
/// either side, and after a restart (which broadcasts the stored closing tx again), passes.
#[test]
fn closing_tx_is_durable_before_it_is_broadcast() {
    for closer in [A, B] {
        let mut net = pair(20 + closer as u64);
        let id = net.open_channel(A, B, 300_000, 50_000_000);
        let txid = net.close(closer, &id);
        for k in [A, B] {
            let e = net.channel(k, &id).expect("known");
            let stored = net.nodes[k]
                .store
                .durable()
                .channels
                .iter()
                .find(|c| c.id == e.id);
            assert_eq!(
                stored
                    .and_then(|c| c.closing_tx.as_ref())
                    .map(|t| t.compute_txid()),
                Some(txid)
            );
        }
        net.restart(closer, false);
        net.run_until_quiet();
        net.mine(1);
        net.run_until_quiet();
        assert!(
            net.chain
                .transaction(&txid)
                .expect("on chain")
                .confirmations
                >= 1
        );
    }
}

/// [harden] 3: whichever message of a payment arrives in the same turn as the link drops
/// (the `revoke_and_ack` that commits the HTLC on the payee among them), the payment
/// completes exactly once after the reconnection — also with a restart of the payee.
#[test]
fn payment_completes_once_whatever_delivery_the_link_drops_with() {
    for restart in [false, true] {
        for n in 0..12 {
            let mut net = pair(40 + n);
            net.open_channel(A, B, 500_000, 0);
            let inv = net.invoice(B, 5_000_000, "drop");
            net.command(
                A,
                Command::Pay {
                    invoice: inv.bolt11.clone(),
                },
            );
            for _ in 0..n {
                net.step();
            }
            net.step_and_drop();
            if restart {
                net.restart(B, false);
            }
            net.run_until_quiet();
            let outcomes = net.payment_outcomes(A, &inv.payment_hash);
            assert_eq!(outcomes.len(), 1, "n = {n}: {outcomes:?}");
            assert_eq!(outcomes[0].status, PaymentStatus::Succeeded, "n = {n}");
            let paid = net.nodes[B]
                .events
                .iter()
                .filter(|e| matches!(e, NodeEvent::InvoicePaid(i) if i.payment_hash == inv.payment_hash))
                .count();
            assert_eq!(paid, 1, "n = {n}");
        }
    }
}

/// [harden] 5(c): an inbound connection leaves no durable trace (node ids are free); the side
/// that dialled keeps the address to redial.
#[test]
fn only_dialled_peers_are_stored() {
    let mut net = pair(41);
    assert!(net.connect(A, B), "alice dials bob");
    net.run_until_quiet();
    let (a_id, b_id) = (net.nodes[A].id, net.nodes[B].id);
    let a_peers = &net.nodes[A].store.durable().peers;
    let b_peers = &net.nodes[B].store.durable().peers;
    assert!(
        a_peers
            .iter()
            .any(|(id, addr)| *id == b_id && addr.is_some()),
        "the dialler stores the address: {a_peers:?}"
    );
    assert!(
        b_peers.iter().all(|(id, _)| *id != a_id),
        "an inbound peer without channels is not stored: {b_peers:?}"
    );
}

/// [harden] 5(d): pending inbound opens are capped over all peers (node ids are free, so the
/// per-peer limit alone bounds nothing).
#[test]
fn pending_inbound_opens_are_capped_over_all_peers() {
    let mut net = Network::new(43, &["alice", "bob", "carol"]);
    net.fund(1, 2_000_000);
    net.fund(2, 2_000_000);
    net.config.max_pending_inbound_opens = 1;
    net.restart(A, false);
    let alice = net.nodes[A].id;
    for k in [1, 2] {
        assert!(net.connect(k, A));
    }
    net.run_until_quiet();
    let open = |sats| open_cmd(alice, sats);
    // Bob's channel is signed but not confirmed: pending at alice.
    let res = net.call(1, open(300_000));
    assert!(matches!(res, Ok(Response::Opened(_))), "{res:?}");
    let e = refused(net.call(2, open(300_000)));
    assert!(
        e.message.contains("too many pending channels on this node"),
        "{e:?}"
    );
    // Once bob's channel is usable, carol may open.
    net.mine(3);
    net.run_until_quiet();
    let res = net.call(2, open(300_000));
    assert!(matches!(res, Ok(Response::Opened(_))), "{res:?}");
}

/// [harden] 4: five `open`s from one wallet in the same turn pick disjoint coins (locked until
/// broadcast or cancel): every funding is accepted by the chain and every channel opens.
#[test]
fn five_concurrent_opens_from_one_wallet_all_confirm() {
    let mut net = Network::new(44, &["alice", "bob"]);
    for _ in 0..5 {
        net.fund(A, 400_000);
    }
    assert!(net.connect(A, B));
    net.run_until_quiet();
    let bob = net.nodes[B].id;
    let requests: Vec<_> = (0..5)
        .map(|_| net.command(A, open_cmd(bob, 300_000)))
        .collect();
    net.run_until_quiet();
    let mut txids = std::collections::BTreeSet::new();
    for r in requests {
        match net.take_reply(A, r) {
            Some(Ok(Response::Opened(o))) => {
                txids.insert(o.funding_txid);
            }
            other => panic!("open not answered with success: {other:?}"),
        }
    }
    assert_eq!(txids.len(), 5, "five distinct funding transactions");
    net.mine(3);
    net.run_until_quiet();
    for txid in &txids {
        let txid: bitcoin::Txid = txid.parse().expect("txid");
        let status = net.chain.transaction(&txid).expect("funding on chain");
        assert!(status.confirmations >= 1, "{txid} unconfirmed");
    }
    let Ok(Response::Channels(c)) = net.call(A, Command::ListChannels) else {
        panic!("listchannels")
    };
    let active = c.channels.iter().filter(|c| c.state == "active").count();
    assert_eq!(active, 5, "{:?}", c.channels);
}

/// [harden] 4: a broadcast the chain refuses for good (the shell classifies the refusal) is
/// forgotten by the wallet — its coins count again — and never broadcast again.
#[test]
fn a_refused_funding_is_forgotten_and_not_rebroadcast() {
    let mut net = pair(45);
    assert!(net.connect(A, B));
    net.run_until_quiet();
    let node_id = net.nodes[B].id;
    let res = net.call(A, open_cmd(node_id, 300_000));
    let Ok(Response::Opened(o)) = res else {
        panic!("open failed: {res:?}")
    };
    assert_eq!(net.balance(A).onchain.confirmed_sat, 0, "the coin is spent");
    let txid: bitcoin::Txid = o.funding_txid.parse().expect("txid");
    let now = net.clock.now();
    net.nodes[A]
        .m
        .handle_broadcast_refused(now, txid, "missing_or_spent");
    net.run_until_quiet();
    assert_eq!(
        net.balance(A).onchain.confirmed_sat,
        2_000_000,
        "the refused funding's coin counts again"
    );
    let m = &mut net.nodes[A].m;
    m.rebroadcast();
    while let Some(b) = m.poll_persist() {
        m.persisted(b.id);
    }
    while let Some(out) = m.poll_output() {
        if let fulmen_manager::Output::Broadcast(tx) = out {
            assert_ne!(
                tx.compute_txid(),
                txid,
                "a refused funding was broadcast again"
            );
        }
    }
}

/// Paid invoices and keysend receipts leave the payee's memory once their paid rows are
/// durable (a node that received a million payments keeps only its unpaid invoices);
/// `listinvoices`, served from the store, shows every one, before and after a restart.
#[test]
fn paid_invoices_and_keysend_receipts_live_in_the_store_only() {
    let mut net = pair(9);
    net.open_channel(A, B, 600_000, 0);
    let first = net.invoice(B, 4_000_000, "first");
    let second = net.invoice(B, 5_000_000, "second");
    net.invoice(B, 6_000_000, "unpaid");
    net.pay_ok(A, &first.bolt11);
    net.pay_ok(A, &second.bolt11);
    let r = net.call(
        A,
        Command::Keysend {
            node_id: net.nodes[B].id,
            amount_msat: 7_000_000,
            max_fee_msat: None,
        },
    );
    let Ok(Response::PaymentStarted(_)) = r else {
        panic!("keysend: {r:?}")
    };
    net.run_until_quiet();
    let statuses = |net: &Network| {
        net.list_invoices(B)
            .invoices
            .iter()
            .map(|i| (i.description.clone(), i.status, i.received_msat))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        ("first".to_string(), InvoiceStatus::Paid, Some(4_000_000)),
        ("second".to_string(), InvoiceStatus::Paid, Some(5_000_000)),
        ("unpaid".to_string(), InvoiceStatus::Unpaid, None),
        ("keysend".to_string(), InvoiceStatus::Paid, Some(7_000_000)),
    ];
    assert_eq!(statuses(&net), expected);
    assert_eq!(net.nodes[B].m.invoice_count(), 1, "only the unpaid one");
    net.restart(B, false);
    net.run_until_quiet();
    assert_eq!(net.nodes[B].m.invoice_count(), 1);
    assert_eq!(statuses(&net), expected);
    // The payer's own repeat check still refuses paying an invoice twice.
    let again = net.call(
        A,
        Command::Pay {
            invoice: first.bolt11.clone(),
        },
    );
    assert!(again.is_err(), "{again:?}");
}

/// A paid invoice left the payee's memory; a second payer's HTLC for its hash makes the
/// node task recall it from the store (`Manager::recall_invoices`), and it stays in memory
/// while that HTLC is in flight — the decision comes once the HTLC is committed, turns after
/// it arrived (here later still: the payee holds incoming HTLCs). The HTLC is refused as a
/// repeat, and the invoice leaves memory again.
#[test]
fn a_paid_invoice_is_recalled_while_an_htlc_for_it_is_in_flight() {
    let mut net = Network::new(10, &["alice", "bob", "carol"]);
    let carol = 2;
    net.fund(A, 2_000_000);
    net.fund(carol, 2_000_000);
    net.open_channel(A, B, 600_000, 0);
    net.open_channel(carol, B, 600_000, 0);
    let inv = net.invoice(B, 4_000_000, "once");
    net.pay_ok(A, &inv.bolt11);
    assert!(!net.nodes[B].m.holds_invoice(&inv.payment_hash));
    net.hold_htlcs(B, true);
    let again = net.start_pay(carol, &inv.bolt11);
    net.run_until_quiet();
    assert!(
        net.nodes[B].m.holds_invoice(&inv.payment_hash),
        "recalled while carol's HTLC is held"
    );
    net.hold_htlcs(B, false);
    net.run_until_quiet();
    assert_eq!(
        net.payment_status(carol, &again.payment_hash),
        Some(PaymentStatus::Failed)
    );
    assert!(!net.nodes[B].m.holds_invoice(&inv.payment_hash));
    let shown = net.list_invoices(B).invoices;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].received_msat, Some(4_000_000), "paid once");
}
