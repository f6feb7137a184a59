//! The manager network: N `fulmen_manager::Manager`s on one in-memory `fulmen_chain::Chain`,
//! a virtual clock, and the seeded delivery scheduler of [`crate::sim`] between them — the
//! in-process shell that the node daemon is for real processes.
//!
//! Each node's turn follows the manager's call order: inputs, then `poll_persist` → the batch
//! is handed to the node's [`DurableLog`] → acknowledged → `persisted` → outputs drained,
//! until nothing is left. A node armed with [`Network::arm_crash`] crashes at its next
//! handed-out batch: the batch is lost (nothing of it has left the node) and the node is
//! rebuilt with `Manager::new` from its durable [`Stored`] only. Outputs become actions:
//! `Send` → the link's FIFO (encoded bytes; dropped if that connection is gone), `Broadcast`
//! → the chain's mempool, `Reply`/`Event` → collected per node, `Connect` → an in-process
//! dial (refused across a [`Network::partition`]), `Disconnect` → both sides told. Blocks
//! are mined by the test and fed to every node in order. Every delivery, reply, event,
//! broadcast, block, connection and crash goes into the transcript hash.
//!
//! Invariants: after every delivery, value is conserved in every commitment of every
//! channel; at every quiescent point (nothing in flight, every channel idle) both ends of
//! every channel agree ([`crate::pair::check_channel_views`]) and every channel rebuilt from
//! its node's durable records equals the live one. Helpers (funding, opening, invoices,
//! payments, closing, force closes, dev breaches) are in `ops`; the accounting of a channel's
//! end on chain ([`Settlement`]) in `closing`.
//!
//! Must never: read the wall clock, sleep, or use an unseeded RNG.

mod closing;
mod ops;

pub use closing::Settlement;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bitcoin::secp256k1::{PublicKey, SecretKey};
use fulmen_chain::{Chain, ChainParams};
use fulmen_channel::machine::{Channel, ChannelConfig, Phase, SeedKeySource};
use fulmen_manager::{
    CmdError, Command, Manager, ManagerConfig, NodeEvent, NodeSecrets, Output, PeerAccept,
    RequestId, Response, Stored, Writes,
};
use fulmen_wallet::{mnemonic_from_entropy, Seed};
use fulmen_wire::Message;

use crate::pair::check_channel_views;
use crate::sim::{Clock, DurableLog, Links, SimRng, Store, Transcript};
use fulmen_channel::monitor::MonitorRecord;

/// Virtual time at the start of a run (UNIX seconds).
pub const START_TIME: u64 = 1_700_000_000;

impl Store for Stored {
    type Batch = Writes;
    fn apply(&mut self, batch: &Writes) {
        Stored::apply(self, batch);
    }
}

/// The channel and monitor snapshot records in `w`.
fn snapshots_in(w: &Writes) -> u64 {
    let channel = w
        .records
        .iter()
        .filter(|(_, r)| matches!(r, fulmen_channel::machine::Record::Snapshot(_)));
    let monitor = w
        .monitor_records
        .iter()
        .filter(|(_, r)| matches!(r, MonitorRecord::Snapshot(_)));
    (channel.count() + monitor.count()) as u64
}

/// One node: its manager, durable storage, and what it answered and reported.
pub struct Node {
    /// Its name (alias).
    pub name: String,
    /// The manager (rebuilt on restart).
    pub m: Manager,
    /// Node id.
    pub id: PublicKey,
    /// The address peers dial.
    pub address: String,
    /// Durable and handed-out writes.
    pub store: DurableLog<Stored>,
    /// Command replies by request id.
    pub replies: BTreeMap<RequestId, Result<Response, CmdError>>,
    /// Events, oldest first.
    pub events: Vec<NodeEvent>,
    /// Broadcasts the chain refused (txid and reason).
    pub rejected: Vec<String>,
    /// Restarts (clean or crash) and batches lost in crashes.
    pub restarts: u64,
    /// Batches lost in crashes.
    pub lost_batches: u64,
    /// Messages that left before their turn's batch (an early fulfill) when that batch was
    /// then lost in a crash.
    pub sent_before_lost: u64,
    /// `announcement_signatures` sent, and the most one `poll_persist` pass released (the
    /// manager signs for at most `MAX_CHANNELS_SIGNED_PER_PASS` channels per pass).
    pub announcement_signatures: AnnouncementSignaturesSent,
    /// Revocation archive rows the node asked for (`Output::LoadRevokedHtlcs`): (channel,
    /// commitment number, HTLCs in the row), in order.
    pub archive_reads: Vec<(i64, u64, usize)>,
    /// Snapshot records (channel and monitor) in the batches this node wrote.
    pub snapshot_records: u64,
    /// Live connection numbers (the manager's), by peer index.
    conns: BTreeMap<usize, u64>,
    node_secret: SecretKey,
    channel_seed: [u8; 32],
    wallet_seed: Seed,
    incarnation: u64,
    crash_armed: bool,
}

