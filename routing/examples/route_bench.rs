//! Pathfinding benchmark on the shared synthetic graph (`/work/shared/bench`, `graphgen`).
//!
//! Owns: reading the graph CSVs into a [`NetworkGraph`], picking query pairs with a fixed
//! seed, timing one [`PathFinder::find_route`] per pair and printing the results. This is a
//! binary: it may read files, the clock and `/proc/self/status`; the library may not.
//!
//! ```text
//! route_bench --graph G.csv --nodes N.csv --pairs P.csv --amount-msat A [--learned K --seed S]
//! route_bench --graph G.csv --nodes N.csv --make-pairs N --seed S --out P.csv
//! ```
//!
//! The first form prints `idx,ok,hops,fee_msat,cltv,micros` per query on stdout and a
//! summary on stderr; the second writes `idx,source,destination` pairs (node indexes) drawn
//! with a splitmix64 generator among pairs connected over enabled directions. `--learned K`
//! first teaches the scorer K bounds on random directions (half failures at a random share
//! of the capacity, half successes), to time queries against a scorer that knows something.

use std::collections::VecDeque;
use std::fs;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use bitcoin::secp256k1::PublicKey;
use fulmen_routing::graph::direction_between;
use fulmen_routing::{
    DirectedPolicy, GraphChange, NetworkGraph, PathFinder, ProbabilisticScorer, RouteParams,
    ScorerParams,
};
use fulmen_wire::ShortChannelId;

/// One direction row of the graph CSV.
struct Row {
    scid: u64,
    from: usize,
    to: usize,
    capacity_sat: u64,
    policy: DirectedPolicy,
}

fn field<T: FromStr>(parts: &[&str], i: usize, line: usize) -> Result<T, String> {
    parts
        .get(i)
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("line {line}: bad field {i}"))
}

fn parse_bool(s: Option<&&str>, line: usize) -> Result<bool, String> {
    match s.map(|s| s.trim()) {
        Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        _ => Err(format!("line {line}: bad enabled flag")),
    }
}

fn load_nodes(path: &str) -> Result<Vec<PublicKey>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let parts: Vec<&str> = line.split(',').collect();
        let idx: usize = field(&parts, 0, n + 1)?;
        if idx != keys.len() {
            return Err(format!("line {}: node indexes must be 0, 1, 2, …", n + 1));
        }
        let hex = parts.get(1).ok_or(format!("line {}: no key", n + 1))?;
        keys.push(PublicKey::from_str(hex.trim()).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(keys)
}

fn load_rows(path: &str) -> Result<Vec<Row>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let l = n + 1;
        let p: Vec<&str> = line.split(',').collect();
        rows.push(Row {
            scid: field(&p, 0, l)?,
            from: field(&p, 1, l)?,
            to: field(&p, 2, l)?,
            capacity_sat: field(&p, 3, l)?,
            policy: DirectedPolicy {
                fee_base_msat: field(&p, 4, l)?,
                fee_proportional_millionths: field(&p, 5, l)?,
                cltv_expiry_delta: field(&p, 6, l)?,
                htlc_minimum_msat: field(&p, 7, l)?,
                htlc_maximum_msat: field(&p, 8, l)?,
                enabled: parse_bool(p.get(9), l)?,
                timestamp: 1,
            },
        });
    }
    Ok(rows)
}

