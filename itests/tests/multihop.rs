//! Multi-hop payments between real daemons, through the CLI only: `fulmen net up --nodes 5
//! --topology line` (which waits until every node's graph holds every channel), then
//! (a) alice pays an invoice of erin over alice–bob–carol–dave–erin: every channel moves by
//! the amount plus the fees of the hops after it, exactly (default policy: 1,000 msat +
//! 100 ppm), `route` predicted it, `forwards` on bob, carol and dave shows each one's fee;
//! `keysend` over the same four hops; `setfees` on carol, seen in alice's `route` once the
//! update arrives; (b) with erin holding HTLCs (`dev hold-htlcs on`), alice pays (`pay
//! --timeout 1` returns `pending`), carol — a middle node — is killed with SIGKILL while the
//! HTLC is in flight, erin releases the HTLC, carol is restarted (`net restart`): the
//! payment ends (never pending forever), erin's invoice is paid at most once, and every
//! channel's two ends agree on balances that add up to its capacity.
//!
//! One network for both parts keeps the file's runtime modest. Conditions are polled with
//! deadlines; the network is stopped on drop (`net down`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fulmen_itests::json_str as s;
use fulmen_itests::net::TestNet;
use fulmen_itests::{fulmen, wait_until, CliOutput};
use serde_json::Value;

/// How long a condition may take to hold.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Channel capacity `net up` uses by default, msat.
const CAPACITY_MSAT: u64 = 1_000_000 * 1000;

/// Fee a forwarder charges with the default policy (1,000 msat + 100 ppm).
fn fee(amount_msat: u64) -> u64 {
    1_000 + amount_msat * 100 / 1_000_000
}

/// A test network brought up by `fulmen net up`; `net down` on drop.
struct Net {
    net: TestNet,
    /// Channel ids in line order: alice–bob, bob–carol, carol–dave, dave–erin.
    channels: Vec<String>,
}

const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

impl Net {
    fn up() -> Net {
        let started = Instant::now();
        let net = TestNet::up(&["--nodes", "5", "--topology", "line", "--db-sync", "normal"]);
        eprintln!("net up: {:.1}s", started.elapsed().as_secs_f64());
        let channels = net.summary()["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .map(|c| s(&c["channel_id"]))
            .collect();
        Net { net, channels }
    }

    fn dir(&self) -> PathBuf {
        self.net.dir()
    }

    fn cli(&self, node: &str, args: &[&str]) -> CliOutput {
        self.net.cli(node, args)
    }

    fn ok(&self, node: &str, args: &[&str]) -> Value {
        let out = self.cli(node, args);
        if out.code != Some(0) {
            panic!(
                "{node} {args:?} failed: {} {}\n--- log ---\n{}",
                out.stdout_raw,
                out.stderr_raw,
                self.log(node)
            );
        }
        out.stdout
    }

    fn log(&self, node: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir().join(node).join("node.log")).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        text.get(start..).unwrap_or_default().to_owned()
    }

