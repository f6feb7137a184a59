//! `fulmen net …`: local test networks of real daemons — one chain daemon and N node daemons
//! started as background processes of the same binary, described by `DIR/network.json` —
//! plus the README demo (`net demo`) and the payment load generator (`fulmen bench pay`).
//!
//! Owns: the `net` and `bench` command lines and their dispatch ([`run`], [`run_bench`]),
//! and the helpers shared by `up`, `down`, `demo` and `bench`: clients for a network's
//! daemons, waiting for readiness and for block heights, progress display. Must never: reach
//! into a daemon's internals — it sees only what a user sees (processes, data directories,
//! RPC).

pub mod bench;
pub mod demo;
pub mod down;
pub mod network;
pub mod process;
pub mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::chain::api::{ChainClient, CHAIN_INFO_FILE};
use crate::cli::{error_json, print_error, print_json};
use crate::node::api::{NodeClient, NODE_INFO_FILE};
use crate::rpc_client::{EndpointInfo, RpcClient};
use network::{default_net_dir, Network, NodeEntry, Topology};

/// How long a daemon may take to answer RPC after it was started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long nodes may take to see a block, or channels to become active.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// `fulmen net` arguments.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// The net command.
    #[command(subcommand)]
    pub command: NetCommand,
}

/// The network directory option shared by the `net` commands.
#[derive(Debug, Clone, Default, Args)]
pub struct DirArg {
    /// Network directory (default: --net, FULMEN_NET, or $HOME/.fulmen/net).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl DirArg {
    /// The directory: `--dir`, else the top-level `--net` (which reads `FULMEN_NET`), else
    /// the default.
    pub fn resolve(&self, net: Option<&Path>) -> anyhow::Result<PathBuf> {
        let dir = self
            .dir
            .clone()
            .or_else(|| net.map(Path::to_path_buf))
            .unwrap_or_else(default_net_dir);
        network::absolute(&dir)
    }
}

/// `fulmen net up` options.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Where the network lives.
    #[command(flatten)]
    pub dir: DirArg,
    /// Number of nodes (alice, bob, carol, …).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Which channels to open.
    #[arg(long, value_enum, default_value_t = Topology::Line)]
    pub topology: Topology,
    /// Capacity of each channel, sat.
    #[arg(long, default_value_t = up::DEFAULT_CHANNEL_SATS)]
    pub channel_sats: u64,
    /// Percentage of each channel's capacity pushed to the peer at opening.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub push_percent: u8,
    /// The nodes' sqlite durability: `full` (fsync per commit) or `normal` (survives kill -9,
    /// not power loss; faster).
    #[arg(long, value_enum, default_value_t = crate::node::store::DbSync::Full)]
    pub db_sync: crate::node::store::DbSync,
    /// Seed of `--topology random` (default: a random one; `net up` prints it and
    /// network.json records it, so the same network can be brought up again).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also start a node named `tower` in watchtower mode (`node run --tower`, no channels)
    /// and register every other node with it (`tower add`).
    #[arg(long)]
    pub tower: bool,
    /// Also serve the network's web page (`fulmen net web`) in the background once the
    /// network is up; `net down` stops it. The summary gives its URL.
    #[arg(long)]
    pub web: bool,
    /// Port of `--web` on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0, requires = "web")]
    pub web_port: u16,
}

/// `fulmen net` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Start a chain daemon and N node daemons, fund them, open channels, wait until active.
    Up(UpArgs),
    /// Per node: alive?, getinfo, channel count and balances.
    Status(DirArg),
    /// Stop every daemon of the network (RPC `stop`, then SIGTERM, then SIGKILL).
    Down {
        /// Where the network lives.
        #[command(flatten)]
        dir: DirArg,
        /// Also delete the network directory.
        #[arg(long)]
        purge: bool,
    },
    /// Start a stopped or killed daemon (a node name, `chain`, or `all` for every daemon
    /// that is not running) with its old arguments and ports, and wait for its RPC.
    Restart {
        /// Node name (alice, bob, …), `chain` or `all`.
        name: String,
        /// Where the network lives.
        #[command(flatten)]
        dir: DirArg,
    },
    /// Mine N blocks on the network's chain and wait until every running node saw them.
    Mine {
        /// Number of blocks.
        n: u32,
        /// Where the network lives.
        #[command(flatten)]
        dir: DirArg,
    },
    /// The demo: alice–bob–carol, 2×N micropayments, cooperative closes, a summary.
    Demo(demo::DemoArgs),
    /// Serve a live web page of the network on 127.0.0.1 (chain, nodes, channels, payments
    /// hop by hop, actions) until ctrl-c.
    Web(crate::web::WebArgs),
}

/// `fulmen bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// `fulmen bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Single-hop payments between two daemons: serial, then concurrent.
    Pay(bench::PayArgs),
}

/// Runs `fulmen net …`; `net_opt` is the top-level `--net`. Returns the exit code.
pub async fn run(args: NetArgs, net_opt: Option<&Path>) -> ExitCode {
    let result = match args.command {
        NetCommand::Up(a) => up::run(a, net_opt).await,
        NetCommand::Status(d) => down::status(&d, net_opt).await,
        NetCommand::Down { dir, purge } => down::run(&dir, net_opt, purge).await,
        NetCommand::Restart { name, dir } => down::restart(&dir, net_opt, &name).await,
        NetCommand::Mine { n, dir } => down::mine(&dir, net_opt, n).await,
        NetCommand::Demo(a) => demo::run(a, net_opt).await,
        NetCommand::Web(a) => crate::web::run(a, net_opt).await,
    };
    finish(result)
}

