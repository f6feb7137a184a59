//! End-to-end tests of the node daemon (`fulmen node run`) driven through the CLI: open,
//! 100 payments (half dust micropayments of 1 sat, half real HTLCs of 2,000 sat, above the
//! ≈ 877-sat trim threshold at 500 sat/kw, so HTLC outputs and HTLC signatures cross between
//! the daemons) and a cooperative close with balances checked to the sat; payee and then
//! payer killed with SIGKILL while an HTLC is in flight in a concurrent stream of real-HTLC
//! and dust payments, and restarted, with nothing lost or paid twice; and a peer sending garbage after the handshake, disconnected while the
//! node keeps serving its other peers; a closed channel still closed after a restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::consensus::encode;
use bitcoin::Transaction;
use fulmen_itests::node::{NodeDaemon, PAY_TIMEOUT};
use fulmen_itests::{fulmen, wait_until, ChainDaemon, DAEMON_TIMEOUT};
use serde_json::Value;

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// Chain with mature faucet coins, and two nodes; `alice` funded with `fund_sat`.
struct Net {
    chain: ChainDaemon,
    alice: NodeDaemon,
    bob: NodeDaemon,
    _dir: tempfile::TempDir,
}

impl Net {
    fn new(fund_sat: u64) -> Net {
        let chain = ChainDaemon::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let alice = NodeDaemon::start(dir.path(), "alice", chain.datadir());
        let bob = NodeDaemon::start(dir.path(), "bob", chain.datadir());
        chain.cli(&["mine", "101"]).ok();
        let addr = s(&alice.ok(&["newaddress"])["address"]);
        chain.cli(&["fund", &addr, &fund_sat.to_string()]).ok();
        let net = Net {
            chain,
            alice,
            bob,
            _dir: dir,
        };
        net.mine(1);
        net
    }

    fn height(&self) -> u64 {
        self.chain.cli(&["info"]).ok()["height"]
            .as_u64()
            .expect("height")
    }

    /// Mines `n` blocks and waits until both nodes processed them.
    fn mine(&self, n: u32) {
        self.chain.cli(&["mine", &n.to_string()]).ok();
        let h = self.height();
        self.alice.wait_height(h);
        self.bob.wait_height(h);
    }

    /// Connects alice to bob and opens a channel; returns (channel id, funding txid).
    fn open(&self, sats: u64, push_msat: u64) -> (String, String) {
        self.alice.ok(&["connect", &self.bob.uri()]);
        let bob_id = self.bob.node_id();
        let r = self.alice.ok(&[
            "open",
            &bob_id,
            &sats.to_string(),
            "--push-msat",
            &push_msat.to_string(),
        ]);
        let id = s(&r["channel_id"]);
        self.mine(3);
        self.alice.wait_channel_state(&id, "active");
        self.bob.wait_channel_state(&id, "active");
        (id, s(&r["funding_txid"]))
    }

