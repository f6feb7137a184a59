//! Opening a daemon's sqlite database: the settings both daemons share.
//!
//! Owns: WAL journal, the `synchronous` level, exclusive locking (a second daemon on the
//! same data directory fails instead of corrupting it), a single connection, and mode 0600
//! on the file. Must never: run migrations or queries of its own (each store does).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

/// Opens (creating if needed) the database at `path`.
pub async fn open_pool(path: &Path, synchronous: SqliteSynchronous) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .context("sqlite options")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(Duration::from_millis(500));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        // One local connection: a ping before each use would only be one more round trip
        // to sqlx's worker thread.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    // The database holds keys or channel secrets: owner-only (the WAL inherits the mode).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting permissions of {}", path.display()))?;
    }
    Ok(pool)
}
