//! Watchtowers inside the manager, both halves.
//!
//! - Server (a node with [`crate::ManagerConfig::tower`]): a [`Tower`] that answers the
//!   tower messages of any peer (sessions, blobs), and scans every connected block for
//!   breaches, broadcasting the justice transactions it decrypts.
//! - Client (after [`crate::Command::TowerAdd`]): every justice backup the channel monitors
//!   build is sealed ([`fulmen_watchtower::client::backup`]), queued durably for every tower,
//!   sent as `StoreBlob` once the tower acknowledged our `CreateSession` on the live
//!   connection, and dropped from the queue only on the tower's `StoreAck`. After a
//!   reconnect or a restart everything still queued is sent again.
//!
//! Tower messages travel as [`Message::Unknown`] of the odd types of
//! [`fulmen_watchtower::wire`] (`type ‖ payload`, exactly the crate's encoding).
//!
//! Owns: the [`Tower`], the [`TowerClient`] of every tower and its per-connection session
//! state. Must never: send a reply or a blob before the record or queue row it depends on is
//! part of the turn's writes (both leave through [`Manager::send_after`], released only
//! after the batch is durable); panic on a peer's bytes.

use std::collections::HashSet;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Block;
use fulmen_watchtower::client::backup;
use fulmen_watchtower::wire::{is_tower_type, CreateSession, TowerMessage};
use fulmen_watchtower::{Backup, Hint, Tower, TowerClient, TowerConfig};
use fulmen_wire::Message;

use crate::api::{TowerInfoResult, TowerServerInfo, TowerStatus};
use crate::manager::{After, Manager};
use crate::types::{CmdError, ManagerError, Output, RequestId, Response, Stored, TowerQueueWrite};

/// Most `StoreBlob`s in flight (sent, not answered) to one tower.
const MAX_IN_FLIGHT: usize = 64;

/// One tower we back up to.
#[derive(Debug)]
pub(crate) struct TowerSlot {
    client: TowerClient,
    address: String,
    /// The tower acknowledged our session on the live connection.
    session_open: bool,
    /// Hints sent on the live connection and not yet answered.
    in_flight: HashSet<Hint>,
    sent: u64,
    refused: u64,
}

/// Both halves' state.
#[derive(Debug, Default)]
pub(crate) struct Towers {
    /// The tower we run (server side), if `ManagerConfig::tower`.
    server: Option<Tower>,
    /// The towers we back up to.
    slots: Vec<TowerSlot>,
}

impl Towers {
    /// Rebuilds both halves from what was durable.
    pub(crate) fn restore(server: bool, stored: &Stored) -> Result<Towers, ManagerError> {
        let server = if server {
            Some(
                Tower::restore(TowerConfig::default(), stored.tower_records.iter().cloned())
                    .map_err(|e| ManagerError::Tower(e.to_string()))?,
            )
        } else {
            None
        };
        let slots = stored
            .towers
            .iter()
            .map(|t| {
                let pending: Vec<Backup> = stored
                    .tower_queue
                    .iter()
                    .filter(|(id, _)| *id == t.node_id)
                    .map(|(_, b)| b.clone())
                    .collect();
                TowerSlot {
                    client: TowerClient::restore(t.node_id, pending, t.acked),
                    address: t.address.clone(),
                    session_open: false,
                    in_flight: HashSet::new(),
                    sent: 0,
                    refused: t.refused,
                }
            })
            .collect();
        Ok(Towers { server, slots })
    }

    /// True if we back up to `node_id`.
    pub(crate) fn is_tower(&self, node_id: &PublicKey) -> bool {
        self.slots.iter().any(|s| s.client.tower() == *node_id)
    }

    /// True if we back up to any tower.
    pub(crate) fn has_towers(&self) -> bool {
        !self.slots.is_empty()
    }

    fn slot_mut(&mut self, node_id: &PublicKey) -> Option<&mut TowerSlot> {
        self.slots.iter_mut().find(|s| s.client.tower() == *node_id)
    }
}

/// The tower message as a peer message: `type ‖ payload`.
fn to_wire(msg: &TowerMessage) -> Message {
    let bytes = msg.encode();
    Message::Unknown {
        msg_type: msg.msg_type(),
        payload: bytes.get(2..).unwrap_or_default().to_vec(),
    }
}

