-- The event store: one row per event, and one head row per logical shard.
-- See docs/event-store.md for why it is shaped like this.

CREATE TABLE events (
    shard          smallint    NOT NULL CHECK (shard BETWEEN 0 AND 31),
    -- Gap-free and in commit order within a shard: allocated from shard_heads under its row
    -- lock, which is held until commit.
    position       bigint      NOT NULL CHECK (position > 0),
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL CHECK (stream_version > 0),
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    event_version  smallint    NOT NULL CHECK (event_version > 0),
    payload        jsonb       NOT NULL,
    command_id     text        NOT NULL,
    -- Set on the first event of each append only: how many events that append wrote. With
    -- the partial unique index below it is the command-id idempotency record, forever.
    command_events integer     CHECK (command_events > 0),
    correlation_id text        NOT NULL,
    causation_id   text,
    actor_role     text        NOT NULL,
    actor_subject  text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, position),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE UNIQUE INDEX events_command_key
    ON events (stream_id, command_id)
    WHERE command_events IS NOT NULL;

-- The last position of each shard. Writers lock the rows of the shards they write
-- (SELECT … FOR UPDATE, in shard order) until commit.
CREATE TABLE shard_heads (
    shard    smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 31),
    position bigint   NOT NULL CHECK (position >= 0)
);

INSERT INTO shard_heads (shard, position)
SELECT s, 0 FROM generate_series(0, 31) AS s;