    /// The pid `network.json` records for `node`.
    fn pid(&self, node: &str) -> u32 {
        let text = std::fs::read_to_string(self.dir().join("network.json")).expect("network.json");
        let net: Value = serde_json::from_str(&text).expect("network.json is JSON");
        let n = net["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == node)
            .expect("node in network.json");
        u32::try_from(n["pid"].as_u64().expect("pid")).expect("pid fits u32")
    }

    /// `node`'s view of channel `id`.
    fn channel(&self, node: &str, id: &str) -> Option<Value> {
        self.cli(node, &["channels"]).stdout["channels"]
            .as_array()?
            .iter()
            .find(|c| c["channel_id"] == id)
            .cloned()
    }

    /// (opener's local, peer's local) of line channel `k` once neither end has an HTLC
    /// pending and both ends agree.
    fn settled_balances(&self, k: usize) -> (u64, u64) {
        let id = &self.channels[k];
        let (a, b) = (NAMES[k], NAMES[k + 1]);
        wait_until(
            &format!("channel {a}–{b} settled on both ends"),
            TIMEOUT,
            || {
                let x = self.channel(a, id)?;
                let y = self.channel(b, id)?;
                let settled = x["pending_htlcs"] == 0
                    && y["pending_htlcs"] == 0
                    && x["state"] == "active"
                    && y["state"] == "active";
                let (xl, xr) = (x["local_msat"].as_u64()?, x["remote_msat"].as_u64()?);
                let (yl, yr) = (y["local_msat"].as_u64()?, y["remote_msat"].as_u64()?);
                (settled && xl == yr && xr == yl).then_some((xl, yl))
            },
        )
    }

    fn all_balances(&self) -> Vec<(u64, u64)> {
        (0..self.channels.len())
            .map(|k| self.settled_balances(k))
            .collect()
    }

    fn invoice(&self, node: &str, msat: u64) -> Value {
        self.ok(node, &["invoice", &msat.to_string()])
    }
}

fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie (state Z) is dead too.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[test]
fn five_node_line_exact_fees_keysend_setfees_and_a_middle_node_killed_mid_payment() {
    let t = Instant::now();
    let net = Net::up();
    assert_eq!(net.channels.len(), 4);
    for name in NAMES {
        let g = net.ok(name, &["graph"]);
        assert_eq!(g["num_channels"], 4, "{name}: {g}");
        assert_eq!(g["num_nodes"], 5, "{name}: {g}");
    }
    let full = net.ok("alice", &["graph", "--json"]);
    assert_eq!(full["channels"].as_array().map(Vec::len), Some(4), "{full}");
    assert_eq!(full["nodes"].as_array().map(Vec::len), Some(5), "{full}");

    exact_fees_forwards_keysend_setfees(&net);
    eprintln!("part (a) done at {:.1}s", t.elapsed().as_secs_f64());
    middle_node_killed_mid_payment(&net);
    eprintln!("part (b) done at {:.1}s", t.elapsed().as_secs_f64());
}

/// (a) Exact fees over four hops; `route`, `forwards`, `keysend`, `setfees`.
fn exact_fees_forwards_keysend_setfees(net: &Net) {
    let amount: u64 = 20_000_000;
    // Fees accumulate from the payee back: dave forwards `amount`, carol dave's input, …
    let at_d = amount + fee(amount);
    let at_c = at_d + fee(at_d);
    let at_b = at_c + fee(at_c);
    let moved = [at_b, at_c, at_d, amount];

    let route = net.ok("alice", &["route", "erin", &amount.to_string()]);
    assert_eq!(route["hops"].as_array().map(Vec::len), Some(4), "{route}");
    assert_eq!(route["total_amount_msat"], at_b, "{route}");
    assert_eq!(route["total_fee_msat"], at_b - amount, "{route}");

    let before = net.all_balances();
    let inv = net.invoice("erin", amount);
    let p = net.ok("alice", &["pay", &s(&inv["bolt11"]), "--timeout", "30"]);
    assert_eq!(p["status"], "succeeded", "{p}");
    assert_eq!(p["fee_msat"], at_b - amount, "{p}");
    let after = net.all_balances();
    for k in 0..4 {
        assert_eq!(
            after[k].0,
            before[k].0 - moved[k],
            "channel {k} opener side"
        );
        assert_eq!(after[k].1, before[k].1 + moved[k], "channel {k} peer side");
    }
    for (name, earned) in [
        ("bob", at_b - at_c),
        ("carol", at_c - at_d),
        ("dave", at_d - amount),
    ] {
        let f = net.ok(name, &["forwards"]);
        assert_eq!(f["fees_earned_msat"], earned, "{name}: {f}");
        let fw = f["forwards"].as_array().expect("forwards");
        assert_eq!(fw.len(), 1, "{name}: {f}");
        assert_eq!(fw[0]["status"], "settled", "{name}: {f}");
        assert_eq!(fw[0]["fee_msat"], earned, "{name}: {f}");
    }
    let f = net.ok("alice", &["forwards"]);
    assert_eq!(f["fees_earned_msat"], 0, "the payer forwards nothing: {f}");

    // keysend over the same four hops.
    let ks: u64 = 30_000_000;
    let k = net.ok(
        "alice",
        &["keysend", "erin", &ks.to_string(), "--timeout", "30"],
    );
    assert_eq!(k["status"], "succeeded", "{k}");
    let ks_d = ks + fee(ks);
    let ks_c = ks_d + fee(ks_d);
    assert_eq!(k["fee_msat"], ks_c + fee(ks_c) - ks, "{k}");
    let invoices = net.ok("erin", &["invoices"]);
    assert!(
        invoices["invoices"]
            .as_array()
            .expect("invoices")
            .iter()
            .any(|i| i["description"] == "keysend"
                && i["status"] == "paid"
                && i["received_msat"] == ks),
        "{invoices}"
    );
    // `payments --last 1`: only the newest (the keysend), with its four-hop route.
    let all = net.ok("alice", &["payments"]);
    let last = net.ok("alice", &["payments", "--last", "1"]);
    let all = all["payments"].as_array().expect("payments");
    assert!(all.len() >= 2, "{all:?}");
    assert_eq!(last["payments"].as_array().map(Vec::len), Some(1), "{last}");
    assert_eq!(last["payments"][0], all[all.len() - 1]);
    assert_eq!(last["payments"][0]["payment_hash"], k["payment_hash"]);
    assert_eq!(
        last["payments"][0]["route"].as_array().map(Vec::len),
        Some(4)
    );

    // carol raises her fee on carol–dave; alice's route sees it once the update arrives.
    let fs = net.ok(
        "carol",
        &[
            "setfees",
            &net.channels[2],
            "--base-msat",
            "5000",
            "--ppm",
            "1000",
        ],
    );
    assert_eq!(fs["fee_base_msat"], 5000, "{fs}");
    assert_eq!(fs["fee_ppm"], 1000, "{fs}");
    let carol_fee = 5_000 + at_d * 1_000 / 1_000_000;
    let want = at_d + carol_fee;
    let want = want + fee(want);
    wait_until("alice's route to show carol's new fee", TIMEOUT, || {
        let r = net
            .cli("alice", &["route", "erin", &amount.to_string()])
            .stdout;
        (r["total_amount_msat"] == want).then_some(())
    });
    // Back to the default, so part (b) runs on the default policy everywhere.
    net.ok(
        "carol",
        &[
            "setfees",
            &net.channels[2],
            "--base-msat",
            "1000",
            "--ppm",
            "100",
        ],
    );
    wait_until(
        "alice's route to show carol's fee restored",
        TIMEOUT,
        || {
            let r = net
                .cli("alice", &["route", "erin", &amount.to_string()])
                .stdout;
            (r["total_amount_msat"] == at_b).then_some(())
        },
    );
}

/// (b) A middle node killed with an HTLC in flight, restarted: the payment ends, once.
fn middle_node_killed_mid_payment(net: &Net) {
    let amount: u64 = 20_000_000;
    let before = net.all_balances();
    let erin_invoices_before = net.ok("erin", &["invoices"])["invoices"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);

    net.ok("erin", &["dev", "hold-htlcs", "on"]);
    let inv = net.invoice("erin", amount);
    let hash = s(&inv["payment_hash"]);
    let p = net.ok("alice", &["pay", &s(&inv["bolt11"]), "--timeout", "1"]);
    assert_eq!(p["status"], "pending", "held at erin: {p}");
    // The HTLC reached erin (held there): it is in flight on every hop.
    let last = net.channels[3].clone();
    wait_until("the HTLC to reach erin", TIMEOUT, || {
        let c = net.channel("erin", &last)?;
        (c["pending_htlcs"] == 1).then_some(())
    });

    // Kill carol (SIGKILL), then let erin settle with dave while carol is down: dave has
    // the preimage and must get paid by carol once she is back.
    let pid = net.pid("carol");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_until("carol to die", TIMEOUT, || is_dead(pid).then_some(()));
    net.ok("erin", &["dev", "hold-htlcs", "off"]);
    let dir = net.dir();
    fulmen(&[
        "net",
        "restart",
        "carol",
        "--dir",
        dir.to_str().expect("utf-8"),
    ])
    .ok();

    // The payment ends: succeeded or failed, never pending forever.
    let outcome = wait_until("alice's payment to end", TIMEOUT, || {
        let list = net.cli("alice", &["payments"]).stdout;
        let mine: Vec<Value> = list["payments"]
            .as_array()?
            .iter()
            .filter(|p| p["payment_hash"] == hash.as_str())
            .cloned()
            .collect();
        assert_eq!(mine.len(), 1, "one payment per hash: {list}");
        let p = mine.into_iter().next()?;
        (p["status"] != "pending").then_some(p)
    });
    eprintln!(
        "after the kill: payment {} (fee {} msat, attempts {})",
        outcome["status"], outcome["fee_msat"], outcome["attempts"]
    );

    let after = net.all_balances();
    for (k, (x, y)) in after.iter().enumerate() {
        assert_eq!(x + y, CAPACITY_MSAT, "channel {k} holds its capacity");
    }
    // Erin's invoice: paid at most once, for exactly its amount.
    let invoices = net.ok("erin", &["invoices"]);
    let list = invoices["invoices"].as_array().expect("invoices");
    assert_eq!(list.len(), erin_invoices_before + 1, "{invoices}");
    let i = list
        .iter()
        .find(|i| i["payment_hash"] == hash.as_str())
        .expect("the invoice");
    let erin_moved = after[3].1 - before[3].1;
    let alice_moved = before[0].0 - after[0].0;
    if outcome["status"] == "succeeded" {
        assert_eq!(i["status"], "paid", "{i}");
        assert_eq!(i["received_msat"], amount, "{i}");
        assert_eq!(erin_moved, amount, "erin received the amount once");
        let fee_msat = outcome["fee_msat"].as_u64().expect("fee");
        assert_eq!(alice_moved, amount + fee_msat, "alice paid once");
        // Each middle hop moved the amount plus the fees after it, once.
        let at_d = amount + fee(amount);
        let at_c = at_d + fee(at_d);
        for (k, m) in [(1, at_c), (2, at_d)] {
            assert_eq!(before[k].0 - after[k].0, m, "channel {k}");
        }
    } else {
        assert_eq!(outcome["status"], "failed", "{outcome}");
        assert_eq!(alice_moved, 0, "a failed payment costs alice nothing");
        assert_ne!(
            i["status"], "paid",
            "erin not paid for a failed payment: {i}"
        );
        assert_eq!(erin_moved, 0);
    }
}
