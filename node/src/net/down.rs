//! `fulmen net down`, `net status`, `net restart` and `net mine`: the commands that act on
//! an existing network described by `DIR/network.json`.
//!
//! Owns: stopping a network (RPC `stop`, then SIGTERM, then SIGKILL by pid, waiting for
//! every exit; nodes before the chain), `--purge`, the status report, restarting one daemon
//! with its recorded arguments, and mining with a wait for every node. Must never: delete a
//! directory that has no `network.json`, or signal a pid that is no longer our daemon.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

use super::network::{Network, ProcessInfo};
use super::process::{self, Ended};
use super::{
    marker, mine_and_sync, quick_chain_client, quick_node_client, wait_ready, DaemonKind, DirArg,
};

/// How long a daemon gets to exit after `stop`, and again after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

fn alive(p: &ProcessInfo) -> bool {
    process::is_alive(p.pid, &marker(&p.datadir))
}

/// Stops every daemon of `net`: asks every running node to `stop` (RPC), waits, falls back
/// to signals; then the chain the same way. Returns what happened to each, by name.
pub async fn stop_all(net: &Network) -> Vec<(String, u32, Ended)> {
    let mut asked = Vec::with_capacity(net.nodes.len());
    for node in &net.nodes {
        let running = alive(&node.process);
        let ok = running && quick_node_client(node).stop().await.is_ok();
        asked.push((node, ok));
    }
    let mut out = Vec::with_capacity(net.nodes.len() + 1);
    for (node, ok) in asked {
        let p = &node.process;
        let ended = process::terminate(p.pid, &marker(&p.datadir), ok, STOP_GRACE).await;
        out.push((node.name.clone(), p.pid, ended));
    }
    let p = &net.chain.process;
    let ok = alive(p) && quick_chain_client(net).stop().await.is_ok();
    let ended = process::terminate(p.pid, &marker(&p.datadir), ok, STOP_GRACE).await;
    out.push(("chain".into(), p.pid, ended));
    out
}

/// Stops the network in `dir` and, with `purge`, deletes `dir`. Returns the report.
pub async fn down_dir(dir: &Path, purge: bool) -> anyhow::Result<Value> {
    let net = Network::read(dir)?;
    let mut stopped = Vec::new();
    if let Some((pid, ended)) = crate::web::stop(dir).await {
        stopped.push(("web".to_string(), pid, ended));
    }
    stopped.extend(stop_all(&net).await);
    let survivors: Vec<String> = stopped
        .iter()
        .filter(|(_, _, e)| *e == Ended::StillRunning)
        .map(|(n, pid, _)| format!("{n} (pid {pid})"))
        .collect();
    anyhow::ensure!(
        survivors.is_empty(),
        "could not stop {}; {} was kept",
        survivors.join(", "),
        dir.display()
    );
    let mut purged = false;
    if purge {
        std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))?;
        purged = true;
    }
    Ok(json!({
        "dir": dir,
        "stopped": stopped.iter().map(|(name, pid, ended)| json!({
            "name": name, "pid": pid, "result": ended,
        })).collect::<Vec<_>>(),
        "purged": purged,
    }))
}

/// `fulmen net down [--purge]`.
pub async fn run(dir: &DirArg, net_opt: Option<&Path>, purge: bool) -> anyhow::Result<Value> {
    let dir = dir.resolve(net_opt)?;
    down_dir(&dir, purge).await
}

