//! End-to-end tests of channels ending on chain, with real `fulmen` daemons (`node run
//! --dev`) driven only through the CLI: a breach punished (without HTLCs, with HTLCs in
//! flight both ways on the revoked state, with the victim stopped at the breach and
//! restarted inside the dispute window), force closes by each side with HTLCs in flight both
//! ways (one timed out, one claimed with the preimage on chain), an HTLC deadline that makes
//! the payer force-close by itself, reorgs that remove the force-close transaction or a
//! claim (`chain reorg N --drop-mempool`, so only a rebroadcast brings them back), and dev
//! commands refused by a node without `--dev`.
//!
//! Every closing test ends with every output resolved on both sides (`channels` shows
//! `closing.resolved`), nothing in `balance --detail`'s limbo, and every sat of the capacity
//! in a wallet or in a fee: the fees are computed from the transactions on chain
//! (`fulmen chain tx`), the wallets' gains from `balance`.
//!
//! Amounts: real HTLCs of 20,000 sat (above the ≈ 877-sat trim threshold at 500 sat/kw, so
//! they have outputs of their own) and a dust HTLC of 500 sat where a test names one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bitcoin::consensus::encode;
use bitcoin::Transaction;
use fulmen_itests::node::NodeDaemon;
use fulmen_itests::{hex_decode, json_str as s, json_u64 as u};
use fulmen_itests::{ChainDaemon, DAEMON_TIMEOUT};
use serde_json::Value;

const ALICE: usize = 0;
const BOB: usize = 1;
/// Alice's faucet coin.
const FUND_SAT: u64 = 2_000_000;
/// Capacity of the channel alice opens to bob.
const CAP: u64 = 1_000_000;
/// A real HTLC.
const HTLC_MSAT: u64 = 20_000_000;
/// A dust HTLC (trimmed: no output of its own).
const DUST_MSAT: u64 = 500_000;
/// `to_self_delay` of the default channel config.
const DELAY: u32 = 144;
/// `min_final_cltv_expiry_delta` of the node's invoices.
const MIN_FINAL_CLTV: u64 = 18;
/// Blocks a payer adds to the invoice's final CLTV.
const CLTV_SLACK: u64 = 3;
/// Blocks after its expiry an HTLC we offered may stay before we force-close.
const OFFERED_HTLC_GRACE: u64 = 3;

/// What the chain shows of one closing: its transactions and their fees.
#[derive(Debug)]
struct Settlement {
    /// Every transaction of the closing (commitment, second stage, claims, justice) → fee.
    fees_by_tx: BTreeMap<String, u64>,
    /// Sum of the fees.
    fees: u64,
    /// Each node's on-chain gain since the channel opened.
    gain: [u64; 2],
}

/// A chain daemon, alice and bob (both `--dev`), and one channel alice → bob.
struct Net {
    chain: ChainDaemon,
    nodes: [NodeDaemon; 2],
    id: String,
    /// Each node's on-chain total right after the channel opened.
    start: [u64; 2],
    _dir: tempfile::TempDir,
}

impl Net {
    /// Starts the daemons, funds alice, opens a `CAP` channel pushing `push_msat` to bob.
    fn new(push_msat: u64) -> Net {
        Net::with_bob_args(push_msat, &[])
    }

    /// As [`Net::new`], bob's daemon started with `bob_args` too.
    fn with_bob_args(push_msat: u64, bob_args: &[&str]) -> Net {
        let chain = ChainDaemon::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let alice = NodeDaemon::start_with(dir.path(), "alice", chain.datadir(), &["--dev"]);
        let args: Vec<&str> = ["--dev"].iter().chain(bob_args).copied().collect();
        let bob = NodeDaemon::start_with(dir.path(), "bob", chain.datadir(), &args);
        chain.cli(&["mine", "101"]).ok();
        let addr = s(&alice.ok(&["newaddress"])["address"]);
        chain.cli(&["fund", &addr, &FUND_SAT.to_string()]).ok();
        let mut net = Net {
            chain,
            nodes: [alice, bob],
            id: String::new(),
            start: [0, 0],
            _dir: dir,
        };
        net.mine(1);
        let alice = &net.nodes[ALICE];
        let bob = &net.nodes[BOB];
        alice.ok(&["connect", &bob.uri()]);
        let opened = alice.ok(&[
            "open",
            &bob.node_id(),
            &CAP.to_string(),
            "--push-msat",
            &push_msat.to_string(),
        ]);
        net.id = s(&opened["channel_id"]);
        net.mine(3);
        for n in &net.nodes {
            n.wait_channel_state(&net.id, "active");
        }
        net.start = [net.onchain(ALICE), net.onchain(BOB)];
        net
    }

