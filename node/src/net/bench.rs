//! `fulmen bench pay`: the end-to-end payment load generator — payments between real
//! daemons over loopback, over one hop or `--hops N` (a line of N+1 daemons), first
//! serially, then with C payments in flight.
//!
//! Owns: choosing the payer and payee (in an existing network: the first channel, or node 0
//! and node N with `--hops N`; else a fresh line of N+1 nodes in a temporary directory,
//! whose graphs hold every channel before anything is timed), pre-creating the invoices,
//! timing each
//! `pay` RPC on the client side, and the report (payments/s, latency p50/p99) as JSON on
//! stdout and text on stderr. Must never: count a payment that did not succeed as done, or
//! leave a network it brought up itself running.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use super::network::{Network, Topology};
use super::up::{self, UpOptions};
use super::{down, node_client, Progress};
use crate::node::api::{NodeClient, PaymentStatus};
use crate::node::store::DbSync;

/// `fulmen bench pay` options.
#[derive(Debug, Clone, Args)]
pub struct PayArgs {
    /// Payments per phase (serial, then concurrent).
    #[arg(long, default_value_t = 1000)]
    pub payments: usize,
    /// Payments of the serial phase (default: --payments; 0 skips it, to measure the
    /// concurrent phase alone).
    #[arg(long, value_name = "N")]
    pub serial_payments: Option<usize>,
    /// Payments in flight in the concurrent phase.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Amount of each payment, msat.
    #[arg(long, default_value_t = 1000)]
    pub amount_msat: u64,
    /// An existing network (its first channel is used: opener pays peer). Without it, a
    /// two-node network is brought up in a temporary directory and torn down afterwards.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// With no --dir: the nodes' sqlite durability (`full` fsyncs every commit).
    #[arg(long, value_enum, default_value_t = DbSync::Full)]
    pub db_sync: DbSync,
    /// Hops from payer to payee: with no --dir, a line of N+1 nodes is brought up and its
    /// first node pays its last; with --dir, node 0 pays node N (N = 1: the first channel).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub hops: usize,
    /// With no --dir: the capacity of each channel, sat (default: enough for every
    /// payment of both phases, at least 1,000,000; at most 16,777,215).
    #[arg(long, value_name = "S")]
    pub channel_sats: Option<u64>,
}

/// Statistics of one phase.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PhaseStats {
    /// Payments attempted.
    pub payments: usize,
    /// Payments that succeeded.
    pub succeeded: usize,
    /// Payments that failed (RPC error or `failed` status).
    pub failed: usize,
    /// Payments in flight at once.
    pub concurrency: usize,
    /// Wall-clock time of the phase, seconds.
    pub seconds: f64,
    /// Succeeded payments per second.
    pub payments_per_sec: f64,
    /// Median client-side latency of one `pay` RPC, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: Option<f64>,
    /// Largest latency, milliseconds.
    pub max_ms: Option<f64>,
    /// The first failure, if any.
    pub first_failure: Option<String>,
}

/// The `p`th percentile (nearest rank, `0 < p <= 100`) of ascending `sorted`, or `None`
/// when it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .or_else(|| sorted.last().copied())
}

/// Builds a phase's statistics from per-payment latencies of the successes.
pub fn stats(
    mut latencies_ms: Vec<f64>,
    failed: usize,
    concurrency: usize,
    elapsed: Duration,
    first_failure: Option<String>,
) -> PhaseStats {
    latencies_ms.sort_by(f64::total_cmp);
    let secs = elapsed.as_secs_f64();
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let ok = latencies_ms.len();
    PhaseStats {
        payments: ok + failed,
        succeeded: ok,
        failed,
        concurrency,
        seconds: round(secs),
        payments_per_sec: if secs > 0.0 {
            round(ok as f64 / secs)
        } else {
            0.0
        },
        p50_ms: percentile(&latencies_ms, 50.0).map(round),
        p99_ms: percentile(&latencies_ms, 99.0).map(round),
        max_ms: latencies_ms.last().copied().map(round),
        first_failure,
    }
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    failed: usize,
    first_failure: Option<String>,
}

