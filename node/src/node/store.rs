//! The node daemon's sqlite store (sqlx): wallet change sets, channel update records, channel
//! monitor records, the revocation archive, channel transactions, payments, invoices,
//! forwards, channel policies, peers, and the watchtower tables (a tower's records; the
//! towers a node backs up to and the backups queued for them).
//!
//! Owns: opening `DIR/node.sqlite` (WAL, `synchronous=FULL`, exclusive locking so two
//! daemons cannot share a data directory), the checked-in migrations in
//! `node/migrations/node/`, loading everything at start (of the payments, invoices and
//! forwards, only the open ones: the others are read on demand for `listpayments`,
//! `listinvoices`, `listforwards`, the repeat-payment check and incoming HTLCs of paid
//! invoices; the revocation archive not at all: a row is read when a monitor asks for it),
//! and applying a [`WriteBatch`] atomically and durably in one transaction. Must never:
//! interpret what it stores beyond decoding it (records and change sets are opaque bytes
//! beyond a record's "is a snapshot" flag and whether it is in an older format), or rewrite
//! history (records are append-only; the only deletion is a channel's or a monitor's records
//! before its latest snapshot, which replay no longer needs).

use std::path::Path;

use anyhow::Context as _;
use fulmen_channel::machine::codec::is_json_record;
use fulmen_channel::machine::Record;
use fulmen_channel::monitor::MonitorRecord;
use fulmen_manager::{
    InvoiceRecord, PaymentRecord, Stored, StoredChannel, StoredTower, TowerQueueWrite, Writes,
};
use fulmen_watchtower::{Backup, TowerRecord};
use sqlx::sqlite::{SqlitePool, SqliteSynchronous};
use sqlx::Row;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "node.sqlite";

/// sqlite's `synchronous` setting for the node's database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DbSync {
    /// Every commit is fsynced: durable across power loss (the default).
    #[default]
    Full,
    /// WAL without an fsync per commit: durable across a crash of the daemon (kill -9), not
    /// across an OS crash or power loss. For test networks and benchmarks.
    Normal,
}

/// Everything to write in one durable transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Wallet change sets (serialized), in order.
    pub wallet: Vec<Vec<u8>>,
    /// New channels: (local id, peer node id hex).
    pub new_channels: Vec<(i64, String)>,
    /// Channel records: (local channel id, encoded record, is a snapshot), in order; a
    /// snapshot deletes the channel's records before it.
    pub records: Vec<(i64, Vec<u8>, bool)>,
    /// Monitor records: (local channel id, encoded record, is a snapshot), in order; a
    /// snapshot deletes the monitor's records before it.
    pub monitor_records: Vec<(i64, Vec<u8>, bool)>,
    /// Revocation archive rows (insert or replace): (local channel id, commitment number,
    /// `RevokedCommitment` bytes).
    pub revoked_htlcs: Vec<(i64, i64, Vec<u8>)>,
    /// Funding transactions: (local channel id, consensus bytes).
    pub funding_txs: Vec<(i64, Vec<u8>)>,
    /// Closing transactions: (local channel id, consensus bytes).
    pub closing_txs: Vec<(i64, Vec<u8>)>,
    /// Force-close commitments: (local channel id, consensus bytes).
    pub commitment_txs: Vec<(i64, Vec<u8>)>,
    /// Heights at which a channel's funding was spent: (local channel id, height).
    pub closing_heights: Vec<(i64, u32)>,
    /// Payment upserts: (payment hash hex, JSON, still open — see
    /// [`PaymentRecord::is_open`]).
    pub payments: Vec<(String, String, bool)>,
    /// Invoice upserts: (payment hash hex, JSON).
    pub invoices: Vec<(String, String, bool)>,
    /// Peer upserts: (node id hex, address).
    pub peers: Vec<(String, Option<String>)>,
    /// Meta upserts.
    pub meta: Vec<(String, Vec<u8>)>,
    /// Forward upserts: ((incoming channel, incoming HTLC id), JSON).
    pub forwards: Vec<((i64, i64), String, bool)>,
    /// Policy upserts: (channel, JSON).
    pub policies: Vec<(i64, String)>,
    /// Watchtower records (encoded), in order.
    pub tower_records: Vec<Vec<u8>>,
    /// Tower upserts: (node id hex, address).
    pub towers: Vec<(String, String)>,
    /// Backup queue changes, in order.
    pub tower_queue: Vec<TowerQueueRow>,
}

