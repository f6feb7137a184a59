//! The client half: what a node does for each revoked counterparty commitment it wants a
//! tower to watch — check and seal the justice transaction, queue the backup, send it, and
//! forget it once the tower acknowledged it.
//!
//! Owns one session's send queue (a durable-queue *model*: the node persists each queued
//! [`Backup`] with [`Backup::encode`] before handing it to [`TowerClient::queue`], deletes it
//! when [`TowerClient::acked`] returns true, and rebuilds the client with
//! [`TowerClient::restore`] after a restart). Must never do I/O, never read a clock or an RNG:
//! sealing is deterministic (see [`crate::blob`]).
//!
//! Scope: a backup covers the justice transaction that spends outputs of the revoked
//! commitment itself (to_local and HTLC outputs). Justice transactions spending a
//! counterparty's *second-stage* HTLC transactions (whose txids are unknown until they are
//! mined) are out of scope: [`check_spends_commitment`] refuses them.

use std::collections::VecDeque;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Transaction, Txid};
use thiserror::Error;

use crate::blob::{self, BlobError, Hint, HINT_LEN, MAX_BLOB_LEN};
use crate::codec::{DecodeError, Reader};
use crate::wire::{StoreBlob, TowerMessage};

/// Version byte of an encoded [`Backup`].
pub const BACKUP_ENCODING_VERSION: u8 = 1;

/// One sealed backup, ready to send to a tower: the hint it is stored under and the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// First 16 bytes of the revoked commitment's txid.
    pub hint: Hint,
    /// The sealed justice transaction.
    pub blob: Vec<u8>,
}

impl Backup {
    /// The [`StoreBlob`] message that sends this backup.
    pub fn to_message(&self) -> TowerMessage {
        TowerMessage::StoreBlob(StoreBlob {
            hint: self.hint,
            blob: self.blob.clone(),
        })
    }

    /// Encodes the backup for the node's queue table:
    /// `BACKUP_ENCODING_VERSION ‖ hint (16) ‖ blob len (u16 BE) ‖ blob`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + HINT_LEN + 2 + self.blob.len());
        out.push(BACKUP_ENCODING_VERSION);
        out.extend_from_slice(self.hint.as_bytes());
        crate::codec::put_bytes16(&mut out, &self.blob);
        out
    }

    /// Decodes what [`Backup::encode`] wrote. Refuses unknown versions, truncation, trailing
    /// bytes and blobs longer than [`MAX_BLOB_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<Backup, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != BACKUP_ENCODING_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let hint = Hint(r.array("hint")?);
        let blob = r.bytes16("blob")?;
        if blob.len() > MAX_BLOB_LEN {
            return Err(DecodeError::Invalid("blob longer than MAX_BLOB_LEN"));
        }
        let blob = blob.to_vec();
        r.finish()?;
        Ok(Backup { hint, blob })
    }
}

/// Why a backup could not be built or queued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The justice transaction has no inputs.
    #[error("justice transaction has no inputs")]
    NoInputs,
    /// An input spends something other than the commitment (e.g. a second-stage HTLC
    /// transaction, which is out of scope).
    #[error("input {index} spends {spent}, not the commitment {commitment}")]
    ForeignInput {
        /// Index of the offending input.
        index: usize,
        /// Txid it spends.
        spent: Txid,
        /// The commitment txid.
        commitment: Txid,
    },
    /// Sealing failed (the transaction is too large for a blob).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A different backup for the same commitment is already queued: sealing a second,
    /// different justice transaction under the same key would reuse the nonce.
    #[error("a different backup under hint {0} is already queued")]
    ConflictingBackup(Hint),
}

/// Checks that every input of `justice_tx` spends an output of `commitment_txid`, and that
/// there is at least one input. Run it before sealing: a tower only broadcasts a blob when
/// the commitment is mined, so a justice transaction spending anything else is useless.
pub fn check_spends_commitment(
    commitment_txid: &Txid,
    justice_tx: &Transaction,
) -> Result<(), ClientError> {
    if justice_tx.input.is_empty() {
        return Err(ClientError::NoInputs);
    }
    for (index, input) in justice_tx.input.iter().enumerate() {
        if input.previous_output.txid != *commitment_txid {
            return Err(ClientError::ForeignInput {
                index,
                spent: input.previous_output.txid,
                commitment: *commitment_txid,
            });
        }
    }
    Ok(())
}