/// A node's `announcement_signatures` sent, counted per `poll_persist` pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct AnnouncementSignaturesSent {
    /// In all.
    pub total: usize,
    /// The most released between two `poll_persist` calls.
    pub most_in_one_pass: usize,
    pass_start: usize,
}

impl AnnouncementSignaturesSent {
    /// A pass ends (the next `poll_persist` is called, or the turn ends).
    fn end_pass(&mut self) {
        self.most_in_one_pass = self.most_in_one_pass.max(self.total - self.pass_start);
        self.pass_start = self.total;
    }
}

impl Node {
    fn secrets(&self) -> NodeSecrets {
        NodeSecrets {
            node_secret: self.node_secret,
            channel_seed: self.channel_seed,
            wallet_seed: self.wallet_seed.clone(),
        }
    }

    /// The key source of this node's channels (to rebuild them from records).
    pub fn key_source(&self) -> SeedKeySource {
        SeedKeySource::new(self.channel_seed)
    }
}

/// Work the network still has to do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// End node k's turn.
    Turn(usize),
    /// Node `from` dials `to` (its manager asked with `Output::Connect`).
    Dial { from: usize, to: usize },
}

/// N managers, one chain, one clock, the links between them, one transcript.
pub struct Network {
    /// The nodes, by index.
    pub nodes: Vec<Node>,
    /// The shared chain.
    pub chain: Chain,
    /// Virtual time.
    pub clock: Clock,
    /// Channel announcements delivered: (from, to, short channel id), in order.
    pub announcements: Vec<(usize, usize, u64)>,
    /// Messages in flight.
    pub links: Links,
    /// The scheduler's randomness.
    pub rng: SimRng,
    /// Everything that happened.
    pub transcript: Transcript,
    /// Every node's settings (the alias is the node's name).
    pub config: ManagerConfig,
    /// Quiescent points at which the views were compared.
    pub quiet_checks: u64,
    /// Names of the nodes that run as watchtowers (`ManagerConfig::tower`).
    towers: BTreeSet<String>,
    seed: u64,
    next_request: RequestId,
    work: VecDeque<Work>,
    partitions: BTreeSet<(usize, usize)>,
    drop_after_next_delivery: bool,
}

fn secret_key(rng: &mut SimRng) -> SecretKey {
    loop {
        if let Ok(k) = SecretKey::from_slice(&rng.bytes32()) {
            return k;
        }
    }
}

fn pair_key(i: usize, j: usize) -> (usize, usize) {
    (i.min(j), i.max(j))
}

impl Network {
    /// Nodes named `names`, every secret and entropy stream derived from `seed`; the chain
    /// has 101 blocks (a mature faucet coin) that every node has seen. Messages get a delay
    /// of 0..=2 seconds.
    pub fn new(seed: u64, names: &[&str]) -> Network {
        Network::with_towers(seed, names, &[])
    }

