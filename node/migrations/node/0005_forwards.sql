-- HTLCs this node forwarded (JSON documents keyed by the incoming channel and HTLC id), and
-- per-channel forwarding policy overrides set by `setfees` (JSON).
CREATE TABLE forwards (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    in_channel INTEGER NOT NULL,
    in_htlc    INTEGER NOT NULL,
    data       TEXT NOT NULL,
    UNIQUE (in_channel, in_htlc)
);
CREATE TABLE channel_policies (
    channel INTEGER PRIMARY KEY NOT NULL,
    data    TEXT NOT NULL
);
