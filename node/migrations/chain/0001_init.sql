-- Chain daemon store: the faucet key, every mined block, and the mempool.
-- Written as increments: blocks are inserted when mined and deleted above a height on
-- reorg; mempool rows are inserted/deleted as transactions enter/leave the mempool.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

-- Heights 1.. (genesis is implied by the chain parameters and never stored).
CREATE TABLE blocks (
    height INTEGER PRIMARY KEY NOT NULL,
    hash   TEXT NOT NULL UNIQUE,
    raw    BLOB NOT NULL
);

-- Unconfirmed transactions; `seq` keeps insertion order for replay.
CREATE TABLE mempool (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    txid TEXT NOT NULL UNIQUE,
    raw  BLOB NOT NULL
);
