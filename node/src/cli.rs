//! The `fulmen` command line (clap): top-level parsing, logging setup and dispatch.
//!
//! Owns: the command tree and the output convention — results as JSON on stdout, errors as
//! `{"error": {"code": .., "message": ..}}` on stderr with exit code 1.
//! Must never: print anything but the JSON result on stdout.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::chain::cli::ChainArgs;
use crate::logging::LogFormat;

/// `fulmen`: a Lightning-style node with its own simulated Bitcoin chain.
#[derive(Debug, Parser)]
#[command(name = "fulmen", version, about)]
pub struct Cli {
    /// Log format (level via RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
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
    runtime.block_on(async move {
        match cli.command {
            Command::Chain(args) => crate::chain::cli::run(args, cli.log_format).await,
            Command::Node(args) => crate::node::cli::run(args, cli.log_format).await,
        }
    })
}
