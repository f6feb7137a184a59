//! `fulmen net demo`: the README's main job on real daemons — alice–bob–carol in a line,
//! micropayments from each end to bob, cooperative closes, a human summary, teardown.
//!
//! Owns: the demo's sequence and its summary (payments, time, payments/s, final on-chain
//! balances, fees per node). Must never: leave daemons running or (for its own temporary
//! directory) files behind, whatever fails.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use serde_json::{json, Value};

use super::network::{Network, Topology};
use super::up::{self, UpOptions};
use super::{down, mine_and_sync, node_client, poll, Progress, SYNC_TIMEOUT};
use crate::node::api::{NodeClient, PaymentStatus};

/// `fulmen net demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Network directory (default: a fresh temporary directory, deleted afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Payments in each direction (alice→bob and carol→bob).
    #[arg(long, default_value_t = 100)]
    pub payments: u32,
    /// Amount of each payment, msat.
    #[arg(long, default_value_t = 1000)]
    pub amount_msat: u64,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Outcome of one direction's payments.
#[derive(Debug, Default)]
struct Direction {
    ok: u32,
    failed: u32,
    first_failure: Option<String>,
}

async fn pay_n(
    payer: &NodeClient,
    payee: &NodeClient,
    n: u32,
    amount_msat: u64,
    progress: &Progress,
) -> Direction {
    let mut d = Direction::default();
    for _ in 0..n {
        let result = async {
            let inv = payee.invoice(amount_msat, "fulmen demo", None).await?;
            payer.pay(&inv.bolt11, Some(60)).await
        }
        .await;
        match result {
            Ok(p) if p.status == PaymentStatus::Succeeded => d.ok += 1,
            Ok(p) => {
                d.failed += 1;
                d.first_failure.get_or_insert_with(|| {
                    format!("{}: {}", p.status, p.failure.unwrap_or_default())
                });
            }
            Err(e) => {
                d.failed += 1;
                d.first_failure.get_or_insert_with(|| e.to_string());
            }
        }
        progress.inc(1);
    }
    d
}

