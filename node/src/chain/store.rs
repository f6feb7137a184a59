//! The chain daemon's sqlite store (sqlx): faucet key, blocks and mempool, as increments.
//!
//! Owns: opening `DIR/chain.sqlite` (WAL, `synchronous=FULL`, exclusive locking so two
//! daemons cannot share a data directory), running the checked-in migrations in
//! `node/migrations/chain/`, and applying a [`StoreUpdate`] atomically in one transaction.
//! Must never: write a whole snapshot of the chain, or know consensus rules; it stores
//! opaque consensus-encoded bytes that the daemon replays through `Chain::connect_block`.

use std::path::Path;

use anyhow::Context as _;
use sqlx::sqlite::{SqlitePool, SqliteSynchronous};
use sqlx::Row;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "chain.sqlite";

/// `meta` key of the faucet's secret key (32 bytes).
const FAUCET_KEY: &str = "faucet_key";

/// One atomic change to the store, applied in order: truncate, insert blocks, mempool rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreUpdate {
    /// Delete every block above this height (a reorg).
    pub truncate_above: Option<u32>,
    /// Blocks to insert: (height, hash hex, consensus bytes).
    pub new_blocks: Vec<(u32, String, Vec<u8>)>,
    /// Mempool txids (hex) to delete.
    pub mempool_remove: Vec<String>,
    /// Mempool transactions to insert: (txid hex, consensus bytes), in mempool order.
    pub mempool_add: Vec<(String, Vec<u8>)>,
}

impl StoreUpdate {
    /// True when applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.truncate_above.is_none()
            && self.new_blocks.is_empty()
            && self.mempool_remove.is_empty()
            && self.mempool_add.is_empty()
    }
}

/// Handle to the open database.
#[derive(Clone, Debug)]
pub struct ChainStore {
    pool: SqlitePool,
}

impl ChainStore {
    /// Opens (creating if needed) the database in `datadir` and runs the migrations. Fails if
    /// another process holds the database.
    pub async fn open(datadir: &Path) -> anyhow::Result<ChainStore> {
        ChainStore::open_inner(datadir).await.map_err(|e| {
            if format!("{e:#}").contains("database is locked") {
                e.context(format!(
                    "{} is locked: is another chain daemon using this data directory?",
                    datadir.display()
                ))
            } else {
                e
            }
        })
    }

    async fn open_inner(datadir: &Path) -> anyhow::Result<ChainStore> {
        let path = datadir.join(DB_FILE);
        let pool = crate::sqlite::open_pool(&path, SqliteSynchronous::Full).await?;
        sqlx::migrate!("./migrations/chain")
            .run(&pool)
            .await
            .with_context(|| format!("migrating {}", path.display()))?;
        // A write takes the exclusive lock for the life of the connection: a second daemon on
        // the same data directory fails here instead of corrupting the store.
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened', ?)")
            .bind(std::process::id().to_string().into_bytes())
            .execute(&pool)
            .await
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(ChainStore { pool })
    }

    /// The stored faucet secret key, if any.
    pub async fn faucet_key(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(FAUCET_KEY)
            .fetch_optional(&self.pool)
            .await
            .context("reading faucet key")?;
        row.map(|r| r.try_get::<Vec<u8>, _>("value"))
            .transpose()
            .context("decoding faucet key row")
    }