impl Manager {
    /// `tower add`: remember the tower durably, dial it, have the monitors build backups.
    pub(crate) fn tower_add(&mut self, request: RequestId, node_id: PublicKey, address: String) {
        if node_id == self.node_id {
            self.reply(
                request,
                Err(CmdError::invalid("a node cannot be its own tower")),
            );
            return;
        }
        if address.is_empty() {
            self.reply(
                request,
                Err(CmdError::invalid("the tower's address is empty")),
            );
            return;
        }
        match self.towers.slot_mut(&node_id) {
            Some(s) => s.address.clone_from(&address),
            None => self.towers.slots.push(TowerSlot {
                client: TowerClient::new(node_id),
                address: address.clone(),
                session_open: false,
                in_flight: HashSet::new(),
                sent: 0,
                refused: 0,
            }),
        }
        self.pending.towers.push((node_id, address.clone()));
        self.pending.peers.push((node_id, Some(address.clone())));
        let slot = self.peers.entry(node_id).or_default();
        slot.address = Some(address);
        let connected = slot.conn.is_some();
        self.enable_justice_backups();
        if connected {
            self.tower_session_start(node_id);
        } else {
            self.maybe_reconnect(node_id);
        }
        let status = self.tower_status(&node_id);
        match status {
            Some(s) => self.reply(request, Ok(Response::TowerAdded(s))),
            None => self.reply(request, Err(CmdError::failed("tower not kept"))),
        }
    }

    /// `tower info`.
    pub(crate) fn tower_info(&self) -> TowerInfoResult {
        let towers: Vec<TowerStatus> = self
            .towers
            .slots
            .iter()
            .filter_map(|s| self.tower_status(&s.client.tower()))
            .collect();
        TowerInfoResult {
            backups_acknowledged: towers.iter().map(|t| t.acknowledged).sum(),
            backups_pending: towers.iter().map(|t| t.pending).sum(),
            towers,
            server: self.towers.server.as_ref().map(|t| {
                let i = t.info();
                TowerServerInfo {
                    clients: i.clients,
                    stored_blobs: i.stored_blobs,
                    stored_bytes: i.stored_bytes,
                    justice_broadcasts: i.broadcasts,
                    rejected_justice: i.rejected_justice,
                }
            }),
        }
    }

    fn tower_status(&self, node_id: &PublicKey) -> Option<TowerStatus> {
        let s = self
            .towers
            .slots
            .iter()
            .find(|s| s.client.tower() == *node_id)?;
        Some(TowerStatus {
            node_id: node_id.to_string(),
            address: s.address.clone(),
            connected: self.peers.get(node_id).is_some_and(|p| p.conn.is_some()),
            session: s.session_open,
            quota_remaining: s.client.remaining_quota(),
            sent: s.sent,
            acknowledged: s.client.acknowledged(),
            pending: s.client.pending(),
            refused: s.refused,
        })
    }

    /// A peer connected: if it is one of our towers, open the session.
    pub(crate) fn tower_peer_connected(&mut self, node_id: PublicKey) {
        if self.towers.is_tower(&node_id) {
            self.tower_session_start(node_id);
        }
    }

    /// A peer's connection ended: its session (if a tower) ends with it.
    pub(crate) fn tower_peer_disconnected(&mut self, node_id: &PublicKey) {
        if let Some(s) = self.towers.slot_mut(node_id) {
            s.session_open = false;
            s.in_flight.clear();
        }
    }

    fn tower_session_start(&mut self, node_id: PublicKey) {
        if let Some(s) = self.towers.slot_mut(&node_id) {
            s.session_open = false;
            s.in_flight.clear();
        }
        let msg = TowerMessage::CreateSession(CreateSession { quota: 0 });
        self.send_after(node_id, to_wire(&msg));
    }

