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

-- What a CreditConsumed event adds, read the same way by the trigger and by the backfill below.
-- An amount is a decimal string with at most 6 fractional digits, so × 10^6 as numeric is an
-- exact integer; an event whose amount is not one (none of Tally's) adds nothing rather than
-- failing the append it is part of. The hour is the event's occurredAt, or when it was recorded
-- for an event without a well-formed one.
CREATE FUNCTION consumed_micro_credits(p_data jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE
AS $fn$
  SELECT CASE WHEN p_data->>'credits' ~ '^[0-9]{1,16}(\.[0-9]{1,6})?$' THEN (p_data->>'credits')::numeric * 1000000 END
$fn$;

CREATE FUNCTION consumption_hour(p_data jsonb, p_recorded_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE
AS $fn$
  SELECT date_trunc('hour',
    CASE WHEN p_data->>'occurredAt' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$'
         THEN (p_data->>'occurredAt')::timestamptz ELSE p_recorded_at END,
    'UTC')
$fn$;

CREATE FUNCTION consumption_of_events() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
  INSERT INTO consumption_buckets AS b (balance_id, bucket_start, event, micro_credits, entries)
  SELECT n.metadata->>'balanceId', consumption_hour(n.data, n.recorded_at), coalesce(n.data->'usage'->>'event', ''),
         sum(consumed_micro_credits(n.data)), count(*)
  FROM inserted n
  WHERE n.type = 'CreditConsumed' AND consumed_micro_credits(n.data) IS NOT NULL AND n.metadata->>'balanceId' IS NOT NULL
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
SELECT e.metadata->>'balanceId', consumption_hour(e.data, e.recorded_at), coalesce(e.data->'usage'->>'event', ''),
       sum(consumed_micro_credits(e.data)), count(*)
FROM events e
WHERE e.type = 'CreditConsumed' AND consumed_micro_credits(e.data) IS NOT NULL AND e.metadata->>'balanceId' IS NOT NULL
GROUP BY 1, 2, 3;