/// Checks `justice_tx` with [`check_spends_commitment`] and seals it: the [`Backup`] to queue.
pub fn backup(commitment_txid: &Txid, justice_tx: &Transaction) -> Result<Backup, ClientError> {
    check_spends_commitment(commitment_txid, justice_tx)?;
    Ok(Backup {
        hint: Hint::from_txid(commitment_txid),
        blob: blob::seal(commitment_txid, justice_tx)?,
    })
}

/// The client side of one session with one tower: the backups still to be acknowledged, in
/// the order they were queued, and how many the tower acknowledged.
#[derive(Debug, Clone)]
pub struct TowerClient {
    tower: PublicKey,
    quota: Option<u32>,
    pending: VecDeque<Backup>,
    acked: u64,
}

impl TowerClient {
    /// A client for the tower with node id `tower`, with nothing queued.
    pub fn new(tower: PublicKey) -> TowerClient {
        TowerClient {
            tower,
            quota: None,
            pending: VecDeque::new(),
            acked: 0,
        }
    }

    /// Rebuilds a client after a restart from the backups the node still has queued (in
    /// queue order) and the acknowledged count it persisted.
    pub fn restore(tower: PublicKey, pending: Vec<Backup>, acked: u64) -> TowerClient {
        TowerClient {
            tower,
            quota: None,
            pending: pending.into(),
            acked,
        }
    }

    /// The tower's node id.
    pub fn tower(&self) -> PublicKey {
        self.tower
    }

    /// Records the quota from the tower's [`crate::wire::SessionAck`]: how many backups the
    /// session may still hold in total is `quota - stored`.
    pub fn session_acked(&mut self, quota: u32, stored: u32) {
        self.quota = Some(quota.saturating_sub(stored));
    }

    /// Backups the session can still take, if the tower told us its quota.
    pub fn remaining_quota(&self) -> Option<u32> {
        self.quota
    }

    /// Builds the backup of `justice_tx` for the revoked commitment `commitment_txid`
    /// (see [`backup`]). Does not queue it: persist it, then call [`TowerClient::queue`].
    pub fn backup(
        &self,
        commitment_txid: &Txid,
        justice_tx: &Transaction,
    ) -> Result<Backup, ClientError> {
        backup(commitment_txid, justice_tx)
    }

    /// Appends a backup to the send queue. Queuing the identical backup again is a no-op;
    /// a different blob under a hint already queued is refused.
    pub fn queue(&mut self, backup: Backup) -> Result<(), ClientError> {
        if let Some(existing) = self.pending.iter().find(|b| b.hint == backup.hint) {
            if existing.blob == backup.blob {
                return Ok(());
            }
            return Err(ClientError::ConflictingBackup(backup.hint));
        }
        self.pending.push_back(backup);
        Ok(())
    }

    /// The oldest backup not yet acknowledged: the next one to send (sending does not remove
    /// it; only [`TowerClient::acked`] does, so a lost connection just resends it). `None`
    /// when the queue is empty or the tower's quota is used up.
    pub fn next_to_send(&self) -> Option<&Backup> {
        if self.quota == Some(0) {
            return None;
        }
        self.pending.front()
    }

    /// The tower acknowledged the backup under `hint`: removes it from the queue. Returns
    /// whether it was queued (the node then deletes its persisted copy).
    pub fn acked(&mut self, hint: &Hint) -> bool {
        let Some(pos) = self.pending.iter().position(|b| b.hint == *hint) else {
            return false;
        };
        self.pending.remove(pos);
        self.acked += 1;
        if let Some(q) = self.quota.as_mut() {
            *q = q.saturating_sub(1);
        }
        true
    }

    /// The tower refused the backup under `hint`: removes it from the queue so it does not
    /// block the ones behind it, and returns it (the node decides whether to try another
    /// tower).
    pub fn refused(&mut self, hint: &Hint) -> Option<Backup> {
        let pos = self.pending.iter().position(|b| b.hint == *hint)?;
        self.pending.remove(pos)
    }

    /// Backups queued and not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Backups the tower acknowledged over this client's life.
    pub fn acknowledged(&self) -> u64 {
        self.acked
    }