fn build_graph(keys: &[PublicKey], rows: &[Row]) -> Result<NetworkGraph, String> {
    let mut g = NetworkGraph::new();
    for r in rows {
        let (Some(a), Some(b)) = (keys.get(r.from), keys.get(r.to)) else {
            return Err(format!("scid {}: node index out of range", r.scid));
        };
        let scid = ShortChannelId::from_u64(r.scid);
        g.apply(&GraphChange::ChannelAdded {
            short_channel_id: scid,
            node_1: *a,
            node_2: *b,
            capacity_sat: r.capacity_sat,
        })
        .map_err(|e| e.to_string())?;
        g.apply(&GraphChange::PolicyUpdated {
            short_channel_id: scid,
            direction: direction_between(a, b),
            policy: r.policy,
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(g)
}

/// Adjacency over enabled directions that can carry `amount_msat` (htlc minimum and
/// maximum, capacity; fees ignored), by node index. `amount_msat = None`: any amount.
fn enabled_adjacency(n: usize, rows: &[Row], amount_msat: Option<u64>) -> Vec<Vec<u32>> {
    let mut adj = vec![Vec::new(); n];
    for r in rows {
        let carries = amount_msat.is_none_or(|a| {
            a >= r.policy.htlc_minimum_msat
                && a <= r.policy.htlc_maximum_msat
                && a <= r.capacity_sat.saturating_mul(1000)
        });
        if r.policy.enabled && carries {
            if let Some(list) = adj.get_mut(r.from) {
                list.push(r.to as u32);
            }
        }
    }
    adj
}

/// Nodes reachable from `s` over enabled directions.
fn reachable_from(adj: &[Vec<u32>], s: usize) -> Vec<bool> {
    let mut seen = vec![false; adj.len()];
    let mut queue = VecDeque::new();
    if let Some(x) = seen.get_mut(s) {
        *x = true;
        queue.push_back(s);
    }
    while let Some(x) = queue.pop_front() {
        for &y in adj.get(x).map(|v| v.as_slice()).unwrap_or(&[]) {
            if let Some(flag) = seen.get_mut(y as usize) {
                if !*flag {
                    *flag = true;
                    queue.push_back(y as usize);
                }
            }
        }
    }
    seen
}

/// splitmix64: a tiny, seedable generator (enough to pick benchmark pairs).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

struct Args {
    graph: String,
    nodes: String,
    pairs: Option<String>,
    amount_msat: u64,
    make_pairs: Option<usize>,
    learned: usize,
    seed: u64,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        graph: String::new(),
        nodes: String::new(),
        pairs: None,
        amount_msat: 100_000,
        make_pairs: None,
        learned: 0,
        seed: 1,
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--graph" => a.graph = val.clone(),
            "--nodes" => a.nodes = val.clone(),
            "--pairs" => a.pairs = Some(val.clone()),
            "--amount-msat" => a.amount_msat = num(val)?,
            "--make-pairs" => a.make_pairs = Some(num(val)? as usize),
            "--seed" => a.seed = num(val)?,
            "--learned" => a.learned = num(val)? as usize,
            "--out" => a.out = Some(val.clone()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.graph.is_empty() || a.nodes.is_empty() {
        return Err("--graph and --nodes are required".into());
    }
    Ok(a)
}

fn make_pairs(args: &Args, n_pairs: usize, keys: &[PublicKey], rows: &[Row]) -> Result<(), String> {
    let out = args.out.as_ref().ok_or("--make-pairs needs --out")?;
    let adj = enabled_adjacency(keys.len(), rows, None);
    let mut rng = SplitMix(args.seed);
    let mut text = String::from("idx,source,destination\n");
    let (mut made, mut tries) = (0, 0);
    while made < n_pairs {
        tries += 1;
        if tries > n_pairs * 100 {
            return Err("too few connected pairs".into());
        }
        let s = rng.below(keys.len());
        let d = rng.below(keys.len());
        if s == d || !reachable_from(&adj, s).get(d).copied().unwrap_or(false) {
            continue;
        }
        text.push_str(&format!("{made},{s},{d}\n"));
        made += 1;
    }
    fs::write(out, text).map_err(|e| format!("{out}: {e}"))?;
    eprintln!(
        "wrote {made} connected pairs ({tries} drawn) to {out}, seed {}",
        args.seed
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let t0 = Instant::now();
    let keys = load_nodes(&args.nodes)?;
    let rows = load_rows(&args.graph)?;
    let rss_before_graph = rss_kib();
    let graph = build_graph(&keys, &rows)?;
    graph.prepare_search();
    let load = t0.elapsed();
    let rss_graph = rss_kib();
    if let Some(n) = args.make_pairs {
        return make_pairs(&args, n, &keys, &rows);
    }
    let pairs_path = args
        .pairs
        .as_ref()
        .ok_or("--pairs or --make-pairs is required")?;
    let text = fs::read_to_string(pairs_path).map_err(|e| format!("{pairs_path}: {e}"))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let p: Vec<&str> = line.split(',').collect();
        let idx: usize = field(&p, 0, n + 1)?;
        let s: usize = field(&p, 1, n + 1)?;
        let d: usize = field(&p, 2, n + 1)?;
        if s >= keys.len() || d >= keys.len() {
            return Err(format!("{pairs_path} line {}: node out of range", n + 1));
        }
        pairs.push((idx, s, d));
    }
    let rss_loaded = rss_kib();

    let now = 1_700_000_000;
    let mut scorer = ProbabilisticScorer::new(ScorerParams::default());
    let mut rng = SplitMix(args.seed);
    for i in 0..args.learned {
        let Some(r) = rows.get(rng.below(rows.len().max(1))) else {
            break;
        };
        let (Some(a), Some(b)) = (keys.get(r.from), keys.get(r.to)) else {
            continue;
        };
        let scid = ShortChannelId::from_u64(r.scid);
        let dir = direction_between(a, b);
        let amount = r.capacity_sat.saturating_mul(1000) / 100 * (1 + rng.below(99) as u64);
        let at = now - rng.below(24 * 3600) as u64;
        if i % 2 == 0 {
            scorer.payment_failed_at(scid, dir, amount, at);
        } else {
            scorer.channel_succeeded(scid, dir, amount, at);
        }
    }
    let mut finder = PathFinder::new();
    let mut times = Vec::with_capacity(pairs.len());
    let mut ok_count = 0usize;
    let (mut fee_sum, mut hop_sum) = (0u128, 0usize);
    let mut results = Vec::with_capacity(pairs.len());
    let mut out = String::from("idx,ok,hops,fee_msat,cltv,micros\n");
    for &(idx, s, d) in &pairs {
        let (Some(payer), Some(payee)) = (keys.get(s), keys.get(d)) else {
            continue;
        };
        let params = RouteParams::new(*payer, *payee, args.amount_msat, now);
        let t = Instant::now();
        let res = finder.find_route(&graph, &scorer, &params);
        let micros = t.elapsed().as_micros();
        times.push(micros);
        match &res {
            Ok(r) => {
                ok_count += 1;
                fee_sum += u128::from(r.total_fee_msat);
                hop_sum += r.hops.len();
                out.push_str(&format!(
                    "{idx},1,{},{},{},{micros}\n",
                    r.hops.len(),
                    r.total_fee_msat,
                    r.total_cltv_delta
                ));
            }
            Err(_) => out.push_str(&format!("{idx},0,0,0,0,{micros}\n")),
        }
        results.push(res.is_ok());
    }
    print!("{out}");

    // Connectivity over enabled directions (outside the timed part).
    let adj = enabled_adjacency(keys.len(), &rows, None);
    let adj_amount = enabled_adjacency(keys.len(), &rows, Some(args.amount_msat));
    let mut connected = 0usize;
    let mut found_of_connected = 0usize;
    let mut missed_without_carrying_path = 0usize;
    for (&(idx, s, d), ok) in pairs.iter().zip(&results) {
        let c = reachable_from(&adj, s).get(d).copied().unwrap_or(false);
        connected += usize::from(c);
        found_of_connected += usize::from(c && *ok);
        if c && !*ok {
            let carries = reachable_from(&adj_amount, s)
                .get(d)
                .copied()
                .unwrap_or(false);
            missed_without_carrying_path += usize::from(!carries);
            eprintln!(
                "pair {idx} ({s} -> {d}) connected but no route; a path of directions that each \
                 accept {} msat (fees ignored): {}",
                args.amount_msat,
                if carries { "exists" } else { "none" }
            );
        }
    }
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let mean = |sum: u128| {
        if ok_count == 0 {
            0.0
        } else {
            sum as f64 / ok_count as f64
        }
    };
    eprintln!(
        "graph: {} nodes, {} channels, loaded in {:.0} ms; VmRSS after load {} KiB, at end {} KiB",
        graph.node_count(),
        graph.channel_count(),
        load.as_secs_f64() * 1000.0,
        rss_loaded.unwrap_or(0),
        rss_kib().unwrap_or(0)
    );
    eprintln!(
        "VmRSS growth while building the graph and its search index: {} KiB",
        rss_graph
            .unwrap_or(0)
            .saturating_sub(rss_before_graph.unwrap_or(0))
    );
    eprintln!(
        "amount {} msat: {ok_count}/{} routes found; {connected} pairs connected over enabled directions, {found_of_connected} of them found ({:.2} %)",
        args.amount_msat,
        pairs.len(),
        if connected == 0 { 0.0 } else { 100.0 * found_of_connected as f64 / connected as f64 }
    );
    eprintln!(
        "misses with no path of directions accepting the amount (fees ignored): {missed_without_carrying_path}"
    );
    eprintln!(
        "micros: p50 {} p90 {} p99 {} max {} mean {:.0}; mean fee {:.1} msat, mean hops {:.2}",
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.90),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(0),
        times.iter().sum::<u128>() as f64 / times.len().max(1) as f64,
        mean(fee_sum),
        mean(hop_sum as u128)
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("route_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