    /// Stores the faucet secret key (only ever written once per data directory).
    pub async fn set_faucet_key(&self, key: &[u8]) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
            .bind(FAUCET_KEY)
            .bind(key)
            .execute(&self.pool)
            .await
            .context("storing faucet key")?;
        Ok(())
    }

    /// Every stored block as (height, hash hex, bytes), by increasing height.
    pub async fn load_blocks(&self) -> anyhow::Result<Vec<(u32, String, Vec<u8>)>> {
        let rows = sqlx::query("SELECT height, hash, raw FROM blocks ORDER BY height")
            .fetch_all(&self.pool)
            .await
            .context("loading blocks")?;
        rows.into_iter()
            .map(|r| {
                let height: i64 = r.try_get("height")?;
                let height = u32::try_from(height)
                    .map_err(|_| anyhow::anyhow!("stored block height {height} out of range"))?;
                Ok((height, r.try_get("hash")?, r.try_get("raw")?))
            })
            .collect()
    }

    /// The stored mempool as (txid hex, bytes), in insertion order.
    pub async fn load_mempool(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query("SELECT txid, raw FROM mempool ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .context("loading mempool")?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("txid")?, r.try_get("raw")?)))
            .collect()
    }

    /// Applies `update` in a single transaction (all or nothing, durable on return).
    pub async fn apply(&self, update: &StoreUpdate) -> anyhow::Result<()> {
        if update.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.context("begin store transaction")?;
        if let Some(height) = update.truncate_above {
            sqlx::query("DELETE FROM blocks WHERE height > ?")
                .bind(i64::from(height))
                .execute(&mut *tx)
                .await
                .context("deleting reorged blocks")?;
        }
        for (height, hash, raw) in &update.new_blocks {
            sqlx::query("INSERT INTO blocks (height, hash, raw) VALUES (?, ?, ?)")
                .bind(i64::from(*height))
                .bind(hash)
                .bind(raw)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("inserting block {height}"))?;
        }
        for txid in &update.mempool_remove {
            sqlx::query("DELETE FROM mempool WHERE txid = ?")
                .bind(txid)
                .execute(&mut *tx)
                .await
                .context("deleting mempool row")?;
        }
        for (txid, raw) in &update.mempool_add {
            sqlx::query("INSERT OR IGNORE INTO mempool (txid, raw) VALUES (?, ?)")
                .bind(txid)
                .bind(raw)
                .execute(&mut *tx)
                .await
                .context("inserting mempool row")?;
        }
        tx.commit().await.context("commit store transaction")?;
        Ok(())
    }

    /// Closes the pool (waits for the connection to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn increments_round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(dir.path()).await.unwrap();
        assert_eq!(store.faucet_key().await.unwrap(), None);
        store.set_faucet_key(&[7u8; 32]).await.unwrap();
        let update = StoreUpdate {
            new_blocks: vec![
                (1, "aa".into(), vec![1]),
                (2, "bb".into(), vec![2]),
                (3, "cc".into(), vec![3]),
            ],
            mempool_add: vec![("t1".into(), vec![9]), ("t2".into(), vec![8])],
            ..StoreUpdate::default()
        };
        store.apply(&update).await.unwrap();
        let reorg = StoreUpdate {
            truncate_above: Some(1),
            mempool_remove: vec!["t1".into()],
            mempool_add: vec![("t3".into(), vec![7])],
            ..StoreUpdate::default()
        };
        store.apply(&reorg).await.unwrap();
        store.close().await;

        let store = ChainStore::open(dir.path()).await.unwrap();
        assert_eq!(store.faucet_key().await.unwrap(), Some(vec![7u8; 32]));
        assert_eq!(
            store.load_blocks().await.unwrap(),
            vec![(1, "aa".to_string(), vec![1])]
        );
        assert_eq!(
            store.load_mempool().await.unwrap(),
            vec![("t2".to_string(), vec![8]), ("t3".to_string(), vec![7])]
        );
    }

    #[tokio::test]
    async fn failed_update_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(dir.path()).await.unwrap();
        let first = StoreUpdate {
            new_blocks: vec![(1, "aa".into(), vec![1])],
            ..StoreUpdate::default()
        };
        store.apply(&first).await.unwrap();
        // Duplicate height 1 violates the primary key: nothing of this update may land.
        let bad = StoreUpdate {
            new_blocks: vec![(2, "bb".into(), vec![2]), (1, "cc".into(), vec![3])],
            mempool_add: vec![("t".into(), vec![1])],
            ..StoreUpdate::default()
        };
        assert!(store.apply(&bad).await.is_err());
        assert_eq!(store.load_blocks().await.unwrap().len(), 1);
        assert!(store.load_mempool().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = ChainStore::open(dir.path()).await.unwrap();
        let err = ChainStore::open(dir.path()).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("another chain daemon")
                || format!("{err:#}").contains("locked"),
            "{err:#}"
        );
    }
}