    /// Polls `f` until it returns `Some`; after [`DAEMON_TIMEOUT`] panics with `what` and
    /// the end of both nodes' logs.
    fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + DAEMON_TIMEOUT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                let tail = |n: &NodeDaemon| {
                    let log = n.log_text();
                    let lines: Vec<&str> = log.lines().collect();
                    lines[lines.len().saturating_sub(40)..].join("\n")
                };
                panic!(
                    "timed out waiting for {what}\n--- alice ---\n{}\n--- bob ---\n{}",
                    tail(self.node(ALICE)),
                    tail(self.node(BOB))
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn node(&self, k: usize) -> &NodeDaemon {
        &self.nodes[k]
    }

    fn height(&self) -> u64 {
        u(&self.chain.cli(&["info"]).ok()["height"])
    }

    /// Mines `n` blocks and waits until every running node processed them.
    fn mine(&self, n: u64) {
        self.chain.cli(&["mine", &n.to_string()]).ok();
        let h = self.height();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            node.wait_height(h);
        }
    }

    fn onchain(&self, k: usize) -> u64 {
        self.node(k).onchain_sat()
    }

    /// Node `k`'s view of the channel.
    fn channel(&self, k: usize) -> Value {
        self.node(k)
            .channels()
            .into_iter()
            .find(|c| c["channel_id"] == self.id.as_str())
            .unwrap_or_else(|| panic!("{}: no channel {}", self.node(k).name(), self.id))
    }

    /// Node `k`'s `closing` of the channel (`None` until the funding output is spent).
    fn closing(&self, k: usize) -> Option<Value> {
        let c = self.channel(k)["closing"].clone();
        (!c.is_null()).then_some(c)
    }

    /// Waits until both ends agree on the balances and hold `pending` HTLCs each.
    fn wait_quiet(&self, pending: u64) {
        self.wait(&format!("both ends quiet with {pending} HTLC(s)"), || {
            let a = self.channel(ALICE);
            let b = self.channel(BOB);
            (a["pending_htlcs"] == pending
                && b["pending_htlcs"] == pending
                && a["local_msat"] == b["remote_msat"]
                && a["remote_msat"] == b["local_msat"])
                .then_some(())
        });
    }

    /// `k` pays `msat` to the other node; the payment succeeds and both ends settle.
    fn pay(&self, k: usize, msat: u64) {
        let inv = s(&self.node(1 - k).ok(&["invoice", &msat.to_string()])["bolt11"]);
        let p = self.node(k).ok(&["pay", &inv]);
        assert_eq!(p["status"], "succeeded", "{p}");
        self.wait_quiet(0);
    }

    /// `k` starts paying `msat` to the other node, who holds HTLCs (`pay --timeout 1`
    /// returns while it is pending); returns the payment hash.
    fn pay_held(&self, k: usize, msat: u64) -> String {
        let inv = s(&self.node(1 - k).ok(&["invoice", &msat.to_string()])["bolt11"]);
        let p = self.node(k).ok(&["pay", &inv, "--timeout", "1"]);
        assert_eq!(p["status"], "pending", "{p}");
        s(&p["payment_hash"])
    }

    fn hold(&self, k: usize, on: bool) {
        let r = self
            .node(k)
            .ok(&["dev", "hold-htlcs", if on { "on" } else { "off" }]);
        assert_eq!(r["hold_htlcs"], on, "{r}");
    }

