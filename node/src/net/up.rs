//! `fulmen net up`: brings up a test network.
//!
//! Owns: the start-up sequence — chain daemon, node daemons on explicit free loopback
//! ports, 101 blocks, faucet funding, peer connections, channels per the topology, 6
//! blocks, waiting until every channel is active on both ends and until every node's
//! routing graph holds every channel (gossip) — and writing
//! `DIR/network.json` after every process start (so `net down` can clean up a half-started
//! network). Must never: start a second network over a running one, or leave processes
//! behind when it fails (it stops what it started; the logs stay in DIR).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use super::network::{
    self, loopback, node_name, ChainEntry, ChannelEntry, Network, NodeEntry, ProcessInfo, Topology,
    NETWORK_VERSION,
};
use crate::chain::api::ChainClient;
use crate::node::api::GraphResult;
use crate::node::store::DbSync;
use crate::rpc_client::EndpointInfo;

use super::{
    chain_client, marker, node_client, poll, process, wait_height, wait_ready, DaemonKind,
    Progress, UpArgs, SYNC_TIMEOUT,
};

/// Default channel capacity, sat.
pub const DEFAULT_CHANNEL_SATS: u64 = 1_000_000;
/// Sats funded per channel a node opens, on top of the capacity (funding fee, reserve).
pub const FUND_MARGIN_SAT: u64 = 50_000;
/// Sats every node receives besides its channel funding, for later use.
pub const SPARE_SAT: u64 = 1_000_000;
/// Most nodes `net up` starts.
pub const MAX_NODES: usize = 100;

/// What to bring up.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The network directory (absolute).
    pub dir: PathBuf,
    /// Number of nodes.
    pub nodes: usize,
    /// Channels to open.
    pub topology: Topology,
    /// Capacity of each channel, sat.
    pub channel_sats: u64,
    /// Percentage of the capacity pushed to the peer.
    pub push_percent: u8,
    /// The nodes' sqlite durability (`node run --db-sync`).
    pub db_sync: DbSync,
    /// Seed of a random topology (`None`: a random seed, recorded in `network.json`).
    pub seed: Option<u64>,
    /// Start one more node, [`TOWER_NAME`], as a watchtower for every other node.
    pub tower: bool,
}

/// Name of the watchtower node of `net up --tower`.
pub const TOWER_NAME: &str = "tower";

impl UpOptions {
    /// The push of one channel, msat.
    pub fn push_msat(&self) -> u64 {
        self.channel_sats
            .saturating_mul(1000)
            .saturating_mul(u64::from(self.push_percent))
            / 100
    }
}

/// `fulmen net up`.
pub async fn run(args: UpArgs, net_opt: Option<&Path>) -> anyhow::Result<Value> {
    let opts = UpOptions {
        dir: args.dir.resolve(net_opt)?,
        nodes: args.nodes,
        topology: args.topology,
        channel_sats: args.channel_sats,
        push_percent: args.push_percent,
        db_sync: args.db_sync,
        seed: args.seed,
        tower: args.tower,
    };
    let started = std::time::Instant::now();
    let net = up(&opts).await?;
    let mut out = summary(&net, started.elapsed().as_secs_f64());
    if args.web {
        let url = crate::web::start_background(&net.dir, args.web_port).await?;
        out["web"] = Value::String(url);
    }
    Ok(out)
}

/// The JSON `net up` prints.
pub fn summary(net: &Network, secs: f64) -> Value {
    json!({
        "dir": net.dir,
        "topology": net.topology,
        "seed": net.seed,
        "chain": { "datadir": net.chain.process.datadir, "rpc": net.chain.process.rpc, "pid": net.chain.process.pid },
        "nodes": net.nodes.iter().map(|n| json!({
            "name": n.name,
            "node_id": n.node_id,
            "uri": n.uri(),
            "rpc": n.process.rpc,
            "datadir": n.process.datadir,
            "pid": n.process.pid,
            "log": n.process.log,
        })).collect::<Vec<_>>(),
        "channels": net.channels,
        "seconds": (secs * 10.0).round() / 10.0,
        "hint": format!("fulmen --net {} --node {} info", net.dir.display(),
            net.nodes.first().map(|n| n.name.as_str()).unwrap_or("alice")),
    })
}