/// One change to the `tower_queue` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TowerQueueRow {
    /// Insert (tower hex, hint, encoded backup); ignored if the hint is queued already.
    Queued(String, Vec<u8>, Vec<u8>),
    /// Delete (tower hex, hint) and count it in `towers.acked` (`true`) or `refused`.
    Done(String, Vec<u8>, bool),
}

impl WriteBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self == &WriteBatch::default()
    }
}

impl WriteBatch {
    /// Encodes the manager's typed writes: records through `Record::encode`, wallet change
    /// sets, payments and invoices as JSON, transactions in consensus bytes.
    pub fn from_writes(w: &Writes) -> anyhow::Result<WriteBatch> {
        let tx = |t: &bitcoin::Transaction| bitcoin::consensus::serialize(t);
        Ok(WriteBatch {
            wallet: w
                .wallet
                .iter()
                .map(serde_json::to_vec)
                .collect::<Result<_, _>>()
                .context("serializing a wallet change set")?,
            new_channels: w
                .new_channels
                .iter()
                .map(|(id, p)| (*id, p.to_string()))
                .collect(),
            records: w
                .records
                .iter()
                .map(|(id, r)| (*id, r.encode(), matches!(r, Record::Snapshot(_))))
                .collect(),
            monitor_records: w
                .monitor_records
                .iter()
                .map(|(id, r)| (*id, r.encode(), matches!(r, MonitorRecord::Snapshot(_))))
                .collect(),
            revoked_htlcs: w
                .revoked_htlcs
                .iter()
                .map(|(id, c)| {
                    let number = i64::try_from(c.number).context("a commitment number")?;
                    Ok((*id, number, c.encode()))
                })
                .collect::<anyhow::Result<_>>()?,
            funding_txs: w.funding_txs.iter().map(|(id, t)| (*id, tx(t))).collect(),
            closing_txs: w.closing_txs.iter().map(|(id, t)| (*id, tx(t))).collect(),
            commitment_txs: w
                .commitment_txs
                .iter()
                .map(|(id, t)| (*id, tx(t)))
                .collect(),
            closing_heights: w.closing_heights.clone(),
            payments: w
                .payments
                .iter()
                .map(|p| {
                    let json = serde_json::to_string(p)?;
                    Ok((p.info.payment_hash.clone(), json, p.is_open()))
                })
                .collect::<Result<_, serde_json::Error>>()
                .context("serializing a payment")?,
            invoices: w
                .invoices
                .iter()
                .map(|i| {
                    let json = serde_json::to_string(i)?;
                    Ok((i.info.payment_hash.clone(), json, i.is_open()))
                })
                .collect::<Result<_, serde_json::Error>>()
                .context("serializing an invoice")?,
            peers: w
                .peers
                .iter()
                .map(|(id, a)| (id.to_string(), a.clone()))
                .collect(),
            meta: Vec::new(),
            forwards: w
                .forwards
                .iter()
                .map(|f| {
                    let htlc = i64::try_from(f.in_htlc).unwrap_or(i64::MAX);
                    Ok(((f.in_channel, htlc), serde_json::to_string(f)?, f.is_open()))
                })
                .collect::<Result<_, serde_json::Error>>()
                .context("serializing a forward")?,
            policies: w
                .policies
                .iter()
                .map(|(c, p)| Ok((*c, serde_json::to_string(p)?)))
                .collect::<Result<_, serde_json::Error>>()
                .context("serializing a channel policy")?,
            tower_records: w.tower_records.iter().map(TowerRecord::encode).collect(),
            towers: w
                .towers
                .iter()
                .map(|(id, a)| (id.to_string(), a.clone()))
                .collect(),
            tower_queue: w
                .tower_queue
                .iter()
                .map(|q| match q {
                    TowerQueueWrite::Queued { tower, backup } => TowerQueueRow::Queued(
                        tower.to_string(),
                        backup.hint.as_bytes().to_vec(),
                        backup.encode(),
                    ),
                    TowerQueueWrite::Acked { tower, hint } => {
                        TowerQueueRow::Done(tower.to_string(), hint.as_bytes().to_vec(), true)
                    }
                    TowerQueueWrite::Refused { tower, hint } => {
                        TowerQueueRow::Done(tower.to_string(), hint.as_bytes().to_vec(), false)
                    }
                })
                .collect(),
        })
    }
}

