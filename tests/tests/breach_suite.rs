//! The randomized breach suite: for each of at least 200 seeds, two dev nodes on one
//! in-memory chain open a channel (random push), run a random payment history in both
//! directions — real HTLCs and dust ones, some held in flight by the payee for a while —
//! then a random side (the cheater) broadcasts a random one of its revoked commitments. The
//! victim must punish it every time: after every sweep matured, the cheater got nothing from
//! the channel, the victim got the whole capacity less the fees of the breach and of its own
//! claims, wallets + fees = capacity to the sat, nothing is in limbo and no payment of either
//! side is still pending. The cheater's node claims what it can of its revoked commitment as
//! a real cheater would (HTLC-success with a preimage it knows, HTLC-timeout, `to_local`
//! after the delay); when its second-stage transaction confirms first, the victim takes that
//! output by revocation inside its CSV window.
//!
//! `BREACH_SEEDS=<n>` runs seeds 0..n (default 200); `BREACH_SEED=<s>` runs one.
//!
//! Must never: use an unseeded RNG or the wall clock.

use fulmen_manager::api::PaymentStatus;
use fulmen_tests::network::Network;
use fulmen_tests::sim::SimRng;

const CAPACITY_SAT: u64 = 1_000_000;

/// Outcome of one seed, for the summary line.
struct Outcome {
    payments: usize,
    held_at_breach: usize,
    revoked_htlc_outputs: usize,
    /// Second-stage transactions the cheater got in first, whose outputs the victim took.
    second_stage_taken: usize,
}

