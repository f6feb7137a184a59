//! Channels ending on chain, in-process (`fulmen_tests::network`, one in-memory chain that
//! checks every script with libbitcoinconsensus): a breach punished (without HTLCs, with
//! HTLCs in flight both ways, with the victim restarted after the breach), force closes by
//! each side with HTLCs in flight both ways resolved by timeout and by preimage, an HTLC
//! deadline that force-closes by itself, reorgs that remove the force-close transaction or
//! a claim. Every test ends with every output of the closing resolved, every sat accounted
//! for (wallets + fees = capacity) and nothing left in `balance --detail`'s limbo.
//!
//! Amounts: real HTLCs (20,000 sat, above the ≈ 877-sat trim threshold at the network's
//! 500 sat/kw) unless a test names a dust one.
//!
//! Must never: use an unseeded RNG or the wall clock.

use bitcoin::OutPoint;
use fulmen_channel::machine::Record;
use fulmen_channel::monitor::MonitorRecord;
use fulmen_manager::api::PaymentStatus;
use fulmen_tests::network::Network;

const ALICE: usize = 0;
const BOB: usize = 1;
const CAPACITY_SAT: u64 = 1_000_000;
const HTLC_MSAT: u64 = 20_000_000;
const DUST_MSAT: u64 = 500_000;
/// `to_self_delay` of the default channel config.
const DELAY: u32 = 144;

struct Setup {
    net: Network,
    id: [u8; 32],
    funding: OutPoint,
    /// Each node's on-chain total right after the channel opened.
    start: [u64; 2],
}

fn setup(seed: u64, push_msat: u64) -> Setup {
    setup_with(seed, push_msat, true)
}

/// As [`setup`]; `dev: false` runs both nodes as real ones (no old commitments kept, no
/// breaking the rules on purpose).
fn setup_with(seed: u64, push_msat: u64, dev: bool) -> Setup {
    let mut net = Network::new(seed, &["alice", "bob"]);
    if !dev {
        net.config.dev = false;
        net.run_until_quiet();
        net.restart(ALICE, false);
        net.restart(BOB, false);
    }
    net.fund(ALICE, 3_000_000);
    let id = net.open_channel(ALICE, BOB, CAPACITY_SAT, push_msat);
    let funding = net
        .channel(ALICE, &id)
        .and_then(|e| e.ch.state().funding_outpoint)
        .expect("funded");
    let start = [
        net.balance(ALICE).onchain.total_sat,
        net.balance(BOB).onchain.total_sat,
    ];
    Setup {
        net,
        id,
        funding,
        start,
    }
}

impl Setup {
    fn gain(&mut self, k: usize) -> u64 {
        self.net.balance(k).onchain.total_sat - self.start[k]
    }

    /// `k` pays `amount_msat` to the other node and the payment succeeds.
    fn pay(&mut self, k: usize, amount_msat: u64) {
        let inv = self.net.invoice(1 - k, amount_msat, "p");
        self.net.pay_ok(k, &inv.bolt11);
    }

    /// `k` starts paying the other node (who holds HTLCs); returns the payment hash.
    fn pay_held(&mut self, k: usize, amount_msat: u64) -> String {
        let inv = self.net.invoice(1 - k, amount_msat, "held");
        self.net.start_pay(k, &inv.bolt11).payment_hash
    }

    /// Mine until every output of the closing is resolved on both sides (at most `max`
    /// blocks), then check the accounting: every sat of the capacity is in a wallet or in
    /// fees, each wallet gained exactly what the chain paid it, nothing in limbo.
    fn finish(&mut self, max: u32) -> fulmen_tests::network::Settlement {
        for _ in 0..max {
            let done = [ALICE, BOB]
                .iter()
                .all(|&k| self.net.closing(k, &self.id).is_some_and(|c| c.resolved));
            if done {
                break;
            }
            self.net.mine(1);
        }
        // One more block so nothing is left in a mempool.
        self.net.mine(1);
        for k in [ALICE, BOB] {
            let c = self.net.closing(k, &self.id).expect("closing known");
            assert!(c.resolved, "node {k}: closing not resolved: {c:#?}");
            let d = self.net.balance_detail(k);
            assert_eq!(d.in_limbo_sat, 0, "node {k}: in limbo: {d:#?}");
            assert!(d.closing_outputs.is_empty());
            assert_eq!(d.onchain.unconfirmed_sat, 0, "node {k}: unconfirmed");
        }
        let s = self.net.settlement(self.funding);
        assert!(s.unresolved.is_empty(), "unresolved: {:?}", s.unresolved);
        assert_eq!(s.total(), CAPACITY_SAT, "every sat accounted for");
        for k in [ALICE, BOB] {
            let chain_paid = s.to_wallet.get(&k).copied().unwrap_or(0);
            assert_eq!(self.gain(k), chain_paid, "node {k}: wallet gain");
        }
        s
    }

