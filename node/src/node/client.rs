//! The node's client commands (`fulmen info`, `fulmen --node alice invoice 5000`, …): which
//! daemon to talk to, the commands, and printing their results.
//!
//! Owns: node addressing — `--node NAME` in a test network (`--net DIR`, `FULMEN_NET`, or
//! `$HOME/.fulmen/net`; the node's datadir from `DIR/network.json`, else `DIR/NAME`),
//! `--datadir DIR` (reads `DIR/node.json` + `DIR/.cookie`), `--rpc URL --cookie-file F`, and
//! by default `$HOME/.fulmen/node` — plus the client subcommands and their JSON output.
//! Must never: talk to a node other than through [`NodeClient`], or print anything but the
//! JSON result on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};

use super::api::{NodeClient, PaymentInfo, PaymentStatus, NODE_INFO_FILE};
use super::cli::default_node_datadir;
use crate::cli::{print_error, print_json};
use crate::net::network::{default_net_dir, Network};
use crate::rpc_client::{Endpoint, RpcClient, RpcClientError, DEFAULT_TIMEOUT};

/// Which node daemon the client commands address. Top-level options, given before the
/// command (`fulmen --node bob balance`).
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// Test network directory for --node (default: $HOME/.fulmen/net).
    #[arg(long, value_name = "DIR", env = "FULMEN_NET")]
    pub net: Option<PathBuf>,
    /// Address node NAME of the test network (alice, bob, …).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["target_datadir", "target_rpc"])]
    pub node: Option<String>,
    /// Address the node daemon whose data directory is DIR (default: $HOME/.fulmen/node).
    // Own ids: `fulmen chain` has global `--datadir`, `--rpc` and `--cookie-file`, whose
    // values clap also propagates to the top level.
    #[arg(
        long = "datadir",
        id = "target_datadir",
        value_name = "DIR",
        conflicts_with = "target_rpc"
    )]
    pub datadir: Option<PathBuf>,
    /// Address the node daemon at this RPC URL (with --cookie-file).
    #[arg(
        long = "rpc",
        id = "target_rpc",
        value_name = "URL",
        requires = "target_cookie_file"
    )]
    pub rpc: Option<String>,
    /// The cookie file to use with --rpc.
    #[arg(
        long = "cookie-file",
        id = "target_cookie_file",
        value_name = "FILE",
        requires = "target_rpc"
    )]
    pub cookie_file: Option<PathBuf>,
}

impl TargetArgs {
    /// True if an option that only makes sense for client commands was given (`--net` is
    /// not one: `net` commands accept it as their directory).
    pub fn addresses_a_node(&self) -> bool {
        self.node.is_some()
            || self.datadir.is_some()
            || self.rpc.is_some()
            || self.cookie_file.is_some()
    }

    /// The test network directory: `--net`, `FULMEN_NET`, or the default.
    pub fn net_dir(&self) -> PathBuf {
        self.net.clone().unwrap_or_else(default_net_dir)
    }

    /// Where the addressed daemon is, and the network it belongs to (with `--node`).
    pub fn resolve(&self) -> anyhow::Result<(Endpoint, Option<Network>)> {
        if let (Some(url), Some(cookie_file)) = (&self.rpc, &self.cookie_file) {
            let url = if url.contains("://") {
                url.clone()
            } else {
                format!("http://{url}")
            };
            let endpoint = Endpoint::Url {
                url,
                cookie_file: cookie_file.clone(),
            };
            return Ok((endpoint, None));
        }
        if let Some(name) = &self.node {
            let dir = self.net_dir();
            let net = if Network::path(&dir).exists() {
                Some(Network::read(&dir)?)
            } else {
                None
            };
            let datadir = match &net {
                Some(n) => n
                    .node(name)
                    .map(|e| e.process.datadir.clone())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "no node {name:?} in the network at {} (nodes: {})",
                            dir.display(),
                            n.names()
                        )
                    })?,
                None => dir.join(name),
            };
            return Ok((datadir_endpoint(datadir), net));
        }
        let datadir = self.datadir.clone().unwrap_or_else(default_node_datadir);
        Ok((datadir_endpoint(datadir), None))
    }
}

