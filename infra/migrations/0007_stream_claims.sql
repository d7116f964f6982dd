-- Claims (EventStore::append_claimed): a name that points, forever, to the stream the append
-- that recorded it wrote. `SubmitOrder` records its request here, so a retry finds the order
-- number its first attempt drew. A claim commits with its append, under the head lock of its
-- shard, like the append's own events; it is bookkeeping, not an event: nothing relays it.
-- Before this table a claim was an event of its own stream (`order_claim-…`), which every bus
-- consumer received and skipped: one event in three of a flash sale.
CREATE TABLE stream_claims (
    claim_key  text     NOT NULL,
    shard      smallint NOT NULL CHECK (shard BETWEEN 0 AND 31),
    stream_id  text     NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, claim_key)
);

-- The claims written before as events move here, so a request accepted before this migration
-- and retried after it still gets its first number: `order_claim-{sha256}.{shard}` (claim
-- and order in one commit) and the two-step submit's `request-{sha256}` (claim first; a claim
-- whose order never came is completed by the retry, which finds the claim and submits under
-- its number). The key is the request's command id, in the order's shard: the order number's
-- last two digits. The events stay where they are: the log is never rewritten.
INSERT INTO stream_claims (claim_key, shard, stream_id, claimed_at)
SELECT DISTINCT ON (right(payload->>'order_no', 2), command_id)
       command_id,
       right(payload->>'order_no', 2)::smallint,
       'order-' || (payload->>'order_no'),
       recorded_at
FROM events
WHERE event_type = 'SubmitOrderClaimed'
  AND (stream_id LIKE 'order\_claim-%' OR stream_id LIKE 'request-%')
  AND payload->>'order_no' ~ '[0-9]{2}$'
  AND right(payload->>'order_no', 2)::int BETWEEN 0 AND 31
ORDER BY right(payload->>'order_no', 2), command_id, shard, position;
