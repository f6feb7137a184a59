-- The revocation archive: the HTLCs of each revoked counterparty commitment that had any
-- (fulmen-channel's RevokedCommitment bytes), moved here from the channel monitor's
-- snapshots. Never read at start: only when the peer broadcasts that revoked commitment.
CREATE TABLE revoked_htlcs (
    channel INTEGER NOT NULL REFERENCES channels (id),
    number  INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (channel, number)
) WITHOUT ROWID;
