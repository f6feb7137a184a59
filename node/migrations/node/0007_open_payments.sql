-- Payments still open (the outcome or one of their HTLCs unresolved): the only ones the
-- daemon loads at start. The manager keeps only those in memory; `listpayments` and the
-- "already paid" check read the others from here.
ALTER TABLE payments ADD COLUMN is_open INTEGER NOT NULL DEFAULT 1;
UPDATE payments SET is_open = (
    json_extract(data, '$.info.status') = 'pending'
    OR EXISTS (
        SELECT 1 FROM json_each(data, '$.parts')
        WHERE json_extract(value, '$.status') = 'pending'
    )
);
CREATE INDEX payments_open ON payments (seq) WHERE is_open = 1;