/// `fulmen net status`.
pub async fn status(dir: &DirArg, net_opt: Option<&Path>) -> anyhow::Result<Value> {
    let dir = dir.resolve(net_opt)?;
    let net = Network::read(&dir)?;
    let chain_alive = alive(&net.chain.process);
    let mut chain = json!({
        "alive": chain_alive,
        "pid": net.chain.process.pid,
        "rpc": net.chain.process.rpc,
        "datadir": net.chain.process.datadir,
    });
    if chain_alive {
        match quick_chain_client(&net).get_info().await {
            Ok(info) => {
                chain["height"] = json!(info.height);
                chain["mempool_size"] = json!(info.mempool_size);
            }
            Err(e) => chain["error"] = json!(e.to_string()),
        }
    }
    let mut nodes = Vec::with_capacity(net.nodes.len());
    for node in &net.nodes {
        let is_alive = alive(&node.process);
        let mut v = json!({
            "name": node.name,
            "alive": is_alive,
            "pid": node.process.pid,
            "node_id": node.node_id,
            "listen": node.listen,
            "rpc": node.process.rpc,
            "log": node.process.log,
        });
        if is_alive {
            let client = quick_node_client(node);
            let probe = async {
                let info = client.get_info().await?;
                let channels = client.list_channels().await?;
                let balance = client.balance().await?;
                Ok::<_, crate::rpc_client::RpcClientError>((info, channels, balance))
            };
            match probe.await {
                Ok((info, channels, balance)) => {
                    let open: Vec<_> = channels
                        .channels
                        .iter()
                        .filter(|c| c.state != "closed")
                        .collect();
                    v["block_height"] = json!(info.block_height);
                    v["num_peers"] = json!(info.num_peers);
                    v["channels"] = json!(open.len());
                    v["active_channels"] = json!(info.num_active_channels);
                    v["local_msat"] = json!(open.iter().map(|c| c.local_msat).sum::<u64>());
                    v["remote_msat"] = json!(open.iter().map(|c| c.remote_msat).sum::<u64>());
                    v["onchain_sat"] = json!(balance.onchain.total_sat);
                    v["total_sat"] = json!(balance.total_sat);
                    v["info"] = serde_json::to_value(&info)?;
                }
                Err(e) => v["error"] = json!(e.to_string()),
            }
        }
        nodes.push(v);
    }
    Ok(json!({
        "dir": net.dir,
        "topology": net.topology,
        "ready": net.ready,
        "chain": chain,
        "nodes": nodes,
        "channels": net.channels,
    }))
}

/// Starts daemon `name` (a node name or `chain`) of the network in `dir` again with its
/// recorded arguments, records its new pid and waits until it answers RPC.
pub async fn restart_in(dir: &Path, name: &str) -> anyhow::Result<Value> {
    let mut net = Network::read(dir)?;
    let exe = std::env::current_exe().context("finding the fulmen binary")?;
    let (kind, p) = if name == "chain" {
        (DaemonKind::Chain, &mut net.chain.process)
    } else {
        let names = net.names();
        let node = net.node_mut(name).with_context(|| {
            format!(
                "no node {name:?} in the network at {} (nodes: {names}; or `chain`)",
                dir.display()
            )
        })?;
        (DaemonKind::Node, &mut node.process)
    };
    anyhow::ensure!(
        !alive(p),
        "{name} is running (pid {}): stop or kill it first",
        p.pid
    );
    p.pid = process::spawn_daemon(&exe, &p.args, &p.log)?;
    let p = p.clone();
    net.write()?;
    wait_ready(kind, &p.datadir, p.pid, &p.log).await?;
    let mut out = json!({ "name": name, "pid": p.pid, "rpc": p.rpc, "log": p.log });
    if kind == DaemonKind::Node {
        if let Some(node) = net.node(name) {
            out["info"] = serde_json::to_value(quick_node_client(node).get_info().await?)?;
        }
    }
    Ok(out)
}

/// Starts every daemon of the network in `dir` that is not running (the chain first), e.g.
/// after a reboot. Returns what was started.
pub async fn restart_all(dir: &Path) -> anyhow::Result<Value> {
    let net = Network::read(dir)?;
    let mut started = Vec::new();
    if !alive(&net.chain.process) {
        started.push(restart_in(dir, "chain").await?);
    }
    for node in &net.nodes {
        if !alive(&node.process) {
            started.push(restart_in(dir, &node.name).await?);
        }
    }
    Ok(json!({ "dir": dir, "started": started }))
}

/// `fulmen net restart NAME` (`all`: every daemon that is not running).
pub async fn restart(dir: &DirArg, net_opt: Option<&Path>, name: &str) -> anyhow::Result<Value> {
    let dir = dir.resolve(net_opt)?;
    if name == "all" {
        return restart_all(&dir).await;
    }
    restart_in(&dir, name).await
}

/// `fulmen net mine N`.
pub async fn mine(dir: &DirArg, net_opt: Option<&Path>, n: u32) -> anyhow::Result<Value> {
    let dir = dir.resolve(net_opt)?;
    let net = Network::read(&dir)?;
    let height = mine_and_sync(&net, n).await?;
    Ok(json!({ "mined": n, "height": height }))
}
