-- The catalog views of the read side. First the stock views (projections/src/stock): one
-- projection `stock_ledger` (checkpoint `projection:stock_ledger`) writing both of its tables
-- in one transaction per batch.

-- One row per sku: its listing and unit totals. The identity of seed 001's ledger is a
-- constraint, so no adapter bug can store a row that breaks it.
CREATE TABLE stock_ledger (
    sku_id      text    PRIMARY KEY,
    merchant_id bigint  NOT NULL,
    listed      boolean NOT NULL,
    added       bigint  NOT NULL,
    available   bigint  NOT NULL,
    reserved    bigint  NOT NULL,
    deducted    bigint  NOT NULL,
    released    bigint  NOT NULL,
    version     bigint  NOT NULL,
    doc         jsonb   NOT NULL,
    CHECK (added = available + reserved + deducted),
    CHECK (available >= 0 AND reserved >= 0 AND deducted >= 0 AND released >= 0)
);
-- A merchant's menu.
CREATE INDEX stock_ledger_merchant ON stock_ledger (merchant_id, sku_id);

-- What each order holds of each sku.
CREATE TABLE stock_reservation (
    sku_id      text   NOT NULL,
    order_no    text   NOT NULL,
    quantity    bigint NOT NULL CHECK (quantity > 0),
    state       text   NOT NULL CHECK (state IN ('RESERVED', 'DEDUCTED', 'RELEASED')),
    expires_ms  bigint NOT NULL,
    doc         jsonb  NOT NULL,
    PRIMARY KEY (sku_id, order_no)
);
-- ListReservations by sku and state, in order-number order.
CREATE INDEX stock_reservation_state ON stock_reservation (sku_id, state, order_no);

-- merchant_catalog: one row per merchant for browsing (projections/src/merchants). The point
-- is two plain columns under one B-tree: a nearby search scans the latitude band of its
-- search box and filters the longitude; exact distances are measured by the reader.
CREATE TABLE merchant_catalog (
    merchant_id bigint           PRIMARY KEY,
    lat         double precision NOT NULL,
    lng         double precision NOT NULL,
    open        boolean          NOT NULL,
    version     bigint           NOT NULL,
    doc         jsonb            NOT NULL
);
CREATE INDEX merchant_catalog_point ON merchant_catalog (lat, lng);

-- rider_geo: the command side's rider index as a read model (projections/src/riders), one
-- projection writing both tables. Riders: the point as two indexed columns, as for
-- merchants. Offers: one row per open offer to one rider, replaced per order on each round.
CREATE TABLE rider_geo (
    rider_id bigint           PRIMARY KEY,
    online   boolean          NOT NULL,
    lat      double precision NOT NULL,
    lng      double precision NOT NULL,
    version  bigint           NOT NULL,
    doc      jsonb            NOT NULL
);
CREATE INDEX rider_geo_point ON rider_geo (lat, lng) WHERE online;

CREATE TABLE rider_offer (
    order_no   text   NOT NULL,
    rider_id   bigint NOT NULL,
    offer_id   text   NOT NULL,
    expires_ms bigint NOT NULL,
    offered_ms bigint NOT NULL,
    doc        jsonb  NOT NULL,
    PRIMARY KEY (order_no, rider_id)
);
CREATE INDEX rider_offer_rider ON rider_offer (rider_id, offered_ms);

-- merchant_hourly: ops statistics per merchant per hour (projections/src/stats), no RPC:
-- analytics read this table or its row changes. Amounts in minor units. Each batch adds its
-- deltas as increments, in the transaction that moves the checkpoint.
CREATE TABLE merchant_hourly (
    merchant_id        bigint NOT NULL,
    hour_ms            bigint NOT NULL,
    orders             bigint NOT NULL,
    gmv_minor          bigint NOT NULL,
    cancellations      bigint NOT NULL,
    late_deliveries    bigint NOT NULL,
    compensation_minor bigint NOT NULL,
    PRIMARY KEY (merchant_id, hour_ms)
);

-- Each order's merchant: later order events do not name it.
CREATE TABLE merchant_hourly_orders (
    order_no    text   PRIMARY KEY,
    merchant_id bigint NOT NULL
);
