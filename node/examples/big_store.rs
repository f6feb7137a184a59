//! Builds a large node store for the start-up benchmark (issue 17: node start with 1,000
//! channels and 1,000,000 settled payments on record).
//!
//! Two steps, on a network from `fulmen net up --topology star` (alice in the middle):
//!
//! - `big_store channels NETDIR N [SATS]`: alice opens N more channels (SATS each, default
//!   100,000) to the other nodes of the network, round after round (at most 8 pending per
//!   peer, as the peers allow), mining until each round is active.
//! - `big_store history NETDIR N AMOUNT_MSAT`: real payments through those channels: alice
//!   keysends N payments of AMOUNT_MSAT to every other node, then every other node keysends
//!   N back (the peers in parallel, each one payment at a time). A node picks, among its
//!   parallel channels to a peer, one that can carry the payment, so once N × AMOUNT covers
//!   what alice can spend to a peer, every channel has carried payments both ways — each
//!   with a history of real HTLCs (commitments, revocations, monitor records). A peer whose
//!   channels cannot carry another payment (no route) stops early. With
//!   `BIG_STORE_BACK_ONLY` set, only the second half runs.
//! - `big_store payments DATADIR N`: with that node's daemon stopped, writes N settled
//!   payments through the store's own API ([`NodeStore::write`], 10,000 per transaction),
//!   each a copy of the newest succeeded payment already in the store with a fresh payment
//!   hash and preimage (so pay one real invoice first).
//!
//! See BENCHMARKS.md, "Large networks and idle footprint", for the commands.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitcoin::hashes::{sha256, Hash as _};
use fulmen_manager::api::PaymentStatus;
use fulmen_manager::PaymentRecord;
use fulmen_node::net::network::Network;
use fulmen_node::net::up::concurrently;
use fulmen_node::net::{chain_client, mine_and_sync, node_client};
use fulmen_node::node::store::{DbSync, NodeStore, WriteBatch};

/// At most this many pending inbound channels per peer (the peers refuse more).
const PER_PEER_ROUND: usize = 8;
/// Payments written per transaction.
const PAYMENTS_PER_BATCH: usize = 10_000;

