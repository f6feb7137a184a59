//! Tests of the node store: batches, upserts, the open-payment flag and its migration,
//! snapshot compaction, the revocation archive, the tower tables, the single-daemon lock.
use super::*;

/// Closes `store` and opens it again from `dir`, as a restarted daemon: what it loads.
async fn reopen(store: NodeStore, dir: &Path) -> (NodeStore, Loaded) {
    store.close().await;
    let store = NodeStore::open(dir, DbSync::Full).await.unwrap();
    let loaded = store.load().await.unwrap();
    (store, loaded)
}

/// A database in `dir` with the migrations before `version` only (to write rows as an older
/// daemon did, then open it with [`NodeStore::open`]).
async fn migrated_before(dir: &Path, version: i64) -> sqlx::SqlitePool {
    let pool = crate::sqlite::open_pool(&dir.join(DB_FILE), SqliteSynchronous::Full)
        .await
        .unwrap();
    let all = sqlx::migrate!("./migrations/node");
    let mut before = sqlx::migrate!("./migrations/node");
    before.migrations = all
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    pool
}

/// Writes `rows` (payment hash, JSON) into `table` of `pool` as an older daemon did, then
/// opens the store (running the migrations after).
async fn with_rows(
    pool: sqlx::SqlitePool,
    table: &str,
    rows: &[(&str, &str)],
    dir: &Path,
) -> NodeStore {
    for (hash, data) in rows {
        sqlx::query(&format!(
            "INSERT INTO {table} (payment_hash, data) VALUES (?, ?)"
        ))
        .bind(hash)
        .bind(data)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    NodeStore::open(dir, DbSync::Full).await.unwrap()
}

#[tokio::test]
async fn batches_round_trip_and_upserts_replace() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let mut b = WriteBatch {
        wallet: vec![b"w1".to_vec()],
        new_channels: vec![(1, "02aa".into()), (2, "02bb".into())],
        records: vec![
            (1, b"r1".to_vec(), false),
            (1, b"r2".to_vec(), false),
            (2, b"x1".to_vec(), false),
        ],
        payments: vec![
            ("h1".into(), "{\"a\":1}".into(), true),
            ("h0".into(), "{\"done\":0}".into(), false),
        ],
        invoices: vec![("h2".into(), "{}".into(), true)],
        peers: vec![("02aa".into(), Some("127.0.0.1:1".into()))],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    b = WriteBatch {
        wallet: vec![b"w2".to_vec()],
        records: vec![(1, b"r3".to_vec(), false)],
        monitor_records: vec![(1, b"m1".to_vec(), false)],
        funding_txs: vec![(1, b"tx".to_vec())],
        closing_heights: vec![(1, 321)],
        payments: vec![("h1".into(), "{\"a\":2}".into(), true)],
        peers: vec![("02aa".into(), None)],
        forwards: vec![
            ((1, 0), "{\"f\":1}".into(), true),
            ((1, 0), "{\"f\":2}".into(), true),
        ],
        policies: vec![(1, "{}".into())],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let (store, l) = reopen(store, dir.path()).await;
    assert_eq!(l.wallet, vec![b"w1".to_vec(), b"w2".to_vec()]);
    assert_eq!(l.channels.len(), 2);
    assert_eq!(l.channels[0].records.len(), 3);
    assert_eq!(l.channels[0].records[2], b"r3".to_vec());
    assert_eq!(l.channels[0].monitor_records, vec![b"m1".to_vec()]);
    assert_eq!(l.channels[0].funding_tx.as_deref(), Some(&b"tx"[..]));
    assert_eq!(l.channels[0].closing_height, Some(321));
    // Only open payments load; every one is listed, newest last.
    assert_eq!(l.payments, vec!["{\"a\":2}".to_string()]);
    assert_eq!(
        store.payments(None).await.unwrap(),
        vec!["{\"a\":2}".to_string(), "{\"done\":0}".to_string()]
    );
    assert_eq!(
        store.payments(Some(1)).await.unwrap(),
        vec!["{\"done\":0}".to_string()]
    );
    // By hash: h0 is there, h9 is not.
    assert_eq!(
        store
            .payments_by_hash(&["h0".into(), "h9".into()])
            .await
            .unwrap(),
        vec![("h0".to_string(), "{\"done\":0}".to_string())]
    );
    assert_eq!(l.forwards, vec!["{\"f\":2}".to_string()]);
    assert_eq!(l.policies, vec![(1, "{}".to_string())]);
    assert_eq!(l.peers, vec![("02aa".into(), Some("127.0.0.1:1".into()))]);
    // A snapshot drops its channel's earlier records (only that channel's), in the same
    // transaction; records after it stay.
    let b = WriteBatch {
        records: vec![
            (1, b"r4".to_vec(), false),
            (1, b"snap".to_vec(), true),
            (1, b"r5".to_vec(), false),
        ],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let l = store.load().await.unwrap();
    assert_eq!(
        l.channels[0].records,
        vec![b"snap".to_vec(), b"r5".to_vec()]
    );
    assert_eq!(l.channels[1].records, vec![b"x1".to_vec()]);
    // The same for monitor records, with several channels and snapshots in one batch.
    let b = WriteBatch {
        monitor_records: vec![
            (1, b"m2".to_vec(), false),
            (2, b"n1".to_vec(), false),
            (1, b"msnap".to_vec(), true),
            (1, b"m3".to_vec(), false),
            (2, b"n2".to_vec(), false),
            (1, b"msnap2".to_vec(), true),
            (1, b"m4".to_vec(), false),
        ],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let l = store.load().await.unwrap();
    assert_eq!(
        l.channels[0].monitor_records,
        vec![b"msnap2".to_vec(), b"m4".to_vec()]
    );
    assert_eq!(
        l.channels[1].monitor_records,
        vec![b"n1".to_vec(), b"n2".to_vec()]
    );
}

/// The watchtower tables: records append, towers upsert, a queued backup is deleted and
/// counted once when acknowledged (a second acknowledgement counts nothing).
#[tokio::test]
async fn tower_tables_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let t = "02aa".to_string();
    let b = WriteBatch {
        tower_records: vec![b"t1".to_vec(), b"t2".to_vec()],
        towers: vec![(t.clone(), "127.0.0.1:1".into())],
        tower_queue: vec![
            TowerQueueRow::Queued(t.clone(), b"h1".to_vec(), b"b1".to_vec()),
            TowerQueueRow::Queued(t.clone(), b"h2".to_vec(), b"b2".to_vec()),
            TowerQueueRow::Queued(t.clone(), b"h1".to_vec(), b"b1".to_vec()),
        ],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let b = WriteBatch {
        towers: vec![(t.clone(), "127.0.0.1:2".into())],
        tower_queue: vec![
            TowerQueueRow::Done(t.clone(), b"h1".to_vec(), true),
            TowerQueueRow::Done(t.clone(), b"h1".to_vec(), true),
        ],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let (_store, l) = reopen(store, dir.path()).await;
    assert_eq!(l.tower_records, vec![b"t1".to_vec(), b"t2".to_vec()]);
    assert_eq!(l.towers, vec![(t.clone(), "127.0.0.1:2".into(), 1, 0)]);
    assert_eq!(l.tower_queue, vec![(t, b"b2".to_vec())]);
}

/// Migration 0007 flags the payments a store already held: open while pending or while
/// one of their parts is.
#[tokio::test]
async fn the_open_flag_of_earlier_payments_comes_from_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let pool = migrated_before(dir.path(), 7).await;
    let rows = [
        ("a", r#"{"info":{"status":"pending"}}"#),
        (
            "b",
            r#"{"info":{"status":"succeeded"},"parts":[{"status":"succeeded"}]}"#,
        ),
        ("c", r#"{"info":{"status":"failed"}}"#),
        (
            "d",
            r#"{"info":{"status":"succeeded"},"parts":[{"status":"succeeded"},{"status":"pending"}]}"#,
        ),
    ];
    let store = with_rows(pool, "payments", &rows, dir.path()).await;
    let l = store.load().await.unwrap();
    assert_eq!(
        l.payments,
        vec![rows[0].1.to_string(), rows[3].1.to_string()]
    );
    assert_eq!(store.payments(None).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_second_daemon_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let _first = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let err = NodeStore::open(dir.path(), DbSync::Full).await.unwrap_err();
    assert!(format!("{err:#}").contains("locked"), "{err:#}");
}

/// A batch whose statement fails writes nothing, and the store takes the next batch: the
/// script's transaction is rolled back, not left open on the connection.
#[tokio::test]
async fn a_failed_batch_writes_nothing_and_the_next_one_lands() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let first = WriteBatch {
        new_channels: vec![(1, "02aa".into())],
        records: vec![(1, b"r1".to_vec(), false)],
        ..Default::default()
    };
    store.write(&first).await.unwrap();
    // Channel 1 exists: its second insert violates the primary key after the records
    // and wallet rows before it in the script.
    let failing = WriteBatch {
        wallet: vec![b"w".to_vec()],
        new_channels: vec![(2, "02bb".into()), (1, "02cc".into())],
        records: vec![(1, b"r2".to_vec(), false)],
        ..Default::default()
    };
    assert!(store.write(&failing).await.is_err());
    let next = WriteBatch {
        records: vec![(1, b"r3".to_vec(), false)],
        payments: vec![("h".into(), "{}".into(), false)],
        ..Default::default()
    };
    store.write(&next).await.unwrap();
    let (store, l) = reopen(store, dir.path()).await;
    assert!(l.wallet.is_empty());
    assert_eq!(l.channels.len(), 1);
    assert_eq!(l.channels[0].records, vec![b"r1".to_vec(), b"r3".to_vec()]);
    assert_eq!(store.payments(None).await.unwrap(), vec!["{}".to_string()]);
}

/// Payments, invoices and forwards go in multi-row statements of at most
/// `ROWS_PER_STATEMENT` rows: every row of a batch larger than one statement lands, and a
/// later row of the same key wins, within a statement and across two.
#[tokio::test]
async fn rows_beyond_one_statement_all_land_and_the_last_of_a_key_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let n = 600;
    let mut payments: Vec<(String, String, bool)> = (0..n)
        .map(|i| (format!("h{i:04}"), format!("{{\"v\":{i}}}"), true))
        .collect();
    // h0000 again in the same statement, h0001 again in the next one (rows 256 and 599).
    payments[10] = ("h0000".into(), "{\"v\":\"second\"}".into(), false);
    payments[599] = ("h0001".into(), "{\"v\":\"last\"}".into(), false);
    let batch = WriteBatch {
        payments,
        invoices: (0..n)
            .map(|i| (format!("i{i}"), "{}".into(), true))
            .collect(),
        forwards: (0..n as i64).map(|i| ((1, i), "{}".into(), true)).collect(),
        ..Default::default()
    };
    store.write(&batch).await.unwrap();
    let (store, loaded) = reopen(store, dir.path()).await;
    let all = store.payments(None).await.unwrap();
    assert_eq!(all.len(), n - 2);
    assert!(all.contains(&"{\"v\":\"second\"}".to_string()));
    assert!(all.contains(&"{\"v\":\"last\"}".to_string()));
    // Open ones are loaded: all but the two rewritten as settled.
    assert_eq!(loaded.payments.len(), n - 4);
    assert_eq!(loaded.invoices.len(), n);
    assert_eq!(loaded.forwards.len(), n);
}

/// The connection's `synchronous` level (1 = NORMAL, 2 = FULL).
async fn sync_level(store: &NodeStore) -> i64 {
    sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&store.pool)
        .await
        .unwrap()
}

/// A write nobody waits on goes without an fsync (`synchronous = NORMAL` for its commit),
/// the next synced one with it (`FULL`): both land, in order, and the connection is left at
/// the level of the last write.
#[tokio::test]
async fn unsynced_and_synced_writes_both_land_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let rec = |d: &[u8]| WriteBatch {
        records: vec![(1, d.to_vec(), false)],
        ..Default::default()
    };
    store
        .write(&WriteBatch {
            new_channels: vec![(1, "02aa".into())],
            ..Default::default()
        })
        .await
        .unwrap();
    store.write_with(&rec(b"unsynced"), false).await.unwrap();
    let level = sync_level(&store).await;
    assert_eq!(level, 1, "NORMAL for the unsynced write");
    store.write_with(&rec(b"synced"), true).await.unwrap();
    let level = sync_level(&store).await;
    assert_eq!(level, 2, "FULL again");
    let (_store, loaded) = reopen(store, dir.path()).await;
    let data: Vec<&[u8]> = loaded.channels[0]
        .records
        .iter()
        .map(|r| r.as_slice())
        .collect();
    assert_eq!(data, [b"unsynced".as_slice(), b"synced".as_slice()]);
}

#[tokio::test]
async fn the_revocation_archive_is_read_by_key_and_not_loaded() {
    use fulmen_channel::monitor::{RevokedCommitment, RevokedHtlc};
    use fulmen_htlc::PaymentHash;
    let dir = tempfile::tempdir().unwrap();
    let store = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let set = |n: u64, htlcs: usize| RevokedCommitment {
        number: n,
        htlcs: (0..htlcs as u64)
            .map(|id| RevokedHtlc {
                id,
                offered_by_them: id % 2 == 0,
                cltv_expiry: 500 + id as u32,
                payment_hash: PaymentHash([n as u8; 32]),
            })
            .collect(),
    };
    let rows = |sets: &[(i64, RevokedCommitment)]| -> Vec<(i64, i64, Vec<u8>)> {
        sets.iter()
            .map(|(c, s)| (*c, s.number as i64, s.encode()))
            .collect()
    };
    let b = WriteBatch {
        new_channels: vec![(1, "02aa".into()), (2, "02bb".into())],
        monitor_records: vec![(1, b"msnap".to_vec(), true)],
        revoked_htlcs: rows(&[(1, set(3, 2)), (1, set(4, 1)), (2, set(3, 5))]),
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let (store, l) = reopen(store, dir.path()).await;
    // Loading the store does not read the archive (`Loaded` has no place for it); a row is
    // read by (channel, number).
    assert_eq!(l.channels[0].monitor_records, vec![b"msnap".to_vec()]);
    assert_eq!(store.revoked_htlcs(1, 3).await.unwrap(), set(3, 2).htlcs);
    assert_eq!(store.revoked_htlcs(1, 4).await.unwrap(), set(4, 1).htlcs);
    assert_eq!(store.revoked_htlcs(2, 3).await.unwrap(), set(3, 5).htlcs);
    // No row: that state had no HTLCs.
    assert_eq!(store.revoked_htlcs(1, 5).await.unwrap(), Vec::new());
    // Writing a row again (a restart before a snapshot was acknowledged) replaces it.
    let b = WriteBatch {
        revoked_htlcs: rows(&[(1, set(3, 2))]),
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    assert_eq!(store.revoked_htlcs(1, 3).await.unwrap(), set(3, 2).htlcs);
    // A damaged row is an error, not a panic or an empty set.
    let b = WriteBatch {
        revoked_htlcs: vec![(1, 6, vec![1, 2, 3])],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    assert!(store.revoked_htlcs(1, 6).await.is_err());
}

#[tokio::test]
async fn only_open_invoices_load_and_the_flag_of_earlier_ones_comes_from_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let pool = migrated_before(dir.path(), 9).await;
    let rows = [
        ("a", r#"{"info":{"status":"unpaid"}}"#),
        ("b", r#"{"info":{"status":"paid"}}"#),
    ];
    let store = with_rows(pool, "invoices", &rows, dir.path()).await;
    // Rows from before the flag: only the unpaid one loads.
    let l = store.load().await.unwrap();
    assert_eq!(l.invoices, vec![rows[0].1.to_string()]);
    // Written with the flag: `a` is paid now, `c` is new and open.
    let b = WriteBatch {
        invoices: vec![
            ("a".into(), r#"{"info":{"status":"paid"}}"#.into(), false),
            ("c".into(), r#"{"info":{"status":"unpaid"}}"#.into(), true),
        ],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let (store, l) = reopen(store, dir.path()).await;
    assert_eq!(
        l.invoices,
        vec![r#"{"info":{"status":"unpaid"}}"#.to_string()]
    );
    // Every invoice, oldest first, for `listinvoices`.
    assert_eq!(store.invoices().await.unwrap().len(), 3);
    // The closed ones by payment hash (an open or unknown hash: nothing).
    let closed = store
        .closed_invoices_by_hash(&["a".into(), "b".into(), "c".into(), "z".into()])
        .await
        .unwrap();
    assert_eq!(closed.len(), 2);
    assert!(closed.iter().all(|j| j.contains("\"paid\"")));
}

#[tokio::test]
async fn only_open_forwards_load_and_the_flag_of_earlier_ones_comes_from_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let pool = migrated_before(dir.path(), 10).await;
    let rows = [
        (1, r#"{"status":"pending"}"#),
        (2, r#"{"status":"settled"}"#),
        (3, r#"{"status":"failed"}"#),
    ];
    for (htlc, data) in rows {
        sqlx::query("INSERT INTO forwards (in_channel, in_htlc, data) VALUES (1, ?, ?)")
            .bind(htlc)
            .bind(data)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let store = NodeStore::open(dir.path(), DbSync::Full).await.unwrap();
    let l = store.load().await.unwrap();
    assert_eq!(l.forwards, vec![rows[0].1.to_string()]);
    assert_eq!(
        store.closed_forwards().await.unwrap(),
        vec![rows[1].1.to_string(), rows[2].1.to_string()]
    );
    // Written with the flag: the pending one settles.
    let b = WriteBatch {
        forwards: vec![((1, 1), r#"{"status":"settled"}"#.into(), false)],
        ..Default::default()
    };
    store.write(&b).await.unwrap();
    let (store, l) = reopen(store, dir.path()).await;
    assert!(l.forwards.is_empty());
    assert_eq!(store.closed_forwards().await.unwrap().len(), 3);
}

/// A channel whose rows an older build wrote (JSON records) is flagged for rewriting at the
/// next clean stop; the same records in the current (binary) form are not.
#[test]
fn channels_stored_in_json_are_flagged_as_an_older_format() {
    const CHANNEL: &str = include_str!("../../../../channel/tests/data/v2_alice_channel.jsonl");
    const MONITOR: &str = include_str!("../../../../channel/tests/data/v3_alice_monitor.jsonl");
    let lines = |t: &str| t.lines().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>();
    let row = |records: Vec<Vec<u8>>, monitor_records: Vec<Vec<u8>>| StoredChannelRow {
        id: 1,
        peer: "02eec7245d6b7d2ccb30380bfbe2a3648cd7a942653f5aa340edcea1f283686619".into(),
        records,
        monitor_records,
        funding_tx: None,
        closing_tx: None,
        commitment_tx: None,
        closing_height: None,
    };
    let json = decode_channel(&row(lines(CHANNEL), lines(MONITOR))).unwrap();
    assert!(json.old_format);
    let binary: Vec<Vec<u8>> = json.records.iter().map(Record::encode).collect();
    let binary_monitor: Vec<Vec<u8>> = json
        .monitor_records
        .iter()
        .map(MonitorRecord::encode)
        .collect();
    let current = decode_channel(&row(binary.clone(), binary_monitor.clone())).unwrap();
    assert!(!current.old_format);
    assert_eq!(current.records, json.records);
    assert_eq!(current.monitor_records, json.monitor_records);
    // One JSON row left (a monitor not yet rewritten) is enough.
    let mixed = decode_channel(&row(binary, lines(MONITOR))).unwrap();
    assert!(mixed.old_format);
}