/// Runs `fulmen bench …`; returns the exit code.
pub async fn run_bench(args: BenchArgs, net_opt: Option<&Path>) -> ExitCode {
    let result = match args.command {
        BenchCommand::Pay(a) => bench::run(a, net_opt).await,
    };
    finish(result)
}

/// Prints a command's result (JSON on stdout; `Value::Null` prints nothing) or its error.
fn finish(result: anyhow::Result<Value>) -> ExitCode {
    match result {
        Ok(Value::Null) => ExitCode::SUCCESS,
        Ok(v) => {
            print_json(&v);
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error(&error_json(&e));
            ExitCode::FAILURE
        }
    }
}

/// A client for a node of the network (reads its `node.json` and cookie on each reconnect).
pub fn node_client(node: &NodeEntry) -> NodeClient {
    NodeClient::from_datadir(node.process.datadir.clone())
}

/// A client for the network's chain daemon.
pub fn chain_client(net: &Network) -> ChainClient {
    ChainClient::from_datadir(net.chain.process.datadir.clone())
}

/// A node client with a short request timeout (for `stop` and status probes).
pub fn quick_node_client(node: &NodeEntry) -> NodeClient {
    NodeClient::new(
        RpcClient::from_datadir(node.process.datadir.clone(), NODE_INFO_FILE)
            .with_timeout(Duration::from_secs(5)),
    )
}

/// A chain client with a short request timeout.
pub fn quick_chain_client(net: &Network) -> ChainClient {
    ChainClient::new(
        RpcClient::from_datadir(net.chain.process.datadir.clone(), CHAIN_INFO_FILE)
            .with_timeout(Duration::from_secs(5)),
    )
}

/// The marker [`process::is_alive`] looks for in a daemon's command line: its datadir.
pub fn marker(datadir: &Path) -> String {
    datadir.display().to_string()
}

/// Which kind of daemon [`wait_ready`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonKind {
    /// `fulmen chain run`.
    Chain,
    /// `fulmen node run`.
    Node,
}

/// Waits until the daemon started as `pid` in `datadir` wrote its endpoint file (naming
/// `pid`, so a stale file of a killed daemon does not count) and answers `getinfo`. Fails
/// early, with the end of its log, if the process exits.
pub async fn wait_ready(
    kind: DaemonKind,
    datadir: &Path,
    pid: u32,
    log: &Path,
) -> anyhow::Result<()> {
    let info_file = match kind {
        DaemonKind::Chain => CHAIN_INFO_FILE,
        DaemonKind::Node => NODE_INFO_FILE,
    };
    let what = match kind {
        DaemonKind::Chain => "chain daemon",
        DaemonKind::Node => "node daemon",
    };
    let mark = marker(datadir);
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_error = String::from("no endpoint file yet");
    loop {
        if !process::is_alive(pid, &mark) {
            anyhow::bail!(
                "the {what} in {} (pid {pid}) exited; end of {}:\n{}",
                datadir.display(),
                log.display(),
                process::log_tail(log, 20)
            );
        }
        let ours = EndpointInfo::read(&datadir.join(info_file)).is_ok_and(|i| i.pid == pid);
        if ours {
            let rpc = RpcClient::from_datadir(datadir, info_file).with_timeout(READY_TIMEOUT);
            let answer = match kind {
                DaemonKind::Chain => ChainClient::new(rpc).get_info().await.map(|_| ()),
                DaemonKind::Node => NodeClient::new(rpc).get_info().await.map(|_| ()),
            };
            match answer {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the {what} in {} (pid {pid}) was not ready after {}s ({last_error}); end of {}:\n{}",
                datadir.display(),
                READY_TIMEOUT.as_secs(),
                log.display(),
                process::log_tail(log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms until it returns `Some`, failing with `what` after `timeout`.
/// `check` errors are remembered and reported on timeout, not returned early.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!(" (last error: {e:#})"),
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "timed out after {}s waiting for {what}{last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node in `nodes` reports `block_height >= height`.
pub async fn wait_height(nodes: &[&NodeEntry], height: u32) -> anyhow::Result<()> {
    for node in nodes {
        let client = node_client(node);
        poll(
            &format!("{} to reach block {height}", node.name),
            SYNC_TIMEOUT,
            || async {
                let info = client
                    .get_info()
                    .await
                    .with_context(|| format!("getinfo on {}", node.name))?;
                Ok((info.block_height >= height).then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

/// Mines `n` blocks on the network's chain and waits until every node whose process is
/// alive saw the new tip. Returns the new height.
pub async fn mine_and_sync(net: &Network, n: u32) -> anyhow::Result<u32> {
    let chain = chain_client(net);
    let r = chain.mine(n, None).await.context("mining")?;
    let alive: Vec<&NodeEntry> = net
        .nodes
        .iter()
        .filter(|e| process::is_alive(e.process.pid, &marker(&e.process.datadir)))
        .collect();
    wait_height(&alive, r.height).await?;
    Ok(r.height)
}

/// Progress display on stderr: a bar with a message, drawn only when stderr is a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A bar of `len` steps (hidden when stderr is not a terminal).
    pub fn new(len: u64, template: &str) -> Progress {
        use std::io::IsTerminal as _;
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len);
            bar.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// The default style for multi-step work.
    pub fn steps(len: u64) -> Progress {
        Progress::new(
            len,
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
        )
    }

    /// Sets the message (what is happening now).
    pub fn msg(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Advances by `n` steps.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}
