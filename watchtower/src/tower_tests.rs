//! Tests of the tower half (a separate file to keep `tower.rs` short).

// Test-only file (its `mod` is `#[cfg(test)]`); the attribute also tells tidy so.
#[cfg(test)]
use super::*;
use crate::blob::{MIN_BLOB_LEN, PAD_BLOCK};
use crate::client::backup;
use crate::testutil::{commitment_tx, justice_tx, node_id};
use crate::wire::{CreateSession, StoreBlob};

fn tower_with(clients: &[u8], quota: u32) -> Tower {
    let mut tower = Tower::new(TowerConfig::default());
    for &c in clients {
        tower.create_session(node_id(c), quota);
    }
    tower
}

/// Unrelated transactions for filler in blocks.
fn filler(n: u64) -> Vec<Transaction> {
    (1000..1000 + n).map(commitment_tx).collect()
}

#[test]
fn sessions_grant_capped_quota() {
    let mut tower = Tower::new(TowerConfig {
        max_quota: 50,
        ..TowerConfig::default()
    });
    let a = node_id(1);
    let out = tower.create_session(a, 0);
    assert_eq!(
        out.ack,
        SessionAck {
            quota: 50,
            stored: 0
        }
    );
    assert!(out.record.is_some());
    // Re-open: same quota, nothing to persist.
    let again = tower.create_session(a, 10);
    assert_eq!(again.ack.quota, 50);
    assert_eq!(again.record, None);
    assert_eq!(tower.session(&a), Some((50, 0)));
    assert_eq!(tower.session(&node_id(2)), None);
}

#[test]
fn unknown_session_refused() {
    let mut tower = tower_with(&[], 0);
    let c = commitment_tx(1);
    let b = backup(&c.compute_txid(), &justice_tx(&c, 2)).unwrap();
    let err = tower.store(&node_id(1), b.hint, &b.blob).unwrap_err();
    assert_eq!(err, StoreError::UnknownSession);
    assert_eq!(err.reason(), RefusalReason::UnknownSession);
}

#[test]
fn store_quota_duplicate_oversize_garbage() {
    let a = node_id(1);
    let mut tower = tower_with(&[1], 2);
    let backups: Vec<_> = (0..3)
        .map(|i| {
            let c = commitment_tx(i);
            backup(&c.compute_txid(), &justice_tx(&c, 2)).unwrap()
        })
        .collect();
    let ack = tower.store(&a, backups[0].hint, &backups[0].blob).unwrap();
    assert!(matches!(ack.record, Some(TowerRecord::Stored { .. })));
    // Idempotent re-store: Ok, nothing new to persist.
    let again = tower.store(&a, backups[0].hint, &backups[0].blob).unwrap();
    assert_eq!(again.record, None);
    // A different blob under the same hint: refused.
    let err = tower
        .store(&a, backups[0].hint, &backups[1].blob)
        .unwrap_err();
    assert_eq!(err, StoreError::DuplicateHint(backups[0].hint));
    assert_eq!(err.reason(), RefusalReason::DuplicateHint);

    tower.store(&a, backups[1].hint, &backups[1].blob).unwrap();
    let err = tower
        .store(&a, backups[2].hint, &backups[2].blob)
        .unwrap_err();
    assert_eq!(err, StoreError::OverQuota { quota: 2 });
    // Re-storing a held blob still works at full quota.
    tower.store(&a, backups[1].hint, &backups[1].blob).unwrap();

    let big = vec![1u8; MAX_BLOB_LEN + PAD_BLOCK];
    assert!(matches!(
        tower.store(&a, Hint([9; 16]), &big),
        Err(StoreError::Oversize { .. })
    ));
    for garbage in [
        vec![],
        vec![1; 10],
        vec![7; MIN_BLOB_LEN],
        vec![1; MIN_BLOB_LEN + 5],
    ] {
        let err = tower.store(&a, Hint([9; 16]), &garbage).unwrap_err();
        assert!(matches!(err, StoreError::Garbage(_)), "{err:?}");
        assert_eq!(err.reason(), RefusalReason::Garbage);
    }
    assert_eq!(tower.info().stored_blobs, 2);
    assert_eq!(tower.session(&a), Some((2, 2)));
}

#[test]
fn smaller_configured_max_blob_len() {
    let mut tower = Tower::new(TowerConfig {
        max_blob_len: MIN_BLOB_LEN,
        ..TowerConfig::default()
    });
    let a = node_id(1);
    tower.create_session(a, 0);
    let c = commitment_tx(1);
    let b = backup(&c.compute_txid(), &justice_tx(&c, 6)).unwrap();
    assert!(b.blob.len() > MIN_BLOB_LEN);
    assert_eq!(
        tower.store(&a, b.hint, &b.blob),
        Err(StoreError::Oversize {
            len: b.blob.len(),
            max: MIN_BLOB_LEN
        })
    );
}