    /// Alice broadcasts her revoked commitment `number`, which held HTLCs both ways: bob
    /// sees the breach, his justice takes `to_local` and both HTLC outputs, and once every
    /// output is resolved the cheater has nothing.
    /// An HTLC each way held on both sides, then settled: returns the number of alice's
    /// commitment that held both (revoked now), for a breach later.
    fn revoked_state_with_htlcs_both_ways(&mut self) -> u64 {
        self.net.hold_htlcs(ALICE, true);
        self.net.hold_htlcs(BOB, true);
        let to_bob = self.pay_held(ALICE, HTLC_MSAT);
        let to_alice = self.pay_held(BOB, HTLC_MSAT + 1_000_000);
        self.net.run_until_quiet();
        let number = self
            .net
            .channel(ALICE, &self.id)
            .and_then(|e| e.ch.state().local_commit.as_ref().map(|c| c.number))
            .expect("alice's commitment with the HTLCs");
        self.net.hold_htlcs(ALICE, false);
        self.net.hold_htlcs(BOB, false);
        self.net.run_until_quiet();
        for (k, h) in [(ALICE, &to_bob), (BOB, &to_alice)] {
            assert_eq!(
                self.net.payment_status(k, h),
                Some(PaymentStatus::Succeeded)
            );
        }
        number
    }

    /// Bob restarts from his (compacted) store and is whole again — channel state and
    /// monitor; then alice broadcasts her revoked state `number` (two HTLCs) and bob
    /// punishes it, reading its HTLCs back from his archive exactly once.
    fn restart_bob_whole_then_punish(&mut self, number: u64, channel: i64) {
        let view = |net: &Network, id: &[u8; 32]| {
            net.channel(BOB, id)
                .map(|e| {
                    let monitor = e.monitor.as_ref().map(|m| m.snapshot());
                    (e.ch.state().clone(), monitor)
                })
                .expect("bob's channel")
        };
        let before = view(&self.net, &self.id);
        self.net.restart(BOB, false);
        assert_eq!(view(&self.net, &self.id), before, "restored whole");
        self.net.run_until_quiet();
        assert!(self.net.nodes[BOB].archive_reads.is_empty());
        self.breach_with_htlcs_punished(number);
        assert_eq!(
            self.net.nodes[BOB].archive_reads,
            vec![(channel, number, 2)]
        );
    }

    fn breach_with_htlcs_punished(&mut self, number: u64) {
        let b = self.net.dev_breach(ALICE, &self.id, Some(number));
        assert_eq!(b.commitment_number, number);
        self.net.mine(1);
        let c = self
            .net
            .closing(BOB, &self.id)
            .expect("bob sees the breach");
        assert_eq!(c.kind, format!("revoked_remote_commitment({number})"));
        let htlc_outputs = c.outputs.iter().filter(|o| o.kind == "revoked").count();
        assert_eq!(
            htlc_outputs, 3,
            "to_local and two HTLC outputs taken by justice"
        );
        let st = self.finish(10);
        cheater_got_nothing(&st);
    }
}

/// Bob's durable row of channel `channel` (its records and monitor records).
fn bob_stored(net: &Network, channel: i64) -> fulmen_manager::StoredChannel {
    net.nodes[BOB]
        .store
        .durable()
        .channels
        .iter()
        .find(|c| c.id == channel)
        .cloned()
        .expect("bob's stored channel")
}

