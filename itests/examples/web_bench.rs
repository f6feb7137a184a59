//! How the web page copes with a large network: `fulmen net up --nodes N --topology random
//! --web` (default 100 nodes), headless Chromium on the page, then it prints
//! - the first draw: time from navigation until the first snapshot is drawn, and the
//!   page's own layout and DOM-update times (`window.fulmen.stats`);
//! - update latency: for P real-HTLC payments (2,000 sat, made with the CLI between random
//!   pairs), the time from the CLI's answer until the payment is in the page's state —
//!   server polling round + server-sent event + the page's update;
//! - the page's update cost per snapshot (mean and max of `applySnapshot`), and frame times
//!   (`requestAnimationFrame` intervals) over 2 s while a payment made from the page
//!   animates and snapshots arrive.
//!
//! `cargo run --release -p fulmen-itests --example web_bench -- [nodes] [payments]`
//! (build the binary first: `cargo build --release -p fulmen-node`; the example runs the
//! `fulmen` next to its own directory, or `FULMEN_BIN`).

use std::time::{Duration, Instant};

use fulmen_itests::browser::Browser;
use fulmen_itests::json_str as s;
use fulmen_itests::net::TestNet;
use serde_json::Value;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A small deterministic generator for the payment pairs.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn main() {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let payments: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let n = nodes.to_string();
    let started = Instant::now();
    // `net down` when `net` drops, also if the run below panics.
    let net = TestNet::up(&[
        "--nodes",
        &n,
        "--topology",
        "random",
        "--seed",
        "1",
        "--db-sync",
        "normal",
        "--web",
    ]);
    let up_secs = started.elapsed().as_secs_f64();
    let summary = net.summary();
    let url = s(&summary["web"]);
    let names: Vec<String> = summary["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| s(&n["name"]))
        .collect();
    let channels = summary["channels"].as_array().map_or(0, Vec::len);
    println!("net up: {nodes} nodes, {channels} channels in {up_secs:.1} s");
    run(&net, &url, &names, payments);
}

fn run(net: &TestNet, url: &str, names: &[String], payments: usize) {
    let mut b = Browser::start(1280, 800);
    let t0 = Instant::now();
    b.navigate(url);
    b.wait_for(
        "the first snapshot drawn",
        "document.body.dataset.ready === '1'",
        Duration::from_secs(120),
    );
    let first = t0.elapsed().as_secs_f64() * 1000.0;
    let stats = b.eval("window.fulmen.stats");
    let drawn = b.eval("[document.querySelectorAll('#graph g.node').length, document.querySelectorAll('#graph g.channel').length]");
    println!(
        "first draw: {first:.0} ms from navigation (page layout {:.1} ms, first DOM update incl. layout {:.1} ms); drawn nodes/channels {drawn}",
        stats["layoutMs"].as_f64().unwrap_or(f64::NAN),
        stats["maxApplyMs"].as_f64().unwrap_or(f64::NAN)
    );
    b.eval("window.fulmen.stats.maxApplyMs = 0, true");
    let before = b
        .eval("window.fulmen.stats.snapshots")
        .as_f64()
        .unwrap_or(0.0);

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut latencies = Vec::new();
    let mut failed = 0;
    for _ in 0..payments {
        let from = &names[(next(&mut rng) % names.len() as u64) as usize];
        let mut to = from;
        while to == from {
            to = &names[(next(&mut rng) % names.len() as u64) as usize];
        }
        let inv = net
            .cli(to, &["invoice", "2000000", "--description", "web bench"])
            .ok();
        let hash = s(&inv["payment_hash"]);
        let out = net.cli(from, &["pay", &s(&inv["bolt11"])]);
        let paid_at = Instant::now();
        if out.code != Some(0) || out.stdout["status"] != "succeeded" {
            failed += 1;
            continue;
        }
        let expr = format!(
            "(window.fulmen.state.payments || []).some(p => p.payment_hash === '{hash}' && p.status === 'succeeded')"
        );
        b.wait_for("the payment on the page", &expr, Duration::from_secs(60));
        latencies.push(paid_at.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let stats = b.eval("window.fulmen.stats");
    let after = stats["snapshots"].as_f64().unwrap_or(0.0);
    println!(
        "update latency (CLI pay answered -> payment in the page's state), {} payments ({failed} failed): p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 1.0)
    );
    println!(
        "page update per snapshot: last {:.1} ms, max {:.1} ms over {} snapshots",
        stats["lastApplyMs"].as_f64().unwrap_or(f64::NAN),
        stats["maxApplyMs"].as_f64().unwrap_or(f64::NAN),
        after - before
    );

    // Frame times while a payment made from the page animates.
    let (from, to) = (&names[0], &names[names.len() / 2]);
    b.eval(&format!(
        "(() => {{ const set = (id, v) => {{ const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('change', {{bubbles: true}})); }}; \
         set('pay-from', '{from}'); set('pay-to', '{to}'); set('pay-amount', '2000'); document.getElementById('pay-submit').click(); return true; }})()"
    ));
    let frames: Value = b.eval(
        "new Promise(res => { const t = []; const t0 = performance.now(); \
         function f(ts) { t.push(ts); if (ts - t0 < 2000) requestAnimationFrame(f); else { \
         const d = t.slice(1).map((x, i) => x - t[i]); d.sort((a, b) => a - b); \
         res({ frames: d.length, p50: d[Math.floor(d.length / 2)], p99: d[Math.floor(d.length * 0.99)], max: d[d.length - 1] }); } } \
         requestAnimationFrame(f); })",
    );
    println!(
        "frames over 2 s with a payment animating: {} frames, interval p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        frames["frames"],
        frames["p50"].as_f64().unwrap_or(f64::NAN),
        frames["p99"].as_f64().unwrap_or(f64::NAN),
        frames["max"].as_f64().unwrap_or(f64::NAN)
    );
}
