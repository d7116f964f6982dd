-- Checkpoints of the relay and of the bus consumers: per name and per shard, the last
-- position handled. Written by infra/src/bus/checkpoint.rs; only ever moved forward there
-- (GREATEST), so a stale writer cannot rewind it.
CREATE TABLE checkpoints (
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    shard      smallint    NOT NULL CHECK (shard >= 0 AND shard < 32),
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, shard)
);