/// After a breach: the cheater (alice) got nothing on chain, the victim (bob) the whole
/// capacity less the fees.
fn cheater_got_nothing(st: &fulmen_tests::network::Settlement) {
    assert_eq!(st.to_wallet.get(&ALICE), None, "the cheater gets nothing");
    assert_eq!(
        st.to_wallet.get(&BOB).copied().unwrap_or(0),
        CAPACITY_SAT - st.fees
    );
}

#[test]
fn breach_without_htlcs_is_punished_to_the_sat() {
    let mut s = setup(1, 0);
    for _ in 0..4 {
        s.pay(ALICE, 50_000_000);
    }
    let b = s.net.dev_breach(ALICE, &s.id, None);
    assert_eq!(
        b.commitment_number, 0,
        "the state where alice held everything"
    );
    s.net.mine(1);
    let c = s.net.closing(BOB, &s.id).expect("bob sees the breach");
    assert_eq!(c.kind, "revoked_remote_commitment(0)");
    let st = s.finish(10);
    // Bob takes the whole capacity less the commitment's fee and the justice fee; alice
    // gets nothing from the channel.
    let revoked_fee = CAPACITY_SAT
        - s.net
            .chain
            .transaction(&b.txid.parse().expect("txid"))
            .expect("the breach is on chain")
            .tx
            .output
            .iter()
            .map(|o| o.value.to_sat())
            .sum::<u64>();
    cheater_got_nothing(&st);
    assert!(st.fees > revoked_fee, "justice paid a fee");
    assert_eq!(st.txs.len(), 2, "the breach and one justice transaction");
}

#[test]
fn breach_with_htlcs_in_flight_both_ways_is_punished() {
    let mut s = setup(2, 300_000_000);
    s.pay(ALICE, 30_000_000);
    s.net.hold_htlcs(ALICE, true);
    s.net.hold_htlcs(BOB, true);
    let to_bob = s.pay_held(ALICE, HTLC_MSAT);
    let to_alice = s.pay_held(BOB, HTLC_MSAT + 1_000_000);
    let dust = s.pay_held(ALICE, DUST_MSAT);
    s.net.run_until_quiet();
    let number = s
        .net
        .channel(ALICE, &s.id)
        .and_then(|e| {
            e.ch.state().local_commit.as_ref().map(|c| {
                assert_eq!(c.spec.offered_by_us.len(), 2);
                assert_eq!(c.spec.offered_by_them.len(), 1);
                c.number
            })
        })
        .expect("alice's commitment with the HTLCs");
    // The HTLCs settle; alice's commitment with them is revoked.
    s.net.hold_htlcs(ALICE, false);
    s.net.hold_htlcs(BOB, false);
    s.net.run_until_quiet();
    for (k, h) in [(ALICE, &to_bob), (BOB, &to_alice), (ALICE, &dust)] {
        assert_eq!(s.net.payment_status(k, h), Some(PaymentStatus::Succeeded));
    }
    s.pay(BOB, 10_000_000);
    s.breach_with_htlcs_punished(number);
}

#[test]
fn a_victim_restarted_after_the_breach_still_punishes() {
    let mut s = setup(3, 0);
    s.pay(ALICE, 100_000_000);
    s.pay(ALICE, 100_000_000);
    // Bob crashes (losing nothing durable) while the breach confirms, and comes back later
    // inside the dispute window.
    let b = s.net.dev_breach(ALICE, &s.id, None);
    s.net.mine(1);
    s.net.restart(BOB, true);
    s.net.mine(5);
    let c = s.net.closing(BOB, &s.id).expect("bob sees the breach");
    assert!(c.kind.starts_with("revoked_remote_commitment"), "{c:?}");
    let st = s.finish(10);
    cheater_got_nothing(&st);
    assert!(!b.txid.is_empty());
}

