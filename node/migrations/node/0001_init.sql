-- The node daemon's store: everything is an append-only increment or a keyed upsert.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

-- BDK change sets (JSON), in the order the wallet produced them.
CREATE TABLE wallet_changesets (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    data BLOB NOT NULL
);

-- One row per channel; its state is the replay of its records.
CREATE TABLE channels (
    id         INTEGER PRIMARY KEY NOT NULL,
    peer       TEXT NOT NULL,
    funding_tx BLOB,
    closing_tx BLOB
);

-- fulmen-channel update records (versioned JSON), in order.
CREATE TABLE channel_records (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    channel INTEGER NOT NULL REFERENCES channels (id),
    data    BLOB NOT NULL
);
CREATE INDEX channel_records_by_channel ON channel_records (channel, id);

-- Payments we sent and invoices we issued (JSON documents keyed by payment hash).
CREATE TABLE payments (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_hash TEXT NOT NULL UNIQUE,
    data         TEXT NOT NULL
);
CREATE TABLE invoices (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_hash TEXT NOT NULL UNIQUE,
    data         TEXT NOT NULL
);

-- Peers we know and their last address.
CREATE TABLE peers (
    node_id TEXT PRIMARY KEY NOT NULL,
    address TEXT
);
