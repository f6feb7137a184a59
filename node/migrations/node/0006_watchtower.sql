-- Watchtower, server side: fulmen-watchtower TowerRecords (versioned bytes), append-only, in
-- order; the tower is rebuilt from them at start.
CREATE TABLE tower_records (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    data BLOB NOT NULL
);
-- Watchtower, client side: the towers this node backs up to, with how many backups each
-- acknowledged (durably stored) or refused.
CREATE TABLE towers (
    node_id TEXT PRIMARY KEY NOT NULL,
    address TEXT NOT NULL,
    acked   INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0
);
-- Sealed backups (fulmen-watchtower Backup encoding) queued for a tower and not yet
-- acknowledged, oldest first; a row is deleted when the tower acknowledges or refuses it.
CREATE TABLE tower_queue (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    tower TEXT NOT NULL,
    hint  BLOB NOT NULL,
    data  BLOB NOT NULL,
    UNIQUE (tower, hint)
);