#[test]
fn block_with_breach_yields_exactly_the_justice_tx() {
    let a = node_id(1);
    let mut tower = tower_with(&[1, 2], 0);
    let revoked = commitment_tx(7);
    let justice = justice_tx(&revoked, 2);
    let b = backup(&revoked.compute_txid(), &justice).unwrap();
    tower.store(&a, b.hint, &b.blob).unwrap();
    for i in 0..20 {
        let c = commitment_tx(100 + i);
        let bb = backup(&c.compute_txid(), &justice_tx(&c, 1)).unwrap();
        tower.store(&node_id(2), bb.hint, &bb.blob).unwrap();
    }

    assert!(tower.block_connected(100, &filler(50)).is_empty());
    assert_eq!(tower.info().broadcasts, 0);

    let mut block = filler(50);
    block.insert(17, revoked.clone());
    let out = tower.block_connected(101, &block);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].client, a);
    assert_eq!(out[0].justice_tx, justice);
    assert_eq!(out[0].commitment_txid, revoked.compute_txid());
    assert_eq!(out[0].height, 101);
    assert_eq!(
        out[0].record,
        Some(TowerRecord::Broadcast {
            client: a,
            commitment_txid: revoked.compute_txid(),
            height: 101
        })
    );
    assert_eq!(tower.info().broadcasts, 1);

    // The same block again (reorg): handed out again, but no second record.
    let again = tower.block_connected(101, &block);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].record, None);
    assert_eq!(tower.info().broadcasts, 1);
}

#[test]
fn hint_collision_only_the_matching_blob_is_broadcast() {
    // Two clients store under the same 16-byte hint: one blob for the real commitment, one
    // sealed for another txid (a crafted collision). Only the first decrypts.
    let (a, b) = (node_id(1), node_id(2));
    let mut tower = tower_with(&[1, 2], 0);
    let revoked = commitment_tx(7);
    let txid = revoked.compute_txid();
    let justice = justice_tx(&revoked, 2);
    let real = backup(&txid, &justice).unwrap();
    let other = commitment_tx(8);
    let decoy = backup(&other.compute_txid(), &justice_tx(&other, 1)).unwrap();
    // Store the decoy first, under the real hint.
    tower.store(&b, real.hint, &decoy.blob).unwrap();
    tower.store(&a, real.hint, &real.blob).unwrap();
    assert_eq!(tower.info().stored_blobs, 2);

    let out = tower.block_connected(5, &[revoked]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].client, a);
    assert_eq!(out[0].justice_tx, justice);
    // The decoy's own commitment is not mined: nothing more.
    assert!(tower.block_connected(6, &filler(3)).is_empty());
}

#[test]
fn justice_that_does_not_spend_the_commitment_is_not_broadcast() {
    let a = node_id(1);
    let mut tower = tower_with(&[1], 0);
    let revoked = commitment_tx(7);
    let txid = revoked.compute_txid();
    // Seal (bypassing the client's check) a tx that spends something else.
    let stray = justice_tx(&commitment_tx(99), 1);
    let sealed = crate::blob::seal(&txid, &stray).unwrap();
    tower.store(&a, Hint::from_txid(&txid), &sealed).unwrap();
    assert!(tower.block_connected(1, &[revoked]).is_empty());
    assert_eq!(tower.info().rejected_justice, 1);
}

#[test]
fn restore_from_records_gives_the_same_state() {
    let (a, b) = (node_id(1), node_id(2));
    let mut tower = Tower::new(TowerConfig::default());
    let mut log: Vec<Vec<u8>> = Vec::new();
    let mut persist = |r: Option<TowerRecord>| {
        if let Some(r) = r {
            log.push(r.encode());
        }
    };
    persist(tower.create_session(a, 100).record);
    persist(tower.create_session(b, 0).record);
    let commitments: Vec<_> = (0..10).map(commitment_tx).collect();
    for (i, c) in commitments.iter().enumerate() {
        let client = if i % 2 == 0 { a } else { b };
        let bk = backup(&c.compute_txid(), &justice_tx(c, 2)).unwrap();
        persist(tower.store(&client, bk.hint, &bk.blob).unwrap().record);
    }
    for bc in tower.block_connected(9, &[commitments[3].clone()]) {
        persist(bc.record);
    }

    let records: Vec<TowerRecord> = log
        .iter()
        .map(|r| TowerRecord::decode(r).unwrap())
        .collect();
    let mut restored = Tower::restore(TowerConfig::default(), records).unwrap();
    assert_eq!(restored.info(), tower.info());
    assert_eq!(restored.broadcasts(), tower.broadcasts());
    assert_eq!(restored.session(&a), tower.session(&a));
    assert_eq!(restored.session(&b), tower.session(&b));
    // The restored tower still punishes, and knows what it already handed out.
    let block = vec![commitments[3].clone(), commitments[4].clone()];
    let x = tower.block_connected(10, &block);
    let y = restored.block_connected(10, &block);
    assert_eq!(x, y);
    assert_eq!(y.len(), 2);
    assert_eq!(y[0].record, None);
    assert!(y[1].record.is_some());
}

