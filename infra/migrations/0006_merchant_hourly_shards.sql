-- merchant_hourly without a hot row: one partial row per (merchant, hour, shard) instead of
-- one per (merchant, hour). A merchant's orders live on every shard, so with one row per hour
-- every shard's projector transaction upserted the same row and queued on its lock until the
-- one ahead committed (the flash sale: 32 shards, one merchant, one hour). Now each shard
-- writes only its own partial and readers sum the partials of an hour.
--
-- Existing rows are whole-hour totals; they become shard 0's partials. Shard 0's later
-- increments add to them and the other shards' go to rows of their own, so every sum stays
-- what it was. (A rebuild writes the partials per shard from the start.)
ALTER TABLE merchant_hourly ADD COLUMN shard smallint NOT NULL DEFAULT 0
    CHECK (shard >= 0 AND shard < 32);
ALTER TABLE merchant_hourly ALTER COLUMN shard DROP DEFAULT;
ALTER TABLE merchant_hourly DROP CONSTRAINT merchant_hourly_pkey;
ALTER TABLE merchant_hourly ADD PRIMARY KEY (merchant_id, hour_ms, shard);
