//! `fulmen chain …`: the daemon (`run`) and the client commands that drive it over RPC.
//!
//! Owns: the chain subcommands, finding the daemon (`--datadir` reads `DIR/chain.json` and
//! `DIR/.cookie`; `--rpc URL --cookie-file F` addresses it directly) and printing results.
//! Must never: talk to the chain other than through [`ChainClient`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;

use crate::chain::api::{ChainClient, MineResult};
use crate::chain::daemon::{self, RunOptions, DEFAULT_RPC_LISTEN};
use crate::cli::{error_json, print_error, print_json};
use crate::logging::{self, LogFormat};
use crate::rpc_client::{Endpoint, RpcClient, RpcClientError};

/// `fulmen chain` arguments.
#[derive(Debug, Args)]
pub struct ChainArgs {
    /// Data directory of the chain daemon (default: $HOME/.fulmen/chain).
    #[arg(long, global = true, env = "FULMEN_CHAIN_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// Client: the daemon's RPC URL (instead of reading it from --datadir).
    #[arg(long, global = true)]
    pub rpc: Option<String>,
    /// Client: cookie file to use with --rpc.
    #[arg(long, global = true)]
    pub cookie_file: Option<PathBuf>,
    /// The chain command.
    #[command(subcommand)]
    pub command: ChainCommand,
}

/// `fulmen chain` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Run the chain daemon.
    Run {
        /// JSON-RPC listen address (port 0 = any free port; see DIR/chain.json).
        #[arg(long, default_value = DEFAULT_RPC_LISTEN)]
        rpc_listen: SocketAddr,
        /// Mine a block every SECS seconds.
        #[arg(long, value_name = "SECS")]
        block_interval: Option<u64>,
    },
    /// Tip, mempool size, faucet balance and address.
    Info,
    /// Mine N blocks.
    Mine {
        /// Number of blocks.
        n: u32,
        /// Pay the coinbases to this address instead of the faucet.
        #[arg(long)]
        to: Option<String>,
    },
    /// Pay SATS from the faucet to ADDRESS (into the mempool).
    Fund {
        /// Regtest address.
        address: String,
        /// Amount in sats.
        sats: u64,
    },
    /// Submit a raw transaction (hex).
    Send {
        /// Consensus-encoded transaction, hex.
        txhex: String,
    },
    /// Show a transaction and its confirmations.
    Tx {
        /// Transaction id.
        txid: String,
    },
    /// Show a confirmed unspent output (null if spent or unknown).
    Utxo {
        /// TXID:VOUT.
        outpoint: String,
    },
    /// Show which transaction spent an outpoint (null if unspent).
    Spender {
        /// TXID:VOUT.
        outpoint: String,
    },
    /// Show a block by height or hash.
    Block {
        /// Height or block hash.
        id: String,
    },
    /// List the mempool.
    Mempool,
    /// Disconnect the top N blocks (their transactions return to the mempool).
    Reorg {
        /// Number of blocks.
        n: u32,
        /// Then empty the mempool: whoever needs a transaction must broadcast it again.
        #[arg(long)]
        drop_mempool: bool,
    },
    /// Current fee estimate.
    Estimatefee,
    /// Wait until the tip is above HEIGHT (long poll).
    Waitforblock {
        /// Return when the tip height is above this.
        after_height: u32,
        /// Give up after this many milliseconds (at most 60000).
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
    /// Stop the daemon.
    Stop,
}

fn default_datadir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".fulmen")
        .join("chain")
}

fn client(args: &ChainArgs) -> Result<ChainClient, RpcClientError> {
    match (&args.rpc, &args.cookie_file) {
        (Some(url), Some(cookie_file)) => {
            let url = if url.contains("://") {
                url.clone()
            } else {
                format!("http://{url}")
            };
            Ok(ChainClient::new(RpcClient::new(Endpoint::Url {
                url,
                cookie_file: cookie_file.clone(),
            })))
        }
        (Some(_), None) => Err(RpcClientError::Config(
            "--rpc needs --cookie-file (or use --datadir)".into(),
        )),
        (None, Some(_)) => Err(RpcClientError::Config(
            "--cookie-file needs --rpc (or use --datadir alone)".into(),
        )),
        (None, None) => Ok(ChainClient::from_datadir(
            args.datadir.clone().unwrap_or_else(default_datadir),
        )),
    }
}