#[test]
fn restore_rejects_inconsistent_records() {
    let a = node_id(1);
    let stored = TowerRecord::Stored {
        client: a,
        hint: Hint([1; 16]),
        blob: vec![1; MIN_BLOB_LEN],
    };
    assert_eq!(
        Tower::restore(TowerConfig::default(), [stored.clone()]).unwrap_err(),
        RestoreError::NoSession(a)
    );
    let conflict = TowerRecord::Stored {
        client: a,
        hint: Hint([1; 16]),
        blob: vec![2; MIN_BLOB_LEN],
    };
    let session = TowerRecord::SessionCreated {
        client: a,
        quota: 5,
    };
    assert_eq!(
        Tower::restore(TowerConfig::default(), [session, stored, conflict]).unwrap_err(),
        RestoreError::Conflict(Hint([1; 16]))
    );
}

#[test]
fn record_codec_rejects_garbage() {
    let a = node_id(3);
    let records = [
        TowerRecord::SessionCreated {
            client: a,
            quota: 7,
        },
        TowerRecord::Stored {
            client: a,
            hint: Hint([4; 16]),
            blob: vec![1, 2, 3],
        },
        TowerRecord::Broadcast {
            client: a,
            commitment_txid: commitment_tx(1).compute_txid(),
            height: 77,
        },
    ];
    for r in records {
        let bytes = r.encode();
        assert_eq!(TowerRecord::decode(&bytes).unwrap(), r);
        for cut in 0..bytes.len() {
            assert!(TowerRecord::decode(&bytes[..cut]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(TowerRecord::decode(&trailing).is_err());
        let mut bad_key = bytes.clone();
        bad_key[2] = 0x07;
        assert!(TowerRecord::decode(&bad_key).is_err());
    }
    let mut state = 7u32;
    for len in 0..200 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16) as u8
            })
            .collect();
        let _ = TowerRecord::decode(&bytes);
    }
}

#[test]
fn handle_message_replies() {
    let a = node_id(1);
    let mut tower = Tower::new(TowerConfig::default());
    let c = commitment_tx(1);
    let bk = backup(&c.compute_txid(), &justice_tx(&c, 2)).unwrap();
    let store = TowerMessage::StoreBlob(StoreBlob {
        hint: bk.hint,
        blob: bk.blob.clone(),
    });
    let (reply, record) = tower.handle_message(&a, &store);
    assert!(record.is_none());
    let Some(TowerMessage::StoreRefused(refused)) = reply else {
        panic!("expected a refusal, got {reply:?}");
    };
    assert_eq!(refused.reason_code, RefusalReason::UnknownSession.code());

    let (reply, record) =
        tower.handle_message(&a, &TowerMessage::CreateSession(CreateSession { quota: 3 }));
    assert_eq!(
        reply,
        Some(TowerMessage::SessionAck(SessionAck {
            quota: 3,
            stored: 0
        }))
    );
    assert!(record.is_some());
    let (reply, record) = tower.handle_message(&a, &store);
    assert_eq!(
        reply,
        Some(TowerMessage::StoreAck(crate::wire::StoreAck {
            hint: bk.hint
        }))
    );
    assert!(record.is_some());
    let (reply, _) =
        tower.handle_message(&a, &TowerMessage::CreateSession(CreateSession { quota: 3 }));
    assert_eq!(
        reply,
        Some(TowerMessage::SessionAck(SessionAck {
            quota: 3,
            stored: 1
        }))
    );
    assert_eq!(tower.handle_message(&a, &reply.unwrap()), (None, None));
}

proptest::proptest! {
    #[test]
    fn record_decode_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)
    ) {
        let _ = TowerRecord::decode(&bytes);
        let _ = crate::client::Backup::decode(&bytes);
    }
}