fn datadir_endpoint(dir: PathBuf) -> Endpoint {
    Endpoint::Datadir {
        dir,
        info_file: NODE_INFO_FILE.into(),
    }
}

/// The node's client commands (top-level subcommands of `fulmen`).
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Node id, alias, addresses, block height, peer and channel counts.
    Info,
    /// A fresh on-chain address of the node's wallet.
    Newaddress,
    /// Every sat the node controls: on chain, in channels, in flight.
    Balance {
        /// Also every output of closed channels not yet swept to the wallet ("in limbo"),
        /// HTLCs in flight both ways, and the fees on-chain claims paid.
        #[arg(long)]
        detail: bool,
    },
    /// Connect to a peer: NODE_ID@HOST:PORT (or, with --node, a node name of the network).
    Connect {
        /// `NODE_ID@HOST:PORT`, or a node name of the addressed test network.
        peer: String,
    },
    /// Disconnect from a peer.
    Disconnect {
        /// The peer's node id (or a node name of the addressed test network).
        node_id: String,
    },
    /// Known peers.
    Peers,
    /// Open a channel of SATS to a connected peer.
    Open {
        /// The peer's node id (or a node name of the addressed test network).
        node_id: String,
        /// Capacity, sat.
        sats: u64,
        /// Give this many msat to the peer at opening.
        #[arg(long, default_value_t = 0, value_name = "MSAT")]
        push_msat: u64,
    },
    /// All channels, open and closed.
    Channels,
    /// Create an invoice for MSAT.
    Invoice {
        /// Amount, msat.
        msat: u64,
        /// Description.
        #[arg(long, default_value = "", value_name = "TEXT")]
        description: String,
        /// Validity, seconds (default 3600).
        #[arg(long, value_name = "SECS")]
        expiry: Option<u64>,
    },
    /// Pay a BOLT 11 invoice; waits for the outcome (exit code 1 if it failed).
    Pay {
        /// The invoice (`lnbcrt…`).
        invoice: String,
        /// Stop waiting after SECS (default 60), and stop retrying other routes after
        /// SECS; a payment still in flight then stays pending.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Pay at most this much in routing fees, msat (default 1 % + 50 sat).
        #[arg(long, value_name = "MSAT")]
        max_fee_msat: Option<u64>,
    },
    /// Pay MSAT to NODE_ID without an invoice (keysend); waits for the outcome like `pay`.
    Keysend {
        /// The payee's node id (or a node name of the addressed test network).
        node_id: String,
        /// Amount delivered, msat.
        msat: u64,
        /// Pay at most this much in routing fees, msat (default 1 % + 50 sat).
        #[arg(long, value_name = "MSAT")]
        max_fee_msat: Option<u64>,
        /// Stop waiting after SECS (default 60); the payment then stays pending.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// HTLCs this node forwarded, and the fees they earned.
    Forwards,
    /// Set this node's forwarding fees on one channel (announced in a new channel_update).
    Setfees {
        /// Channel id, hex.
        channel_id: String,
        /// Base fee per forwarded HTLC, msat.
        #[arg(long, value_name = "MSAT")]
        base_msat: u32,
        /// Proportional fee, millionths of the forwarded amount.
        #[arg(long, value_name = "PPM")]
        ppm: u32,
        /// CLTV expiry delta, blocks (unchanged if not given).
        #[arg(long, value_name = "BLOCKS")]
        cltv_delta: Option<u16>,
    },
    /// The route `pay` would take now to deliver MSAT to NODE_ID: hops, fees, CLTV.
    Route {
        /// The destination's node id (or a node name of the addressed test network).
        node_id: String,
        /// Amount delivered, msat.
        msat: u64,
    },
    /// The routing graph learned from gossip: node and channel counts (`--json`: every node
    /// and channel with its policies).
    Graph {
        /// List every node and channel.
        #[arg(long)]
        json: bool,
    },
    /// Outgoing payments, oldest first.
    Payments {
        /// Only the newest N.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
    },
    /// Invoices, oldest first.
    Invoices,
    /// Close a channel: cooperatively, or with --force by broadcasting our latest commitment.
    Close {
        /// Channel id, hex.
        channel_id: String,
        /// Force close: broadcast our latest commitment now (our outputs are swept after
        /// the CSV delay; `channels` shows each output as it resolves).
        #[arg(long)]
        force: bool,
    },
    /// Watchtowers: back up justice transactions to a tower, or show the towers and backups.
    #[command(subcommand)]
    Tower(TowerCommand),
    /// Dev commands (only on a node started with --dev): break the rules on purpose.
    #[command(subcommand)]
    Dev(DevCommand),
    /// Stop the node daemon.
    Stop,
}

