//! The tower half: sessions per client, the stored blobs indexed by hint, and the scan of
//! every connected block for breaches.
//!
//! Owns the tower's acceptance rules (session, size, shape, duplicate, quota), the hint
//! index, the decision to broadcast a justice transaction, and the [`TowerRecord`]s the node
//! must persist. Must never do I/O: blocks and messages come in as arguments, transactions to
//! broadcast and records to persist go out as return values. Must never panic on a blob or a
//! message from a client.
//!
//! # Persistence
//!
//! Every state change comes out as a [`TowerRecord`] (append-only increments, never a
//! snapshot): [`TowerRecord::SessionCreated`], [`TowerRecord::Stored`],
//! [`TowerRecord::Broadcast`]. The node writes the record (with [`TowerRecord::encode`])
//! *before* it sends the reply that depends on it (a [`crate::wire::StoreAck`] must never
//! reach a client for a blob that a crash could lose), and rebuilds the tower after a restart
//! with [`Tower::restore`] from the records in the order they were written.
//!
//! # Cost of a block
//!
//! Blobs live in a `HashMap` from [`Hint`] to the list of (client, blob) stored under it, so a
//! block costs one txid computation and one map probe per transaction, plus one decryption
//! per blob stored under a matching hint. Hints are the first 16 bytes of a txid, so
//! accidental collisions do not happen; deliberate ones (several clients storing under the
//! same hint — only a party that knows the txid can do it) are each tried, and only the blob
//! that decrypts with the txid's key *and* spends that txid is broadcast. Each client's list
//! entry is bounded by its quota, so the worst-case work per transaction is bounded by the
//! total quota granted.

use std::collections::{HashMap, HashSet};

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{Transaction, Txid};
use thiserror::Error;

use crate::blob::{self, BlobError, Hint, MAX_BLOB_LEN};
use crate::codec::{put_bytes16, DecodeError, Reader};
use crate::wire::{RefusalReason, SessionAck, StoreAck as StoreAckMsg, StoreRefused, TowerMessage};

/// Default number of backups one client session may hold.
pub const DEFAULT_QUOTA: u32 = 10_000;
/// Version byte of an encoded [`TowerRecord`].
pub const RECORD_VERSION: u8 = 1;

/// The tower operator's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TowerConfig {
    /// Quota granted when a client asks for 0 (no preference).
    pub default_quota: u32,
    /// Largest quota granted to one client; larger requests are cut to it.
    pub max_quota: u32,
    /// Largest blob accepted, at most [`MAX_BLOB_LEN`].
    pub max_blob_len: usize,
}

impl Default for TowerConfig {
    fn default() -> Self {
        TowerConfig {
            default_quota: DEFAULT_QUOTA,
            max_quota: DEFAULT_QUOTA,
            max_blob_len: MAX_BLOB_LEN,
        }
    }
}

/// Why a blob was not stored. Each maps to a [`RefusalReason`] code on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The client has no session.
    #[error("no session for this client: create one first")]
    UnknownSession,
    /// The blob is larger than the tower accepts.
    #[error("blob of {len} bytes exceeds the maximum of {max}")]
    Oversize {
        /// Length of the blob.
        len: usize,
        /// The tower's maximum.
        max: usize,
    },
    /// The blob is not well formed (wrong version, bad length).
    #[error("garbage blob: {0}")]
    Garbage(BlobError),
    /// A different blob is already stored under this hint for this client.
    #[error("a different blob is already stored under hint {0}")]
    DuplicateHint(Hint),
    /// The session holds as many blobs as its quota allows.
    #[error("quota of {quota} backups used up")]
    OverQuota {
        /// The session's quota.
        quota: u32,
    },
}

impl StoreError {
    /// The wire reason for this refusal.
    pub fn reason(&self) -> RefusalReason {
        match self {
            StoreError::UnknownSession => RefusalReason::UnknownSession,
            StoreError::Oversize { .. } => RefusalReason::Oversize,
            StoreError::Garbage(_) => RefusalReason::Garbage,
            StoreError::DuplicateHint(_) => RefusalReason::DuplicateHint,
            StoreError::OverQuota { .. } => RefusalReason::OverQuota,
        }
    }

    /// The [`StoreRefused`] message telling the client.
    pub fn to_message(&self, hint: Hint) -> TowerMessage {
        TowerMessage::StoreRefused(StoreRefused {
            hint,
            reason_code: self.reason().code(),
            text: self.to_string(),
        })
    }
}