/// `closer` force-closes with HTLCs in flight both ways (and a dust one): the HTLC alice
/// offered is held by bob and times out; the one bob offered is released by alice, who
/// claims it with the preimage on chain, and bob learns the preimage from the chain.
fn force_close_with_htlcs_both_ways(seed: u64, closer: usize) {
    let mut s = setup(seed, 400_000_000);
    s.net.hold_htlcs(ALICE, true);
    s.net.hold_htlcs(BOB, true);
    let timeout_hash = s.pay_held(ALICE, HTLC_MSAT);
    let preimage_hash = s.pay_held(BOB, HTLC_MSAT + 2_000_000);
    let dust_hash = s.pay_held(ALICE, DUST_MSAT);
    s.net.run_until_quiet();
    let txid = s.net.force_close(closer, &s.id);
    s.net.mine(1);
    let want = if closer == ALICE {
        "local_commitment"
    } else {
        "remote_commitment"
    };
    let c = s.net.closing(ALICE, &s.id).expect("alice sees the close");
    assert!(c.kind.starts_with(want), "{c:?}");
    assert_eq!(c.commitment_txid, txid.to_string());
    // Alice releases her held HTLC: her monitor has the invoice's preimage and claims it.
    s.net.hold_htlcs(ALICE, false);
    let st = s.finish(DELAY + 60);
    assert_eq!(
        s.net.payment_status(ALICE, &timeout_hash),
        Some(PaymentStatus::Failed),
        "alice's HTLC timed out on chain"
    );
    assert_eq!(
        s.net.payment_status(BOB, &preimage_hash),
        Some(PaymentStatus::Succeeded),
        "bob learned the preimage on chain"
    );
    assert_eq!(
        s.net.payment_status(ALICE, &dust_hash),
        Some(PaymentStatus::Failed),
        "the dust HTLC has no output: failed"
    );
    // Alice (the funder, 600,000 sat before the HTLCs) gets her balance less the dust HTLC
    // (trimmed: it went to fees), her timed-out HTLC back and the one she claimed with the
    // preimage, less fees; bob his 400,000 less the HTLC alice claimed, less fees.
    let alice = st.to_wallet.get(&ALICE).copied().unwrap_or(0);
    let bob = st.to_wallet.get(&BOB).copied().unwrap_or(0);
    assert_eq!(alice + bob + st.fees, CAPACITY_SAT);
    let expect_alice = 600_000 - DUST_MSAT / 1000 + (HTLC_MSAT + 2_000_000) / 1000;
    assert!(
        alice < expect_alice && alice > expect_alice - 10_000,
        "alice got {alice}, expected about {expect_alice}"
    );
    let expect_bob = 400_000 - (HTLC_MSAT + 2_000_000) / 1000;
    assert!(
        bob < expect_bob && bob > expect_bob - 1_000,
        "bob got {bob}, expected about {expect_bob}"
    );
}

#[test]
fn force_close_by_the_funder_with_htlcs_both_ways_sweeps_every_output() {
    force_close_with_htlcs_both_ways(4, ALICE);
}

#[test]
fn force_close_by_the_acceptor_with_htlcs_both_ways_sweeps_every_output() {
    force_close_with_htlcs_both_ways(5, BOB);
}

#[test]
fn an_htlc_past_its_deadline_force_closes_and_times_out_on_chain() {
    let mut s = setup(6, 0);
    s.net.hold_htlcs(BOB, true);
    let hash = s.pay_held(ALICE, HTLC_MSAT);
    s.net.run_until_quiet();
    let expiry = s
        .net
        .channel(ALICE, &s.id)
        .and_then(|e| {
            e.ch.state()
                .local_commit
                .as_ref()
                .and_then(|c| c.spec.offered_by_us.values().next().map(|h| h.cltv_expiry))
        })
        .expect("the HTLC is in alice's commitment");
    while s.net.chain.height() < expiry + 2 {
        s.net.mine(1);
    }
    assert!(s.net.channel(ALICE, &s.id).is_some_and(|e| !e.is_closed()));
    s.net.mine(1);
    let e = s.net.channel(ALICE, &s.id).expect("channel");
    assert!(e.is_closed(), "alice force-closed by herself at expiry + 3");
    assert!(
        e.close_reason
            .as_deref()
            .is_some_and(|r| r.contains("expired")),
        "{:?}",
        e.close_reason
    );
    s.finish(DELAY + 30);
    assert_eq!(
        s.net.payment_status(ALICE, &hash),
        Some(PaymentStatus::Failed)
    );
}

