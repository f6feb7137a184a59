-- fulmen-channel ChannelMonitor records (versioned JSON), in order: what the node needs to
-- claim a channel's outputs on chain and punish a revoked commitment after a restart.
CREATE TABLE monitor_records (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    channel INTEGER NOT NULL REFERENCES channels (id),
    data    BLOB NOT NULL
);
CREATE INDEX monitor_records_by_channel ON monitor_records (channel, id);