/// One stored channel, as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredChannelRow {
    /// Local id.
    pub id: i64,
    /// Peer node id, hex.
    pub peer: String,
    /// Encoded records, in order.
    pub records: Vec<Vec<u8>>,
    /// Encoded monitor records, in order.
    pub monitor_records: Vec<Vec<u8>>,
    /// Funding transaction, if we built it.
    pub funding_tx: Option<Vec<u8>>,
    /// Closing transaction, once known.
    pub closing_tx: Option<Vec<u8>>,
    /// Force-close commitment, if broadcast.
    pub commitment_tx: Option<Vec<u8>>,
    /// Height at which the funding was spent, if seen.
    pub closing_height: Option<u32>,
}

/// Everything loaded at start.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Wallet change sets, in order.
    pub wallet: Vec<Vec<u8>>,
    /// Channels by id.
    pub channels: Vec<StoredChannelRow>,
    /// Open payments (JSON), oldest first: the others stay in the store (read with
    /// [`NodeStore::payments`] and [`NodeStore::payments_by_hash`]).
    pub payments: Vec<String>,
    /// Open invoices (JSON), oldest first: the others stay in the store (read with
    /// [`NodeStore::invoices`] and [`NodeStore::closed_invoices_by_hash`]).
    pub invoices: Vec<String>,
    /// Peers and addresses.
    pub peers: Vec<(String, Option<String>)>,
    /// Open forwards (JSON), oldest first: the resolved ones stay in the store (read with
    /// [`NodeStore::closed_forwards`]).
    pub forwards: Vec<String>,
    /// Channel policy overrides: (channel, JSON).
    pub policies: Vec<(i64, String)>,
    /// Watchtower records (encoded), in order.
    pub tower_records: Vec<Vec<u8>>,
    /// Towers: (node id hex, address, acked, refused).
    pub towers: Vec<(String, String, i64, i64)>,
    /// Queued backups: (tower hex, encoded backup), oldest first.
    pub tower_queue: Vec<(String, Vec<u8>)>,
}

impl Loaded {
    /// Decodes everything into what the manager restarts from.
    pub fn decode(&self) -> anyhow::Result<Stored> {
        let mut out = Stored::default();
        for b in &self.wallet {
            out.wallet
                .push(serde_json::from_slice(b).context("decoding a stored wallet change set")?);
        }
        out.channels = decode_channels(&self.channels)?;
        for json in &self.payments {
            out.payments.push(decode_payment(json)?);
        }
        for json in &self.invoices {
            out.invoices.push(decode_invoice(json)?);
        }
        for json in &self.forwards {
            out.forwards
                .push(serde_json::from_str(json).context("decoding a stored forward")?);
        }
        for (c, json) in &self.policies {
            out.policies.push((
                *c,
                serde_json::from_str(json).context("decoding a stored channel policy")?,
            ));
        }
        for r in &self.tower_records {
            out.tower_records
                .push(TowerRecord::decode(r).context("decoding a stored tower record")?);
        }
        for (id, address, acked, refused) in &self.towers {
            out.towers.push(StoredTower {
                node_id: id
                    .parse()
                    .with_context(|| format!("stored tower id {id:?}"))?,
                address: address.clone(),
                acked: u64::try_from(*acked).unwrap_or(0),
                refused: u64::try_from(*refused).unwrap_or(0),
            });
        }
        for (tower, data) in &self.tower_queue {
            out.tower_queue.push((
                tower
                    .parse()
                    .with_context(|| format!("queued backup's tower {tower:?}"))?,
                Backup::decode(data).context("decoding a queued tower backup")?,
            ));
        }
        for (id, addr) in &self.peers {
            // A row that is not a node id is skipped (it could never be dialled).
            if let Ok(pk) = id.parse() {
                out.peers.push((pk, addr.clone()));
            }
        }
        Ok(out)
    }
}