#[test]
fn a_reorg_that_removes_the_force_close_gets_it_broadcast_again() {
    let mut s = setup(7, 200_000_000);
    let txid = s.net.force_close(ALICE, &s.id);
    s.net.mine(1);
    assert!(s.net.closing(ALICE, &s.id).is_some());
    // The block with the commitment leaves the chain and nobody's mempool keeps it.
    s.net.reorg(1, true);
    assert!(s.net.closing(ALICE, &s.id).is_none(), "un-classified");
    assert!(
        s.net
            .chain
            .mempool()
            .iter()
            .any(|t| t.compute_txid() == txid),
        "alice's monitor broadcast her commitment again"
    );
    s.net.mine(1);
    let c = s.net.closing(ALICE, &s.id).expect("classified again");
    assert_eq!(c.commitment_txid, txid.to_string());
    s.finish(DELAY + 10);
}

#[test]
fn a_reorg_that_removes_a_claim_gets_it_broadcast_again() {
    let mut s = setup(8, 200_000_000);
    s.net.force_close(ALICE, &s.id);
    s.net.mine(1);
    // Bob's to_remote sweep is out; mine it, then reorg it out and forget it.
    s.net.mine(1);
    let swept = |net: &mut Network| {
        net.closing(BOB, &s.id)
            .is_some_and(|c| c.outputs.iter().any(|o| o.state == "swept"))
    };
    assert!(swept(&mut s.net), "bob's sweep confirmed");
    s.net.reorg(1, true);
    assert!(!swept(&mut s.net), "the sweep left the chain");
    s.net.mine(1);
    assert!(
        swept(&mut s.net),
        "the sweep was broadcast again and confirmed"
    );
    s.finish(DELAY + 10);
}

/// The watchtower path, in-process: bob's monitor builds a justice backup at every
/// revocation, the client half seals it, a tower stores it; alice breaches while bob sees no
/// block; the tower alone finds the breach in the block, decrypts the justice transaction and
/// broadcasts it; the chain accepts it and, when bob catches up, everything is in his wallet.
#[test]
fn a_tower_alone_punishes_a_breach_the_victim_did_not_see() {
    use fulmen_watchtower::client::backup;
    use fulmen_watchtower::tower::{Tower, TowerConfig};
    let mut s = setup(9, 0);
    s.net.nodes[BOB].m.enable_justice_backups();
    s.pay(ALICE, 100_000_000);
    s.net.hold_htlcs(BOB, true);
    let held = s.pay_held(ALICE, HTLC_MSAT);
    s.net.run_until_quiet();
    s.net.hold_htlcs(BOB, false);
    s.net.run_until_quiet();
    assert_eq!(
        s.net.payment_status(ALICE, &held),
        Some(PaymentStatus::Succeeded)
    );
    s.pay(ALICE, 100_000_000);
    let backups = s.net.nodes[BOB].m.take_justice_backups();
    assert!(
        backups.len() >= 4,
        "one backup per revocation: {}",
        backups.len()
    );
    let mut tower = Tower::new(TowerConfig::default());
    let client = s.net.nodes[BOB].id;
    tower.create_session(client, 0);
    for (_, b) in &backups {
        let sealed = backup(&b.commitment_txid, &b.justice_tx).expect("sealed");
        tower
            .store(&client, sealed.hint, &sealed.blob)
            .expect("stored");
    }
    // Alice broadcasts the state with her HTLC to bob in flight (HTLC outputs included).
    let with_htlc = backups
        .iter()
        .find(|(_, b)| b.justice_tx.input.len() >= 2)
        .map(|(_, b)| b.number)
        .expect("a revoked state with an HTLC output");
    let b = s.net.dev_breach(ALICE, &s.id, Some(with_htlc));
    // The breach is mined without telling the nodes (bob is "offline").
    let t = u32::try_from(s.net.clock.now()).unwrap_or(u32::MAX);
    let block = s.net.chain.mine(1, None, t).pop().expect("a block");
    let height = s.net.chain.height();
    let out = tower.block_connected(height, &block.txdata);
    assert_eq!(out.len(), 1, "the tower recognises the breach");
    assert_eq!(out[0].commitment_txid.to_string(), b.txid);
    s.net
        .chain
        .submit_transaction(out[0].justice_tx.clone())
        .expect("the chain accepts the tower's justice");
    s.net.chain.mine(1, None, t + 1);
    // Bob catches up: the justice already confirmed pays his wallet; nothing to claim.
    let st = s.finish(10);
    cheater_got_nothing(&st);
    assert!(st
        .txs
        .iter()
        .any(|t| t.compute_txid() == out[0].justice_tx.compute_txid()));
}