    /// Status of `k`'s payment with `hash`.
    fn payment_status(&self, k: usize, hash: &str) -> String {
        let list = self.node(k).ok(&["payments"]);
        let p = list["payments"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["payment_hash"] == hash))
            .unwrap_or_else(|| panic!("no payment {hash}: {list}"));
        s(&p["status"])
    }

    /// Waits until `k`'s payment `hash` has `status`.
    fn wait_payment(&self, k: usize, hash: &str, status: &str) {
        self.wait(
            &format!("{}: payment {hash} {status}", self.node(k).name()),
            || (self.payment_status(k, hash) == status).then_some(()),
        );
    }

    fn tx(&self, txid: &str) -> Transaction {
        let info = self.chain.cli(&["tx", txid]).ok();
        encode::deserialize(&hex_decode(&s(&info["hex"]))).expect("transaction")
    }

    fn mempool_has(&self, txid: &str) -> bool {
        let m = self.chain.cli(&["mempool"]).ok();
        m["txs"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["txid"] == txid))
    }

    /// Fee of a transaction on chain: its inputs (looked up on chain) less its outputs.
    fn fee(&self, txid: &str) -> u64 {
        let tx = self.tx(txid);
        let inputs: u64 = tx
            .input
            .iter()
            .map(|i| {
                let prev = self.tx(&i.previous_output.txid.to_string());
                prev.output[i.previous_output.vout as usize].value.to_sat()
            })
            .sum();
        let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        inputs - outputs
    }

    /// Mines until every output of the closing is resolved on both sides (at most
    /// `max_blocks`; jumps straight to the next height a waiting output becomes
    /// claimable), then one more block. Checks that nothing is left in limbo or
    /// unconfirmed, and that every sat of the capacity is in a wallet or a fee.
    fn finish(&self, max_blocks: u64) -> Settlement {
        let mut mined = 0;
        loop {
            let views: Vec<Option<Value>> = (0..2).map(|k| self.closing(k)).collect();
            if views
                .iter()
                .all(|c| c.as_ref().is_some_and(|c| c["resolved"] == true))
            {
                break;
            }
            if mined >= max_blocks {
                let tail = |n: &NodeDaemon| {
                    let log = n.log_text();
                    let lines: Vec<&str> = log.lines().collect();
                    lines[lines.len().saturating_sub(60)..].join("\n")
                };
                panic!(
                    "not resolved after {mined} blocks: {views:#?}\n--- alice ---\n{}\n--- bob ---\n{}",
                    tail(self.node(ALICE)),
                    tail(self.node(BOB))
                );
            }
            // Outputs waiting for a CSV or CLTV: jump to the block before the first is
            // claimable (its claim goes out when the node sees it), else mine one block.
            let next = views
                .iter()
                .flatten()
                .flat_map(|c| c["outputs"].as_array().cloned().unwrap_or_default())
                .filter(|o| o["state"] == "waiting")
                .filter_map(|o| o["blocks_left"].as_u64())
                .min()
                .unwrap_or(0);
            // A claim already out needs one block to confirm (and may change what is
            // waiting: a cheater's output the victim takes stops waiting for its CSV).
            let claim_out = views
                .iter()
                .flatten()
                .flat_map(|c| c["outputs"].as_array().cloned().unwrap_or_default())
                .any(|o| o["state"] == "claim_broadcast");
            let next = if claim_out { 1 } else { next };
            let n = next.clamp(1, max_blocks.saturating_sub(mined).max(1));
            self.mine(n);
            mined += n;
        }
        // One more block, so nothing is left in a mempool.
        self.mine(1);
        for k in [ALICE, BOB] {
            let name = self.node(k).name();
            let c = self.closing(k).expect("closing known");
            assert_eq!(c["resolved"], true, "{name}: {c:#}");
            let d = self.node(k).ok(&["balance", "--detail"]);
            assert_eq!(d["in_limbo_sat"], 0, "{name}: in limbo: {d:#}");
            assert_eq!(d["closing_outputs"], Value::Array(vec![]), "{name}: {d:#}");
            assert_eq!(d["onchain"]["unconfirmed_sat"], 0, "{name}: {d:#}");
        }
        self.settlement()
    }

    /// The closing's transactions as both nodes report them, their fees from the chain,
    /// and the check that the capacity is the wallets' gains plus those fees, to the sat.
    fn settlement(&self) -> Settlement {
        let mut txids = BTreeSet::new();
        for k in [ALICE, BOB] {
            let c = self.closing(k).expect("closing known");
            txids.insert(s(&c["commitment_txid"]));
            for o in c["outputs"].as_array().cloned().unwrap_or_default() {
                if let Some((txid, _)) = s(&o["outpoint"]).split_once(':') {
                    txids.insert(txid.to_owned());
                }
                if let Some(t) = o["txid"].as_str() {
                    txids.insert(t.to_owned());
                }
            }
        }
        let fees_by_tx: BTreeMap<String, u64> = txids
            .into_iter()
            .map(|t| (t.clone(), self.fee(&t)))
            .collect();
        let fees = fees_by_tx.values().sum();
        let gain = [ALICE, BOB].map(|k| self.onchain(k) - self.start[k]);
        assert_eq!(
            gain[ALICE] + gain[BOB] + fees,
            CAP,
            "every sat of the capacity in a wallet or a fee: gains {gain:?}, fees {fees_by_tx:?}"
        );
        Settlement {
            fees_by_tx,
            fees,
            gain,
        }
    }

    /// The outputs of `k`'s closing of this `kind`.
    fn outputs_of_kind(&self, k: usize, kind: &str) -> Vec<Value> {
        self.closing(k)
            .and_then(|c| c["outputs"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o["kind"] == kind)
            .collect()
    }
}