/// One payment row (as [`Loaded::payments`], [`NodeStore::payments`] and
/// [`NodeStore::payments_by_hash`] hand them out) decoded.
pub fn decode_payment(json: &str) -> anyhow::Result<PaymentRecord> {
    serde_json::from_str(json).context("decoding a stored payment")
}

/// The `data` column of `rows` (the JSON of payments, invoices, forwards).
fn data_of(rows: &[sqlx::sqlite::SqliteRow]) -> anyhow::Result<Vec<String>> {
    rows.iter()
        .map(|r| r.try_get("data").context("a row's data"))
        .collect()
}

/// One invoice row decoded.
pub fn decode_invoice(json: &str) -> anyhow::Result<InvoiceRecord> {
    serde_json::from_str(json).context("decoding a stored invoice")
}

/// Decodes the channels' rows on every core: most of a start with many channels is parsing
/// their records (public keys in them are decompressed, one square root each), and each
/// channel decodes on its own.
fn decode_channels(rows: &[StoredChannelRow]) -> anyhow::Result<Vec<StoredChannel>> {
    fulmen_channel::parallel::map_in_order(rows, decode_channel)
}

/// One channel's row decoded.
fn decode_channel(c: &StoredChannelRow) -> anyhow::Result<StoredChannel> {
    let tx = |raw: &Option<Vec<u8>>| -> anyhow::Result<Option<bitcoin::Transaction>> {
        raw.as_ref()
            .map(|b| bitcoin::consensus::deserialize(b).context("decoding a stored transaction"))
            .transpose()
    };
    Ok(StoredChannel {
        id: c.id,
        peer: c
            .peer
            .parse()
            .with_context(|| format!("peer of channel {}", c.id))?,
        records: c
            .records
            .iter()
            .map(|r| Record::decode(r))
            .collect::<Result<_, _>>()
            .with_context(|| format!("decoding the records of channel {}", c.id))?,
        funding_tx: tx(&c.funding_tx)?,
        closing_tx: tx(&c.closing_tx)?,
        commitment_tx: tx(&c.commitment_tx)?,
        closing_height: c.closing_height,
        monitor_records: c
            .monitor_records
            .iter()
            .map(|r| MonitorRecord::decode(r))
            .collect::<Result<_, _>>()
            .with_context(|| format!("decoding the monitor records of channel {}", c.id))?,
        old_format: c
            .records
            .iter()
            .chain(&c.monitor_records)
            .any(|r| is_json_record(r)),
    })
}

/// Handle to the open database.
#[derive(Clone, Debug)]
pub struct NodeStore {
    pool: SqlitePool,
    /// The `--db-sync` level: with `Full`, each write says whether it is fsynced.
    sync: DbSync,
}