/// A long history compacts: the victim's monitor writes a snapshot every few records (the
/// harness's `snapshot_every` is 7; one is written once the records since the last weigh about
/// as much as the snapshot would), the store drops what came before, and a monitor
/// restored from the snapshot and its tail is the one that wrote them. A breach of a state
/// revoked long before the last snapshot, with HTLCs in flight both ways in it, is still
/// punished to the sat after that restart.
#[test]
fn a_compacted_monitor_restores_whole_and_punishes_an_old_breach() {
    let mut s = setup(5, 300_000_000);
    let number = s.revoked_state_with_htlcs_both_ways();
    // A history after it: each payment adds about seven monitor records.
    for i in 0..12 {
        s.pay(i % 2, HTLC_MSAT);
    }
    let channel = s.net.channel(BOB, &s.id).expect("bob's channel").id;
    let log = |net: &Network| bob_stored(net, channel).monitor_records;
    let compacted = log(&s.net);
    assert!(
        matches!(compacted.first(), Some(MonitorRecord::Snapshot(_))),
        "the log starts at a snapshot"
    );
    // The history wrote ≈ 100 records (≈ 7 per payment): a good part of them is gone.
    assert!(compacted.len() < 60, "{} records kept", compacted.len());
    // What the node's store would write reads back the same (the harness keeps typed
    // records; this is the byte format's round trip, snapshot included).
    for r in &compacted {
        assert_eq!(MonitorRecord::decode(&r.encode()).as_ref(), Ok(r));
    }
    // The HTLC sets of the revoked states are in the archive, not in the monitor: the
    // breached state's with both HTLCs.
    let archived = |net: &Network| {
        net.channel(BOB, &s.id)
            .and_then(|e| e.monitor.as_ref().and_then(|m| m.archived_through()))
    };
    assert!(archived(&s.net) >= Some(number), "{:?}", archived(&s.net));
    let durable = s.net.nodes[BOB].store.durable();
    assert_eq!(
        durable.revoked_htlcs.get(&(channel, number)).map(Vec::len),
        Some(2),
        "the breached state's HTLCs are archived"
    );
    s.restart_bob_whole_then_punish(number, channel);
    // The log after the on-chain resolution (confirmed transactions, perhaps in a snapshot)
    // reads back the same too.
    for r in &log(&s.net) {
        assert_eq!(MonitorRecord::decode(&r.encode()).as_ref(), Ok(r));
    }
}

/// A monitor's snapshot — what a restart reads — stays the same size however many payments
/// the channel carries: the HTLC sets of revoked states move to the revocation archive and
/// the preimages of settled HTLCs are forgotten (before, each payment grew it by ≈ 380
/// bytes of the JSON format of then, ≈ 23 KB over the 60 payments here; a revoked HTLC and a
/// preimage still take ≈ 80 bytes in the binary one). Real nodes: a dev node keeps its own old
/// commitments, which do grow it.
#[test]
fn a_monitor_snapshot_does_not_grow_with_the_history() {
    let mut s = setup_with(6, 300_000_000, false);
    let channel = s.net.channel(BOB, &s.id).expect("bob's channel").id;
    let snapshot_bytes = |net: &Network| {
        let log = bob_stored(net, channel).monitor_records;
        match log.first() {
            Some(r @ MonitorRecord::Snapshot(_)) => r.encode().len(),
            other => panic!("the log starts at {other:?}"),
        }
    };
    let archived_htlcs = |net: &Network| -> usize {
        let durable = net.nodes[BOB].store.durable();
        durable
            .revoked_htlcs
            .iter()
            .filter(|((c, _), _)| *c == channel)
            .map(|(_, h)| h.len())
            .sum()
    };
    for i in 0..20 {
        s.pay(i % 2, HTLC_MSAT);
    }
    let (early, archived_early) = (snapshot_bytes(&s.net), archived_htlcs(&s.net));
    for i in 0..60 {
        s.pay(i % 2, HTLC_MSAT);
    }
    let (late, archived_late) = (snapshot_bytes(&s.net), archived_htlcs(&s.net));
    // The peer's secrets (O(log n)) may add an entry or two.
    assert!(
        late <= early + 1_000,
        "snapshot {early} bytes after 20 payments, {late} after 80"
    );
    // Every payment's HTLC was in at least one revoked state of the peer's, now archived.
    assert!(
        archived_late >= archived_early + 55,
        "archived HTLCs {archived_early} -> {archived_late}"
    );
}

