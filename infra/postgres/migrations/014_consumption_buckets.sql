-- Consumption per balance, hour and usage event name: what the console's and the portal's
-- charts show (GET /v1/credit-balances/{id}/consumption). A projection of the CreditConsumed
-- events, kept by the event store itself: the trigger runs in the statement that inserts the
-- events, so a bucket moves exactly when its events are committed, once per event (an event id
-- is stored once, and an idempotent repeat of an append inserts nothing), and never by reading
-- streams per request. Dropping the table and running this file again rebuilds it from `events`.

CREATE TABLE consumption_buckets (
  balance_id    text NOT NULL,
  -- The start of the hour (UTC) the consumption occurred in (the event's occurredAt).
  bucket_start  timestamptz NOT NULL,
  -- The usage event's name; '' for credits retained by hand (a manual deduction has no usage event).
  event         text NOT NULL,
  -- Exact integer micro-credits, as everywhere in Tally. numeric, not bigint: an amount may have 16
  -- integer digits of credits, 22 digits of micro-credits, beyond bigint; a sum must never fail
  -- the append it is part of.
  micro_credits numeric NOT NULL,
  entries       bigint NOT NULL,
  PRIMARY KEY (balance_id, bucket_start, event)
);

-- The rows of one statement's CreditConsumed events, summed per bucket. Amounts are decimal
-- strings with at most 6 fractional digits, so × 10^6 as numeric is an exact integer.
CREATE FUNCTION consumption_of_events() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
  INSERT INTO consumption_buckets AS b (balance_id, bucket_start, event, micro_credits, entries)
  SELECT n.metadata->>'balanceId',
         date_trunc('hour', (n.data->>'occurredAt')::timestamptz, 'UTC'),
         coalesce(n.data->'usage'->>'event', ''),
         sum((n.data->>'credits')::numeric * 1000000),
         count(*)
  FROM inserted n
  WHERE n.type = 'CreditConsumed'
  GROUP BY 1, 2, 3
  -- One order for every writer: two statements never wait on each other's rows crosswise.
  ORDER BY 1, 2, 3
  ON CONFLICT (balance_id, bucket_start, event) DO UPDATE
    SET micro_credits = b.micro_credits + excluded.micro_credits, entries = b.entries + excluded.entries;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER events_consumption_buckets
AFTER INSERT ON events
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION consumption_of_events();

-- What was consumed before this migration.
INSERT INTO consumption_buckets (balance_id, bucket_start, event, micro_credits, entries)
SELECT e.metadata->>'balanceId',
       date_trunc('hour', (e.data->>'occurredAt')::timestamptz, 'UTC'),
       coalesce(e.data->'usage'->>'event', ''),
       sum((e.data->>'credits')::numeric * 1000000),
       count(*)
FROM events e
WHERE e.type = 'CreditConsumed'
GROUP BY 1, 2, 3;