/// A state change the node must persist (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TowerRecord {
    /// A session was created, or its quota changed.
    SessionCreated {
        /// The client's node id.
        client: PublicKey,
        /// The session's quota from now on.
        quota: u32,
    },
    /// A blob was stored.
    Stored {
        /// The client's node id.
        client: PublicKey,
        /// The blob's hint.
        hint: Hint,
        /// The blob.
        blob: Vec<u8>,
    },
    /// A justice transaction was handed out for broadcast (first time for this client and
    /// commitment).
    Broadcast {
        /// Whose blob it was.
        client: PublicKey,
        /// The revoked commitment that was mined.
        commitment_txid: Txid,
        /// Height of the block it was mined in.
        height: u32,
    },
}

const TAG_SESSION: u8 = 1;
const TAG_STORED: u8 = 2;
const TAG_BROADCAST: u8 = 3;

impl TowerRecord {
    /// Encodes the record: `RECORD_VERSION ‖ tag ‖ client (33) ‖ fields`, integers big-endian,
    /// the blob u16-length-prefixed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(RECORD_VERSION);
        match self {
            TowerRecord::SessionCreated { client, quota } => {
                out.push(TAG_SESSION);
                out.extend_from_slice(&client.serialize());
                out.extend_from_slice(&quota.to_be_bytes());
            }
            TowerRecord::Stored { client, hint, blob } => {
                out.push(TAG_STORED);
                out.extend_from_slice(&client.serialize());
                out.extend_from_slice(hint.as_bytes());
                put_bytes16(&mut out, blob);
            }
            TowerRecord::Broadcast {
                client,
                commitment_txid,
                height,
            } => {
                out.push(TAG_BROADCAST);
                out.extend_from_slice(&client.serialize());
                out.extend_from_slice(&commitment_txid.to_byte_array());
                out.extend_from_slice(&height.to_be_bytes());
            }
        }
        out
    }

    /// Decodes what [`TowerRecord::encode`] wrote; refuses unknown versions and tags,
    /// invalid keys, truncation and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<TowerRecord, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let tag = r.u8("tag")?;
        let client = PublicKey::from_slice(r.take(33, "client")?)
            .map_err(|_| DecodeError::Invalid("client node id"))?;
        let record = match tag {
            TAG_SESSION => TowerRecord::SessionCreated {
                client,
                quota: r.u32("quota")?,
            },
            TAG_STORED => TowerRecord::Stored {
                client,
                hint: Hint(r.array("hint")?),
                blob: r.bytes16("blob")?.to_vec(),
            },
            TAG_BROADCAST => TowerRecord::Broadcast {
                client,
                commitment_txid: Txid::from_byte_array(r.array("commitment_txid")?),
                height: r.u32("height")?,
            },
            other => return Err(DecodeError::UnknownType(other.into())),
        };
        r.finish()?;
        Ok(record)
    }
}

/// A session was created or re-opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOutcome {
    /// Quota granted and blobs already stored: the [`SessionAck`] to send.
    pub ack: SessionAck,
    /// Persist this before sending the ack (`None` when nothing changed).
    pub record: Option<TowerRecord>,
}

/// A blob was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAck {
    /// The blob's hint.
    pub hint: Hint,
    /// Persist this before sending the ack; `None` for an idempotent re-store of a blob
    /// already held.
    pub record: Option<TowerRecord>,
}

impl StoreAck {
    /// The wire acknowledgement.
    pub fn to_message(&self) -> TowerMessage {
        TowerMessage::StoreAck(StoreAckMsg { hint: self.hint })
    }
}

/// A justice transaction to broadcast: a revoked commitment of `client`'s channel was mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// Whose blob it was.
    pub client: PublicKey,
    /// The decrypted justice transaction.
    pub justice_tx: Transaction,
    /// The revoked commitment.
    pub commitment_txid: Txid,
    /// Height of the block that contained the commitment.
    pub height: u32,
    /// Persist this (`None` when this client's justice for this commitment was already
    /// handed out before, e.g. the block was reconnected after a reorg).
    pub record: Option<TowerRecord>,
}

/// What the tower holds, for `tower info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TowerInfo {
    /// Client sessions.
    pub clients: usize,
    /// Blobs stored, over all clients.
    pub stored_blobs: usize,
    /// Bytes of blob stored (blobs only, without hints or index overhead).
    pub stored_bytes: usize,
    /// Justice transactions handed out (distinct client and commitment).
    pub broadcasts: usize,
    /// Blobs that decrypted under a mined txid but did not spend it (a client's mistake or
    /// a malicious client), not broadcast.
    pub rejected_justice: u64,
}

/// Why records could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// A `Stored` or `Broadcast` record for a client with no earlier `SessionCreated`.
    #[error("record for client {0} before its session")]
    NoSession(PublicKey),
    /// Two different blobs stored under one hint for one client.
    #[error("conflicting blobs under hint {0}")]
    Conflict(Hint),
}

#[derive(Debug, Clone)]
struct Session {
    quota: u32,
    stored: u32,
}

