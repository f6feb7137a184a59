//! The web page's view of a network: one [`Snapshot`] built from the daemons' RPC answers
//! (chain `getinfo`; per node `getinfo`, `balance`, `listchannels`, the last 50 of
//! `listpayments`), and the loop that rebuilds it and publishes it when it changed.
//!
//! Owns: merging both ends' channel lists into one entry per channel, naming nodes by their
//! network names, the route of each payment as names, and the pace of the polling (at most
//! 4 snapshots a second, slower when a round takes long). Must never: change a daemon's
//! state — it only reads; actions are `server`'s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fulmen_manager::api::{BalanceResult, ChannelInfo, NodeInfo, PaymentInfo, PaymentStatus};
use serde::Serialize;
use tokio::sync::watch;

use crate::chain::api::ChainClient;
use crate::net::network::Network;
use crate::net::{chain_client, node_client};
use crate::node::api::NodeClient;
use crate::node::shell::now_secs;

/// Payments a snapshot carries (the newest).
pub const SNAPSHOT_PAYMENTS: usize = 50;
/// Shortest time between two polling rounds.
pub const MIN_ROUND: Duration = Duration::from_millis(250);
/// Longest a daemon may take to answer one poll.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the page draws (see `API.md`, "Snapshot").
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Snapshot {
    /// Grows by one with every snapshot that differs from the one before.
    pub seq: u64,
    /// When it was built, UNIX seconds.
    pub updated_at: u64,
    /// The chain.
    pub chain: ChainView,
    /// Every node of the network, in network order.
    pub nodes: Vec<NodeView>,
    /// One entry per channel.
    pub channels: Vec<ChannelView>,
    /// The newest payments, oldest first.
    pub payments: Vec<PaymentView>,
}

/// The chain in a snapshot.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ChainView {
    /// Tip height.
    pub height: u32,
    /// Transactions in the mempool.
    pub mempool: usize,
    /// The chain daemon answered.
    pub alive: bool,
}

/// A node in a snapshot.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct NodeView {
    /// Network name.
    pub name: String,
    /// Node id, hex.
    pub node_id: String,
    /// Alias.
    pub alias: String,
    /// The daemon answered the last poll.
    pub alive: bool,
    /// Dev commands enabled.
    pub dev: bool,
    /// Runs as a watchtower.
    pub tower: bool,
    /// Wallet total, sat.
    pub onchain_sat: u64,
    /// Our side of open channels, sat (HTLCs excluded).
    pub channel_sat: u64,
    /// Connected peers.
    pub num_peers: usize,
    /// Last block it processed.
    pub height: u32,
    /// Why the last poll failed.
    pub error: Option<String>,
}

/// A channel in a snapshot.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ChannelView {
    /// Channel id, hex.
    pub channel_id: String,
    /// One end (the opener when known): a node name, or a shortened id.
    pub a: String,
    /// The other end.
    pub b: String,
    /// Capacity, sat.
    pub capacity_sat: u64,
    /// `a`'s balance, msat (HTLCs excluded).
    pub a_msat: u64,
    /// `b`'s balance, msat.
    pub b_msat: u64,
    /// The `listchannels` state.
    pub state: String,
    /// Short channel id, once confirmed.
    pub short_channel_id: Option<String>,
    /// HTLCs in flight.
    pub pending_htlcs: usize,
    /// After a spend of the funding output: how it was classified.
    pub closing_kind: Option<String>,
    /// The most blocks any output of the closing still waits.
    pub blocks_left: Option<u32>,
}

/// A payment in a snapshot.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PaymentView {
    /// `payer:payment_hash`.
    pub id: String,
    /// The payer's name.
    pub from: String,
    /// The payee's name (or a shortened id).
    pub to: String,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// Delivered, msat.
    pub amount_msat: u64,
    /// Fees, msat.
    pub fee_msat: u64,
    /// `pending`, `succeeded`, `failed`.
    pub status: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// Payer, then every node of the shown route.
    pub hops: Vec<String>,
    /// Index in `hops` of the node that reported the failure.
    pub failed_at: Option<u32>,
    /// Created, UNIX seconds.
    pub created_at: u64,
    /// Completed, UNIX seconds.
    pub completed_at: Option<u64>,
}

