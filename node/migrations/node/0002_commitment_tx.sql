-- Our commitment broadcast after a channel failed (a force close): kept apart from the
-- cooperative closing transaction, re-broadcast after a restart until the funding is spent.
ALTER TABLE channels ADD COLUMN commitment_tx BLOB;