/// `fulmen dev …`: commands for tests; the node refuses them unless started with `--dev`.
#[derive(Debug, Clone, Subcommand)]
pub enum DevCommand {
    /// Broadcast one of our own revoked commitments (a breach the peer must punish).
    BroadcastRevoked {
        /// Channel id, hex.
        channel_id: String,
        /// The revoked commitment's number (default: the oldest where our balance was
        /// highest).
        #[arg(long, value_name = "N")]
        commitment: Option<u64>,
    },
    /// Hold incoming HTLCs unsettled (`on`), or settle every held one now (`off`).
    HoldHtlcs {
        /// `on` or `off`.
        state: OnOff,
    },
}

/// `fulmen tower …`: the watchtowers this node backs up to.
#[derive(Debug, Clone, Subcommand)]
pub enum TowerCommand {
    /// Back up every revoked commitment of our channels from now on to the tower
    /// NODE_ID@HOST:PORT (a node run with --tower; or a node name of the test network).
    Add {
        /// `NODE_ID@HOST:PORT`, or a node name of the addressed test network.
        tower: String,
    },
    /// Our towers (connected, session, backups sent/acknowledged/pending); on a tower node
    /// also its clients, stored blobs and justice broadcasts.
    Info,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enable.
    On,
    /// Disable.
    Off,
}

fn to_value<T: Serialize>(r: Result<T, RpcClientError>) -> Result<Value, RpcClientError> {
    r.and_then(|v| serde_json::to_value(v).map_err(|e| RpcClientError::BadResponse(e.to_string())))
}