fn usage() -> anyhow::Error {
    anyhow::anyhow!(
        "usage: big_store channels NETDIR N [SATS] | big_store history NETDIR N AMOUNT_MSAT \
         | big_store payments DATADIR N"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().ok_or_else(usage);
    let number = |i: usize| -> anyhow::Result<u64> {
        arg(i)?
            .parse()
            .with_context(|| format!("argument {i} is not a number"))
    };
    match arg(0)?.as_str() {
        "channels" => {
            let sats = if args.len() > 3 { number(3)? } else { 100_000 };
            channels(PathBuf::from(arg(1)?), number(2)?, sats).await
        }
        "history" => history(PathBuf::from(arg(1)?), number(2)?, number(3)?).await,
        "payments" => payments(PathBuf::from(arg(1)?), number(2)?).await,
        _ => Err(usage()),
    }
}

async fn channels(dir: PathBuf, n: u64, sats: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let net = Network::read(&dir).context("reading network.json")?;
    let alice = net
        .nodes
        .first()
        .context("the network has no node")?
        .clone();
    let peers: Vec<_> = net.nodes.iter().skip(1).cloned().collect();
    anyhow::ensure!(!peers.is_empty(), "the network needs two nodes or more");
    let chain = chain_client(&net);
    let client = node_client(&alice);
    // One confirmed output per channel, so no opening waits for change.
    for i in 0..n {
        let address = client.new_address().await?.address;
        chain
            .fund(&address, sats + 20_000)
            .await
            .with_context(|| format!("funding output {i}"))?;
    }
    mine_and_sync(&net, 1).await?;
    eprintln!(
        "funded {n} outputs in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut left = n as usize;
    while left > 0 {
        let round: Vec<(usize, usize)> = peers
            .iter()
            .enumerate()
            .map(|(i, _)| (i, PER_PEER_ROUND))
            .scan(left, |left, (i, k)| {
                let take = k.min(*left);
                *left -= take;
                Some((i, take))
            })
            .filter(|(_, k)| *k > 0)
            .collect();
        let opened: usize = round.iter().map(|(_, k)| k).sum();
        let jobs = round.into_iter().map(|(i, k)| {
            let alice = alice.clone();
            let peer = peers.get(i).cloned();
            async move {
                let Some(peer) = peer else { return Ok(()) };
                let client = node_client(&alice);
                for _ in 0..k {
                    client
                        .open_channel(&peer.node_id, sats, 0)
                        .await
                        .with_context(|| format!("opening to {}", peer.name))?;
                }
                Ok(())
            }
        });
        concurrently(jobs).await?;
        mine_and_sync(&net, 3).await?;
        // Wait until none of alice's channels is pending (the peers accept the next round).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let list = client.list_channels().await?;
            let pending = list.channels.iter().filter(|c| c.state != "active").count();
            if pending == 0 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{pending} channels still not active"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        left -= opened;
        eprintln!(
            "{} channels opened, {left} to go ({:.1}s)",
            n as usize - left,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

async fn history(dir: PathBuf, n: u64, amount_msat: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let net = Network::read(&dir).context("reading network.json")?;
    let (alice, peers) = net.nodes.split_first().context("the network has no node")?;
    let phases = [("alice → peers", true), ("peers → alice", false)];
    let skip = usize::from(std::env::var_os("BIG_STORE_BACK_ONLY").is_some());
    for (phase, outbound) in phases.into_iter().skip(skip) {
        let phase_started = Instant::now();
        let jobs = peers.iter().map(|peer| {
            let (from, to) = if outbound {
                (alice.clone(), peer.clone())
            } else {
                (peer.clone(), alice.clone())
            };
            async move {
                let client = node_client(&from);
                let mut failed = 0u64;
                for _ in 0..n {
                    // No route: every channel to that peer is spent (the amount was more
                    // than the channels hold): that peer is done.
                    match client
                        .keysend(&to.node_id, amount_msat, None, Some(60))
                        .await
                    {
                        Ok(p) if p.status == PaymentStatus::Succeeded => {}
                        Ok(_) => failed += 1,
                        Err(e) if e.to_string().contains("no route") => break,
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("keysend {} → {}", from.name, to.name))
                        }
                    }
                }
                anyhow::Ok(failed)
            }
        });
        let failed: u64 = futures_util::future::try_join_all(jobs).await?.iter().sum();
        eprintln!(
            "{phase}: at most {} payments, {failed} failed, in {:.1}s",
            n * peers.len() as u64,
            phase_started.elapsed().as_secs_f64(),
        );
    }
    eprintln!("history in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn payments(datadir: PathBuf, n: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = NodeStore::open(&datadir, DbSync::Normal).await?;
    let template: PaymentRecord = store
        .payments(Some(100))
        .await?
        .iter()
        .rev()
        .filter_map(|j| serde_json::from_str::<PaymentRecord>(j).ok())
        .find(|p| p.info.status == PaymentStatus::Succeeded)
        .context("no succeeded payment in the store to copy: pay one invoice first")?;
    let mut written = 0u64;
    while written < n {
        let mut batch = WriteBatch::default();
        let end = (written + PAYMENTS_PER_BATCH as u64).min(n);
        for i in written..end {
            let preimage = sha256::Hash::hash(format!("big_store {i}").as_bytes());
            let hash = sha256::Hash::hash(preimage.as_byte_array());
            let mut p = template.clone();
            p.info.payment_hash = hash.to_string();
            p.info.preimage = Some(preimage.to_string());
            p.htlc_id = Some(i);
            batch.payments.push((
                p.info.payment_hash.clone(),
                serde_json::to_string(&p).context("encoding a payment")?,
                p.is_open(),
            ));
        }
        store.write(&batch).await?;
        written = end;
    }
    store.close().await;
    let bytes = serde_json::to_string(&template)?.len();
    eprintln!(
        "wrote {n} payments (≈ {bytes} bytes of JSON each) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
