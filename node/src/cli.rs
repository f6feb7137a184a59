//! The `fulmen` command line (clap): top-level parsing, logging setup and dispatch.
//!
//! Owns: the command tree (`chain`, `node`, `net`, `bench` and the node's client commands at
//! the top level, addressed by the top-level `--node`/`--net`/`--datadir`/`--rpc` options)
//! and the output convention — results as JSON on stdout, errors as
//! `{"error": {"code": .., "message": ..}}` on stderr with exit code 1.
//! Must never: print anything but the JSON result on stdout (the one exception is
//! `net demo`, whose result is a human summary unless `--json`).

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::chain::cli::ChainArgs;
use crate::logging::{self, LogFormat};
use crate::node::client::{ClientCommand, TargetArgs};

/// `fulmen`: a Lightning-style node with its own simulated Bitcoin chain.
///
/// Client commands address one node daemon: `fulmen --node alice info` (a node of the test
/// network in --net DIR, FULMEN_NET or $HOME/.fulmen/net), `fulmen --datadir DIR info`, or
/// `fulmen --rpc URL --cookie-file F info`; without any, the node in $HOME/.fulmen/node.
#[derive(Debug, Parser)]
#[command(name = "fulmen", version, about, long_about = None)]
pub struct Cli {
    /// Log format (level via RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Which node the client commands address (options given before the command).
    #[command(flatten)]
    pub target: TargetArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The simulated chain: `run` the daemon, or drive it (info, mine, fund, send, …).
    Chain(ChainArgs),
    /// The node daemon: `run` it.
    Node(crate::node::cli::NodeArgs),
    /// Local test networks: up, status, down, restart, mine, demo.
    Net(crate::net::NetArgs),
    /// Load generators against real daemons.
    Bench(crate::net::BenchArgs),
    /// The node's client commands.
    #[command(flatten)]
    Client(ClientCommand),
}

/// Prints a result as pretty JSON on stdout (a closed pipe is not an error).
pub fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Prints an error as JSON on stderr.
pub fn print_error(error: &Value) {
    let text = serde_json::to_string_pretty(error).unwrap_or_else(|_| error.to_string());
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Error JSON for a failure that is not an RPC error (code -1).
pub fn error_json(e: &anyhow::Error) -> Value {
    json!({ "error": { "code": -1, "message": format!("{e:#}") } })
}

/// Runs the parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            print_error(&error_json(
                &anyhow::Error::new(e).context("starting tokio"),
            ));
            return ExitCode::FAILURE;
        }
    };
    if cli.target.addresses_a_node() && !matches!(cli.command, Command::Client(_)) {
        print_error(&error_json(&anyhow::anyhow!(
            "--node, --datadir, --rpc and --cookie-file before the command address a node for \
             client commands (info, pay, …); `fulmen chain` and `fulmen node run` take their \
             own options after the subcommand"
        )));
        return ExitCode::FAILURE;
    }
    let net_opt = cli.target.net.clone();
    runtime.block_on(async move {
        match cli.command {
            Command::Chain(args) => crate::chain::cli::run(args, cli.log_format).await,
            Command::Node(args) => crate::node::cli::run(args, cli.log_format).await,
            Command::Net(args) => {
                logging::init(cli.log_format, "warn");
                crate::net::run(args, net_opt.as_deref()).await
            }
            Command::Bench(args) => {
                logging::init(cli.log_format, "warn");
                crate::net::run_bench(args, net_opt.as_deref()).await
            }
            Command::Client(cmd) => {
                logging::init(cli.log_format, "warn");
                crate::node::client::run(&cli.target, cmd).await
            }
        }
    })
}
