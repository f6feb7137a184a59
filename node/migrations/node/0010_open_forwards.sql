-- Forwards still open (no outcome yet): the only ones the daemon loads at start. Resolved
-- forwards are read from here for `listforwards`.
ALTER TABLE forwards ADD COLUMN is_open INTEGER NOT NULL DEFAULT 1;
UPDATE forwards SET is_open = (json_extract(data, '$.status') = 'pending');
CREATE INDEX forwards_open ON forwards (seq) WHERE is_open = 1;