/// True for a 33-byte compressed public key in hex.
fn looks_like_node_id(s: &str) -> bool {
    s.len() == 66 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Resolves a node name of the addressed network to its node id (or `uri` for connect);
/// anything else is passed through unchanged.
fn resolve_peer(arg: &str, net: Option<&Network>, uri: bool) -> Result<String, RpcClientError> {
    if arg.contains('@') || looks_like_node_id(arg) {
        return Ok(arg.to_owned());
    }
    match net.and_then(|n| n.node(arg)) {
        Some(n) if !n.node_id.is_empty() => Ok(if uri { n.uri() } else { n.node_id.clone() }),
        Some(_) => Err(RpcClientError::Config(format!(
            "node {arg:?} has no known node id yet (run `fulmen net status`)"
        ))),
        None if net.is_some() => Err(RpcClientError::Config(format!(
            "{arg:?} is neither a node id nor a node of the network"
        ))),
        None => Ok(arg.to_owned()),
    }
}

/// The request timeout a command needs: `pay` and `keysend` wait for the payment.
fn request_timeout(cmd: &ClientCommand) -> Duration {
    match cmd {
        ClientCommand::Pay {
            timeout: Some(secs),
            ..
        }
        | ClientCommand::Keysend {
            timeout: Some(secs),
            ..
        } => DEFAULT_TIMEOUT.max(Duration::from_secs(secs.saturating_add(30))),
        _ => DEFAULT_TIMEOUT,
    }
}

/// Runs one client command against `client`; `net` resolves node names.
pub async fn execute(
    client: &NodeClient,
    net: Option<&Network>,
    cmd: ClientCommand,
) -> Result<Value, RpcClientError> {
    match cmd {
        ClientCommand::Info => to_value(client.get_info().await),
        ClientCommand::Newaddress => to_value(client.new_address().await),
        ClientCommand::Balance { detail: false } => to_value(client.balance().await),
        ClientCommand::Balance { detail: true } => to_value(client.balance_detail().await),
        ClientCommand::Connect { peer } => {
            let peer = resolve_peer(&peer, net, true)?;
            to_value(client.connect(&peer).await)
        }
        ClientCommand::Disconnect { node_id } => {
            let id = resolve_peer(&node_id, net, false)?;
            client.disconnect(&id).await
        }
        ClientCommand::Peers => to_value(client.list_peers().await),
        ClientCommand::Open {
            node_id,
            sats,
            push_msat,
        } => {
            let id = resolve_peer(&node_id, net, false)?;
            to_value(client.open_channel(&id, sats, push_msat).await)
        }
        ClientCommand::Channels => to_value(client.list_channels().await),
        ClientCommand::Invoice {
            msat,
            description,
            expiry,
        } => to_value(client.invoice(msat, &description, expiry).await),
        ClientCommand::Pay {
            invoice,
            timeout,
            max_fee_msat,
        } => to_value(
            client
                .pay_with_limits(&invoice, max_fee_msat, timeout)
                .await,
        ),
        ClientCommand::Keysend {
            node_id,
            msat,
            max_fee_msat,
            timeout,
        } => {
            let id = resolve_peer(&node_id, net, false)?;
            to_value(client.keysend(&id, msat, max_fee_msat, timeout).await)
        }
        ClientCommand::Forwards => to_value(client.list_forwards().await),
        ClientCommand::Setfees {
            channel_id,
            base_msat,
            ppm,
            cltv_delta,
        } => to_value(
            client
                .set_fees(&channel_id, base_msat, ppm, cltv_delta)
                .await,
        ),
        ClientCommand::Route { node_id, msat } => {
            let id = resolve_peer(&node_id, net, false)?;
            to_value(client.route(&id, msat).await)
        }
        ClientCommand::Graph { json } => to_value(client.graph(json).await),
        ClientCommand::Payments { last: None } => to_value(client.list_payments().await),
        ClientCommand::Payments { last: Some(n) } => to_value(client.list_last_payments(n).await),
        ClientCommand::Invoices => to_value(client.list_invoices().await),
        ClientCommand::Close { channel_id, force } => {
            to_value(client.close_channel_with(&channel_id, force).await)
        }
        ClientCommand::Dev(DevCommand::BroadcastRevoked {
            channel_id,
            commitment,
        }) => to_value(client.dev_broadcast_revoked(&channel_id, commitment).await),
        ClientCommand::Dev(DevCommand::HoldHtlcs { state }) => {
            to_value(client.dev_hold_htlcs(state == OnOff::On).await)
        }
        ClientCommand::Tower(TowerCommand::Add { tower }) => {
            let tower = resolve_peer(&tower, net, true)?;
            to_value(client.tower_add(&tower).await)
        }
        ClientCommand::Tower(TowerCommand::Info) => to_value(client.tower_info().await),
        ClientCommand::Stop => client.stop().await,
    }
}

/// The error printed when `pay` returns a failed payment.
pub fn failed_payment_error(p: &PaymentInfo) -> Value {
    let reason = p.failure.as_deref().unwrap_or("no reason given");
    json!({ "error": {
        "code": -1,
        "message": format!("payment failed: {reason}"),
        "data": p,
    }})
}

/// Runs a client command; returns the exit code.
pub async fn run(target: &TargetArgs, cmd: ClientCommand) -> ExitCode {
    let (endpoint, net) = match target.resolve() {
        Ok(r) => r,
        Err(e) => {
            print_error(&RpcClientError::Config(format!("{e:#}")).to_json());
            return ExitCode::FAILURE;
        }
    };
    let is_pay = matches!(
        cmd,
        ClientCommand::Pay { .. } | ClientCommand::Keysend { .. }
    );
    let client = NodeClient::new(RpcClient::new(endpoint).with_timeout(request_timeout(&cmd)));
    match execute(&client, net.as_ref(), cmd).await {
        Ok(value) => {
            if is_pay {
                if let Ok(p) = serde_json::from_value::<PaymentInfo>(value.clone()) {
                    if p.status == PaymentStatus::Failed {
                        print_error(&failed_payment_error(&p));
                        return ExitCode::FAILURE;
                    }
                }
            }
            print_json(&value);
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error(&e.to_json());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_pass_through_without_a_network() {
        assert_eq!(resolve_peer("bob", None, true).unwrap(), "bob");
        let id = "02".repeat(33);
        assert_eq!(resolve_peer(&id, None, false).unwrap(), id);
    }
}