/// Refuses to reuse `dir` if it holds a network (running or not) or other files.
pub fn check_dir_free(dir: &Path) -> anyhow::Result<()> {
    if Network::path(dir).exists() {
        let shown = dir.display();
        if let Ok(net) = Network::read(dir) {
            let alive = std::iter::once(&net.chain.process)
                .chain(net.nodes.iter().map(|n| &n.process))
                .any(|p| process::is_alive(p.pid, &marker(&p.datadir)));
            if alive {
                anyhow::bail!(
                    "a network is running in {shown}: stop it first with `fulmen net down --dir {shown}`"
                );
            }
        }
        anyhow::bail!(
            "{shown} holds a stopped network: remove it with `fulmen net down --dir {shown} --purge` \
             (or restart its daemons with `fulmen net restart`)"
        );
    }
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            anyhow::bail!(
                "{} exists and is not empty: choose another --dir",
                dir.display()
            );
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// The RPC address a daemon in `datadir` bound (from its endpoint file `info_file`).
fn bound_rpc(datadir: &Path, info_file: &str) -> anyhow::Result<String> {
    let path = datadir.join(info_file);
    Ok(EndpointInfo::read(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .rpc_address)
}

/// Sets the value after `flag` in `args` (a daemon's command line) to `value`.
fn pin_arg(args: &mut [String], flag: &str, value: &str) {
    if let Some(i) = args.iter().position(|a| a == flag) {
        if let Some(v) = args.get_mut(i + 1) {
            *v = value.to_string();
        }
    }
}

/// The arguments of a network's chain daemon.
pub fn chain_args(datadir: &Path, rpc_port: u16) -> Vec<String> {
    vec![
        "chain".into(),
        "run".into(),
        "--datadir".into(),
        datadir.display().to_string(),
        "--rpc-listen".into(),
        loopback(rpc_port).to_string(),
    ]
}

/// The arguments of a network's node daemon.
pub fn node_args(
    name: &str,
    datadir: &Path,
    chain_datadir: &Path,
    listen_port: u16,
    rpc_port: u16,
    db_sync: DbSync,
) -> Vec<String> {
    let db_sync = match db_sync {
        DbSync::Full => "full",
        DbSync::Normal => "normal",
    };
    vec![
        "node".into(),
        "run".into(),
        "--datadir".into(),
        datadir.display().to_string(),
        "--chain".into(),
        chain_datadir.display().to_string(),
        "--listen".into(),
        loopback(listen_port).to_string(),
        "--rpc-listen".into(),
        loopback(rpc_port).to_string(),
        "--alias".into(),
        name.into(),
        "--dev".into(),
        "--db-sync".into(),
        db_sync.into(),
    ]
}

/// Brings up the network described by `opts` and returns its description (also written to
/// `DIR/network.json`). On failure, stops every process it started.
pub async fn up(opts: &UpOptions) -> anyhow::Result<Network> {
    anyhow::ensure!(
        (1..=MAX_NODES).contains(&opts.nodes),
        "--nodes must be between 1 and {MAX_NODES}"
    );
    anyhow::ensure!(opts.channel_sats > 0, "--channel-sats must be positive");
    anyhow::ensure!(opts.push_percent <= 100, "--push-percent is at most 100");
    let dir = network::absolute(&opts.dir)?;
    check_dir_free(&dir)?;
    create_private_dir(&dir)?;

    let total = opts.nodes + usize::from(opts.tower);
    let chain_dir = dir.join("chain");
    create_private_dir(&chain_dir)?;
    // Every daemon binds port 0 and reports what it got; `bring_up` pins those ports in
    // the arguments a restart uses. (Ports picked here and bound later by the daemons could
    // be taken in between — by another test's outgoing connection, say.)
    let chain_port = 0;
    let seed = match opts.topology {
        Topology::Random => {
            let seed = opts.seed.unwrap_or_else(rand::random::<u64>);
            eprintln!("net up: random topology, seed {seed} (repeat it with --seed {seed})");
            Some(seed)
        }
        _ => None,
    };
    let mut net = Network {
        version: NETWORK_VERSION,
        dir: dir.clone(),
        topology: opts.topology,
        seed,
        chain: ChainEntry {
            process: ProcessInfo {
                datadir: chain_dir.clone(),
                rpc: loopback(chain_port).to_string(),
                pid: 0,
                log: chain_dir.join("chain.log"),
                args: chain_args(&chain_dir, chain_port),
            },
        },
        nodes: Vec::with_capacity(opts.nodes),
        channels: Vec::new(),
        ready: false,
    };
    for i in 0..total {
        let name = if i < opts.nodes {
            node_name(i)
        } else {
            TOWER_NAME.to_string()
        };
        let datadir = dir.join(&name);
        let (listen, rpc) = (0, 0);
        net.nodes.push(NodeEntry {
            node_id: String::new(),
            listen: loopback(listen).to_string(),
            funded_sat: 0,
            process: ProcessInfo {
                rpc: loopback(rpc).to_string(),
                pid: 0,
                log: datadir.join("node.log"),
                args: {
                    let mut a = node_args(&name, &datadir, &chain_dir, listen, rpc, opts.db_sync);
                    if i >= opts.nodes {
                        a.push("--tower".into());
                    }
                    a
                },
                datadir,
            },
            name,
        });
    }
    let result = tokio::select! {
        r = bring_up(&mut net, opts) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted (ctrl-c)")),
    };
    match result {
        Ok(()) => Ok(net),
        Err(e) => {
            let _ = net.write();
            let _ = super::down::stop_all(&net).await;
            Err(e.context(format!(
                "net up failed; the daemons were stopped, their logs are in {} \
                 (remove it with `fulmen net down --dir {} --purge`)",
                dir.display(),
                dir.display()
            )))
        }
    }
}

async fn bring_up(net: &mut Network, opts: &UpOptions) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the fulmen binary")?;
    let edges = opts.topology.edges(opts.nodes, net.seed.unwrap_or(0));
    // chain, nodes, 101 blocks, funding, sync, connect, each channel, 6 blocks, active,
    // gossip.
    let progress = Progress::steps(7 + opts.nodes as u64 + 2 * edges.len() as u64);

    progress.msg("starting the chain daemon");
    let p = &mut net.chain.process;
    p.pid = process::spawn_daemon(&exe, &p.args, &p.log)?;
    net.write()?;
    let p = &net.chain.process;
    wait_ready(DaemonKind::Chain, &p.datadir, p.pid, &p.log).await?;
    let p = &mut net.chain.process;
    p.rpc = bound_rpc(&p.datadir, crate::chain::api::CHAIN_INFO_FILE)?;
    pin_arg(&mut p.args, "--rpc-listen", &p.rpc);
    net.write()?;
    progress.inc(1);

    for i in 0..net.nodes.len() {
        let Some(node) = net.nodes.get_mut(i) else {
            continue;
        };
        progress.msg(format!("starting {}", node.name));
        create_private_dir(&node.process.datadir)?;
        node.process.pid = process::spawn_daemon(&exe, &node.process.args, &node.process.log)?;
        net.write()?;
    }
    for node in net.nodes.iter_mut() {
        progress.msg(format!("waiting for {}", node.name));
        let p = &node.process;
        wait_ready(DaemonKind::Node, &p.datadir, p.pid, &p.log).await?;
        let info = node_client(node)
            .get_info()
            .await
            .with_context(|| format!("getinfo on {}", node.name))?;
        node.node_id = info.node_id;
        node.listen = info
            .listen
            .with_context(|| format!("{} is not listening for peers", node.name))?;
        pin_arg(&mut node.process.args, "--listen", &node.listen);
        let p = &mut node.process;
        p.rpc = bound_rpc(&p.datadir, crate::node::api::NODE_INFO_FILE)?;
        pin_arg(&mut p.args, "--rpc-listen", &p.rpc);
        progress.inc(1);
    }
    net.write()?;

    progress.msg("mining 101 blocks");
    let chain = chain_client(net);
    chain.mine(101, None).await.context("mining 101 blocks")?;
    progress.inc(1);

    progress.msg("funding the wallets from the faucet");
    // Nodes are funded concurrently (each node's outputs in order), so 100 nodes cost a few
    // round trips of wall time rather than 400.
    let chain_dir = net.chain.process.datadir.clone();
    let jobs = net.nodes.iter().enumerate().map(|(i, node)| {
        let opens = edges.iter().filter(|(a, _)| *a == i).count();
        // One output per channel to open (so no open waits for unconfirmed change), plus
        // a spare one.
        let amounts: Vec<u64> =
            std::iter::repeat_n(opts.channel_sats.saturating_add(FUND_MARGIN_SAT), opens)
                .chain(std::iter::once(SPARE_SAT))
                .collect();
        let node = node.clone();
        let chain = ChainClient::from_datadir(chain_dir.clone());
        async move {
            let client = node_client(&node);
            let mut funded = 0u64;
            for sats in amounts {
                let address = client
                    .new_address()
                    .await
                    .with_context(|| format!("newaddress on {}", node.name))?
                    .address;
                chain
                    .fund(&address, sats)
                    .await
                    .with_context(|| format!("funding {} with {sats} sat", node.name))?;
                funded = funded.saturating_add(sats);
            }
            Ok(funded)
        }
    });
    let funded = concurrently(jobs).await?;
    for (node, sats) in net.nodes.iter_mut().zip(funded) {
        node.funded_sat = node.funded_sat.saturating_add(sats);
    }
    net.write()?;
    let tip = chain.mine(1, None).await.context("mining")?.height;
    progress.inc(1);

    progress.msg("waiting for the nodes to see the funds");
    let all: Vec<&NodeEntry> = net.nodes.iter().collect();
    wait_height(&all, tip).await?;
    for node in &net.nodes {
        let client = node_client(node);
        poll(
            &format!(
                "{}'s wallet to see {} confirmed sat",
                node.name, node.funded_sat
            ),
            SYNC_TIMEOUT,
            || async {
                let b = client.balance().await?;
                Ok((b.onchain.confirmed_sat >= node.funded_sat).then_some(()))
            },
        )
        .await?;
    }
    progress.inc(1);

    let push_msat = opts.push_msat();
    // Connections, then openings, run concurrently; a node's own openings stay in edge
    // order (one after the other), and the channels are recorded in edge order.
    progress.msg(format!("connecting {} pairs of nodes", edges.len()));
    let jobs = edges.iter().map(|&(a, b)| {
        let pair = net.nodes.get(a).cloned().zip(net.nodes.get(b).cloned());
        async move {
            let Some((from, to)) = pair else {
                return Ok(());
            };
            node_client(&from)
                .connect(&to.uri())
                .await
                .with_context(|| format!("connecting {} to {}", from.name, to.name))?;
            Ok(())
        }
    });
    concurrently(jobs).await?;
    progress.inc(edges.len() as u64);

    progress.msg(format!("opening {} channels", edges.len()));
    let mut by_opener: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
    for (k, &(a, b)) in edges.iter().enumerate() {
        match by_opener.iter_mut().find(|(o, _)| *o == a) {
            Some((_, list)) => list.push((k, b)),
            None => by_opener.push((a, vec![(k, b)])),
        }
    }
    let channel_sats = opts.channel_sats;
    let jobs = by_opener.into_iter().map(|(a, list)| {
        let from = net.nodes.get(a).cloned();
        let peers: Vec<(usize, Option<NodeEntry>)> = list
            .into_iter()
            .map(|(k, b)| (k, net.nodes.get(b).cloned()))
            .collect();
        async move {
            let mut opened = Vec::new();
            let Some(from) = from else {
                return Ok(opened);
            };
            let client = node_client(&from);
            for (k, to) in peers {
                let Some(to) = to else { continue };
                let o = client
                    .open_channel(&to.node_id, channel_sats, push_msat)
                    .await
                    .with_context(|| {
                        format!(
                            "opening a {channel_sats} sat channel from {} to {}",
                            from.name, to.name
                        )
                    })?;
                opened.push((
                    k,
                    ChannelEntry {
                        from: from.name.clone(),
                        to: to.name.clone(),
                        channel_id: o.channel_id,
                        capacity_sat: channel_sats,
                        push_msat,
                        funding_txid: o.funding_txid,
                    },
                ));
            }
            Ok(opened)
        }
    });
    let opened = concurrently(jobs).await;
    // Whatever opened is recorded even if another opening failed (`net down` shows it).
    let mut all: Vec<(usize, ChannelEntry)> = Vec::new();
    let result = match opened {
        Ok(lists) => {
            all.extend(lists.into_iter().flatten());
            Ok(())
        }
        Err(e) => Err(e),
    };
    all.sort_by_key(|(k, _)| *k);
    net.channels.extend(all.into_iter().map(|(_, c)| c));
    net.write()?;
    result?;
    progress.inc(edges.len() as u64);

    progress.msg("mining 6 blocks");
    let tip = chain.mine(6, None).await.context("mining 6 blocks")?.height;
    let all: Vec<&NodeEntry> = net.nodes.iter().collect();
    wait_height(&all, tip).await?;
    progress.inc(1);

    progress.msg("waiting for the channels to be active");
    wait_channels_active(net).await?;
    progress.inc(1);
    if opts.tower {
        if let Some(tower) = net.node(TOWER_NAME) {
            let uri = tower.uri();
            for node in net.nodes.iter().filter(|n| n.name != TOWER_NAME) {
                progress.msg(format!("registering {} with the tower", node.name));
                node_client(node)
                    .tower_add(&uri)
                    .await
                    .with_context(|| format!("tower add on {}", node.name))?;
            }
        }
    }

    wait_graphs(net, &progress).await?;
    progress.inc(1);
    net.ready = true;
    net.write()?;
    progress.finish();
    Ok(())
}

/// Most RPC jobs [`concurrently`] runs at once.
pub const MAX_CONCURRENT_JOBS: usize = 16;

/// Runs `jobs`, at most [`MAX_CONCURRENT_JOBS`] at a time, and returns their results in
/// the order of `jobs`; the first error is returned (the jobs still running are dropped).
pub async fn concurrently<T, F>(jobs: impl IntoIterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_JOBS));
    let mut set = tokio::task::JoinSet::new();
    let mut n = 0;
    for (i, job) in jobs.into_iter().enumerate() {
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, job.await)
        });
        n += 1;
    }
    let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(n).collect();
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.context("a net up job panicked")?;
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(result?);
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// How long `net up` waits for gossip: every node's graph holding every channel.
pub fn graph_timeout(net: &Network) -> Duration {
    SYNC_TIMEOUT + Duration::from_secs(2 * net.channels.len() as u64)
}

