-- Append markers (services/event-store, `appendMany(requests, { markers })`): the record that an
-- input was consumed, written in the same transaction as the events it caused, and kept for ever.
-- The metering consumer marks every usage event it meters, whatever it charged (one balance,
-- several, or nothing at all: no balance, no matching rule, zero cost), so a later delivery of the
-- same usage event changes nothing, however the catalog and the balances changed meanwhile.
--
-- One row per usage event for ever, so it is kept small: the first 16 bytes of the SHA-256 of
-- the marker (UTF-8), not the marker itself. 2^64 markers would be needed before two collide
-- with even odds.
CREATE TABLE append_markers (
  marker_hash bytea PRIMARY KEY,
  CONSTRAINT append_markers_hash_length_check CHECK (octet_length(marker_hash) = 16)
);

-- append_events with markers: all or nothing. Fails with TY004 (DETAIL: JSON array of the hex
-- hashes) when a marker is already recorded, writing nothing: another writer consumed that input
-- first, and the caller re-reads the markers and decides again.
--
-- The markers are inserted before append_events takes its lock, so that appends of other
-- partitions are not held behind this index work (the lock serialises every append). The primary
-- key decides between writers racing for one marker: the second waits for the first to end, and
-- then finds the marker recorded (or, if the first rolled back, records it). A writer only ever
-- waits on another's marker rows before it holds the lock, so the lock cannot be part of a wait
-- cycle; two writers each holding a marker the other wants are a deadlock PostgreSQL breaks
-- (40P01, which callers retry as transient).
CREATE FUNCTION append_events_marked(p_requests jsonb, p_markers bytea[], p_notify_channel text)
RETURNS TABLE (request_index integer, last_revision bigint, last_position bigint, idempotent boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
  v_recorded jsonb;
BEGIN
  WITH wanted AS (
    SELECT DISTINCT h FROM unnest(p_markers) AS h
  ), inserted AS (
    INSERT INTO append_markers (marker_hash) SELECT w.h FROM wanted AS w
    ON CONFLICT (marker_hash) DO NOTHING
    RETURNING marker_hash
  )
  SELECT jsonb_agg(encode(w.h, 'hex'))
  INTO v_recorded
  FROM wanted AS w
  WHERE NOT EXISTS (SELECT 1 FROM inserted AS i WHERE i.marker_hash = w.h);
  IF v_recorded IS NOT NULL THEN
    -- Raising rolls back the markers this call did insert.
    RAISE EXCEPTION USING ERRCODE = 'TY004', DETAIL = v_recorded::text,
      MESSAGE = 'append markers already recorded';
  END IF;

  RETURN QUERY SELECT * FROM append_events(p_requests, p_notify_channel);
END;
$fn$;

-- Usage metered before this migration keeps its exactly-once: its marker is derived here from the
-- CreditConsumed events already stored, exactly as @tally/ledger's meteredUsageMarker does (the
-- customer id and the usage id, each with % and : percent-escaped, joined by :). Usage that
-- charged nothing left no event and so gets no marker: nothing records that it was seen.
INSERT INTO append_markers (marker_hash)
SELECT DISTINCT substring(
         sha256(convert_to(
           replace(replace(metadata->>'customerId', '%', '%25'), ':', '%3A')
             || ':' || replace(replace(data->'usage'->>'eventId', '%', '%25'), ':', '%3A'),
           'UTF8'))
         FROM 1 FOR 16)
FROM events
WHERE type = 'CreditConsumed'
  AND data->'usage'->>'eventId' IS NOT NULL
  AND metadata->>'customerId' IS NOT NULL
ON CONFLICT DO NOTHING;