/// What one poll of one node returned.
#[derive(Clone, Debug, Default)]
pub struct NodePoll {
    /// `getinfo`.
    pub info: Option<NodeInfo>,
    /// `balance`.
    pub balance: Option<BalanceResult>,
    /// `listchannels`.
    pub channels: Vec<ChannelInfo>,
    /// `listpayments`.
    pub payments: Vec<PaymentInfo>,
    /// The first error of the poll.
    pub error: Option<String>,
}

/// The first 16 hex digits of an id not in the network.
fn short_id(id: &str) -> String {
    id.chars().take(16).collect()
}

/// Node names by node id.
fn names(net: &Network, polls: &[NodePoll]) -> HashMap<String, String> {
    let mut by_id = HashMap::new();
    for (entry, poll) in net.nodes.iter().zip(polls) {
        if !entry.node_id.is_empty() {
            by_id.insert(entry.node_id.clone(), entry.name.clone());
        }
        if let Some(info) = &poll.info {
            by_id.insert(info.node_id.clone(), entry.name.clone());
        }
    }
    by_id
}

/// The name of `id`, or its first 16 hex digits.
fn name_of(by_id: &HashMap<String, String>, id: &str) -> String {
    by_id.get(id).cloned().unwrap_or_else(|| short_id(id))
}

/// The most blocks an output of a closing still waits, if any waits.
fn blocks_left(c: &ChannelInfo) -> Option<u32> {
    c.closing
        .as_ref()?
        .outputs
        .iter()
        .filter(|o| o.state == "waiting")
        .filter_map(|o| o.blocks_left)
        .max()
}

/// Builds a snapshot (with `seq` 0) from the last answers. `last_nodes` are the previous
/// snapshot's nodes, kept for a node that does not answer.
pub fn build(
    net: &Network,
    chain: Option<ChainView>,
    polls: &[NodePoll],
    last_nodes: &[NodeView],
    now: u64,
) -> Snapshot {
    let by_id = names(net, polls);
    let mut nodes = Vec::with_capacity(net.nodes.len());
    for (entry, poll) in net.nodes.iter().zip(polls) {
        let mut view = last_nodes
            .iter()
            .find(|n| n.name == entry.name)
            .cloned()
            .unwrap_or_else(|| NodeView {
                name: entry.name.clone(),
                node_id: entry.node_id.clone(),
                alias: entry.name.clone(),
                tower: entry.process.args.iter().any(|a| a == "--tower"),
                ..NodeView::default()
            });
        view.alive = poll.error.is_none();
        view.error = poll.error.clone();
        if let Some(info) = &poll.info {
            view.node_id = info.node_id.clone();
            view.alias = info.alias.clone();
            view.dev = info.dev;
            view.num_peers = info.num_peers;
            view.height = info.block_height;
        }
        if let Some(b) = &poll.balance {
            view.onchain_sat = b.onchain.total_sat;
            view.channel_sat = b.channels_local_msat / 1000;
        }
        nodes.push(view);
    }
    Snapshot {
        seq: 0,
        updated_at: now,
        chain: chain.unwrap_or_default(),
        nodes,
        channels: merge_channels(net, polls, &by_id),
        payments: payments(net, polls, &by_id),
    }
}

