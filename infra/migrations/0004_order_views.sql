-- The order views of the read side (projections/src/orders). Each row holds the whole order
-- view as a JSON document (`doc`, the serde form of `OrderView`) plus the columns queries
-- filter and sort on. `version` is the last stream version folded in: the fold skips an event
-- at or below it. Checkpoints are rows of `checkpoints` named `projection:{view}`, moved in
-- the same transaction as the rows.

-- order_detail: by order number; full-text search over order number, dish names and address
-- ('simple' configuration: no stemming, the text is not English), merchant names joined in.
CREATE TABLE order_detail (
    order_no    text        PRIMARY KEY,
    buyer_id    bigint      NOT NULL,
    merchant_id bigint      NOT NULL,
    status      text        NOT NULL,
    created_ms  bigint      NOT NULL,
    updated_ms  bigint      NOT NULL,
    version     bigint      NOT NULL,
    doc         jsonb       NOT NULL,
    search      tsvector    NOT NULL
);
CREATE INDEX order_detail_search ON order_detail USING gin (search);
CREATE INDEX order_detail_newest ON order_detail (created_ms DESC, order_no DESC);
CREATE INDEX order_detail_merchant ON order_detail (merchant_id);

CREATE TABLE order_detail_merchants (
    merchant_id bigint   PRIMARY KEY,
    name        text     NOT NULL,
    search      tsvector NOT NULL
);
CREATE INDEX order_detail_merchants_search ON order_detail_merchants USING gin (search);

-- buyer_order / seller_order: one row per order under its owner (buyer id / merchant id),
-- listed newest first. Partitioned by `part` = owner id % 32 (computed by the projection:
-- PostgreSQL cannot partition on a generated column), so a list query touches one partition
-- and a partition can later move to its own database like the event store's shards. For
-- buyer_order, part is also the order's event-store shard (order numbers end with
-- buyer_id % 32), so one projector shard task writes one partition.
CREATE TABLE buyer_order (
    part        smallint NOT NULL CHECK (part >= 0 AND part < 32),
    owner_id    bigint   NOT NULL,
    order_no    text     NOT NULL,
    status      text     NOT NULL,
    created_ms  bigint   NOT NULL,
    version     bigint   NOT NULL,
    doc         jsonb    NOT NULL,
    PRIMARY KEY (part, owner_id, order_no)
) PARTITION BY LIST (part);
CREATE INDEX buyer_order_newest ON buyer_order (part, owner_id, created_ms DESC, order_no DESC);
CREATE INDEX buyer_order_no ON buyer_order (order_no);

CREATE TABLE seller_order (
    part        smallint NOT NULL CHECK (part >= 0 AND part < 32),
    owner_id    bigint   NOT NULL,
    order_no    text     NOT NULL,
    status      text     NOT NULL,
    created_ms  bigint   NOT NULL,
    version     bigint   NOT NULL,
    doc         jsonb    NOT NULL,
    PRIMARY KEY (part, owner_id, order_no)
) PARTITION BY LIST (part);
CREATE INDEX seller_order_newest ON seller_order (part, owner_id, created_ms DESC, order_no DESC);
CREATE INDEX seller_order_no ON seller_order (order_no);

DO $$
BEGIN
    FOR i IN 0..31 LOOP
        EXECUTE format('CREATE TABLE buyer_order_%s PARTITION OF buyer_order FOR VALUES IN (%s)',
                       lpad(i::text, 2, '0'), i);
        EXECUTE format('CREATE TABLE seller_order_%s PARTITION OF seller_order FOR VALUES IN (%s)',
                       lpad(i::text, 2, '0'), i);
    END LOOP;
END $$;
