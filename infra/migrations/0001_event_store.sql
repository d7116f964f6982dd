-- Filled in by the event store work.
SELECT 1;