    fn tx(&self, txid: &str) -> Transaction {
        let info = self.chain.cli(&["tx", txid]).ok();
        let raw = hex_decode(&s(&info["hex"]));
        encode::deserialize(&raw).expect("transaction")
    }
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Waits until `node`'s balance in channel `id` is `msat` with no HTLC pending (the last
/// commitment dance may still be running when the payer already has the preimage).
fn wait_local(node: &NodeDaemon, id: &str, msat: u64) -> Value {
    wait_until(
        &format!("{}: local balance {msat} msat in {id}", node.name()),
        DAEMON_TIMEOUT,
        || {
            let c = node.cli(&["channels"]).stdout["channels"]
                .as_array()?
                .iter()
                .find(|c| c["channel_id"] == id)?
                .clone();
            (c["local_msat"] == msat && c["pending_htlcs"] == 0).then_some(c)
        },
    )
}

/// A real HTLC: above the trim threshold (dust limit + HTLC-tx fee ≈ 877 sat at 500 sat/kw).
const REAL_MSAT: u64 = 2_000_000;
/// A micropayment: below the trim threshold (no HTLC output).
const DUST_MSAT: u64 = 1_000;

fn invoice(node: &NodeDaemon, msat: u64) -> String {
    s(&node.ok(&["invoice", &msat.to_string()])["bolt11"])
}

#[test]
fn open_pay_100_and_close_balances_to_the_sat() {
    const FUND: u64 = 2_000_000;
    const CAP: u64 = 1_000_000;
    const PUSH_SAT: u64 = 400_000;
    let net = Net::new(FUND);
    assert_eq!(net.alice.onchain_sat(), FUND);
    assert_eq!(net.bob.onchain_sat(), 0);
    let (id, funding_txid) = net.open(CAP, PUSH_SAT * 1000);
    let funding = net.tx(&funding_txid);
    // Alice's wallet had one coin of FUND sat: the funding fee is what the outputs miss.
    let funding_fee = FUND - funding.output.iter().map(|o| o.value.to_sat()).sum::<u64>();

    // Alternately a real HTLC and a dust micropayment: 50 × 2,000 sat + 50 × 1 sat.
    let mut moved_msat = 0;
    let mut first = None;
    for i in 0..100 {
        let msat = if i % 2 == 0 { REAL_MSAT } else { DUST_MSAT };
        let inv = invoice(&net.bob, msat);
        first.get_or_insert_with(|| inv.clone());
        let p = net.alice.ok(&["pay", &inv]);
        assert_eq!(p["status"], "succeeded", "{p}");
        assert_eq!(p["amount_msat"], msat);
        moved_msat += msat;
    }
    let moved_sat = moved_msat / 1000;
    assert_eq!(moved_sat, 100_050);
    wait_local(&net.alice, &id, (CAP - PUSH_SAT) * 1000 - moved_msat);
    wait_local(&net.bob, &id, PUSH_SAT * 1000 + moved_msat);
    let paid = net.alice.ok(&["payments"])["payments"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["status"] == "succeeded").count());
    assert_eq!(paid, Some(100));
    // The first payment is long out of alice's memory (only in her store): paying its
    // invoice again is still refused.
    let again = net
        .alice
        .cli(&["pay", first.as_deref().unwrap_or_default()])
        .err();
    assert!(again.to_string().contains("already paid"), "{again}");
    let received = net.bob.ok(&["invoices"])["invoices"]
        .as_array()
        .map(|i| i.iter().filter(|i| i["status"] == "paid").count());
    assert_eq!(received, Some(100));

    let close = net.alice.ok(&["close", &id]);
    let closing = net.tx(&s(&close["closing_txid"]));
    let closing_fee = CAP - closing.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
    net.mine(1);
    net.alice.wait_channel_state(&id, "closed");
    net.bob.wait_channel_state(&id, "closed");
    // The opener pays both fees; the 100 payments moved `moved_sat` to bob.
    assert_eq!(
        net.alice.onchain_sat(),
        FUND - funding_fee - closing_fee - PUSH_SAT - moved_sat
    );
    assert_eq!(net.bob.onchain_sat(), PUSH_SAT + moved_sat);
    let bal = net.alice.ok(&["balance"]);
    assert_eq!(bal["total_sat"], bal["onchain"]["total_sat"], "{bal}");
}

