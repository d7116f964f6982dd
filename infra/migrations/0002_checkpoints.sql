-- Filled in by the bus/relay work: per-consumer, per-shard checkpoints.
SELECT 1;
