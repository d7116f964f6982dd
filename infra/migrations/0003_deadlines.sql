-- Durable deadlines (command-service/src/deadlines, docs/deadlines.md): one row per window
-- of an order (payment, offer round, delivery, close) or per reservation, keyed by what it
-- is about, e.g. 'payment:{order_no}'. A row is open while closed_at IS NULL; closed rows
-- (fired, cancelled, parked) are kept so that a replayed event cannot schedule a deadline
-- that already fired. Old closed rows may be deleted: a deadline revived by a replay fires
-- a command the order refuses as moot.
CREATE TABLE deadlines (
    key            text        PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 300),
    kind           jsonb       NOT NULL,
    due_at         timestamptz NOT NULL,
    -- The event that opened the deadline: the fired command's correlation and causation.
    correlation_id text,
    causation_id   text,
    -- Failed firings (not counting refusals, which close it, or backend outages).
    attempts       integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error     text,
    scheduled_at   timestamptz NOT NULL DEFAULT now(),
    closed_at      timestamptz,
    outcome        text        CHECK (outcome IN ('fired', 'cancelled', 'parked')),
    CHECK ((closed_at IS NULL) = (outcome IS NULL))
);

-- The firer's query: open deadlines by due time. Partial, so fired rows cost nothing here.
CREATE INDEX deadlines_open_due ON deadlines (due_at, key) WHERE closed_at IS NULL;