/// The transactions (besides the commitment) that `k`'s claims on chain are.
fn claim_txids(net: &Net, k: usize) -> BTreeSet<String> {
    let c = net.closing(k).expect("closing known");
    c["outputs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|o| o["state"] == "swept")
        .filter_map(|o| o["txid"].as_str().map(str::to_owned))
        .collect()
}

/// Alice pays bob several times, then broadcasts her revoked first commitment (where she
/// held the whole capacity); bob's justice takes it all: he gains the capacity less the
/// commitment's fee and the justice fee, to the sat, and alice nothing.
#[test]
fn a_breach_without_htlcs_is_punished_to_the_sat() {
    let started = Instant::now();
    let net = Net::new(0);
    for _ in 0..4 {
        net.pay(ALICE, 50_000_000);
    }
    let b = net.node(ALICE).ok(&["dev", "broadcast-revoked", &net.id]);
    assert_eq!(
        b["commitment_number"], 0,
        "alice held everything in #0: {b}"
    );
    assert_eq!(b["to_us_sat"], CAP, "{b}");
    let breach = s(&b["txid"]);
    net.mine(1);
    let c = net.closing(BOB).expect("bob sees the breach");
    assert_eq!(c["kind"], "revoked_remote_commitment(0)", "{c:#}");
    assert_eq!(c["commitment_txid"], breach.as_str());
    let st = net.finish(10);
    let commitment_fee = st.fees_by_tx[&breach];
    let justice = claim_txids(&net, BOB);
    assert_eq!(justice.len(), 1, "one justice transaction: {justice:?}");
    let justice_fee: u64 = justice.iter().map(|t| st.fees_by_tx[t]).sum();
    assert_eq!(st.fees_by_tx.len(), 2, "the breach and the justice: {st:?}");
    assert_eq!(st.gain[BOB], CAP - commitment_fee - justice_fee);
    assert_eq!(st.gain[ALICE], 0, "the cheater gets nothing");
    let bob_closing = net.closing(BOB).expect("closing");
    assert_eq!(bob_closing["claim_fees_sat"], justice_fee);
    eprintln!(
        "breach without HTLCs: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// HTLCs in flight both ways (and a dust one) on the revoked state: bob's justice takes
/// alice's to_local and both HTLC outputs; alice gets nothing.
///
/// The revoked commitment is targeted by its number, which the CLI does not show: alice's
/// local commitment number goes up by one for each `commitment_signed` bob sends, and with
/// both ends quiet after every step (no batching) that is: one per HTLC added or removed.
/// The test checks that it hit the state it meant (alice's balance in it, and bob seeing
/// three revoked outputs).
///
/// Bob's monitor writes a snapshot every few records (`--snapshot-every 7`), so by the
/// breach the revoked state's HTLCs are in his revocation archive, and his justice reads
/// them back from there.
#[test]
fn a_breach_with_htlcs_in_flight_both_ways_is_punished() {
    let started = Instant::now();
    let net = Net::with_bob_args(300_000_000, &["--snapshot-every", "7"]);
    // Alice's commitments: #0 at opening, #1 with the HTLC, #2 after its fulfil.
    net.pay(ALICE, 30_000_000);
    net.hold(ALICE, true);
    net.hold(BOB, true);
    // #3: alice's HTLC to bob.
    let to_bob = net.pay_held(ALICE, HTLC_MSAT);
    net.wait_quiet(1);
    // #4: and bob's to alice.
    let to_alice = net.pay_held(BOB, HTLC_MSAT + 1_000_000);
    net.wait_quiet(2);
    // #5: and a dust one from alice.
    let dust = net.pay_held(ALICE, DUST_MSAT);
    net.wait_quiet(3);
    let number: u64 = 5;
    let alice_in_it = 700_000 - 30_000 - HTLC_MSAT / 1000 - DUST_MSAT / 1000;
    // The HTLCs settle: alice's commitment with them is revoked.
    net.hold(BOB, false);
    net.hold(ALICE, false);
    net.wait_payment(ALICE, &to_bob, "succeeded");
    net.wait_payment(ALICE, &dust, "succeeded");
    net.wait_payment(BOB, &to_alice, "succeeded");
    net.wait_quiet(0);
    // A history after it: snapshots archive the revoked states.
    for _ in 0..4 {
        net.pay(BOB, 10_000_000);
    }
    let archive_read = "reading an archived revoked state";
    assert!(!net.node(BOB).log_text().contains(archive_read));
    let b = net.node(ALICE).ok(&[
        "dev",
        "broadcast-revoked",
        &net.id,
        "--commitment",
        &number.to_string(),
    ]);
    assert_eq!(b["commitment_number"], number, "{b}");
    assert_eq!(b["to_us_sat"], alice_in_it, "the state with the HTLCs: {b}");
    net.mine(1);
    let c = net.closing(BOB).expect("bob sees the breach");
    assert_eq!(c["kind"], format!("revoked_remote_commitment({number})"));
    let revoked = net.outputs_of_kind(BOB, "revoked");
    assert_eq!(revoked.len(), 3, "to_local and two HTLC outputs: {c:#}");
    assert!(
        net.node(BOB).log_text().contains(archive_read),
        "bob's justice read the state from his archive"
    );
    let st = net.finish(10);
    assert_eq!(st.gain[ALICE], 0, "the cheater gets nothing");
    assert_eq!(st.gain[BOB], CAP - st.fees);
    eprintln!("breach with HTLCs: {:.1}s", started.elapsed().as_secs_f64());
}

/// Bob is stopped when alice broadcasts her revoked commitment; it confirms and 5 more
/// blocks pass; bob restarts inside the dispute window and still takes everything.
#[test]
fn a_victim_stopped_at_the_breach_punishes_after_a_restart() {
    let started = Instant::now();
    let mut net = Net::new(0);
    net.pay(ALICE, 100_000_000);
    net.pay(ALICE, 100_000_000);
    assert_eq!(net.nodes[BOB].stop(), Some(0));
    let b = net.node(ALICE).ok(&["dev", "broadcast-revoked", &net.id]);
    let breach = s(&b["txid"]);
    net.mine(1);
    net.mine(5);
    net.nodes[BOB].restart();
    net.nodes[BOB].wait_height(net.height());
    let c = net
        .closing(BOB)
        .expect("bob sees the breach after his restart");
    assert_eq!(c["kind"], "revoked_remote_commitment(0)", "{c:#}");
    assert_eq!(c["commitment_txid"], breach.as_str());
    let st = net.finish(10);
    assert_eq!(st.gain[ALICE], 0);
    assert_eq!(st.gain[BOB], CAP - st.fees);
    eprintln!("victim restarted: {:.1}s", started.elapsed().as_secs_f64());
}

/// `closer` force-closes with HTLCs in flight both ways (and a dust one): the HTLC alice
/// offered is held by bob and times out on chain; the one bob offered is released by alice
/// after the close, who claims it with the preimage on chain, and bob learns the preimage
/// from the chain.
fn force_close_with_htlcs_both_ways(closer: usize) {
    let started = Instant::now();
    let net = Net::new(400_000_000);
    net.hold(ALICE, true);
    net.hold(BOB, true);
    let timeout_hash = net.pay_held(ALICE, HTLC_MSAT);
    net.wait_quiet(1);
    let preimage_msat = HTLC_MSAT + 2_000_000;
    let preimage_hash = net.pay_held(BOB, preimage_msat);
    net.wait_quiet(2);
    let dust_hash = net.pay_held(ALICE, DUST_MSAT);
    net.wait_quiet(3);
    let r = net.node(closer).ok(&["close", &net.id, "--force"]);
    let txid = s(&r["closing_txid"]);
    net.mine(1);
    let want = if closer == ALICE {
        "local_commitment"
    } else {
        "remote_commitment"
    };
    let c = net.closing(ALICE).expect("alice sees the close");
    assert!(s(&c["kind"]).starts_with(want), "{c:#}");
    assert_eq!(c["commitment_txid"], txid.as_str());
    // Alice releases her held HTLC: her monitor has the invoice's preimage and claims it.
    net.hold(ALICE, false);
    let st = net.finish(u64::from(DELAY) + 60);
    assert_eq!(net.payment_status(ALICE, &timeout_hash), "failed");
    assert_eq!(
        net.payment_status(BOB, &preimage_hash),
        "succeeded",
        "bob learned the preimage on chain"
    );
    assert_eq!(
        net.payment_status(ALICE, &dust_hash),
        "failed",
        "the dust HTLC has no output"
    );
    // Alice (600,000 sat before the HTLCs) gets her balance less the dust HTLC (trimmed:
    // it went to fees), her timed-out HTLC back and the one she claimed, less fees; bob
    // his 400,000 less the HTLC alice claimed, less fees.
    let [alice, bob] = st.gain;
    let expect_alice = 600_000 - DUST_MSAT / 1000 + preimage_msat / 1000;
    assert!(
        alice < expect_alice && alice > expect_alice - 10_000,
        "alice got {alice}, expected about {expect_alice}"
    );
    let expect_bob = 400_000 - preimage_msat / 1000;
    assert!(
        bob < expect_bob && bob > expect_bob - 2_000,
        "bob got {bob}, expected about {expect_bob}"
    );
    eprintln!(
        "force close by {}: {:.1}s",
        net.node(closer).name(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_force_close_by_alice_with_htlcs_both_ways_sweeps_every_output() {
    force_close_with_htlcs_both_ways(ALICE);
}

#[test]
fn a_force_close_by_bob_with_htlcs_both_ways_sweeps_every_output() {
    force_close_with_htlcs_both_ways(BOB);
}

/// Bob holds alice's HTLC past its expiry: at expiry + 3 alice force-closes by herself and
/// gets her funds back by timeout; the payment fails.
#[test]
fn an_htlc_past_its_deadline_force_closes_by_itself() {
    let started = Instant::now();
    let net = Net::new(0);
    net.hold(BOB, true);
    let h0 = u(&net.node(ALICE).info()["block_height"]);
    let hash = net.pay_held(ALICE, HTLC_MSAT);
    net.wait_quiet(1);
    // The HTLC expires at h0 + 18 + 3 (the payer's slack); alice gives bob until
    // expiry + 3.
    let deadline = h0 + MIN_FINAL_CLTV + CLTV_SLACK + OFFERED_HTLC_GRACE;
    net.mine(deadline - 1 - net.height());
    let c = net.channel(ALICE);
    assert!(c["close_reason"].is_null(), "closed too early: {c:#}");
    net.mine(1);
    assert_eq!(net.height(), deadline);
    let reason = net.wait("alice to force-close", || {
        net.channel(ALICE)["close_reason"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(reason.contains("expired"), "{reason}");
    net.mine(1);
    let st = net.finish(u64::from(DELAY) + 40);
    assert_eq!(net.payment_status(ALICE, &hash), "failed");
    // Alice got all of it back but the fees.
    assert_eq!(st.gain[ALICE], CAP - st.fees);
    assert_eq!(st.gain[BOB], 0);
    eprintln!("HTLC deadline: {:.1}s", started.elapsed().as_secs_f64());
}

/// The block with alice's force close leaves the chain, and the mempool with it: the
/// monitors broadcast a commitment again (alice's, or bob's own: his channel failed on
/// alice's error and he broadcast his commitment too); it confirms and everything
/// resolves.
#[test]
fn a_reorg_that_removes_the_force_close_gets_it_broadcast_again() {
    let started = Instant::now();
    let net = Net::new(200_000_000);
    let r = net.node(ALICE).ok(&["close", &net.id, "--force"]);
    let txid = s(&r["closing_txid"]);
    net.mine(1);
    assert!(net.closing(ALICE).is_some());
    let h = net.height();
    net.chain.cli(&["reorg", "1", "--drop-mempool"]).ok();
    net.wait("both nodes to un-classify the close", || {
        (0..2)
            .all(|k| u(&net.node(k).info()["block_height"]) == h - 1 && net.closing(k).is_none())
            .then_some(())
    });
    // Both monitors broadcast a commitment again (bob's failed channel has his own out
    // too): whichever reaches the chain first is the close.
    let ch = net.channel(ALICE);
    let funding = format!("{}:{}", s(&ch["funding_txid"]), u(&ch["funding_output"]));
    let again = net.wait("a commitment broadcast again", || {
        let sp = net.chain.cli(&["spender", &funding]).ok();
        sp["txid"].as_str().map(str::to_owned)
    });
    if again != txid {
        eprintln!("bob's commitment {again} won the race against alice's {txid}");
    }
    net.mine(1);
    for k in [ALICE, BOB] {
        let c = net.closing(k).expect("classified again");
        assert_eq!(c["commitment_txid"], again.as_str(), "{c:#}");
    }
    net.finish(u64::from(DELAY) + 20);
    eprintln!(
        "reorg of the close: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Bob's sweep of his to_remote output confirms, then leaves the chain with its block (and
/// the mempool): bob broadcasts it again; it confirms and everything resolves.
#[test]
fn a_reorg_that_removes_a_claim_gets_it_broadcast_again() {
    let started = Instant::now();
    let net = Net::new(200_000_000);
    net.node(ALICE).ok(&["close", &net.id, "--force"]);
    net.mine(1);
    let claim = net.wait("bob's to_remote claim", || {
        let o = net.outputs_of_kind(BOB, "to_remote").into_iter().next()?;
        (o["state"] == "claim_broadcast").then(|| s(&o["txid"]))
    });
    net.mine(1);
    let swept = |net: &Net| {
        net.outputs_of_kind(BOB, "to_remote")
            .iter()
            .any(|o| o["state"] == "swept")
    };
    assert!(swept(&net), "bob's sweep confirmed");
    let h = net.height();
    net.chain.cli(&["reorg", "1", "--drop-mempool"]).ok();
    net.wait("bob to see the reorg", || {
        (u(&net.node(BOB).info()["block_height"]) == h - 1 && !swept(&net)).then_some(())
    });
    net.wait("bob to broadcast his claim again", || {
        net.mempool_has(&claim).then_some(())
    });
    net.mine(1);
    assert!(swept(&net), "the claim confirmed again");
    net.finish(u64::from(DELAY) + 20);
    eprintln!("reorg of a claim: {:.1}s", started.elapsed().as_secs_f64());
}

/// A node started without `--dev` refuses the dev commands with a JSON error on stderr and
/// exit code 1; `close --force` and `balance --detail` work on any node.
#[test]
fn dev_commands_need_a_dev_node() {
    let chain = ChainDaemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeDaemon::start(dir.path(), "plain", chain.datadir());
    for args in [
        vec!["dev", "hold-htlcs", "on"],
        vec!["dev", "broadcast-revoked", &"00".repeat(32)],
    ] {
        let e = node.cli(&args).err();
        assert_eq!(
            e["message"], "dev commands need a node started with --dev",
            "{args:?}: {e}"
        );
    }
    let e = node.cli(&["close", &"00".repeat(32), "--force"]).err();
    assert!(s(&e["message"]).contains("unknown channel"), "{e}");
    let d = node.ok(&["balance", "--detail"]);
    assert_eq!(d["in_limbo_sat"], 0, "{d}");
}