    /// The queued backups, oldest first (for the node to compare with its table).
    pub fn queued(&self) -> impl Iterator<Item = &Backup> {
        self.pending.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{commitment_tx, justice_tx, node_id};
    use bitcoin::OutPoint;

    #[test]
    fn backup_checks_inputs() {
        let c = commitment_tx(1);
        let txid = c.compute_txid();
        let j = justice_tx(&c, 2);
        let b = backup(&txid, &j).unwrap();
        assert_eq!(b.hint, Hint::from_txid(&txid));
        assert_eq!(blob::open(&txid, &b.blob).unwrap(), j);

        let mut foreign = j.clone();
        foreign.input[1].previous_output = OutPoint::new(commitment_tx(9).compute_txid(), 0);
        assert!(matches!(
            backup(&txid, &foreign),
            Err(ClientError::ForeignInput { index: 1, .. })
        ));
        let mut empty = j;
        empty.input.clear();
        assert_eq!(backup(&txid, &empty), Err(ClientError::NoInputs));
    }

    #[test]
    fn queue_send_ack() {
        let mut client = TowerClient::new(node_id(1));
        let backups: Vec<Backup> = (0..3)
            .map(|i| {
                let c = commitment_tx(i);
                client
                    .backup(&c.compute_txid(), &justice_tx(&c, 1))
                    .unwrap()
            })
            .collect();
        for b in &backups {
            client.queue(b.clone()).unwrap();
        }
        // Idempotent re-queue, conflicting re-queue refused.
        client.queue(backups[0].clone()).unwrap();
        let mut other = backups[0].clone();
        other.blob[5] ^= 1;
        assert_eq!(
            client.queue(other),
            Err(ClientError::ConflictingBackup(backups[0].hint))
        );
        assert_eq!(client.pending(), 3);
        assert_eq!(client.next_to_send(), Some(&backups[0]));
        assert!(client.acked(&backups[0].hint));
        assert!(!client.acked(&backups[0].hint));
        assert_eq!(client.next_to_send(), Some(&backups[1]));
        assert_eq!(client.refused(&backups[1].hint), Some(backups[1].clone()));
        assert_eq!(client.next_to_send(), Some(&backups[2]));
        assert_eq!((client.pending(), client.acknowledged()), (1, 1));

        // Quota: nothing is sent once the tower's room is used up.
        client.session_acked(2, 1);
        assert_eq!(client.remaining_quota(), Some(1));
        assert!(client.acked(&backups[2].hint));
        client.queue(backups[1].clone()).unwrap();
        assert_eq!(client.next_to_send(), None);
    }

    #[test]
    fn restore_from_persisted_queue() {
        let mut client = TowerClient::new(node_id(1));
        for i in 0..4 {
            let c = commitment_tx(i);
            let b = client
                .backup(&c.compute_txid(), &justice_tx(&c, 2))
                .unwrap();
            client.queue(b).unwrap();
        }
        let first = client.next_to_send().unwrap().hint;
        client.acked(&first);
        let rows: Vec<Vec<u8>> = client.queued().map(Backup::encode).collect();
        let restored = TowerClient::restore(
            node_id(1),
            rows.iter().map(|r| Backup::decode(r).unwrap()).collect(),
            client.acknowledged(),
        );
        assert_eq!(restored.pending(), 3);
        assert_eq!(restored.acknowledged(), 1);
        assert_eq!(
            restored.queued().collect::<Vec<_>>(),
            client.queued().collect::<Vec<_>>()
        );
    }

    #[test]
    fn backup_encoding_rejects_garbage() {
        let c = commitment_tx(1);
        let b = backup(&c.compute_txid(), &justice_tx(&c, 0)).unwrap();
        let bytes = b.encode();
        assert_eq!(Backup::decode(&bytes).unwrap(), b);
        for cut in 0..bytes.len() {
            assert!(Backup::decode(&bytes[..cut]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Backup::decode(&trailing), Err(DecodeError::Trailing(1)));
        let mut version = bytes;
        version[0] = 9;
        assert_eq!(
            Backup::decode(&version),
            Err(DecodeError::UnknownVersion(9))
        );
        assert!(matches!(
            b.to_message(),
            TowerMessage::StoreBlob(StoreBlob { hint, .. }) if hint == b.hint
        ));
    }
}