/// `fulmen net demo`.
pub async fn run(args: DemoArgs, _net_opt: Option<&Path>) -> anyhow::Result<Value> {
    let (dir, temporary) = match &args.dir {
        Some(d) => (super::network::absolute(d)?, false),
        None => {
            let name = format!(
                "fulmen-demo-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            );
            (std::env::temp_dir().join(name), true)
        }
    };
    let opts = UpOptions {
        dir: dir.clone(),
        nodes: 3,
        topology: Topology::Line,
        channel_sats: up::DEFAULT_CHANNEL_SATS,
        push_percent: 50,
        db_sync: crate::node::store::DbSync::Full,
        seed: None,
        tower: false,
    };
    eprintln!(
        "fulmen demo: bringing up alice–bob–carol in {}",
        dir.display()
    );
    let started = Instant::now();
    let net = match up::up(&opts).await {
        Ok(net) => net,
        Err(e) => {
            if temporary && Network::path(&dir).exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    let up_secs = started.elapsed().as_secs_f64();
    let result = tokio::select! {
        r = demo(&net, &args, up_secs) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted (ctrl-c)")),
    };
    let teardown = down::down_dir(&dir, temporary).await;
    let summary = result?;
    teardown.context("tearing the demo network down")?;
    if args.json {
        return Ok(summary);
    }
    print!("{}", human(&summary));
    if summary["failed"].as_u64().unwrap_or(0) > 0 {
        anyhow::bail!("some demo payments failed");
    }
    Ok(Value::Null)
}

async fn demo(net: &Network, args: &DemoArgs, up_secs: f64) -> anyhow::Result<Value> {
    let node = |name: &str| {
        net.node(name)
            .with_context(|| format!("the demo network has no {name}"))
    };
    let (alice, bob, carol) = (node("alice")?, node("bob")?, node("carol")?);
    let (ca, cb, cc) = (node_client(alice), node_client(bob), node_client(carol));

    let n = args.payments;
    eprintln!(
        "fulmen demo: network up in {up_secs:.1}s; {n} payments of {} msat alice→bob and carol→bob",
        args.amount_msat
    );
    let progress = Progress::new(
        2 * u64::from(n),
        "{spinner} payments {bar:40} {pos}/{len} ({per_sec}, {elapsed})",
    );
    let t = Instant::now();
    let (ab, cb_dir) = tokio::join!(
        pay_n(&ca, &cb, n, args.amount_msat, &progress),
        pay_n(&cc, &cb, n, args.amount_msat, &progress),
    );
    let pay_secs = t.elapsed().as_secs_f64();
    progress.finish();

    eprintln!("fulmen demo: closing the channels cooperatively");
    for ch in &net.channels {
        let opener = node(&ch.from)?;
        node_client(opener)
            .close_channel(&ch.channel_id)
            .await
            .with_context(|| format!("closing {} → {}", ch.from, ch.to))?;
    }
    wait_closed(net).await?;

    let mut nodes = Vec::new();
    for entry in &net.nodes {
        let client = node_client(entry);
        let b = poll(
            &format!("{}'s wallet to settle", entry.name),
            SYNC_TIMEOUT,
            || async {
                let b = client.balance().await?;
                Ok((b.onchain.unconfirmed_sat == 0 && b.pending_close_sat == 0).then_some(b))
            },
        )
        .await?;
        let pushed: i64 = net
            .channels
            .iter()
            .map(|c| {
                let p = i64::try_from(c.push_msat).unwrap_or(i64::MAX);
                if c.to == entry.name {
                    p
                } else if c.from == entry.name {
                    -p
                } else {
                    0
                }
            })
            .fold(0i64, i64::saturating_add);
        let count = match entry.name.as_str() {
            "alice" => -i64::from(ab.ok),
            "carol" => -i64::from(cb_dir.ok),
            "bob" => i64::from(ab.ok) + i64::from(cb_dir.ok),
            _ => 0,
        };
        let amount = i64::try_from(args.amount_msat).unwrap_or(i64::MAX);
        let paid = count.saturating_mul(amount);
        let msat = |sat: u64| i64::try_from(sat).unwrap_or(i64::MAX).saturating_mul(1000);
        let fees_msat = msat(entry.funded_sat)
            .saturating_add(pushed)
            .saturating_add(paid)
            .saturating_sub(msat(b.onchain.total_sat));
        nodes.push(json!({
            "name": entry.name,
            "start_sat": entry.funded_sat,
            "pushed_msat": pushed,
            "payments_msat": paid,
            "end_sat": b.onchain.total_sat,
            "fees_sat": fees_msat as f64 / 1000.0,
        }));
    }
    let total = ab.ok + cb_dir.ok;
    Ok(json!({
        "payments": total,
        "failed": ab.failed + cb_dir.failed,
        "first_failure": ab.first_failure.or(cb_dir.first_failure),
        "amount_msat": args.amount_msat,
        "seconds": round3(pay_secs),
        "payments_per_sec": if pay_secs > 0.0 { round3(f64::from(total) / pay_secs) } else { 0.0 },
        "network_up_seconds": round3(up_secs),
        "nodes": nodes,
    }))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Mines one block at a time until every channel of `net` is `closed` on both ends.
async fn wait_closed(net: &Network) -> anyhow::Result<()> {
    for _ in 0..20 {
        mine_and_sync(net, 1).await?;
        let mut all = true;
        for entry in &net.nodes {
            let list = node_client(entry).list_channels().await?;
            all &= list.channels.iter().all(|c| c.state == "closed");
        }
        if all {
            return Ok(());
        }
    }
    anyhow::bail!("the channels did not close after 20 blocks")
}

/// The summary as text.
fn human(s: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "payments: {} succeeded, {} failed, {} msat each",
        s["payments"], s["failed"], s["amount_msat"]
    );
    if let Some(f) = s["first_failure"].as_str() {
        let _ = writeln!(out, "first failure: {f}");
    }
    let _ = writeln!(
        out,
        "time: {:.2}s, {:.1} payments/s (network up in {:.1}s)",
        s["seconds"].as_f64().unwrap_or(0.0),
        s["payments_per_sec"].as_f64().unwrap_or(0.0),
        s["network_up_seconds"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<6} {:>12} {:>14} {:>14} {:>12} {:>10}",
        "node", "start sat", "pushed sat", "payments sat", "end sat", "fees sat"
    );
    let sat = |v: &Value| sat_text(v.as_f64().unwrap_or(0.0) / 1000.0);
    for n in s["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let _ = writeln!(
            out,
            "{:<6} {:>12} {:>14} {:>14} {:>12} {:>10}",
            n["name"].as_str().unwrap_or("?"),
            n["start_sat"].as_u64().unwrap_or(0),
            sat(&n["pushed_msat"]),
            sat(&n["payments_msat"]),
            n["end_sat"].as_u64().unwrap_or(0),
            sat_text(n["fees_sat"].as_f64().unwrap_or(0.0))
        );
    }
    let _ = writeln!(
        out,
        "\nstart = funded by the faucet; end = on chain after the cooperative closes;\n\
         fees = start + pushed + payments − end (funding and closing transaction fees)."
    );
    out
}

/// A sat amount for the summary table: whole sats without decimals, msat precision only
/// when there is a fraction.
fn sat_text(sat: f64) -> String {
    if sat.fract() == 0.0 {
        format!("{sat:.0}")
    } else {
        format!("{sat:.3}")
    }
}
