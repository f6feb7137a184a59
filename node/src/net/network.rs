//! The description of a test network: `DIR/network.json`, node names and topologies.
//!
//! Owns: the `network.json` schema (written by `net up`, read by every other `net` command
//! and by `fulmen --node NAME …`), the default network directory, the node naming scheme,
//! which channels a topology opens. Must never: start or stop processes, or talk to a
//! daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// File name of the network description inside the network directory.
pub const NETWORK_FILE: &str = "network.json";

/// Current `network.json` format version.
pub const NETWORK_VERSION: u32 = 1;

/// The first ten node names; node 10 and later are `node10`, `node11`, …
pub const NODE_NAMES: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

/// The name of node `i` (0-based).
pub fn node_name(i: usize) -> String {
    NODE_NAMES
        .get(i)
        .map(|s| (*s).to_owned())
        .unwrap_or_else(|| format!("node{i}"))
}

/// The one default network directory: `$HOME/.fulmen/net` (`FULMEN_NET` overrides it for
/// the client's `--node`; `net` commands take `--dir`, which also reads `FULMEN_NET`).
pub fn default_net_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".fulmen")
        .join("net")
}

/// How `net up` connects the nodes with channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// Node i opens a channel to node i+1.
    Line,
    /// A line plus a channel from the last node to the first (needs 3 nodes or more).
    Ring,
    /// Node 0 opens a channel to every other node.
    Star,
    /// A connected random graph from `--seed`: a random spanning tree (a random earlier
    /// node opens a channel to node i, for every i ≥ 1), plus about n/2 extra channels between random pairs not yet connected.
    Random,
}

/// A small deterministic RNG (splitmix64) for [`Topology::Random`]: the same seed gives the
/// same network on every machine and every version of the `rand` crate.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

impl Topology {
    /// The `(opener, peer)` index pairs of the channels this topology opens between `n`
    /// nodes, in opening order. A ring of two nodes is a line (no duplicate channel).
    /// `seed` only matters for [`Topology::Random`]; no pair of nodes gets two channels.
    pub fn edges(self, n: usize, seed: u64) -> Vec<(usize, usize)> {
        match self {
            Topology::Line => (1..n).map(|i| (i - 1, i)).collect(),
            Topology::Ring => {
                let mut e = Topology::Line.edges(n, seed);
                if n >= 3 {
                    e.push((n - 1, 0));
                }
                e
            }
            Topology::Star => (1..n).map(|i| (0, i)).collect(),
            Topology::Random => {
                let mut rng = SplitMix64(seed);
                let mut e: Vec<(usize, usize)> = (1..n).map(|i| (rng.below(i), i)).collect();
                let connected = |e: &[(usize, usize)], a: usize, b: usize| {
                    e.iter().any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
                };
                let max_edges = n * n.saturating_sub(1) / 2;
                let target = (e.len() + n / 2).min(max_edges);
                // Bounded tries: with few nodes the graph may be complete before `target`.
                for _ in 0..(100 * n) {
                    if e.len() >= target {
                        break;
                    }
                    let (a, b) = (rng.below(n), rng.below(n));
                    if a != b && !connected(&e, a, b) {
                        e.push((a, b));
                    }
                }
                e
            }
        }
    }

    /// The name used on the command line and in `network.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Line => "line",
            Topology::Ring => "ring",
            Topology::Star => "star",
            Topology::Random => "random",
        }
    }
}

/// A daemon process of the network and how to start it again.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its data directory.
    pub datadir: PathBuf,
    /// Its RPC address (`127.0.0.1:PORT`), fixed so a restart keeps it.
    pub rpc: String,
    /// Process id of the last start.
    pub pid: u32,
    /// Its log file (stdout and stderr, appended across restarts).
    pub log: PathBuf,
    /// The arguments it was started with (after the binary), reused by `net restart`.
    pub args: Vec<String>,
}

/// The chain daemon of a network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainEntry {
    /// The process.
    #[serde(flatten)]
    pub process: ProcessInfo,
}

/// One node of a network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeEntry {
    /// `alice`, `bob`, …
    pub name: String,
    /// Node id, hex (empty until the daemon answered `getinfo`).
    pub node_id: String,
    /// Peer listen address (`127.0.0.1:PORT`).
    pub listen: String,
    /// Sats the faucet paid to its wallet at `net up`.
    #[serde(default)]
    pub funded_sat: u64,
    /// The process.
    #[serde(flatten)]
    pub process: ProcessInfo,
}

