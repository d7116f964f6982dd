-- The order views' documents as `json` (the text as the projection wrote it) instead of
-- `jsonb`. Nothing in SQL reads inside them: they are written whole and read whole. `jsonb`
-- made PostgreSQL parse every document on write and render it back to text on every read
-- (a list page renders 20), and stored it larger (about 970 bytes against 800 for the
-- text of a delivered order). `json` only checks the text on write and sends it as stored.
--
-- Rewrites the three tables and their indexes once, under an exclusive lock: queries and
-- projectors wait for it (not timed at scale). Existing documents keep their value; their
-- text becomes jsonb's rendering of it.
ALTER TABLE order_detail ALTER COLUMN doc TYPE json USING doc::json;
ALTER TABLE buyer_order ALTER COLUMN doc TYPE json USING doc::json;
ALTER TABLE seller_order ALTER COLUMN doc TYPE json USING doc::json;