fn to_value<T: Serialize>(r: Result<T, RpcClientError>) -> Result<Value, RpcClientError> {
    r.and_then(|v| serde_json::to_value(v).map_err(|e| RpcClientError::BadResponse(e.to_string())))
}

/// Blocks per RPC call when progress is shown.
const MINE_CHUNK: u32 = 100;

/// `mine N`: one call, or on a terminal for large N, chunks of [`MINE_CHUNK`] with a progress
/// bar on stderr (the JSON result on stdout is the same).
async fn mine_with_progress(
    c: &ChainClient,
    n: u32,
    to: Option<&str>,
) -> Result<MineResult, RpcClientError> {
    use std::io::IsTerminal as _;
    if n < 2 * MINE_CHUNK || !std::io::stderr().is_terminal() {
        return c.mine(n, to).await;
    }
    let bar = indicatif::ProgressBar::new(u64::from(n));
    bar.set_style(
        indicatif::ProgressStyle::with_template("mining {bar:40} {pos}/{len} blocks ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut all = MineResult {
        blocks: Vec::with_capacity(n as usize),
        height: 0,
    };
    let mut left = n;
    while left > 0 {
        let chunk = left.min(MINE_CHUNK);
        let r = match c.mine(chunk, to).await {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        all.blocks.extend(r.blocks);
        all.height = r.height;
        left -= chunk;
        bar.inc(u64::from(chunk));
    }
    bar.finish_and_clear();
    Ok(all)
}

async fn client_command(c: &ChainClient, cmd: ChainCommand) -> Result<Value, RpcClientError> {
    match cmd {
        ChainCommand::Run { .. } => {
            Err(RpcClientError::Config("run is not a client command".into()))
        }
        ChainCommand::Info => to_value(c.get_info().await),
        ChainCommand::Mine { n, to } => to_value(mine_with_progress(c, n, to.as_deref()).await),
        ChainCommand::Fund { address, sats } => to_value(c.fund(&address, sats).await),
        ChainCommand::Send { txhex } => to_value(c.send_raw_transaction(&txhex).await),
        ChainCommand::Tx { txid } => to_value(c.get_transaction(&txid).await),
        ChainCommand::Utxo { outpoint } => to_value(c.get_utxo(&outpoint).await),
        ChainCommand::Spender { outpoint } => to_value(c.get_spender(&outpoint).await),
        ChainCommand::Block { id } => match id.parse::<u32>() {
            Ok(height) => to_value(c.get_block_at(height).await),
            Err(_) => to_value(c.get_block(&id).await),
        },
        ChainCommand::Mempool => to_value(c.get_mempool().await),
        ChainCommand::Reorg { n, drop_mempool } => to_value(c.reorg_with(n, drop_mempool).await),
        ChainCommand::Estimatefee => to_value(c.estimate_fee().await),
        ChainCommand::Waitforblock {
            after_height,
            timeout_ms,
        } => to_value(c.wait_for_block(after_height, None, timeout_ms).await),
        ChainCommand::Stop => c.stop().await,
    }
}

/// Runs `fulmen chain …`; returns the exit code.
pub async fn run(args: ChainArgs, log_format: LogFormat) -> ExitCode {
    if let ChainCommand::Run {
        rpc_listen,
        block_interval,
    } = args.command
    {
        logging::init(log_format, "info");
        let opts = RunOptions {
            datadir: args.datadir.clone().unwrap_or_else(default_datadir),
            rpc_listen,
            block_interval: block_interval.filter(|s| *s > 0).map(Duration::from_secs),
        };
        return match daemon::run(opts).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "chain daemon failed");
                print_error(&error_json(&e));
                ExitCode::FAILURE
            }
        };
    }
    logging::init(log_format, "warn");
    let result = match client(&args) {
        Ok(c) => client_command(&c, args.command).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(value) => {
            print_json(&value);
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error(&e.to_json());
            ExitCode::FAILURE
        }
    }
}
