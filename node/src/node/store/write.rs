//! Writing a [`WriteBatch`]: the whole batch as one SQL script — `BEGIN`, one multi-row
//! `INSERT` per table (a statement per row where a row needs its own: the `UPDATE`s, a
//! channel record followed by its snapshot's compaction, the tower queue), `COMMIT` — sent
//! to sqlite in a single call.
//!
//! Owns: the SQL of every write and the order of its bound values. Why one script: sqlx
//! runs sqlite on its own worker thread, and every statement sent separately is a round trip
//! to that thread (two thread wake-ups; on this project's 2-core VM that was most of a
//! payment turn's kernel time). Must never: bind values out of the order of their `?`
//! placeholders (plain `?` only — sqlx numbers them across the script's statements), or
//! leave a transaction open on the connection when a statement fails.

use anyhow::Context as _;
use sqlx::sqlite::SqliteArguments;
use sqlx::Arguments as _;

use super::{DbSync, NodeStore, TowerQueueRow, WriteBatch};

/// A SQL script and its bound values, built together so they cannot drift apart.
struct Script<'q> {
    sql: String,
    args: SqliteArguments<'q>,
    statements: usize,
}

/// One value bound to a `?` of the script.
enum Value<'q> {
    Int(i64),
    Bool(bool),
    Text(&'q str),
    OptText(Option<&'q str>),
    Blob(&'q [u8]),
}

impl<'q> Script<'q> {
    /// A script that runs `before` (whole statements, outside the transaction), then
    /// `BEGIN`.
    fn new(before: &str) -> Self {
        Script {
            sql: format!("{before}BEGIN;\n"),
            args: SqliteArguments::default(),
            statements: 0,
        }
    }

    /// Appends `sql` (one statement, with a plain `?` per value) and binds `values`.
    fn push(&mut self, sql: &str, values: &[Value<'q>]) -> anyhow::Result<()> {
        debug_assert_eq!(sql.matches('?').count(), values.len(), "{sql}");
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
        self.statements += 1;
        for v in values {
            self.bind(v)?;
        }
        Ok(())
    }

    /// Appends the rows of a compacted log table (`channel_records`, `monitor_records`):
    /// `(channel, data, is a snapshot)`, in order. Runs of plain rows go as multi-row
    /// inserts; a snapshot row goes alone, followed by the deletion of its channel's rows
    /// before it (replay starts at the snapshot: what came before is no longer needed).
    fn push_log(&mut self, table: &str, rows: &'q [(i64, Vec<u8>, bool)]) -> anyhow::Result<()> {
        use Value::*;
        let insert = format!("INSERT INTO {table} (channel, data) VALUES ");
        for run in rows.split_inclusive(|(_, _, snapshot)| *snapshot) {
            let (plain, snapshot) = match run.split_last() {
                Some((last @ (_, _, true), plain)) => (plain, Some(last)),
                _ => (run, None),
            };
            self.push_rows(
                &insert,
                "(?, ?)",
                "",
                plain.iter().map(|(id, data, _)| [Int(*id), Blob(data)]),
            )?;
            if let Some((id, data, _)) = snapshot {
                self.push(&format!("{insert}(?, ?)"), &[Int(*id), Blob(data)])?;
                self.push(
                    &format!("DELETE FROM {table} WHERE channel = ? AND id < last_insert_rowid()"),
                    &[Int(*id)],
                )?;
            }
        }
        Ok(())
    }

    /// Appends one multi-row statement per [`ROWS_PER_STATEMENT`] rows: `head`, then
    /// `row` (one tuple of plain `?`) once per row, comma-separated, then `tail`. Rows are
    /// written in order, so a later row of the same key wins as with one statement each;
    /// sqlite parses one statement instead of one per row (parsing was a quarter of the
    /// store thread's CPU with 100 payments in flight). Every plain insert goes this way.
    fn push_rows<const N: usize>(
        &mut self,
        head: &str,
        row: &str,
        tail: &str,
        rows: impl IntoIterator<Item = [Value<'q>; N]>,
    ) -> anyhow::Result<()> {
        debug_assert_eq!(row.matches('?').count(), N, "{row}");
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            self.sql.push_str(head);
            for (i, values) in rows.by_ref().take(ROWS_PER_STATEMENT).enumerate() {
                if i > 0 {
                    self.sql.push_str(", ");
                }
                self.sql.push_str(row);
                for v in &values {
                    self.bind(v)?;
                }
            }
            self.sql.push_str(tail);
            self.sql.push_str(";\n");
            self.statements += 1;
        }
        Ok(())
    }

    fn bind(&mut self, v: &Value<'q>) -> anyhow::Result<()> {
        match *v {
            Value::Int(i) => self.args.add(i),
            Value::Bool(b) => self.args.add(b),
            Value::Text(s) => self.args.add(s),
            Value::OptText(s) => self.args.add(s),
            Value::Blob(b) => self.args.add(b),
        }
        .map_err(|e| anyhow::anyhow!("binding a store value: {e}"))
    }
}

/// Rows per multi-row statement: at most 4 values each, far below sqlite's 32,766 bound
/// variables per statement.
const ROWS_PER_STATEMENT: usize = 256;

impl NodeStore {
    /// Writes `batch` in one transaction; durable when this returns `Ok`.
    pub async fn write(&self, batch: &WriteBatch) -> anyhow::Result<()> {
        self.write_with(batch, true).await
    }

    /// Writes `batch` in one transaction. `sync`: durable across power loss when this
    /// returns `Ok` (with `--db-sync full`, the WAL is fsynced). Not `sync`: durable across
    /// a crash of the process only — no fsync — until the next synced write, which makes
    /// it durable too (the WAL is one file, written in order). With `--db-sync normal`
    /// no write is fsynced.
    pub async fn write_with(&self, batch: &WriteBatch, sync: bool) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // With `--db-sync full`, the level applies to the connection's next commits: set it
        // for this one.
        let before = match (self.sync, sync) {
            (DbSync::Full, true) => "PRAGMA synchronous = FULL;\n",
            (DbSync::Full, false) => "PRAGMA synchronous = NORMAL;\n",
            (DbSync::Normal, _) => "",
        };
        let script = script(batch, before)?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("store connection for a write")?;
        let Script { mut sql, args, .. } = script;
        sql.push_str("COMMIT;");
        let result = sqlx::query_with(&sql, args)
            .persistent(false)
            .execute(&mut *conn)
            .await;
        if let Err(e) = result {
            // A failed statement leaves the script's transaction open: undo it before the
            // connection goes back to the pool (the daemon stops on a failed write anyway).
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err(e).context("writing a store batch");
        }
        Ok(())
    }
}

/// The statements of `batch`, in the order the old per-statement writer ran them, after
/// `before` (see [`Script::new`]).
fn script<'q>(batch: &'q WriteBatch, before: &str) -> anyhow::Result<Script<'q>> {
    use Value::*;
    let mut s = Script::new(before);
    s.push_rows(
        "INSERT INTO wallet_changesets (data) VALUES ",
        "(?)",
        "",
        batch.wallet.iter().map(|data| [Blob(data)]),
    )?;
    s.push_rows(
        "INSERT INTO channels (id, peer) VALUES ",
        "(?, ?)",
        "",
        batch
            .new_channels
            .iter()
            .map(|(id, peer)| [Int(*id), Text(peer)]),
    )?;
    s.push_log("channel_records", &batch.records)?;
    s.push_log("monitor_records", &batch.monitor_records)?;
    s.push_rows(
        "INSERT OR REPLACE INTO revoked_htlcs (channel, number, data) VALUES ",
        "(?, ?, ?)",
        "",
        batch
            .revoked_htlcs
            .iter()
            .map(|(chan, number, data)| [Int(*chan), Int(*number), Blob(data)]),
    )?;
    for (column, rows) in [
        ("funding_tx", &batch.funding_txs),
        ("closing_tx", &batch.closing_txs),
        ("commitment_tx", &batch.commitment_txs),
    ] {
        for (id, raw) in rows {
            s.push(
                &format!("UPDATE channels SET {column} = ? WHERE id = ?"),
                &[Blob(raw), Int(*id)],
            )?;
        }
    }
    for (id, height) in &batch.closing_heights {
        s.push(
            "UPDATE channels SET closing_height = ? WHERE id = ?",
            &[Int(i64::from(*height)), Int(*id)],
        )?;
    }
    s.push_rows(
        "INSERT INTO payments (payment_hash, data, is_open) VALUES ",
        "(?, ?, ?)",
        " ON CONFLICT (payment_hash) DO UPDATE SET data = excluded.data, \
         is_open = excluded.is_open",
        batch
            .payments
            .iter()
            .map(|(hash, json, open)| [Text(hash), Text(json), Bool(*open)]),
    )?;
    s.push_rows(
        "INSERT INTO invoices (payment_hash, data, is_open) VALUES ",
        "(?, ?, ?)",
        " ON CONFLICT (payment_hash) DO UPDATE SET data = excluded.data, \
         is_open = excluded.is_open",
        batch
            .invoices
            .iter()
            .map(|(hash, json, open)| [Text(hash), Text(json), Bool(*open)]),
    )?;
    s.push_rows(
        "INSERT INTO peers (node_id, address) VALUES ",
        "(?, ?)",
        " ON CONFLICT (node_id) DO UPDATE SET address = COALESCE(excluded.address, address)",
        batch
            .peers
            .iter()
            .map(|(id, addr)| [Text(id), OptText(addr.as_deref())]),
    )?;
    s.push_rows(
        "INSERT INTO forwards (in_channel, in_htlc, data, is_open) VALUES ",
        "(?, ?, ?, ?)",
        " ON CONFLICT (in_channel, in_htlc) DO UPDATE SET data = excluded.data, \
         is_open = excluded.is_open",
        batch
            .forwards
            .iter()
            .map(|((chan, htlc), json, open)| [Int(*chan), Int(*htlc), Text(json), Bool(*open)]),
    )?;
    s.push_rows(
        "INSERT INTO channel_policies (channel, data) VALUES ",
        "(?, ?)",
        " ON CONFLICT (channel) DO UPDATE SET data = excluded.data",
        batch
            .policies
            .iter()
            .map(|(chan, json)| [Int(*chan), Text(json)]),
    )?;
    s.push_rows(
        "INSERT INTO tower_records (data) VALUES ",
        "(?)",
        "",
        batch.tower_records.iter().map(|data| [Blob(data)]),
    )?;
    s.push_rows(
        "INSERT INTO towers (node_id, address) VALUES ",
        "(?, ?)",
        " ON CONFLICT (node_id) DO UPDATE SET address = excluded.address",
        batch.towers.iter().map(|(id, addr)| [Text(id), Text(addr)]),
    )?;
    for row in &batch.tower_queue {
        match row {
            TowerQueueRow::Queued(tower, hint, data) => s.push(
                "INSERT OR IGNORE INTO tower_queue (tower, hint, data) VALUES (?, ?, ?)",
                &[Text(tower), Blob(hint), Blob(data)],
            )?,
            TowerQueueRow::Done(tower, hint, acked) => {
                // Counted only if it was still queued, so count before the delete.
                let column = if *acked { "acked" } else { "refused" };
                s.push(
                    &format!(
                        "UPDATE towers SET {column} = {column} + 1 WHERE node_id = ? AND EXISTS \
                         (SELECT 1 FROM tower_queue WHERE tower = ? AND hint = ?)"
                    ),
                    &[Text(tower), Text(tower), Blob(hint)],
                )?;
                s.push(
                    "DELETE FROM tower_queue WHERE tower = ? AND hint = ?",
                    &[Text(tower), Blob(hint)],
                )?;
            }
        }
    }
    s.push_rows(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ",
        "(?, ?)",
        "",
        batch.meta.iter().map(|(k, v)| [Text(k), Blob(v)]),
    )?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_has_its_value() {
        let batch = WriteBatch {
            wallet: vec![vec![1]],
            new_channels: vec![(1, "peer".into())],
            records: vec![(1, vec![2], false), (1, vec![3], true)],
            monitor_records: vec![(1, vec![4], false)],
            revoked_htlcs: vec![(1, 5, vec![1])],
            funding_txs: vec![(1, vec![5])],
            closing_txs: vec![(1, vec![6])],
            commitment_txs: vec![(1, vec![7])],
            closing_heights: vec![(1, 8)],
            // More rows than one multi-row statement takes.
            payments: (0..300)
                .map(|i| (format!("h{i}"), "{}".into(), true))
                .collect(),
            invoices: vec![("h".into(), "{}".into(), true)],
            peers: vec![("p".into(), None)],
            meta: vec![("k".into(), vec![9])],
            forwards: vec![((1, 2), "{}".into(), true)],
            policies: vec![(1, "{}".into())],
            tower_records: vec![vec![10]],
            towers: vec![("t".into(), "addr".into())],
            tower_queue: vec![
                TowerQueueRow::Queued("t".into(), vec![11], vec![12]),
                TowerQueueRow::Done("t".into(), vec![11], true),
            ],
        };
        let s = script(&batch, "").expect("script");
        use sqlx::Arguments as _;
        assert_eq!(s.sql.matches('?').count(), s.args.len());
        assert_eq!(s.sql.matches(";\n").count(), s.statements + 1); // + BEGIN
    }
}