    /// As [`Network::new`], with the nodes named in `towers` running as watchtowers (their
    /// config has `tower: true`, also after a restart).
    pub fn with_towers(seed: u64, names: &[&str], towers: &[&str]) -> Network {
        let mut keys = SimRng::derive(seed, "network keys");
        let chain = Chain::new(ChainParams::default(), secret_key(&mut keys));
        let config = ManagerConfig {
            alias: String::new(),
            listen: None,
            dev: true,
            // Snapshots every few records, so restarts and crashes replay from snapshots
            // (the store keeps only the records from the last one).
            channel_config: ChannelConfig {
                snapshot_every: 7,
                ..ChannelConfig::default()
            },
            funding_sat_per_vb: 2,
            max_pending_inbound_opens: fulmen_manager::MAX_PENDING_INBOUND_OPENS,
            forwarding: fulmen_manager::DEFAULT_POLICY,
            accept_keysend: true,
            announce_channels: true,
            announce_depth: 1,
            tower: false,
        };
        let mut net = Network {
            nodes: Vec::new(),
            chain,
            clock: Clock::new(START_TIME),
            announcements: Vec::new(),
            links: Links::new(2),
            rng: SimRng::derive(seed, "network scheduler"),
            transcript: Transcript::new(),
            config,
            quiet_checks: 0,
            towers: towers.iter().map(|t| t.to_string()).collect(),
            drop_after_next_delivery: false,
            seed,
            next_request: 1,
            work: VecDeque::new(),
            partitions: BTreeSet::new(),
        };
        for (k, name) in names.iter().enumerate() {
            let mut r = SimRng::derive(seed, &format!("{name} secrets"));
            let node_secret = secret_key(&mut r);
            let channel_seed = r.bytes32();
            let wallet_seed = mnemonic_from_entropy(&r.bytes32()).expect("32 bytes of entropy");
            let address = format!("10.0.0.{}:9735", k + 1);
            let secrets = NodeSecrets {
                node_secret,
                channel_seed,
                wallet_seed: wallet_seed.clone(),
            };
            let m = Manager::new(
                net.node_config(name, &address),
                secrets,
                Box::new(SimRng::derive(seed, &format!("{name} entropy 0"))),
                Stored::default(),
                net.clock.now(),
            )
            .expect("new node");
            net.nodes.push(Node {
                name: name.to_string(),
                id: m.node_id(),
                m,
                address,
                store: DurableLog::with_power_loss(),
                replies: BTreeMap::new(),
                events: Vec::new(),
                rejected: Vec::new(),
                restarts: 0,
                lost_batches: 0,
                sent_before_lost: 0,
                announcement_signatures: Default::default(),
                archive_reads: Vec::new(),
                snapshot_records: 0,
                conns: BTreeMap::new(),
                node_secret,
                channel_seed,
                wallet_seed,
                incarnation: 0,
                crash_armed: false,
            });
            net.queue(Work::Turn(k));
        }
        net.mine(101);
        net
    }

    fn node_config(&self, name: &str, address: &str) -> ManagerConfig {
        ManagerConfig {
            alias: name.to_string(),
            listen: Some(address.to_string()),
            tower: self.towers.contains(name),
            ..self.config.clone()
        }
    }