async fn pay_one(payer: &NodeClient, invoice: &str, tally: &Mutex<Tally>) {
    let t = Instant::now();
    let r = payer.pay(invoice, Some(120)).await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let Ok(mut tally) = tally.lock() else { return };
    match r {
        Ok(p) if p.status == PaymentStatus::Succeeded => tally.latencies_ms.push(ms),
        Ok(p) => {
            tally.failed += 1;
            tally
                .first_failure
                .get_or_insert_with(|| format!("{}: {}", p.status, p.failure.unwrap_or_default()));
        }
        Err(e) => {
            tally.failed += 1;
            tally.first_failure.get_or_insert_with(|| e.to_string());
        }
    }
}

async fn run_phase(
    payer: Arc<NodeClient>,
    invoices: Vec<String>,
    concurrency: usize,
    label: &str,
) -> anyhow::Result<PhaseStats> {
    let concurrency = concurrency.max(1);
    let progress = Progress::new(
        invoices.len() as u64,
        &format!("{{spinner}} {label} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, {{elapsed}})"),
    );
    let progress = Arc::new(progress);
    let queue = Arc::new(Mutex::new(VecDeque::from(invoices)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (payer, queue, tally, progress) = (
            payer.clone(),
            queue.clone(),
            tally.clone(),
            progress.clone(),
        );
        workers.spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(invoice) = next else { break };
                pay_one(&payer, &invoice, &tally).await;
                progress.inc(1);
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.context("a payment worker panicked")?;
    }
    let elapsed = started.elapsed();
    progress.finish();
    let t = std::mem::take(
        &mut *tally
            .lock()
            .map_err(|_| anyhow::anyhow!("payment tally poisoned"))?,
    );
    Ok(stats(
        t.latencies_ms,
        t.failed,
        concurrency,
        elapsed,
        t.first_failure,
    ))
}

/// `fulmen bench pay`.
pub async fn run(args: PayArgs, _net_opt: Option<&Path>) -> anyhow::Result<Value> {
    anyhow::ensure!(args.payments > 0, "--payments must be positive");
    anyhow::ensure!(args.amount_msat > 0, "--amount-msat must be positive");
    anyhow::ensure!(
        (1..up::MAX_NODES).contains(&args.hops),
        "--hops must be between 1 and {}",
        up::MAX_NODES - 1
    );
    match &args.dir {
        Some(dir) => {
            let net = Network::read(&super::network::absolute(dir)?)?;
            bench(&net, &args, false).await
        }
        None => {
            let dir = std::env::temp_dir().join(format!(
                "fulmen-bench-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            // Enough for both phases with room for fees and reserve, within the
            // non-wumbo channel limit.
            let all_payments = args.payments + args.serial_payments.unwrap_or(args.payments);
            let needed_sat = (all_payments as u64).saturating_mul(args.amount_msat) / 1000;
            let channel_sats = args.channel_sats.unwrap_or_else(|| {
                needed_sat
                    .saturating_mul(2)
                    .saturating_add(100_000)
                    .max(up::DEFAULT_CHANNEL_SATS)
            });
            anyhow::ensure!(
                channel_sats <= 16_777_215,
                "{} payments of {} msat need more than one channel can hold \
                 (--channel-sats is at most 16777215)",
                all_payments,
                args.amount_msat
            );
            let opts = UpOptions {
                dir: dir.clone(),
                nodes: args.hops + 1,
                topology: Topology::Line,
                channel_sats,
                push_percent: 0,
                db_sync: args.db_sync,
                seed: None,
                tower: false,
            };
            eprintln!(
                "bench: bringing up a line of {} nodes ({channel_sats} sat channels) in {}",
                args.hops + 1,
                dir.display()
            );
            let net = match up::up(&opts).await {
                Ok(n) => n,
                Err(e) => {
                    if Network::path(&dir).exists() {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    return Err(e);
                }
            };
            let result = tokio::select! {
                r = bench(&net, &args, true) => r,
                _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted (ctrl-c)")),
            };
            let teardown = down::down_dir(&dir, true).await;
            let value = result?;
            teardown.context("tearing the bench network down")?;
            Ok(value)
        }
    }
}

async fn bench(net: &Network, args: &PayArgs, temporary: bool) -> anyhow::Result<Value> {
    let (payer_entry, payee_entry) = if args.hops == 1 {
        let ch = net
            .channels
            .first()
            .context("the network has no channel (bring it up with at least 2 nodes)")?;
        let payer = net
            .node(&ch.from)
            .context("unknown payer in network.json")?;
        (
            payer,
            net.node(&ch.to).context("unknown payee in network.json")?,
        )
    } else {
        let payer = net.nodes.first().context("the network has no node")?;
        let payee = net.nodes.get(args.hops).with_context(|| {
            format!(
                "--hops {} needs a network of at least {} nodes",
                args.hops,
                args.hops + 1
            )
        })?;
        (payer, payee)
    };
    let payer = Arc::new(node_client(payer_entry));
    let payee = node_client(payee_entry);

    let serial_payments = args.serial_payments.unwrap_or(args.payments);
    let total = serial_payments + args.payments;
    let progress = Progress::new(
        total as u64,
        "{spinner} invoices {bar:40} {pos}/{len} ({per_sec})",
    );
    let mut invoices = Vec::with_capacity(total);
    for i in 0..total {
        let inv = payee
            .invoice(args.amount_msat, &format!("bench {i}"), Some(24 * 3600))
            .await
            .with_context(|| format!("creating invoice {i} on {}", payee_entry.name))?;
        invoices.push(inv.bolt11);
        progress.inc(1);
    }
    progress.finish();
    let concurrent_invoices = invoices.split_off(serial_payments);

    let serial = run_phase(payer.clone(), invoices, 1, "serial    ").await?;
    let concurrent = run_phase(
        payer.clone(),
        concurrent_invoices,
        args.concurrency,
        "concurrent",
    )
    .await?;

    eprintln!(
        "{}",
        human(
            &payer_entry.name,
            &payee_entry.name,
            args,
            &serial,
            &concurrent
        )
    );
    Ok(json!({
        "payer": payer_entry.name,
        "payee": payee_entry.name,
        "hops": args.hops,
        "amount_msat": args.amount_msat,
        "network": if temporary { Value::from("temporary") } else { json!(net.dir) },
        "serial": serial,
        "concurrent": concurrent,
    }))
}

fn human(payer: &str, payee: &str, args: &PayArgs, s: &PhaseStats, c: &PhaseStats) -> String {
    let ms = |v: Option<f64>| {
        v.map(|x| format!("{x:.1} ms"))
            .unwrap_or_else(|| "-".into())
    };
    let line = |name: &str, p: &PhaseStats| {
        format!(
            "{name:<22} {:>5}/{:<5} ok  {:>8.1} payments/s  p50 {:>10}  p99 {:>10}  ({:.2}s)",
            p.succeeded,
            p.payments,
            p.payments_per_sec,
            ms(p.p50_ms),
            ms(p.p99_ms),
            p.seconds
        )
    };
    format!(
        "bench pay: {payer} → {payee} ({} hop(s)), {} msat each\n{}\n{}",
        args.hops,
        args.amount_msat,
        line("serial", s),
        line(&format!("concurrent ({})", c.concurrency), c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn stats_count_only_successes_in_the_rate() {
        let s = stats(vec![3.0, 1.0, 2.0], 1, 1, Duration::from_secs(1), None);
        assert_eq!(s.payments, 4);
        assert_eq!(s.succeeded, 3);
        assert_eq!(s.p50_ms, Some(2.0));
        assert_eq!(s.max_ms, Some(3.0));
        assert!((s.payments_per_sec - 3.0).abs() < 1e-9);
    }
}