/// Pays every invoice from `payer_dir` with `threads` concurrent payers, retrying while a
/// node is down; returns when each invoice got a final answer or went in flight.
fn pay_stream(
    payer_dir: String,
    invoices: Vec<String>,
    threads: usize,
) -> Vec<std::thread::JoinHandle<()>> {
    let next = Arc::new(AtomicUsize::new(0));
    let invoices = Arc::new(invoices);
    (0..threads)
        .map(|_| {
            let next = next.clone();
            let invoices = invoices.clone();
            let dir = payer_dir.clone();
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(inv) = invoices.get(i) else { return };
                let deadline = Instant::now() + PAY_TIMEOUT;
                loop {
                    let out = fulmen(&["--datadir", &dir, "pay", inv, "--timeout", "30"]);
                    let text = format!("{} {}", out.stdout_raw, out.stderr_raw);
                    if out.code == Some(0)
                        || text.contains("in flight")
                        || text.contains("already paid")
                    {
                        break;
                    }
                    // Refused before it left: a node is down or reconnecting. Retry.
                    assert!(
                        Instant::now() < deadline,
                        "payment {i} never went out: {text}"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect()
}

/// HTLCs in `node`'s current commitment of channel `id`.
fn pending_htlcs(node: &NodeDaemon, id: &str) -> Option<u64> {
    let out = node.cli(&["channels"]);
    let chans = out.stdout["channels"].as_array()?.clone();
    chans
        .iter()
        .find(|c| c["channel_id"] == id)?
        .get("pending_htlcs")?
        .as_u64()
}

/// Kills `victim` with SIGKILL at a moment its peer `witness` still holds an HTLC in its
/// commitment after the kill — so an HTLC was in flight when the SIGKILL landed (the dead
/// side cannot settle anything). Retries (restarting the victim) if a kill fell between
/// payments; returns the number of HTLCs the witness held.
fn crash_with_htlc_in_flight(victim: &mut NodeDaemon, witness: &NodeDaemon, id: &str) -> u64 {
    for _ in 0..20 {
        wait_until("an HTLC in flight", PAY_TIMEOUT, || {
            (pending_htlcs(witness, id)? > 0).then_some(())
        });
        victim.crash();
        if let Some(n @ 1..) = pending_htlcs(witness, id) {
            return n;
        }
        victim.restart();
    }
    panic!("no SIGKILL landed while an HTLC was in flight in 20 tries");
}

fn paid_count(node: &NodeDaemon) -> Option<usize> {
    let out = node.cli(&["invoices"]);
    let invs = out.stdout["invoices"].as_array()?.clone();
    Some(invs.iter().filter(|i| i["status"] == "paid").count())
}

#[test]
fn nodes_killed_mid_stream_lose_nothing_and_pay_nothing_twice() {
    const N: usize = 60;
    let mut net = Net::new(2_000_000);
    let (id, _) = net.open(1_000_000, 0);
    // Three real HTLCs for every dust payment.
    let amount = |i: usize| if i % 4 == 3 { DUST_MSAT } else { REAL_MSAT };
    let invoices: Vec<String> = (0..N).map(|i| invoice(&net.bob, amount(i))).collect();
    let alice_dir = net.alice.datadir().to_str().expect("utf-8").to_owned();
    let payers = pay_stream(alice_dir, invoices, 4);
    // Crash the payee while an HTLC is in flight, then the payer.
    wait_until("10 payments", PAY_TIMEOUT, || {
        (paid_count(&net.bob)? >= 10).then_some(())
    });
    let held = crash_with_htlc_in_flight(&mut net.bob, &net.alice, &id);
    eprintln!("payee killed with {held} HTLC(s) in flight");
    net.bob.restart();
    wait_until("30 payments", PAY_TIMEOUT, || {
        (paid_count(&net.bob)? >= 30).then_some(())
    });
    let held = crash_with_htlc_in_flight(&mut net.alice, &net.bob, &id);
    eprintln!("payer killed with {held} HTLC(s) in flight");
    net.alice.restart();
    for p in payers {
        p.join().expect("payer thread");
    }
    net.alice.wait_channel_state(&id, "active");
    // Every payment settles one way or the other.
    let payments = wait_until("no payment left pending", PAY_TIMEOUT, || {
        let p = net.alice.cli(&["payments"]).stdout["payments"]
            .as_array()?
            .clone();
        p.iter().all(|p| p["status"] != "pending").then_some(p)
    });
    let by_hash: HashMap<String, String> = payments
        .iter()
        .map(|p| (s(&p["payment_hash"]), s(&p["status"])))
        .collect();
    let invs = net.bob.ok(&["invoices"])["invoices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(invs.len(), N);
    let mut paid = 0u64;
    let mut paid_msat = 0u64;
    for inv in &invs {
        let hash = s(&inv["payment_hash"]);
        let received = inv["status"] == "paid";
        let sent = by_hash.get(&hash).map(String::as_str) == Some("succeeded");
        assert_eq!(
            received,
            sent,
            "invoice {hash}: payee {inv} vs payer {:?}",
            by_hash.get(&hash)
        );
        if received {
            paid += 1;
            assert_eq!(inv["received_msat"], inv["amount_msat"], "{inv}");
            paid_msat += inv["amount_msat"].as_u64().unwrap_or(0);
        }
    }
    eprintln!("{paid} of {N} paid across two crashes");
    assert_eq!(paid as usize, N, "every invoice is paid exactly once");
    let expected: u64 = (0..N).map(amount).sum();
    assert_eq!(paid_msat, expected);
    wait_local(&net.alice, &id, 1_000_000_000 - paid_msat);
    wait_local(&net.bob, &id, paid_msat);
}

#[test]
fn garbage_after_the_handshake_disconnects_only_that_peer() {
    let net = Net::new(2_000_000);
    let (id, _) = net.open(1_000_000, 0);
    let bob_id: bitcoin::secp256k1::PublicKey = net.bob.node_id().parse().expect("node id");
    let port: u16 = net
        .bob
        .uri()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let reason = rt.block_on(async {
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let sk = bitcoin::secp256k1::SecretKey::from_slice(&[0x42; 32]).expect("key");
        let identity = std::sync::Arc::new(fulmen_wire::transport::NoiseIdentity::new(
            &secp, &sk, [0x24; 32],
        ));
        let mut peer = fulmen_node::peer::connect(
            identity,
            bob_id,
            format!("127.0.0.1:{port}").parse().expect("addr"),
            fulmen_node::peer::PeerConfig {
                chain_hash: Some(bitcoin::constants::ChainHash::REGTEST.to_bytes()),
                ..Default::default()
            },
        )
        .await
        .expect("handshake with bob");
        // An update_add_htlc (type 128) cut short: not a message.
        peer.sender()
            .send_encoded(vec![0x00, 0x80, 0xde, 0xad])
            .expect("queued");
        let deadline = tokio::time::Instant::now() + DAEMON_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, peer.recv()).await {
                Ok(Some(fulmen_node::peer::PeerEvent::Disconnected(r))) => return Some(r),
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(_) => panic!("bob did not disconnect the garbage peer"),
            }
        }
    });
    eprintln!("garbage peer disconnected: {reason:?}");
    // Bob still serves alice.
    let inv = invoice(&net.bob, 5_000);
    let p = net.alice.ok(&["pay", &inv]);
    assert_eq!(p["status"], "succeeded", "{p}");
    wait_local(&net.bob, &id, 5_000);
    let peers = net.bob.ok(&["peers"]);
    let connected: Vec<&Value> = peers["peers"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["connected"] == true).collect())
        .unwrap_or_default();
    assert_eq!(connected.len(), 1, "{peers}");
}

#[test]
fn wallet_follows_reorgs_and_survives_a_clean_restart() {
    let mut net = Net::new(1_000_000);
    let confirmed = |n: &NodeDaemon| n.ok(&["balance"])["onchain"]["confirmed_sat"].as_u64();
    assert_eq!(confirmed(&net.alice), Some(1_000_000));
    // Pay bob on chain through a second faucet payment, then reorg its block away.
    let addr = s(&net.bob.ok(&["newaddress"])["address"]);
    net.chain.cli(&["fund", &addr, "250000"]).ok();
    net.mine(1);
    assert_eq!(confirmed(&net.bob), Some(250_000));
    let h = net.height();
    net.chain.cli(&["reorg", "1"]).ok();
    // The transaction is back in the mempool: unconfirmed for bob after he follows.
    wait_until("bob to see the reorg", DAEMON_TIMEOUT, || {
        let b = net.bob.cli(&["balance"]).stdout;
        (b["onchain"]["confirmed_sat"] == 0
            && net.bob.cli(&["info"]).stdout["block_height"] == h - 1)
            .then_some(())
    });
    net.mine(2);
    assert_eq!(confirmed(&net.bob), Some(250_000));
    // A clean stop and a restart keep everything.
    assert_eq!(net.bob.stop(), Some(0));
    net.bob.restart();
    net.bob.wait_height(h + 1);
    assert_eq!(confirmed(&net.bob), Some(250_000));
}

#[test]
fn payment_failures_are_reported_precisely() {
    let net = Net::new(2_000_000);
    let (id, _) = net.open(1_000_000, 0);
    let error = |out: fulmen_itests::CliOutput| -> String { out.err().to_string() };

    let own = invoice(&net.alice, 1_000);
    let e = error(net.alice.cli(&["pay", &own]));
    assert!(e.contains("own invoice"), "{e}");

    let too_big = invoice(&net.bob, 2_000_000_000);
    let e = error(net.alice.cli(&["pay", &too_big]));
    assert!(e.contains("cannot send"), "{e}");

    // An invoice signed with bob's node key for a payment hash bob never issued: the HTLC
    // reaches bob, who fails it back; alice decodes bob's failure from the error onion.
    let keys =
        fulmen_node::node::keys::NodeKeys::load_or_create(net.bob.datadir()).expect("bob's keys");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let params = fulmen_htlc::invoice::InvoiceParams {
        amount_msat: Some(5_000),
        payment_hash: fulmen_htlc::PaymentHash([7; 32]),
        payment_secret: fulmen_htlc::PaymentSecret([9; 32]),
        description: fulmen_htlc::invoice::InvoiceDescription::Direct("not bob's".into()),
        timestamp_secs: now,
        expiry_secs: 3600,
        min_final_cltv_expiry_delta: 18,
        route_hints: Vec::new(),
        basic_mpp: false,
    };
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let forged =
        fulmen_htlc::invoice::create_invoice(&secp, &params, &keys.node_secret).expect("invoice");
    let e = error(net.alice.cli(&["pay", forged.as_str()]));
    assert!(e.contains("IncorrectOrUnknownPaymentDetails"), "{e}");
    let failed = net.alice.ok(&["payments"])["payments"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["status"] == "failed").cloned())
        .expect("a failed payment");
    assert!(s(&failed["failure"]).contains("at hop 0"), "{failed}");

    let good = invoice(&net.bob, 1_000);
    assert_eq!(net.alice.ok(&["pay", &good])["status"], "succeeded");
    let e = error(net.alice.cli(&["pay", &good]));
    assert!(e.contains("already paid"), "{e}");
    // Only the one successful payment moved money.
    wait_local(&net.alice, &id, 1_000_000_000 - 1_000);
    wait_local(&net.bob, &id, 1_000);
}

#[test]
fn a_closed_channel_is_still_closed_after_a_restart() {
    let mut net = Net::new(2_000_000);
    let (id, _) = net.open(1_000_000, 0);
    net.alice.ok(&["close", &id]);
    net.mine(1);
    net.alice.wait_channel_state(&id, "closed");
    let h = net.height();
    assert_eq!(net.alice.stop(), Some(0));
    net.alice.restart();
    net.alice.wait_height(h);
    // No new block: the closing height must come from the store, not from the chain again.
    let chans = net.alice.ok(&["channels"]);
    let state = chans["channels"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["channel_id"] == id.as_str()))
        .map(|c| c["state"].clone());
    assert_eq!(state, Some(Value::from("closed")), "{chans}");
}