#[derive(Debug, Clone)]
struct Entry {
    client: u32,
    blob: Box<[u8]>,
}

/// The tower: client sessions, stored blobs, and the justice transactions handed out.
#[derive(Debug, Clone)]
pub struct Tower {
    config: TowerConfig,
    clients: Vec<(PublicKey, Session)>,
    client_index: HashMap<PublicKey, u32>,
    by_hint: HashMap<Hint, Vec<Entry>>,
    stored_blobs: usize,
    stored_bytes: usize,
    broadcasts: Vec<(PublicKey, Txid, u32)>,
    broadcast_set: HashSet<(u32, Txid)>,
    rejected_justice: u64,
}

impl Tower {
    /// An empty tower.
    pub fn new(config: TowerConfig) -> Tower {
        Tower {
            config,
            clients: Vec::new(),
            client_index: HashMap::new(),
            by_hint: HashMap::new(),
            stored_blobs: 0,
            stored_bytes: 0,
            broadcasts: Vec::new(),
            broadcast_set: HashSet::new(),
            rejected_justice: 0,
        }
    }

    /// Rebuilds a tower from its records, in the order they were written.
    pub fn restore(
        config: TowerConfig,
        records: impl IntoIterator<Item = TowerRecord>,
    ) -> Result<Tower, RestoreError> {
        let mut tower = Tower::new(config);
        for record in records {
            tower.apply(record)?;
        }
        Ok(tower)
    }

    /// Applies one persisted record (replay). Limits are not re-checked: the records are the
    /// tower's own decisions.
    pub fn apply(&mut self, record: TowerRecord) -> Result<(), RestoreError> {
        match record {
            TowerRecord::SessionCreated { client, quota } => {
                self.set_session(client, quota);
            }
            TowerRecord::Stored { client, hint, blob } => {
                let idx = *self
                    .client_index
                    .get(&client)
                    .ok_or(RestoreError::NoSession(client))?;
                match self.find(idx, &hint) {
                    Some(existing) if *existing == *blob => {}
                    Some(_) => return Err(RestoreError::Conflict(hint)),
                    None => self.insert(idx, hint, blob),
                }
            }
            TowerRecord::Broadcast {
                client,
                commitment_txid,
                height,
            } => {
                let idx = *self
                    .client_index
                    .get(&client)
                    .ok_or(RestoreError::NoSession(client))?;
                if self.broadcast_set.insert((idx, commitment_txid)) {
                    self.broadcasts.push((client, commitment_txid, height));
                }
            }
        }
        Ok(())
    }

    /// The tower's limits.
    pub fn config(&self) -> &TowerConfig {
        &self.config
    }

    fn set_session(&mut self, client: PublicKey, quota: u32) -> u32 {
        if let Some(&idx) = self.client_index.get(&client) {
            if let Some((_, s)) = self.clients.get_mut(idx as usize) {
                s.quota = quota;
            }
            return idx;
        }
        let idx = self.clients.len() as u32;
        self.clients.push((client, Session { quota, stored: 0 }));
        self.client_index.insert(client, idx);
        idx
    }

    fn find(&self, client: u32, hint: &Hint) -> Option<&[u8]> {
        self.by_hint
            .get(hint)?
            .iter()
            .find(|e| e.client == client)
            .map(|e| &*e.blob)
    }

    fn insert(&mut self, client: u32, hint: Hint, blob: Vec<u8>) {
        self.stored_blobs += 1;
        self.stored_bytes += blob.len();
        if let Some((_, s)) = self.clients.get_mut(client as usize) {
            s.stored = s.stored.saturating_add(1);
        }
        self.by_hint.entry(hint).or_default().push(Entry {
            client,
            blob: blob.into_boxed_slice(),
        });
    }

    /// Creates a session for `client`, or re-opens the existing one. `quota` 0 asks for the
    /// default; the grant is capped at [`TowerConfig::max_quota`]. An existing session keeps
    /// its blobs and its quota only grows.
    pub fn create_session(&mut self, client: PublicKey, quota: u32) -> SessionOutcome {
        let asked = if quota == 0 {
            self.config.default_quota
        } else {
            quota
        };
        let granted = asked.min(self.config.max_quota);
        let existing = self
            .client_index
            .get(&client)
            .and_then(|&i| self.clients.get(i as usize))
            .map(|(_, s)| s.clone());
        let stored = existing.as_ref().map_or(0, |s| s.stored);
        let (quota, record) = match existing {
            Some(s) if s.quota >= granted => (s.quota, None),
            _ => {
                self.set_session(client, granted);
                (
                    granted,
                    Some(TowerRecord::SessionCreated {
                        client,
                        quota: granted,
                    }),
                )
            }
        };
        SessionOutcome {
            ack: SessionAck { quota, stored },
            record,
        }
    }