/// One entry per channel id: the opener's view when it answered (else the peer's, turned
/// around); a victim's `revoked_remote_commitment` classification wins over the cheater's.
fn merge_channels(
    net: &Network,
    polls: &[NodePoll],
    by_id: &HashMap<String, String>,
) -> Vec<ChannelView> {
    let mut merged: BTreeMap<String, (ChannelView, bool)> = BTreeMap::new();
    for (entry, poll) in net.nodes.iter().zip(polls) {
        for c in &poll.channels {
            let peer = name_of(by_id, &c.peer);
            let (a, b, a_msat, b_msat) = if c.initiator {
                (entry.name.clone(), peer, c.local_msat, c.remote_msat)
            } else {
                (peer, entry.name.clone(), c.remote_msat, c.local_msat)
            };
            let view = ChannelView {
                channel_id: c.channel_id.clone(),
                a,
                b,
                capacity_sat: c.capacity_sat,
                a_msat,
                b_msat,
                state: c.state.clone(),
                short_channel_id: c.short_channel_id.clone(),
                pending_htlcs: c.pending_htlcs,
                closing_kind: c.closing.as_ref().map(|k| k.kind.clone()),
                blocks_left: blocks_left(c),
            };
            match merged.get_mut(&c.channel_id) {
                None => {
                    merged.insert(c.channel_id.clone(), (view, c.initiator));
                }
                Some((have, have_is_opener)) => {
                    let victim = |k: &Option<String>| {
                        k.as_deref()
                            .is_some_and(|k| k.starts_with("revoked_remote_commitment"))
                    };
                    let kind = if victim(&view.closing_kind) || have.closing_kind.is_none() {
                        view.closing_kind.clone()
                    } else {
                        have.closing_kind.clone()
                    };
                    let left = have.blocks_left.max(view.blocks_left);
                    if c.initiator && !*have_is_opener {
                        *have = view;
                        *have_is_opener = true;
                    }
                    have.closing_kind = kind;
                    have.blocks_left = left;
                }
            }
        }
    }
    merged.into_values().map(|(v, _)| v).collect()
}

/// The newest [`SNAPSHOT_PAYMENTS`] payments of every node, oldest first.
fn payments(
    net: &Network,
    polls: &[NodePoll],
    by_id: &HashMap<String, String>,
) -> Vec<PaymentView> {
    let mut all = Vec::new();
    for (entry, poll) in net.nodes.iter().zip(polls) {
        let start = poll.payments.len().saturating_sub(SNAPSHOT_PAYMENTS);
        for p in poll.payments.iter().skip(start) {
            let mut hops = Vec::with_capacity(p.route.len() + 1);
            if !p.route.is_empty() {
                hops.push(entry.name.clone());
                hops.extend(p.route.iter().map(|id| name_of(by_id, id)));
            }
            let status = match p.status {
                PaymentStatus::Pending => "pending",
                PaymentStatus::Succeeded => "succeeded",
                PaymentStatus::Failed => "failed",
            };
            all.push(PaymentView {
                id: format!("{}:{}", entry.name, p.payment_hash),
                from: entry.name.clone(),
                to: name_of(by_id, &p.destination),
                payment_hash: p.payment_hash.clone(),
                amount_msat: p.amount_msat,
                fee_msat: p.fee_msat,
                status: status.to_string(),
                failure: p.failure.clone(),
                hops,
                failed_at: p.failed_at.map(|i| i.saturating_add(1)),
                created_at: p.created_at,
                completed_at: p.completed_at,
            });
        }
    }
    all.sort_by(|x, y| (x.created_at, &x.id).cmp(&(y.created_at, &y.id)));
    let start = all.len().saturating_sub(SNAPSHOT_PAYMENTS);
    all.split_off(start)
}

/// Asks one node for everything a snapshot needs.
async fn poll_node(client: &NodeClient) -> NodePoll {
    let (info, balance, channels, payments) = tokio::join!(
        client.get_info(),
        client.balance(),
        client.list_channels(),
        client.list_last_payments(SNAPSHOT_PAYMENTS)
    );
    let mut poll = NodePoll::default();
    let note = |e: &dyn std::fmt::Display, poll: &mut NodePoll| {
        if poll.error.is_none() {
            poll.error = Some(e.to_string());
        }
    };
    match info {
        Ok(v) => poll.info = Some(v),
        Err(e) => note(&e, &mut poll),
    }
    match balance {
        Ok(v) => poll.balance = Some(v),
        Err(e) => note(&e, &mut poll),
    }
    match channels {
        Ok(v) => poll.channels = v.channels,
        Err(e) => note(&e, &mut poll),
    }
    match payments {
        Ok(v) => poll.payments = v.payments,
        Err(e) => note(&e, &mut poll),
    }
    poll
}

/// Asks the chain daemon for its height and mempool.
async fn poll_chain(client: &ChainClient) -> Option<ChainView> {
    let info = client.get_info().await.ok()?;
    Some(ChainView {
        height: info.height,
        mempool: info.mempool_size,
        alive: true,
    })
}