impl NodeEntry {
    /// `node_id@listen`, ready for `connect`.
    pub fn uri(&self) -> String {
        format!("{}@{}", self.node_id, self.listen)
    }
}

/// One channel opened by `net up`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelEntry {
    /// The opener's name.
    pub from: String,
    /// The peer's name.
    pub to: String,
    /// Channel id, hex.
    pub channel_id: String,
    /// Capacity, sat.
    pub capacity_sat: u64,
    /// Given to the peer at opening, msat.
    pub push_msat: u64,
    /// Funding transaction id.
    pub funding_txid: String,
}

/// `DIR/network.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Network {
    /// Format version ([`NETWORK_VERSION`]).
    pub version: u32,
    /// The network directory (absolute).
    pub dir: PathBuf,
    /// The topology `net up` used.
    pub topology: Topology,
    /// The seed of a `random` topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The chain daemon.
    pub chain: ChainEntry,
    /// The nodes, in index order.
    pub nodes: Vec<NodeEntry>,
    /// Channels opened by `net up`.
    pub channels: Vec<ChannelEntry>,
    /// Set once `net up` finished (every channel active).
    #[serde(default)]
    pub ready: bool,
}

impl Network {
    /// Path of `network.json` in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(NETWORK_FILE)
    }

    /// Reads `dir/network.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Network> {
        let path = Network::path(dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (no network there? start one with `fulmen net up --dir {}`)",
                path.display(),
                dir.display()
            )
        })?;
        let net: Network = serde_json::from_str(&text)
            .with_context(|| format!("{} is malformed", path.display()))?;
        anyhow::ensure!(
            net.version == NETWORK_VERSION,
            "{} has format version {}, this fulmen reads version {NETWORK_VERSION}",
            path.display(),
            net.version
        );
        Ok(net)
    }

    /// Writes `dir/network.json` atomically (temporary file, then rename).
    pub fn write(&self) -> anyhow::Result<()> {
        let path = Network::path(&self.dir);
        let tmp = self.dir.join(format!("{NETWORK_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self)?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node called `name`, mutably.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeEntry> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// The node names, comma separated (for error messages).
    pub fn names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Makes `dir` absolute (relative to the current directory) without requiring it to exist.
pub fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(node_name(0), "alice");
        assert_eq!(node_name(9), "judy");
        assert_eq!(node_name(10), "node10");
    }

    #[test]
    fn topologies() {
        assert_eq!(Topology::Line.edges(3, 0), vec![(0, 1), (1, 2)]);
        assert_eq!(Topology::Ring.edges(3, 0), vec![(0, 1), (1, 2), (2, 0)]);
        assert_eq!(Topology::Ring.edges(2, 0), vec![(0, 1)]);
        assert_eq!(Topology::Star.edges(4, 0), vec![(0, 1), (0, 2), (0, 3)]);
        assert!(Topology::Line.edges(1, 0).is_empty());
        assert!(Topology::Random.edges(1, 0).is_empty());
        assert_eq!(Topology::Random.edges(2, 9), vec![(0, 1)]);
    }

    /// True if every node of `0..n` is reachable from node 0 over `edges`.
    fn connected(n: usize, edges: &[(usize, usize)]) -> bool {
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        while let Some(k) = stack.pop() {
            if std::mem::replace(&mut seen[k], true) {
                continue;
            }
            for &(a, b) in edges {
                if a == k {
                    stack.push(b);
                } else if b == k {
                    stack.push(a);
                }
            }
        }
        seen.iter().all(|&s| s)
    }

    #[test]
    fn random_topologies_are_connected_seeded_and_without_duplicates() {
        for n in [3, 5, 10, 40] {
            for seed in 0..20 {
                let e = Topology::Random.edges(n, seed);
                assert_eq!(e, Topology::Random.edges(n, seed), "deterministic");
                assert!(connected(n, &e), "n={n} seed={seed}: {e:?}");
                let expected = (n - 1 + n / 2).min(n * (n - 1) / 2);
                assert_eq!(e.len(), expected, "n={n} seed={seed}");
                for (i, &(a, b)) in e.iter().enumerate() {
                    assert_ne!(a, b);
                    assert!(a < n && b < n);
                    assert!(!e[..i]
                        .iter()
                        .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a)));
                }
            }
        }
        assert_ne!(Topology::Random.edges(10, 1), Topology::Random.edges(10, 2));
    }
}