    /// Stores `blob` under `hint` for `client`, or says why not (checked in this order:
    /// unknown session, oversize, garbage, duplicate hint, quota). Re-storing the identical
    /// blob is accepted without a new record.
    pub fn store(
        &mut self,
        client: &PublicKey,
        hint: Hint,
        blob: &[u8],
    ) -> Result<StoreAck, StoreError> {
        let idx = *self
            .client_index
            .get(client)
            .ok_or(StoreError::UnknownSession)?;
        let max = self.config.max_blob_len.min(MAX_BLOB_LEN);
        if blob.len() > max {
            return Err(StoreError::Oversize {
                len: blob.len(),
                max,
            });
        }
        blob::check_blob_shape(blob).map_err(StoreError::Garbage)?;
        match self.find(idx, &hint) {
            Some(existing) if existing == blob => return Ok(StoreAck { hint, record: None }),
            Some(_) => return Err(StoreError::DuplicateHint(hint)),
            None => {}
        }
        let session = self
            .clients
            .get(idx as usize)
            .map(|(_, s)| s.clone())
            .ok_or(StoreError::UnknownSession)?;
        if session.stored >= session.quota {
            return Err(StoreError::OverQuota {
                quota: session.quota,
            });
        }
        self.insert(idx, hint, blob.to_vec());
        Ok(StoreAck {
            hint,
            record: Some(TowerRecord::Stored {
                client: *client,
                hint,
                blob: blob.to_vec(),
            }),
        })
    }

    /// Handles one message from `client`: the reply to send and the record to persist
    /// before sending it. Messages a tower does not expect (acks, refusals) get no reply.
    pub fn handle_message(
        &mut self,
        client: &PublicKey,
        msg: &TowerMessage,
    ) -> (Option<TowerMessage>, Option<TowerRecord>) {
        match msg {
            TowerMessage::CreateSession(m) => {
                let out = self.create_session(*client, m.quota);
                (Some(TowerMessage::SessionAck(out.ack)), out.record)
            }
            TowerMessage::StoreBlob(m) => match self.store(client, m.hint, &m.blob) {
                Ok(ack) => (Some(ack.to_message()), ack.record),
                Err(e) => (Some(e.to_message(m.hint)), None),
            },
            _ => (None, None),
        }
    }

    /// Scans a connected block: for every transaction whose txid's hint has blobs, decrypts
    /// each with the key of the full txid and returns those that decrypt and spend an output
    /// of that transaction. Blobs are kept (a reorg may need them again).
    pub fn block_connected(&mut self, height: u32, txs: &[Transaction]) -> Vec<Broadcast> {
        let mut out = Vec::new();
        for tx in txs {
            if self.by_hint.is_empty() {
                break;
            }
            let txid = tx.compute_txid();
            let Some(entries) = self.by_hint.get(&Hint::from_txid(&txid)) else {
                continue;
            };
            let mut found = Vec::new();
            for entry in entries {
                let Ok(justice_tx) = blob::open(&txid, &entry.blob) else {
                    continue; // a hint collision: sealed for another txid
                };
                if justice_tx
                    .input
                    .iter()
                    .any(|i| i.previous_output.txid == txid)
                {
                    found.push((entry.client, justice_tx));
                } else {
                    self.rejected_justice += 1;
                }
            }
            for (idx, justice_tx) in found {
                let Some(&(client, _)) = self.clients.get(idx as usize) else {
                    continue;
                };
                let record = if self.broadcast_set.insert((idx, txid)) {
                    self.broadcasts.push((client, txid, height));
                    Some(TowerRecord::Broadcast {
                        client,
                        commitment_txid: txid,
                        height,
                    })
                } else {
                    None
                };
                out.push(Broadcast {
                    client,
                    justice_tx,
                    commitment_txid: txid,
                    height,
                    record,
                });
            }
        }
        out
    }

    /// Counts for `tower info`.
    pub fn info(&self) -> TowerInfo {
        TowerInfo {
            clients: self.clients.len(),
            stored_blobs: self.stored_blobs,
            stored_bytes: self.stored_bytes,
            broadcasts: self.broadcasts.len(),
            rejected_justice: self.rejected_justice,
        }
    }

    /// The justice transactions handed out so far: (client, commitment txid, height).
    pub fn broadcasts(&self) -> &[(PublicKey, Txid, u32)] {
        &self.broadcasts
    }

    /// A client's session: (quota, blobs stored), if it has one.
    pub fn session(&self, client: &PublicKey) -> Option<(u32, u32)> {
        let idx = *self.client_index.get(client)?;
        self.clients
            .get(idx as usize)
            .map(|(_, s)| (s.quota, s.stored))
    }
}

#[cfg(test)]
#[path = "tower_tests.rs"]
mod tests;