impl NodeStore {
    /// Opens (creating if needed) the database in `datadir` and runs the migrations. Fails if
    /// another process holds it.
    pub async fn open(datadir: &Path, sync: DbSync) -> anyhow::Result<NodeStore> {
        let path = datadir.join(DB_FILE);
        let pool = crate::sqlite::open_pool(
            &path,
            match sync {
                DbSync::Full => SqliteSynchronous::Full,
                DbSync::Normal => SqliteSynchronous::Normal,
            },
        )
        .await?;
        sqlx::migrate!("./migrations/node")
            .run(&pool)
            .await
            .with_context(|| format!("migrating {}", path.display()))?;
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened', ?)")
            .bind(std::process::id().to_string().into_bytes())
            .execute(&pool)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{} is locked ({e}): is another node daemon using this data directory?",
                    path.display()
                )
            })?;
        Ok(NodeStore { pool, sync })
    }

    /// A meta value.
    pub async fn meta(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .context("reading meta")?;
        row.map(|r| r.try_get::<Vec<u8>, _>("value"))
            .transpose()
            .context("decoding meta row")
    }

    /// Loads everything.
    pub async fn load(&self) -> anyhow::Result<Loaded> {
        let mut out = Loaded::default();
        for r in sqlx::query("SELECT data FROM wallet_changesets ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context("loading wallet")?
        {
            out.wallet.push(r.try_get("data")?);
        }
        for r in sqlx::query(
            "SELECT id, peer, funding_tx, closing_tx, commitment_tx, closing_height FROM channels \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .context("loading channels")?
        {
            out.channels.push(StoredChannelRow {
                id: r.try_get("id")?,
                peer: r.try_get("peer")?,
                records: Vec::new(),
                monitor_records: Vec::new(),
                funding_tx: r.try_get("funding_tx")?,
                closing_tx: r.try_get("closing_tx")?,
                commitment_tx: r.try_get("commitment_tx")?,
                closing_height: r
                    .try_get::<Option<i64>, _>("closing_height")?
                    .and_then(|h| u32::try_from(h).ok()),
            });
        }
        let index: std::collections::HashMap<i64, usize> = out
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        for r in sqlx::query("SELECT channel, data FROM channel_records ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context("loading channel records")?
        {
            let ch: i64 = r.try_get("channel")?;
            let data: Vec<u8> = r.try_get("data")?;
            let i = *index
                .get(&ch)
                .with_context(|| format!("record of unknown channel {ch}"))?;
            if let Some(c) = out.channels.get_mut(i) {
                c.records.push(data);
            }
        }
        for r in sqlx::query("SELECT channel, data FROM monitor_records ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context("loading monitor records")?
        {
            let ch: i64 = r.try_get("channel")?;
            let data: Vec<u8> = r.try_get("data")?;
            let i = *index
                .get(&ch)
                .with_context(|| format!("monitor record of unknown channel {ch}"))?;
            if let Some(c) = out.channels.get_mut(i) {
                c.monitor_records.push(data);
            }
        }
        out.payments = self
            .json_rows(
                "SELECT data FROM payments WHERE is_open = 1 ORDER BY seq",
                "loading payments",
            )
            .await?;
        out.invoices = self
            .json_rows(
                "SELECT data FROM invoices WHERE is_open = 1 ORDER BY seq",
                "loading invoices",
            )
            .await?;
        out.forwards = self
            .json_rows(
                "SELECT data FROM forwards WHERE is_open = 1 ORDER BY seq",
                "loading forwards",
            )
            .await?;
        for r in sqlx::query("SELECT channel, data FROM channel_policies ORDER BY channel")
            .fetch_all(&self.pool)
            .await
            .context("loading channel policies")?
        {
            out.policies
                .push((r.try_get("channel")?, r.try_get("data")?));
        }
        for r in sqlx::query("SELECT data FROM tower_records ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context("loading tower records")?
        {
            out.tower_records.push(r.try_get("data")?);
        }
        for r in sqlx::query("SELECT node_id, address, acked, refused FROM towers ORDER BY node_id")
            .fetch_all(&self.pool)
            .await
            .context("loading towers")?
        {
            out.towers.push((
                r.try_get("node_id")?,
                r.try_get("address")?,
                r.try_get("acked")?,
                r.try_get("refused")?,
            ));
        }
        for r in sqlx::query("SELECT tower, data FROM tower_queue ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .context("loading the tower queue")?
        {
            out.tower_queue
                .push((r.try_get("tower")?, r.try_get("data")?));
        }
        for r in sqlx::query("SELECT node_id, address FROM peers ORDER BY node_id")
            .fetch_all(&self.pool)
            .await
            .context("loading peers")?
        {
            out.peers
                .push((r.try_get("node_id")?, r.try_get("address")?));
        }
        Ok(out)
    }

    /// Payments (JSON), oldest first: every one, or only the newest `last`.
    pub async fn payments(&self, last: Option<usize>) -> anyhow::Result<Vec<String>> {
        // sqlite reads a negative LIMIT as none.
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = sqlx::query(
            "SELECT data FROM (SELECT seq, data FROM payments ORDER BY seq DESC LIMIT ?) \
             ORDER BY seq",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("reading payments")?;
        data_of(&rows)
    }

    /// The forwards no longer open (JSON), oldest first: with the open ones the manager
    /// holds, what `listforwards` shows.
    pub async fn closed_forwards(&self) -> anyhow::Result<Vec<String>> {
        self.json_rows(
            "SELECT data FROM forwards WHERE is_open = 0 ORDER BY seq",
            "reading forwards",
        )
        .await
    }

    /// Every invoice (JSON), oldest first.
    pub async fn invoices(&self) -> anyhow::Result<Vec<String>> {
        self.json_rows("SELECT data FROM invoices ORDER BY seq", "reading invoices")
            .await
    }

    /// The `data` column of the rows of `select` (a query without parameters).
    async fn json_rows(&self, select: &str, what: &'static str) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(select)
            .fetch_all(&self.pool)
            .await
            .context(what)?;
        data_of(&rows)
    }

    /// The invoices no longer open (JSON) among `hashes` (payment hashes, hex), in one
    /// query: what the manager needs back to decide on incoming HTLCs for them.
    pub async fn closed_invoices_by_hash(&self, hashes: &[String]) -> anyhow::Result<Vec<String>> {
        let sql = "SELECT data FROM invoices WHERE is_open = 0 AND payment_hash IN";
        let rows = self.rows_by_hash(sql, hashes, "reading invoices").await?;
        data_of(&rows)
    }

    /// The payments (hash hex, JSON) among `hashes` that the store holds, in one query.
    pub async fn payments_by_hash(
        &self,
        hashes: &[String],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let sql = "SELECT payment_hash, data FROM payments WHERE payment_hash IN";
        let rows = self.rows_by_hash(sql, hashes, "reading payments").await?;
        rows.iter()
            .map(|r| Ok((r.try_get("payment_hash")?, r.try_get("data")?)))
            .collect()
    }

    /// The rows of `select` (ending in `IN`) for `hashes`: one statement per 10,000 (sqlite
    /// allows 32,766 bound values per statement).
    async fn rows_by_hash(
        &self,
        select: &str,
        hashes: &[String],
        what: &'static str,
    ) -> anyhow::Result<Vec<sqlx::sqlite::SqliteRow>> {
        let mut out = Vec::new();
        for chunk in hashes.chunks(10_000) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("{select} ({marks})");
            let mut q = sqlx::query(&sql).persistent(false);
            for h in chunk {
                q = q.bind(h);
            }
            out.extend(q.fetch_all(&self.pool).await.context(what)?);
        }
        Ok(out)
    }

    /// The archived HTLCs of revoked commitment `number` of channel `channel` (empty if the
    /// archive has no row: that commitment had none).
    pub async fn revoked_htlcs(
        &self,
        channel: i64,
        number: u64,
    ) -> anyhow::Result<Vec<fulmen_channel::monitor::RevokedHtlc>> {
        let key = i64::try_from(number).context("a commitment number")?;
        let row = sqlx::query("SELECT data FROM revoked_htlcs WHERE channel = ? AND number = ?")
            .bind(channel)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .context("reading the revocation archive")?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let data: Vec<u8> = row.try_get("data").context("a revocation archive row")?;
        let set = fulmen_channel::monitor::RevokedCommitment::decode(number, &data)
            .with_context(|| format!("revoked state {number} of channel {channel}"))?;
        Ok(set.htlcs)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

mod write;

#[cfg(test)]
mod tests;
