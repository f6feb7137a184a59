-- Invoices still open (unpaid): the only ones the daemon loads at start. A paid invoice
-- (keysend receipts included) is read from here for `listinvoices`, and when an incoming
-- HTLC carries its payment hash (a repeat is refused).
ALTER TABLE invoices ADD COLUMN is_open INTEGER NOT NULL DEFAULT 1;
UPDATE invoices SET is_open = (json_extract(data, '$.info.status') = 'unpaid');
CREATE INDEX invoices_open ON invoices (seq) WHERE is_open = 1;