    /// A peer message of an odd unknown type: true if it was a tower message (handled).
    pub(crate) fn handle_tower_message(
        &mut self,
        node_id: PublicKey,
        msg_type: u16,
        payload: &[u8],
    ) -> bool {
        if !is_tower_type(msg_type) {
            return false;
        }
        let mut bytes = Vec::with_capacity(2 + payload.len());
        bytes.extend_from_slice(&msg_type.to_be_bytes());
        bytes.extend_from_slice(payload);
        let msg = match TowerMessage::decode(&bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%node_id, msg_type, error = %e, "undecodable tower message");
                return true;
            }
        };
        match msg {
            TowerMessage::CreateSession(_) | TowerMessage::StoreBlob(_) => {
                let Some(tower) = self.towers.server.as_mut() else {
                    tracing::debug!(%node_id, msg_type, "not a tower: message ignored");
                    return true;
                };
                let (reply, record) = tower.handle_message(&node_id, &msg);
                // Persist before the reply leaves: send_after releases after the batch.
                self.pending.tower_records.extend(record);
                if let Some(r) = reply {
                    self.send_after(node_id, to_wire(&r));
                }
            }
            TowerMessage::SessionAck(ack) => {
                if let Some(s) = self.towers.slot_mut(&node_id) {
                    s.client.session_acked(ack.quota, ack.stored);
                    s.session_open = true;
                    tracing::info!(tower = %node_id, quota = ack.quota, stored = ack.stored, "tower session open");
                    self.tower_send_pending(node_id);
                }
            }
            TowerMessage::StoreAck(ack) => {
                if let Some(s) = self.towers.slot_mut(&node_id) {
                    s.in_flight.remove(&ack.hint);
                    if s.client.acked(&ack.hint) {
                        self.pending.tower_queue.push(TowerQueueWrite::Acked {
                            tower: node_id,
                            hint: ack.hint,
                        });
                    }
                    self.tower_send_pending(node_id);
                }
            }
            TowerMessage::StoreRefused(r) => {
                if let Some(s) = self.towers.slot_mut(&node_id) {
                    s.in_flight.remove(&r.hint);
                    tracing::warn!(tower = %node_id, hint = %r.hint, code = r.reason_code, text = %r.text, "tower refused a backup");
                    if s.client.refused(&r.hint).is_some() {
                        s.refused += 1;
                        self.pending.tower_queue.push(TowerQueueWrite::Refused {
                            tower: node_id,
                            hint: r.hint,
                        });
                    }
                    self.tower_send_pending(node_id);
                }
            }
        }
        true
    }

    /// Sends the queued backups not yet in flight to `node_id` (open session, live
    /// connection), within the tower's quota and [`MAX_IN_FLIGHT`].
    fn tower_send_pending(&mut self, node_id: PublicKey) {
        if self.peers.get(&node_id).and_then(|p| p.conn).is_none() {
            return;
        }
        let Some(s) = self.towers.slot_mut(&node_id) else {
            return;
        };
        if !s.session_open {
            return;
        }
        let room = s
            .client
            .remaining_quota()
            .map_or(usize::MAX, |q| q as usize)
            .min(MAX_IN_FLIGHT)
            .saturating_sub(s.in_flight.len());
        let mut out = Vec::new();
        for b in s.client.queued() {
            if out.len() >= room {
                break;
            }
            if !s.in_flight.contains(&b.hint) {
                out.push(b.clone());
            }
        }
        for b in &out {
            s.in_flight.insert(b.hint);
            s.sent += 1;
        }
        for b in out {
            self.send_after(node_id, to_wire(&b.to_message()));
        }
    }

    /// Turn end: the monitors' new justice backups are sealed, queued durably for every
    /// tower (this turn's writes) and sent where a session is open.
    pub(crate) fn tower_turn(&mut self) {
        if !self.towers.has_towers() || self.justice_queue.is_empty() {
            return;
        }
        let backups = self.take_justice_backups();
        for (chan, b) in backups {
            let sealed = match backup(&b.commitment_txid, &b.justice_tx) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(channel = chan, number = b.number, error = %e, "justice backup not sealed");
                    continue;
                }
            };
            for s in &mut self.towers.slots {
                let tower = s.client.tower();
                match s.client.queue(sealed.clone()) {
                    Ok(()) => self.pending.tower_queue.push(TowerQueueWrite::Queued {
                        tower,
                        backup: sealed.clone(),
                    }),
                    Err(e) => tracing::warn!(%tower, error = %e, "backup not queued"),
                }
            }
        }
        let ids: Vec<PublicKey> = self.towers.slots.iter().map(|s| s.client.tower()).collect();
        for id in ids {
            self.tower_send_pending(id);
        }
    }

    /// A block connected: the tower (if we are one) looks for breaches and broadcasts the
    /// justice transactions; its records join the turn's writes (the broadcast follows them).
    pub(crate) fn tower_block_connected(&mut self, block: &Block, height: u32) {
        let Some(tower) = self.towers.server.as_mut() else {
            return;
        };
        for b in tower.block_connected(height, &block.txdata) {
            tracing::warn!(client = %b.client, commitment = %b.commitment_txid, justice = %b.justice_tx.compute_txid(), "breach seen by the tower: broadcasting justice");
            self.pending.tower_records.extend(b.record);
            self.after.push(After::Out(Output::Broadcast(b.justice_tx)));
        }
    }
}