/// The polling loop: rebuilds the snapshot every round and publishes it (as JSON text) on
/// `tx` when it differs from the last one. A round waits at least [`MIN_ROUND`] and at
/// least as long as the round before took, so a large network is polled more slowly
/// rather than queued. `net` is re-read from `network.json` every round (nodes added by a
/// later `net up` or restarted with new pids are picked up). Returns when every receiver
/// is gone.
pub async fn run(dir: std::path::PathBuf, tx: watch::Sender<Arc<String>>) {
    let mut last = Snapshot::default();
    let mut clients: HashMap<String, NodeClient> = HashMap::new();
    // Built once the network is readable: the chain daemon's datadir never changes (the
    // client re-reads its endpoint after a restart).
    let mut chain: Option<ChainClient> = None;
    loop {
        let started = std::time::Instant::now();
        let Ok(net) = Network::read(&dir) else {
            tokio::time::sleep(MIN_ROUND).await;
            continue;
        };
        for n in &net.nodes {
            clients
                .entry(n.name.clone())
                .or_insert_with(|| node_client(n));
        }
        let chain = chain.get_or_insert_with(|| chain_client(&net));
        let node_polls = net.nodes.iter().map(|n| {
            let client = clients.get(&n.name);
            async move {
                match client {
                    Some(c) => tokio::time::timeout(POLL_TIMEOUT, poll_node(c))
                        .await
                        .unwrap_or_else(|_| NodePoll {
                            error: Some("no answer within 5 s".into()),
                            ..NodePoll::default()
                        }),
                    None => NodePoll::default(),
                }
            }
        });
        let (chain_view, polls) = tokio::join!(
            tokio::time::timeout(POLL_TIMEOUT, poll_chain(chain)),
            futures_util::future::join_all(node_polls)
        );
        let chain_view = chain_view.ok().flatten().or_else(|| {
            Some(ChainView {
                alive: false,
                ..last.chain.clone()
            })
        });
        let mut snap = build(&net, chain_view, &polls, &last.nodes, now_secs());
        snap.seq = last.seq;
        snap.updated_at = last.updated_at;
        if snap != last {
            snap.seq = last.seq + 1;
            snap.updated_at = now_secs();
            match serde_json::to_string(&snap) {
                Ok(text) => {
                    if tx.send(Arc::new(text)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!("snapshot not serialisable: {e}"),
            }
            last = snap;
        } else if tx.is_closed() {
            return;
        }
        let took = started.elapsed();
        tokio::time::sleep(MIN_ROUND.max(took)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::network::{ChainEntry, NodeEntry, ProcessInfo, Topology, NETWORK_VERSION};
    use fulmen_manager::api::{ClosingInfo, ClosingOutput, OnchainBalance};

    fn process() -> ProcessInfo {
        ProcessInfo {
            datadir: "/tmp/x".into(),
            rpc: String::new(),
            pid: 0,
            log: "/tmp/x.log".into(),
            args: Vec::new(),
        }
    }

    fn net() -> Network {
        let node = |name: &str, id: &str| NodeEntry {
            name: name.into(),
            node_id: id.into(),
            listen: String::new(),
            funded_sat: 0,
            process: process(),
        };
        Network {
            version: NETWORK_VERSION,
            dir: "/tmp".into(),
            topology: Topology::Line,
            seed: None,
            chain: ChainEntry { process: process() },
            nodes: vec![node("alice", "aa"), node("bob", "bb"), node("carol", "cc")],
            channels: Vec::new(),
            ready: true,
        }
    }

    fn channel(id: &str, peer: &str, initiator: bool, local: u64, remote: u64) -> ChannelInfo {
        ChannelInfo {
            channel_id: id.into(),
            peer: peer.into(),
            state: "active".into(),
            initiator,
            capacity_sat: 1_000,
            local_msat: local,
            remote_msat: remote,
            pending_htlcs: 0,
            funding_txid: None,
            funding_output: None,
            funding_height: None,
            short_channel_id: None,
            closing_txid: None,
            close_reason: None,
            closing: None,
            local_commitment_number: None,
            remote_commitment_number: None,
        }
    }

    fn payment(dest: &str, route: &[&str], failed_at: Option<u32>, at: u64) -> PaymentInfo {
        PaymentInfo {
            payment_hash: format!("{at:064x}"),
            destination: dest.into(),
            amount_msat: 2_000_000,
            fee_msat: 1_200,
            status: if failed_at.is_some() {
                PaymentStatus::Failed
            } else {
                PaymentStatus::Succeeded
            },
            preimage: None,
            failure: None,
            channel_id: None,
            created_at: at,
            completed_at: Some(at),
            attempts: 1,
            route: route.iter().map(|s| s.to_string()).collect(),
            failed_at,
        }
    }

    #[test]
    fn channels_merge_to_the_openers_view_and_payments_name_their_hops() {
        let net = net();
        let mut alice = NodePoll {
            channels: vec![channel("c1", "bb", true, 600_000, 400_000)],
            payments: vec![
                payment("cc", &["bb", "cc"], None, 10),
                payment("cc", &["bb", "cc"], Some(0), 11),
            ],
            balance: Some(BalanceResult {
                onchain: OnchainBalance {
                    total_sat: 5_000,
                    ..OnchainBalance::default()
                },
                channels_local_msat: 600_999,
                ..BalanceResult::default()
            }),
            ..NodePoll::default()
        };
        let mut bob = NodePoll {
            channels: vec![
                channel("c1", "aa", false, 400_000, 600_000),
                channel("c2", "cc", false, 1, 2),
            ],
            ..NodePoll::default()
        };
        let carol = NodePoll {
            error: Some("down".into()),
            ..NodePoll::default()
        };
        // bob's view of c1 comes first for c2 only; c2's opener (carol) is down.
        bob.channels[0].pending_htlcs = 7;
        alice.channels[0].pending_htlcs = 1;
        let snap = build(&net, None, &[alice, bob, carol], &[], 5);
        assert_eq!(snap.channels.len(), 2);
        let c1 = &snap.channels[0];
        assert_eq!(
            (
                c1.a.as_str(),
                c1.b.as_str(),
                c1.a_msat,
                c1.b_msat,
                c1.pending_htlcs
            ),
            ("alice", "bob", 600_000, 400_000, 1)
        );
        let c2 = &snap.channels[1];
        assert_eq!(
            (c2.a.as_str(), c2.b.as_str(), c2.a_msat, c2.b_msat),
            ("carol", "bob", 2, 1)
        );
        assert_eq!(snap.nodes[0].onchain_sat, 5_000);
        assert_eq!(snap.nodes[0].channel_sat, 600);
        assert!(snap.nodes[0].alive && !snap.nodes[2].alive);
        assert_eq!(snap.nodes[2].error.as_deref(), Some("down"));
        let p = &snap.payments;
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].hops, vec!["alice", "bob", "carol"]);
        assert_eq!((p[0].to.as_str(), p[0].failed_at), ("carol", None));
        // failed_at 0 (bob, the first node of the route) is hop 1 counting the payer.
        assert_eq!((p[1].status.as_str(), p[1].failed_at), ("failed", Some(1)));
    }

    #[test]
    fn a_victims_classification_and_the_longest_wait_win() {
        let net = net();
        let closing = |kind: &str, left: Option<u32>| ClosingInfo {
            kind: kind.into(),
            commitment_txid: String::new(),
            height: 1,
            outputs: vec![ClosingOutput {
                outpoint: String::new(),
                amount_sat: 1,
                kind: "to_local".into(),
                state: if left.is_some() { "waiting" } else { "swept" }.into(),
                spendable_at: None,
                blocks_left: left,
                txid: None,
                spent_height: None,
            }],
            claim_fees_sat: 0,
            resolved: false,
        };
        let mut cheater = channel("c1", "bb", true, 1, 2);
        cheater.closing = Some(closing("our_revoked_commitment(1)", Some(140)));
        let mut victim = channel("c1", "aa", false, 2, 1);
        victim.closing = Some(closing("revoked_remote_commitment(1)", None));
        let polls = [
            NodePoll {
                channels: vec![cheater],
                ..NodePoll::default()
            },
            NodePoll {
                channels: vec![victim],
                ..NodePoll::default()
            },
            NodePoll::default(),
        ];
        let snap = build(&net, None, &polls, &[], 0);
        let c = &snap.channels[0];
        assert_eq!(
            c.closing_kind.as_deref(),
            Some("revoked_remote_commitment(1)")
        );
        assert_eq!(c.blocks_left, Some(140));
        assert_eq!(c.a, "alice");
    }
}