fn run(seed: u64) -> Outcome {
    let mut rng = SimRng::derive(seed, "breach suite");
    let mut net = Network::new(seed, &["alice", "bob"]);
    net.fund(0, 3_000_000);
    let push = rng.below(600) * 1_000_000;
    let id = net.open_channel(0, 1, CAPACITY_SAT, push);
    let funding = net
        .channel(0, &id)
        .and_then(|e| e.ch.state().funding_outpoint)
        .expect("funded");
    let start = [
        net.balance(0).onchain.total_sat,
        net.balance(1).onchain.total_sat,
    ];
    let mut hashes: Vec<(usize, String)> = Vec::new();
    let mut held = [false, false];
    let steps = 3 + rng.below(10) as usize;
    for _ in 0..steps {
        match rng.below(10) {
            0 | 1 => {
                // Toggle holding at a random node.
                let k = rng.below(2) as usize;
                held[k] = !held[k];
                net.hold_htlcs(k, held[k]);
            }
            _ => {
                let payer = rng.below(2) as usize;
                let amount = if rng.below(4) == 0 {
                    100_000 + rng.below(700_000) // dust
                } else {
                    2_000_000 + rng.below(40_000_000) // a real HTLC
                };
                let (to_payer, _) = net.channel_balances(payer, &id);
                if to_payer < amount + 20_000_000 {
                    continue;
                }
                let inv = net.invoice(1 - payer, amount, "r");
                let p = net.start_pay(payer, &inv.bolt11);
                hashes.push((payer, p.payment_hash));
            }
        }
        net.run_until_quiet();
    }
    let held_at_breach = net
        .channel(0, &id)
        .and_then(|e| e.ch.state().local_commit.as_ref())
        .map_or(0, |c| {
            c.spec.offered_by_us.len() + c.spec.offered_by_them.len()
        });
    // The cheater: a side with at least one revoked commitment.
    let mut cheater = rng.below(2) as usize;
    let numbers = |net: &Network, k: usize| {
        net.channel(k, &id)
            .and_then(|e| e.monitor.as_ref())
            .map(|m| m.revoked_local_numbers())
            .unwrap_or_default()
    };
    if numbers(&net, cheater).is_empty() {
        cheater = 1 - cheater;
    }
    let kept = numbers(&net, cheater);
    assert!(
        !kept.is_empty(),
        "seed {seed}: no revoked commitment on either side"
    );
    let number = kept[rng.below(kept.len() as u64) as usize];
    let victim = 1 - cheater;
    net.dev_breach(cheater, &id, Some(number));
    net.mine(1);
    let c = net
        .closing(victim, &id)
        .expect("the victim sees the breach");
    assert_eq!(
        c.kind,
        format!("revoked_remote_commitment({number})"),
        "seed {seed}"
    );
    let revoked_htlc_outputs = c
        .outputs
        .iter()
        .filter(|o| o.kind == "revoked")
        .count()
        .saturating_sub(1);
    // Release every held HTLC; mine until every output is resolved on both sides.
    for (k, h) in held.iter().enumerate() {
        if *h {
            net.hold_htlcs(k, false);
        }
    }
    for _ in 0..20 {
        if (0..2).all(|k| net.closing(k, &id).is_some_and(|c| c.resolved)) {
            break;
        }
        net.mine(1);
    }
    net.mine(1);
    let second_stage_taken = net.closing(victim, &id).map_or(0, |c| {
        c.outputs
            .iter()
            .filter(|o| o.kind == "revoked" && o.state == "spent_by_peer")
            .count()
    });
    for k in 0..2 {
        let c = net.closing(k, &id).expect("closing known");
        assert!(c.resolved, "seed {seed}: node {k} not resolved: {c:#?}");
        let d = net.balance_detail(k);
        assert_eq!(d.in_limbo_sat, 0, "seed {seed}: node {k} in limbo: {d:#?}");
    }
    let s = net.settlement(funding);
    assert!(s.unresolved.is_empty(), "seed {seed}: {:?}", s.unresolved);
    assert_eq!(
        s.total(),
        CAPACITY_SAT,
        "seed {seed}: every sat accounted for"
    );
    assert_eq!(
        s.to_wallet.get(&cheater),
        None,
        "seed {seed}: the cheater got something"
    );
    assert_eq!(
        s.to_wallet.get(&victim).copied().unwrap_or(0),
        CAPACITY_SAT - s.fees,
        "seed {seed}: the victim gets the capacity less fees"
    );
    for (k, before) in start.iter().enumerate() {
        let gain = net.balance(k).onchain.total_sat - before;
        assert_eq!(
            gain,
            s.to_wallet.get(&k).copied().unwrap_or(0),
            "seed {seed}"
        );
    }
    for (payer, h) in &hashes {
        let st = net.payment_status(*payer, h);
        assert!(
            matches!(st, Some(PaymentStatus::Succeeded | PaymentStatus::Failed)),
            "seed {seed}: payment {h} of node {payer} still {st:?}"
        );
    }
    Outcome {
        payments: hashes.len(),
        held_at_breach,
        revoked_htlc_outputs,
        second_stage_taken,
    }
}

#[test]
fn every_breach_is_punished_and_every_sat_accounted_for() {
    let seeds: Vec<u64> = match std::env::var("BREACH_SEED") {
        Ok(s) => vec![s.parse().expect("BREACH_SEED is a number")],
        Err(_) => {
            let n = std::env::var("BREACH_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(200u64);
            (0..n).collect()
        }
    };
    let (mut payments, mut held, mut htlc_outputs, mut with_htlcs) = (0, 0, 0, 0);
    let mut second_stage = 0;
    for &seed in &seeds {
        let o = run(seed);
        payments += o.payments;
        held += o.held_at_breach;
        htlc_outputs += o.revoked_htlc_outputs;
        with_htlcs += usize::from(o.revoked_htlc_outputs > 0);
        second_stage += o.second_stage_taken;
    }
    println!(
        "{} seeds punished: {payments} payments, {held} HTLCs in flight at the breaches, \
         {with_htlcs} revoked states with HTLC outputs ({htlc_outputs} outputs taken by justice), \
         {second_stage} second-stage transactions of the cheater's punished in their CSV window",
        seeds.len()
    );
    // The suite is meant to exercise HTLC outputs on revoked states, not only balances.
    if seeds.len() >= 50 {
        assert!(
            with_htlcs * 5 >= seeds.len(),
            "too few breaches with HTLC outputs"
        );
        assert!(
            second_stage > 0,
            "no cheater got a second-stage transaction in first"
        );
    }
}
