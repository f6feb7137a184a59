//! `fulmen node …`: parsing of `fulmen node run` into [`RunOptions`] and running the daemon.
//!
//! Owns: the daemon's command-line options and their defaults. Must never: print anything
//! but errors (the daemon logs through `tracing`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::daemon::{self, ChainLocation, RunOptions, DEFAULT_LISTEN, DEFAULT_RPC_LISTEN};
use super::store::DbSync;
use crate::cli::{error_json, print_error};
use crate::logging::{self, LogFormat};

/// `fulmen node` arguments.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node command.
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// `fulmen node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node daemon.
    Run(RunArgs),
}

/// `fulmen node run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Data directory (default: $HOME/.fulmen/node).
    #[arg(long, env = "FULMEN_NODE_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// The chain daemon: its data directory, or its RPC URL (then give --chain-cookie).
    #[arg(long, value_name = "URL_OR_DIR")]
    pub chain: String,
    /// The chain daemon's cookie file (with a URL in --chain).
    #[arg(long, value_name = "FILE")]
    pub chain_cookie: Option<PathBuf>,
    /// Peer listen address (port 0 = any free port; `getinfo` shows it).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// JSON-RPC listen address (port 0 = any free port; see DIR/node.json).
    #[arg(long, default_value = DEFAULT_RPC_LISTEN)]
    pub rpc_listen: SocketAddr,
    /// Alias shown in `getinfo` (default: the data directory's name).
    #[arg(long)]
    pub alias: Option<String>,
    /// Enable dev commands.
    #[arg(long)]
    pub dev: bool,
    /// sqlite durability: `full` fsyncs every commit (survives power loss); `normal`
    /// survives a crash of the daemon only (faster; for test networks and benchmarks).
    #[arg(long, value_enum, default_value_t = DbSync::Full)]
    pub db_sync: DbSync,
    /// Run as a watchtower: store peers' encrypted justice backups and broadcast them when
    /// a breach is mined.
    #[arg(long)]
    pub tower: bool,
    /// Testing: channels and their monitors write a snapshot every N records (default 100),
    /// so that a short test crosses snapshots and the revocation archive.
    #[arg(long, hide = true, value_name = "N")]
    pub snapshot_every: Option<u64>,
}

/// Default node data directory.
pub fn default_node_datadir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".fulmen")
        .join("node")
}

impl RunArgs {
    /// Resolves defaults into [`RunOptions`].
    pub fn into_options(self) -> anyhow::Result<RunOptions> {
        let datadir = self.datadir.unwrap_or_else(default_node_datadir);
        let chain = if self.chain.contains("://") {
            let cookie_file = self.chain_cookie.ok_or_else(|| {
                anyhow::anyhow!(
                    "--chain is a URL: give the chain daemon's cookie with --chain-cookie FILE"
                )
            })?;
            ChainLocation::Url {
                url: self.chain,
                cookie_file,
            }
        } else {
            ChainLocation::Datadir(PathBuf::from(self.chain))
        };
        let alias = self.alias.unwrap_or_else(|| {
            datadir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "fulmen".into())
        });
        Ok(RunOptions {
            datadir,
            chain,
            listen: Some(self.listen),
            rpc_listen: self.rpc_listen,
            alias,
            dev: self.dev,
            db_sync: self.db_sync,
            tower: self.tower,
            snapshot_every: self.snapshot_every,
        })
    }
}

/// Runs `fulmen node …`; returns the exit code.
pub async fn run(args: NodeArgs, log_format: LogFormat) -> ExitCode {
    match args.command {
        NodeCommand::Run(run) => {
            logging::init(log_format, "info");
            let result = match run.into_options() {
                Ok(opts) => daemon::run(opts).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "node daemon failed");
                    print_error(&error_json(&e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}
