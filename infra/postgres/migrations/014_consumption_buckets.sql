-- Consumption per balance, hour and usage event name: what the console's and the portal's
-- charts show (GET /v1/credit-balances/{id}/consumption). A projection of the CreditConsumed
-- events kept by the 'consumption-projection' processor (@tally/ledger consumptionProjector) from
-- the event store's subscription, whichever store holds the events, and never by reading streams
-- per request. Its checkpoint is the row of that name in subscription_checkpoints, moved in the
-- same transaction as the buckets; with no row the processor starts from position 0, so the
-- table needs no backfill here.
--
-- (This file first created a trigger on `events` instead; migration 019 removes it from the
-- databases that applied that version.)

CREATE TABLE consumption_buckets (
  balance_id    text NOT NULL,
  -- The start of the hour (UTC) the consumption occurred in (the event's occurredAt).
  bucket_start  timestamptz NOT NULL,
  -- The usage event's name; '' for credits retained by hand (a manual deduction has no usage event).
  event         text NOT NULL,
  -- Exact integer micro-credits, as everywhere in Tally. numeric, not bigint: an amount may have 16
  -- integer digits of credits, 22 digits of micro-credits, and a sum of them more, beyond bigint.
  micro_credits numeric NOT NULL,
  entries       bigint NOT NULL,
  PRIMARY KEY (balance_id, bucket_start, event)
);