    /// The index of the node named `name`.
    pub fn idx(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: &PublicKey) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == *id)
            .expect("a node of this network")
    }

    /// The hash of everything that happened so far.
    pub fn transcript_hash(&self) -> [u8; 32] {
        self.transcript.hash()
    }

    fn note(&mut self, kind: &str, data: &[u8]) {
        self.transcript.record(kind, data);
    }

    fn queue(&mut self, w: Work) {
        if !self.work.contains(&w) {
            self.work.push_back(w);
        }
    }

    /// Do all outstanding work: turns (and what they cause) and dials, in order.
    pub fn settle(&mut self) {
        while let Some(w) = self.work.pop_front() {
            match w {
                Work::Turn(k) => self.turn(k),
                Work::Dial { from, to } => self.dial(from, to),
            }
        }
    }

    /// End node `k`'s turn: each batch handed out is made durable (or lost, if a crash is
    /// armed) and acknowledged, then its outputs are acted on, until nothing is left.
    fn turn(&mut self, k: usize) {
        loop {
            // A fulfill leaves before the turn's signing, as in the daemon.
            self.nodes[k].m.release_early();
            let mut early = self.drain(k);
            self.nodes[k].announcement_signatures.end_pass();
            let Some(b) = self.nodes[k].m.poll_persist() else {
                break;
            };
            // What may leave before the write (a fulfill) has left, crash or not.
            early += self.drain(k);
            let node = &mut self.nodes[k];
            node.snapshot_records += snapshots_in(&b.writes);
            node.store.hand_out(b.id, b.writes);
            if node.crash_armed {
                node.crash_armed = false;
                node.sent_before_lost += early;
                self.restart(k, true);
                return;
            }
            node.store.ack_next_with(b.sync);
            node.m.persisted(b.id);
            // Whatever an acknowledgement releases must wait for a write that survives
            // power loss: a batch nobody waits on is the only one written unsynced.
            let released = self.drain(k);
            assert!(
                b.sync || released == 0,
                "{}: {released} outputs released by a batch written unsynced",
                self.nodes[k].name
            );
        }
        self.drain(k);
        self.nodes[k].announcement_signatures.end_pass();
        // Work left for another pass (announcements of many channels): another turn, after
        // what is already queued, as the daemon's `Input::Continue`.
        if self.nodes[k].m.has_deferred_work() {
            self.queue(Work::Turn(k));
        }
    }

    /// Acts on node `k`'s outputs; returns how many there were.
    fn drain(&mut self, k: usize) -> u64 {
        let mut n = 0;
        while let Some(o) = self.nodes[k].m.poll_output() {
            self.dispatch(k, o);
            n += 1;
        }
        n
    }

    fn dispatch(&mut self, k: usize, o: Output) {
        let name = self.nodes[k].name.clone();
        match o {
            Output::Send { node_id, conn, msg } => {
                let j = self.index_of(&node_id);
                if self.nodes[k].conns.get(&j) == Some(&conn) {
                    if matches!(*msg, Message::AnnouncementSignatures(_)) {
                        self.nodes[k].announcement_signatures.total += 1;
                    }
                    let now = self.clock.now();
                    self.links.send(k, j, msg.encode(), now, &mut self.rng);
                }
            }
            Output::Disconnect { node_id, conn, .. } => {
                let j = self.index_of(&node_id);
                if self.nodes[k].conns.get(&j) == Some(&conn) {
                    self.drop_connection(k, j, "disconnect requested");
                }
            }
            Output::Broadcast(tx) => {
                self.check_broadcast_is_durable(k, &tx);
                let txid = tx.compute_txid();
                match self.chain.submit_transaction(tx) {
                    Ok(_) => self.note(&format!("{name} broadcast"), txid.as_ref()),
                    Err(e) => {
                        self.note(&format!("{name} broadcast refused"), txid.as_ref());
                        self.nodes[k].rejected.push(format!("{txid}: {e}"));
                    }
                }
            }
            Output::Reply { request, result } => {
                let d = format!("{request} {result:?}");
                self.note(&format!("{name} reply"), d.as_bytes());
                self.nodes[k].replies.insert(request, result);
            }
            Output::Event(ev) => {
                self.note(&format!("{name} event"), format!("{ev:?}").as_bytes());
                self.nodes[k].events.push(ev);
            }
            Output::Connect { node_id, .. } => {
                let to = self.index_of(&node_id);
                self.queue(Work::Dial { from: k, to });
            }
            Output::LoadRevokedHtlcs { channel, number } => {
                // As the node's store: a row of the durable revocation archive, or none.
                let htlcs = self.nodes[k]
                    .store
                    .durable()
                    .revoked_htlcs
                    .get(&(channel, number))
                    .cloned()
                    .unwrap_or_default();
                self.note(&format!("{name} archive read"), &number.to_be_bytes());
                self.nodes[k]
                    .archive_reads
                    .push((channel, number, htlcs.len()));
                self.nodes[k].m.handle_revoked_htlcs(channel, number, htlcs);
                self.queue(Work::Turn(k));
            }
            Output::LookupUtxo { short_channel_id } => {
                let answer = self.utxo_answer(short_channel_id);
                let now = self.clock.now();
                self.nodes[k]
                    .m
                    .handle_utxo_answer(now, short_channel_id, answer);
                self.queue(Work::Turn(k));
            }
        }
    }

    /// What the chain says about the output a short channel id names.
    fn utxo_answer(&self, scid: fulmen_wire::ShortChannelId) -> fulmen_manager::UtxoAnswer {
        use fulmen_routing::UtxoResult;
        let found = self.chain.block_at(scid.block_height()).and_then(|b| {
            let tx = b.txdata.get(scid.tx_index() as usize)?;
            let vout = u32::from(scid.output_index());
            tx.output.get(vout as usize)?;
            Some(bitcoin::OutPoint {
                txid: tx.compute_txid(),
                vout,
            })
        });
        match found {
            None => fulmen_manager::UtxoAnswer {
                result: UtxoResult::Missing,
                outpoint: None,
            },
            Some(op) => match self.chain.utxo(&op) {
                Some(u) => fulmen_manager::UtxoAnswer {
                    result: UtxoResult::Found {
                        script_pubkey: u.txout.script_pubkey.clone(),
                        value: u.txout.value,
                    },
                    outpoint: Some(op),
                },
                None => fulmen_manager::UtxoAnswer {
                    result: UtxoResult::Spent,
                    outpoint: Some(op),
                },
            },
        }
    }

    /// Invariant ([harden] 6a): a transaction that spends a channel's funding (a
    /// cooperative closing transaction, or our commitment in a force close) leaves node `k`
    /// only once it is durable in that channel's stored row.
    fn check_broadcast_is_durable(&self, k: usize, tx: &bitcoin::Transaction) {
        let node = &self.nodes[k];
        for e in node.m.channels() {
            let Some(op) = e.ch.state().funding_outpoint else {
                continue;
            };
            if !tx.input.iter().any(|i| i.previous_output == op) {
                continue;
            }
            let stored = node.store.durable().channels.iter().find(|c| c.id == e.id);
            // A dev node's revoked commitment is rebuilt from a durable `LocalCommitment`
            // record of its monitor.
            let number = revoked_number(e.ch.state(), tx);
            let durable = stored.is_some_and(|c| {
                c.closing_tx.as_ref() == Some(tx)
                    || c.commitment_tx.as_ref() == Some(tx)
                    || c.monitor_records.iter().any(|r| match (r, number) {
                        (MonitorRecord::LocalCommitment { number: n, .. }, Some(want)) => {
                            *n == want
                        }
                        (MonitorRecord::Snapshot(s), Some(want)) => s.holds_local_commitment(want),
                        _ => false,
                    })
            });
            assert!(
                durable,
                "{} broadcast {} spending the funding of channel {} before persisting it",
                node.name,
                tx.compute_txid(),
                e.id
            );
        }
    }

    /// Node `from`'s redial of `to` ends: connected unless partitioned (or already).
    fn dial(&mut self, from: usize, to: usize) {
        let id = self.nodes[to].id;
        self.nodes[from].m.handle_reconnect_ended(id);
        self.queue(Work::Turn(from));
        self.connect(from, to);
    }

    /// True if `i` and `j` have a live connection.
    pub fn connected(&self, i: usize, j: usize) -> bool {
        self.nodes[i].conns.contains_key(&j)
    }

    /// `i` dials `j` (handshake done at once): both managers take the connection. False if
    /// they are connected already or partitioned.
    pub fn connect(&mut self, i: usize, j: usize) -> bool {
        if i == j || self.connected(i, j) || self.partitions.contains(&pair_key(i, j)) {
            return false;
        }
        let (id_i, id_j) = (self.nodes[i].id, self.nodes[j].id);
        let addr = self.nodes[j].address.clone();
        let acc_j = self.nodes[j].m.handle_peer_connected(None, id_i, None);
        let acc_i = self.nodes[i]
            .m
            .handle_peer_connected(None, id_j, Some(addr));
        let (PeerAccept::Accepted { conn: ci }, PeerAccept::Accepted { conn: cj }) = (acc_i, acc_j)
        else {
            panic!("a manager holds a connection the network does not know");
        };
        self.nodes[i].conns.insert(j, ci);
        self.nodes[j].conns.insert(i, cj);
        let d = [i as u8, j as u8];
        self.note("connect", &d);
        self.queue(Work::Turn(j));
        self.queue(Work::Turn(i));
        self.settle();
        true
    }

    fn drop_connection(&mut self, i: usize, j: usize, reason: &str) {
        let n = self.links.disconnect(i, j);
        self.note("disconnect", &[i as u8, j as u8, n as u8]);
        for (a, b) in [(i, j), (j, i)] {
            if let Some(c) = self.nodes[a].conns.remove(&b) {
                let id = self.nodes[b].id;
                self.nodes[a].m.handle_peer_disconnected(id, c, reason);
                self.queue(Work::Turn(a));
            }
        }
    }

    /// Drop the connection between `i` and `j` (everything in flight is lost both ways);
    /// the managers may redial at once.
    pub fn disconnect(&mut self, i: usize, j: usize) {
        self.drop_connection(i, j, "link dropped");
        self.settle();
    }

    /// Cut `i` from `j`: the connection drops and dials between them fail until
    /// [`Network::heal`].
    pub fn partition(&mut self, i: usize, j: usize) {
        self.partitions.insert(pair_key(i, j));
        self.disconnect(i, j);
    }

    /// End a partition; `i` dials `j`.
    pub fn heal(&mut self, i: usize, j: usize) {
        self.partitions.remove(&pair_key(i, j));
        self.connect(i, j);
    }

    /// Node `k`'s next handed-out batch is lost: the node crashes there and restarts.
    pub fn arm_crash(&mut self, k: usize) {
        self.nodes[k].crash_armed = true;
    }

    /// Cancel every armed crash; returns the nodes that had one.
    pub fn disarm(&mut self) -> Vec<usize> {
        let mut armed = Vec::new();
        for (k, n) in self.nodes.iter_mut().enumerate() {
            if std::mem::take(&mut n.crash_armed) {
                armed.push(k);
            }
        }
        armed
    }

    /// Restart node `k` from its durable [`Stored`] (`crash`: losing the batch handed out
    /// and not acknowledged, if any): its connections drop, the manager is rebuilt with
    /// fresh entropy, catches up with the chain and redials.
    pub fn restart(&mut self, k: usize, crash: bool) {
        let lost = if crash {
            self.nodes[k].store.crash().len()
        } else {
            assert_eq!(self.nodes[k].store.pending_len(), 0, "clean restart");
            0
        };
        self.restart_from_store(k, lost, if crash { "crash" } else { "restart" });
    }

    /// Node `k` loses power: like a crash, and the batches it wrote unsynced since its last
    /// synced write are lost too (see [`fulmen_manager::PersistBatch::sync`]).
    pub fn power_loss(&mut self, k: usize) {
        let lost = self.nodes[k].store.power_loss();
        self.restart_from_store(k, lost, "power loss");
    }

    fn restart_from_store(&mut self, k: usize, lost: usize, kind: &str) {
        let peers: Vec<usize> = self.nodes[k].conns.keys().copied().collect();
        for j in peers {
            self.drop_connection(k, j, "peer restarted");
        }
        let now = self.clock.now();
        let node = &mut self.nodes[k];
        node.incarnation += 1;
        node.restarts += 1;
        node.lost_batches += lost as u64;
        let entropy = SimRng::derive(
            self.seed,
            &format!("{} entropy {}", node.name, node.incarnation),
        );
        let config = ManagerConfig {
            alias: node.name.clone(),
            listen: Some(node.address.clone()),
            tower: self.towers.contains(&node.name),
            ..self.config.clone()
        };
        node.m = Manager::new(
            config,
            node.secrets(),
            Box::new(entropy),
            node.store.durable().clone(),
            now,
        )
        .expect("restart from the durable records");
        let d = [k as u8, lost as u8];
        self.note(kind, &d);
        self.sync_chain(k);
        self.queue(Work::Turn(k));
    }

    /// Feed node `k` every block it has not seen yet.
    fn sync_chain(&mut self, k: usize) {
        let now = self.clock.now();
        while self.nodes[k].m.height() < self.chain.height() {
            let h = self.nodes[k].m.height() + 1;
            let block = self
                .chain
                .block_at(h)
                .expect("a block below the tip")
                .clone();
            self.nodes[k]
                .m
                .handle_block_connected(now, &block, h)
                .expect("the next block");
        }
        self.queue(Work::Turn(k));
    }

    /// Feed only node `k` the blocks of the chain it has not seen (blocks mined on
    /// [`Network::chain`] directly reach no node by themselves), and run its turn.
    pub fn sync_chain_of(&mut self, k: usize) {
        self.sync_chain(k);
        self.settle();
    }

    /// Disconnect the top `n` blocks (their transactions go back to the mempool, unless
    /// `forget_mempool`: then nobody has them and only a rebroadcast brings them back) and
    /// tell every node; the next [`Network::mine`] builds the new branch.
    pub fn reorg(&mut self, n: u32, forget_mempool: bool) {
        self.chain.reorg(n).expect("reorg within the chain");
        if forget_mempool {
            self.chain.clear_mempool();
        }
        let fork = self.chain.height();
        self.note("reorg", &fork.to_be_bytes());
        for k in 0..self.nodes.len() {
            self.nodes[k]
                .m
                .handle_blocks_disconnected(fork)
                .expect("the node follows the reorg");
            self.queue(Work::Turn(k));
        }
        self.settle();
    }

    /// Mine `n` blocks (one second apart) and feed them to every node.
    pub fn mine(&mut self, n: u32) {
        for _ in 0..n {
            self.clock.advance(1);
            let t = u32::try_from(self.clock.now()).unwrap_or(u32::MAX);
            for b in self.chain.mine(1, None, t) {
                self.note("block", b.block_hash().as_ref());
            }
            for k in 0..self.nodes.len() {
                self.sync_chain(k);
            }
            self.settle();
        }
    }

    /// `secs` seconds pass: the clock advances and every node gets the daemon's periodic
    /// `handle_tick` (multi-part sets time out, stale gossip is pruned), then each runs its
    /// turn.
    pub fn tick(&mut self, secs: u64) {
        self.clock.advance(secs);
        let now = self.clock.now();
        self.note("tick", &now.to_be_bytes());
        for k in 0..self.nodes.len() {
            self.nodes[k].m.handle_tick(now);
            self.queue(Work::Turn(k));
        }
        self.settle();
    }

    /// Send node `k` a command; its turn runs at once. Returns the request id.
    pub fn command(&mut self, k: usize, cmd: Command) -> RequestId {
        self.commands(k, vec![cmd])[0]
    }

    /// Send node `k` commands that arrive together, as the node's shell hands the manager
    /// consecutive commands of one turn ([`fulmen_manager::Manager::handle_commands`]: their
    /// `pay`s start as one batch); its turn runs at once. Returns the request ids, in order.
    pub fn commands(&mut self, k: usize, cmds: Vec<Command>) -> Vec<RequestId> {
        let mut ids = Vec::with_capacity(cmds.len());
        let mut accepted = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let r = self.next_request;
            self.next_request += 1;
            ids.push(r);
            let d = format!("{} {r} {cmd:?}", self.nodes[k].name);
            self.note("command", d.as_bytes());
            // As the node's shell does: a `pay` of a hash the durable store has as paid or
            // in flight is refused before the manager sees it (it keeps only open payments).
            if let Some(hash) = fulmen_manager::pay_command_hash(&cmd) {
                let earlier = self.nodes[k]
                    .store
                    .durable()
                    .payments
                    .iter()
                    .find(|p| p.info.payment_hash == hash)
                    .map(|p| p.info.status);
                if let Err(e) = fulmen_manager::refuse_repeat(earlier) {
                    self.nodes[k].replies.insert(r, Err(e));
                    continue;
                }
            }
            if matches!(cmd, Command::ListForwards) {
                // As the node's shell: the resolved forwards come from the store.
                let closed: Vec<_> = self.nodes[k]
                    .store
                    .durable()
                    .forwards
                    .iter()
                    .filter(|f| !f.is_open())
                    .cloned()
                    .collect();
                self.nodes[k].m.recall_forwards(closed);
            }
            accepted.push((r, cmd));
        }
        let now = self.clock.now();
        self.nodes[k].m.handle_commands(now, accepted);
        self.queue(Work::Turn(k));
        self.settle();
        ids
    }

    /// The reply to request `r` of node `k`, if it arrived (taken).
    pub fn take_reply(&mut self, k: usize, r: RequestId) -> Option<Result<Response, CmdError>> {
        self.nodes[k].replies.remove(&r)
    }

    /// A command, run until quiet, and its reply (which must have arrived).
    pub fn call(&mut self, k: usize, cmd: Command) -> Result<Response, CmdError> {
        let r = self.command(k, cmd);
        self.run_until_quiet();
        self.take_reply(k, r)
            .unwrap_or_else(|| panic!("no reply to request {r}"))
    }

    /// Deliver one message: a random link among those whose head is due (the clock jumps to
    /// the next due time if none is). False when nothing is in flight.
    pub fn step(&mut self) -> bool {
        self.settle();
        if self.links.is_empty() {
            self.wake_held();
            if self.links.is_empty() {
                return false;
            }
        }
        let now = self.clock.now();
        let d = match self.links.pop_random(now, &mut self.rng) {
            Some(d) => d,
            None => {
                let t = self.links.next_due().expect("something in flight");
                self.clock.advance_to(t);
                let now = self.clock.now();
                self.links
                    .pop_random(now, &mut self.rng)
                    .expect("a due message")
            }
        };
        let label = format!("{}>{}", self.nodes[d.from].name, self.nodes[d.to].name);
        self.note(&label, &d.bytes);
        let msg = Message::decode(&d.bytes).expect("a delivered message decodes");
        if let Message::ChannelAnnouncement(a) = &msg {
            self.announcements.push((d.from, d.to, a.short_channel_id));
        }
        if let Message::UpdateAddHtlc(a) = &msg {
            // As the node's shell: the paid invoice of the HTLC's payment hash, if any.
            let hash = hex::encode(a.payment_hash);
            let recalled: Vec<_> = self.nodes[d.to]
                .store
                .durable()
                .invoices
                .iter()
                .filter(|i| !i.is_open() && i.info.payment_hash == hash)
                .cloned()
                .collect();
            self.nodes[d.to].m.recall_invoices(recalled);
        }
        let conn = self.nodes[d.to].conns[&d.from];
        let from_id = self.nodes[d.from].id;
        let now = self.clock.now();
        self.nodes[d.to]
            .m
            .handle_peer_message(now, from_id, conn, msg);
        if self.drop_after_next_delivery {
            // The link drops in the same turn as this delivery.
            self.drop_after_next_delivery = false;
            self.drop_connection(d.from, d.to, "dropped with the last delivery");
        }
        self.queue(Work::Turn(d.to));
        self.settle();
        self.check_step();
        if self.links.is_empty() {
            self.check_if_quiet();
        }
        true
    }

    /// With nothing in flight, every node holding back a commitment that only settles its
    /// peer's updates gets the wake-up the daemon sends after `COMMIT_DELAY_MS`, and runs
    /// its turn.
    fn wake_held(&mut self) {
        for k in 0..self.nodes.len() {
            if self.nodes[k].m.has_held_commitments() {
                self.note("wake", &[k as u8]);
                self.nodes[k].m.handle_wake();
                self.queue(Work::Turn(k));
            }
        }
        self.settle();
    }

    /// Deliver one message (as [`Network::step`]) and drop that link in the same turn,
    /// before the receiver's writes are handed out.
    pub fn step_and_drop(&mut self) -> bool {
        self.drop_after_next_delivery = true;
        let delivered = self.step();
        self.drop_after_next_delivery = false;
        delivered
    }

    /// Deliver until nothing is in flight (every channel's views are compared whenever the
    /// network goes quiet).
    pub fn run_until_quiet(&mut self) {
        for _ in 0..200_000 {
            if !self.step() {
                self.check_if_quiet();
                return;
            }
        }
        panic!("the network did not quiesce");
    }

    /// Value is conserved in every commitment of every channel of every node.
    pub fn check_step(&self) {
        for n in &self.nodes {
            for e in n.m.channels() {
                let st = e.ch.state();
                let cap = st.setup.funding_sat * 1000;
                let specs = [
                    st.local_commit.as_ref().map(|c| &c.spec),
                    st.remote_commit.as_ref().map(|c| &c.spec),
                    st.remote_next.as_ref().map(|c| &c.spec),
                ];
                for spec in specs.into_iter().flatten() {
                    assert_eq!(spec.total_msat(), cap, "{}: value in a commitment", n.name);
                }
            }
        }
    }

    /// Nothing in flight, no work left, every channel idle.
    pub fn is_quiet(&self) -> bool {
        self.links.is_empty()
            && self.work.is_empty()
            && self
                .nodes
                .iter()
                .all(|n| n.m.channels().all(|e| e.ch.is_quiescent()))
    }

    /// [`Network::check_views`] if the network is quiet.
    pub fn check_if_quiet(&mut self) {
        if self.is_quiet() {
            self.check_views();
            self.quiet_checks += 1;
        }
    }

    /// Both ends of every channel in normal operation agree, and every channel rebuilt from
    /// its node's durable records equals the live one.
    pub fn check_views(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            for e in n.m.channels() {
                let stored = n.store.durable().channels.iter().find(|c| c.id == e.id);
                if let Some(c) = stored.filter(|c| !c.records.is_empty()) {
                    let r = Channel::restore(
                        &n.key_source(),
                        self.config.channel_config.clone(),
                        &c.records,
                    )
                    .expect("stored records replay");
                    assert_eq!(r.state(), e.ch.state(), "{}: restored differs", n.name);
                }
                let j = self.index_of(&e.peer);
                if j < i || e.ch.state().phase != Phase::Normal {
                    continue;
                }
                let other = self.nodes[j]
                    .m
                    .channels()
                    .find(|f| f.ch.channel_id() == e.ch.channel_id());
                if let Some(f) = other.filter(|f| f.ch.state().phase == Phase::Normal) {
                    check_channel_views(&e.ch, &f.ch);
                }
            }
        }
    }
}

/// The commitment number a transaction spending `st`'s funding carries, if it is one.
fn revoked_number(
    st: &fulmen_channel::machine::ChannelState,
    tx: &bitcoin::Transaction,
) -> Option<u64> {
    let remote = st.setup.remote.as_ref()?;
    let (opener, acceptor) = if st.setup.is_opener {
        (&st.setup.local.basepoints, &remote.basepoints)
    } else {
        (&remote.basepoints, &st.setup.local.basepoints)
    };
    let factor = fulmen_channel::commitment::obscuring_factor(
        &opener.payment_basepoint,
        &acceptor.payment_basepoint,
    );
    fulmen_channel::commitment::commitment_number_of(tx, factor)
}
