-- Height at which the channel's funding was spent: without it a closed channel showed
-- "closing" for ever after a restart.
ALTER TABLE channels ADD COLUMN closing_height INTEGER;