/// Before a clean stop the daemon compacts: every channel's and every monitor's log becomes
/// one snapshot. The node restarts from those alone, whole, and still punishes a breach of
/// a state revoked long before, its HTLCs read back from the revocation archive.
#[test]
fn a_clean_stop_leaves_one_snapshot_per_log_and_the_restart_still_punishes() {
    let mut s = setup(7, 300_000_000);
    let number = s.revoked_state_with_htlcs_both_ways();
    for i in 0..5 {
        s.pay(i % 2, HTLC_MSAT);
    }
    let channel = s.net.channel(BOB, &s.id).expect("bob's channel").id;
    s.net.compact_logs(BOB);
    let stored = bob_stored(&s.net, channel);
    assert!(
        matches!(stored.records.as_slice(), [Record::Snapshot(_)]),
        "{} channel records",
        stored.records.len()
    );
    assert!(
        matches!(
            stored.monitor_records.as_slice(),
            [MonitorRecord::Snapshot(_)]
        ),
        "{} monitor records",
        stored.monitor_records.len()
    );
    s.restart_bob_whole_then_punish(number, channel);
}

/// A store an older build wrote (its rows in JSON: `StoredChannel::old_format`, which the
/// node's store sets) is rewritten at the first clean stop: a snapshot of the channel and one
/// of its monitor more than the same stop writes for a store in the current format. The
/// channel goes on working.
#[test]
fn a_clean_stop_rewrites_a_channel_stored_in_an_older_format() {
    let mut s = setup(9, 300_000_000);
    s.pay(0, HTLC_MSAT);
    s.net.compact_logs(BOB);
    let stop_and_start = |net: &mut Network, old_format: bool| {
        for c in &mut net.nodes[BOB].store.durable_mut().channels {
            c.old_format = old_format;
        }
        net.restart(BOB, false);
        net.run_until_quiet();
        let before = net.nodes[BOB].snapshot_records;
        net.compact_logs(BOB);
        net.nodes[BOB].snapshot_records - before
    };
    let current = stop_and_start(&mut s.net, false);
    let older = stop_and_start(&mut s.net, true);
    assert_eq!(older, current + 2, "{older} snapshots vs {current}");
    // Rewritten once: the next stop is like any other.
    assert_eq!(stop_and_start(&mut s.net, false), current);
    s.pay(1, HTLC_MSAT);
}

/// A channel opened by a dev node keeps that node's revoked commitments (for `dev
/// broadcast-revoked`); once the node runs as a real one, its monitor lets them go, and the
/// compacted log no longer holds them. The channel goes on working.
#[test]
fn a_dev_node_restarted_as_a_real_one_drops_its_old_commitments() {
    let mut s = setup(8, 300_000_000);
    for i in 0..4 {
        s.pay(i % 2, HTLC_MSAT);
    }
    let channel = s.net.channel(BOB, &s.id).expect("bob's channel").id;
    let snapshot = |net: &Network| {
        net.channel(BOB, &s.id)
            .and_then(|e| e.monitor.as_ref().map(|m| m.snapshot()))
            .expect("bob's monitor")
    };
    assert!(
        snapshot(&s.net).holds_local_commitment(1),
        "a dev node keeps them"
    );
    s.net.config.dev = false;
    s.net.restart(BOB, false);
    s.net.run_until_quiet();
    assert!(!snapshot(&s.net).holds_local_commitment(1));
    s.net.compact_logs(BOB);
    let log = bob_stored(&s.net, channel).monitor_records;
    match log.as_slice() {
        [MonitorRecord::Snapshot(m)] => assert!(!m.holds_local_commitment(1)),
        other => panic!("{} monitor records", other.len()),
    }
    s.pay(ALICE, HTLC_MSAT);
    s.pay(BOB, HTLC_MSAT);
}