/// How many channels of `g` are usable both ways (a `channel_update` in each direction,
/// both enabled).
pub fn usable_channels(g: &GraphResult) -> usize {
    let enabled = |p: &Option<(u32, u32, u16, bool)>| p.is_some_and(|p| p.3);
    g.channels
        .iter()
        .filter(|c| enabled(&c.policy_1_to_2) && enabled(&c.policy_2_to_1))
        .count()
}

/// Waits until every node's routing graph holds every channel of `net.channels`, usable
/// both ways, mining a block every few seconds in case announcements wait for depth. When
/// no node learned anything for a while (seen: a node whose peer's `channel_announcement`
/// arrived first never sent its own `channel_update`), every node re-sends its policies
/// (`setfees` with the values it already has). Shows progress; fails after
/// [`graph_timeout`] naming the nodes still behind.
pub async fn wait_graphs(net: &Network, progress: &Progress) -> anyhow::Result<()> {
    let want = net.channels.len();
    let chain = chain_client(net);
    let started = Instant::now();
    let timeout = graph_timeout(net);
    let mut last_mine = Instant::now();
    let mut last_progress = Instant::now();
    let mut known_total = 0;
    let mut behind: Vec<&NodeEntry> = net.nodes.iter().collect();
    loop {
        let mut still = Vec::new();
        let mut report = Vec::new();
        let mut total = 0;
        for node in behind {
            let known = match node_client(node).graph(true).await {
                Ok(g) => usable_channels(&g),
                Err(_) => 0,
            };
            total += known;
            if known < want {
                still.push(node);
                report.push(format!("{} ({known}/{want})", node.name));
            }
        }
        behind = still;
        progress.msg(format!(
            "waiting for gossip: {}/{} nodes know all {want} channels",
            net.nodes.len() - behind.len(),
            net.nodes.len()
        ));
        if behind.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "timed out after {}s waiting for every node's graph to hold all {want} channels \
                 (usable both ways); behind: {}",
                timeout.as_secs(),
                report.join(", ")
            );
        }
        if total != known_total {
            known_total = total;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= Duration::from_secs(8) {
            progress.msg("gossip stalled: every node sends its channel_updates again");
            refresh_policies(net).await;
            last_progress = Instant::now();
        }
        if last_mine.elapsed() >= Duration::from_secs(5) {
            // Announcements need their funding deep enough.
            chain.mine(1, None).await.context("mining")?;
            last_mine = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Makes both ends of every channel of `net` send their `channel_update` again, with the
/// policy they already have (`setfees` with the same values; errors ignored).
async fn refresh_policies(net: &Network) {
    for node in &net.nodes {
        let client = node_client(node);
        let (Ok(chans), Ok(graph)) = (client.list_channels().await, client.graph(true).await)
        else {
            continue;
        };
        for ch in &net.channels {
            if ch.from != node.name && ch.to != node.name {
                continue;
            }
            let Some(scid) = chans
                .channels
                .iter()
                .find(|c| c.channel_id == ch.channel_id)
                .and_then(|c| c.short_channel_id.clone())
            else {
                continue;
            };
            let Some(gc) = graph.channels.iter().find(|c| c.short_channel_id == scid) else {
                continue;
            };
            let ours = if gc.node_1 == node.node_id {
                gc.policy_1_to_2
            } else {
                gc.policy_2_to_1
            };
            if let Some((base, ppm, cltv, _)) = ours {
                let _ = client.set_fees(&ch.channel_id, base, ppm, Some(cltv)).await;
            }
        }
    }
}

/// Waits until every channel of `net.channels` is `active` on both ends.
pub async fn wait_channels_active(net: &Network) -> anyhow::Result<()> {
    for ch in &net.channels {
        for name in [&ch.from, &ch.to] {
            let node = net
                .node(name)
                .with_context(|| format!("network.json names an unknown node {name:?}"))?;
            let client = node_client(node);
            poll(
                &format!("channel {} to be active at {name}", ch.channel_id),
                SYNC_TIMEOUT,
                || async {
                    let list = client.list_channels().await?;
                    let state = list
                        .channels
                        .iter()
                        .find(|c| c.channel_id == ch.channel_id)
                        .map(|c| c.state.clone());
                    Ok((state.as_deref() == Some("active")).then_some(()))
                },
            )
            .await?;
        }
    }
    Ok(())
}
