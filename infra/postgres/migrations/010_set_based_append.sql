-- append_events (001_event_store.sql), rewritten to cost linear time in the events of a call.
--
-- The 001 version grew with the square of a request's events: its insert numbered the events
-- with a window sorted on (request, event), and that sort carried each event's whole request
-- document (every event of the stream) along with it, so 2,000 events to one stream sorted
-- 2,000 copies of a 450 kB document (900 MB spilled to disk, 2.3 s under the store-wide lock).
-- Measured before/after in docs/benchmarks.md.
--
-- Now the input is walked once, into columns (one array per field); every later statement reads
-- those arrays through unnest, so no row ever carries more than its own event. Positions are a
-- per-request offset plus the event's ordinal: no window over the events. Stored ids and streams
-- are looked up with = ANY of the call's array (one index scan each, as readMarkers does).
--
-- Same signature, input, result rows, error codes and lock as 001 (see its comments, which still
-- describe the contract); append_events_marked (005) and appendExclusively call it unchanged.
CREATE OR REPLACE FUNCTION append_events(p_requests jsonb, p_notify_channel text)
RETURNS TABLE (request_index integer, last_revision bigint, last_position bigint, idempotent boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_column
DECLARE
  -- One entry per request, in request order.
  v_req_index integer[];
  v_req_stream text[];
  v_req_expected text[];
  v_req_events integer[];
  -- One entry per event: its request, its 1-based ordinal in the request, and its fields.
  v_ev_req integer[];
  v_ev_ord bigint[];
  v_ev_id uuid[];
  v_ev_type text[];
  v_ev_data jsonb[];
  v_ev_metadata jsonb[];
  v_conflicts jsonb;
  v_foreign jsonb;
  v_write integer[];
  v_idempotent integer[];
  v_count bigint;
  v_first bigint;
  v_now timestamptz;
BEGIN
  -- Each statement below must see the appends committed before the lock was granted, which
  -- holds only when every statement takes a fresh snapshot.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION USING ERRCODE = 'TY003',
      MESSAGE = 'append_events must run at READ COMMITTED, not ' || current_setting('transaction_isolation');
  END IF;

  -- The one walk over the input. A request without events still yields its one request row
  -- (LEFT JOIN ... ON true), as 001 answered it. Aggregates carry their own keys (request
  -- index, ordinal), so nothing below depends on the order array_agg happened to see.
  SELECT
    array_agg((r.ord - 1)::integer) FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg(r.value->>'streamId') FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg(r.value->>'expectedRevision') FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg(coalesce(jsonb_array_length(r.value->'events'), 0)) FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg((r.ord - 1)::integer) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.ord) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.id) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.type) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.data) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(coalesce(e.metadata, '{}'::jsonb)) FILTER (WHERE e.ord IS NOT NULL)
  INTO v_req_index, v_req_stream, v_req_expected, v_req_events,
       v_ev_req, v_ev_ord, v_ev_id, v_ev_type, v_ev_data, v_ev_metadata
  FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord)
  LEFT JOIN LATERAL ROWS FROM (jsonb_to_recordset(r.value->'events') AS (id uuid, type text, data jsonb, metadata jsonb))
    WITH ORDINALITY AS e(id, type, data, metadata, ord) ON true;

  IF v_req_index IS NULL THEN
    RETURN;
  END IF;

  IF (SELECT count(DISTINCT s) <> count(*) FROM unnest(v_req_stream) AS s) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a stream appears in more than one append request';
  END IF;

  -- Writers are serialised so that commit order equals position order; see 001_event_store.sql
  -- for why (a subscriber must never skip an event) and why the key is this schema's table.
  PERFORM pg_advisory_xact_lock(1952541797, 'events'::regclass::oid::integer);
  v_now := clock_timestamp();

  -- Every id and every expected revision checked once, in one statement: foreign ids,
  -- idempotent repeat, revision conflict, or to be written.
  WITH req AS (
    SELECT * FROM unnest(v_req_index, v_req_stream, v_req_expected, v_req_events)
      AS q(request_index, stream_id, expected, n_events)
  ), ev AS (
    SELECT * FROM unnest(v_ev_req, v_ev_id) AS e(request_index, event_id)
  ), known AS (
    -- Streams as events: one index scan for the array (a join on the unnest can be planned as
    -- a hash of the whole table once the call is large).
    SELECT s.stream_id, s.last_revision FROM streams AS s WHERE s.stream_id = ANY (v_req_stream)
  ), found AS (
    -- One index scan for the whole array of ids (= ANY of an array, not a join on the unnest).
    SELECT x.event_id, x.stream_id FROM events AS x WHERE x.event_id = ANY (v_ev_id)
  ), stored AS (
    SELECT ev.request_index,
           count(*) FILTER (WHERE f.stream_id = req.stream_id) AS n_same,
           jsonb_agg(f.event_id) FILTER (WHERE f.stream_id <> req.stream_id) AS foreign_ids
    FROM found AS f
    JOIN ev ON ev.event_id = f.event_id
    JOIN req ON req.request_index = ev.request_index
    GROUP BY ev.request_index
  ), checked AS (
    SELECT req.request_index, req.stream_id, req.expected, req.n_events, s.last_revision, stored.foreign_ids,
           CASE
             WHEN stored.foreign_ids IS NOT NULL THEN 'foreign'
             WHEN coalesce(stored.n_same, 0) = req.n_events THEN 'idempotent'
             -- Some ids stored, some not: the caller's view of the stream is stale.
             WHEN stored.n_same > 0 THEN 'conflict'
             WHEN CASE req.expected
                    WHEN 'any' THEN true
                    WHEN 'no_stream' THEN s.last_revision IS NULL
                    WHEN 'stream_exists' THEN s.last_revision IS NOT NULL
                    ELSE s.last_revision IS NOT NULL AND s.last_revision = req.expected::bigint
                  END THEN 'write'
             ELSE 'conflict'
           END AS outcome
    FROM req
    LEFT JOIN known AS s ON s.stream_id = req.stream_id
    LEFT JOIN stored ON stored.request_index = req.request_index
  )
  SELECT
    coalesce(jsonb_agg(jsonb_build_object('streamId', c.stream_id, 'eventIds', c.foreign_ids) ORDER BY c.request_index)
      FILTER (WHERE c.outcome = 'foreign'), '[]'),
    coalesce(jsonb_agg(jsonb_build_object('streamId', c.stream_id, 'expected', c.expected,
                                          'actual', coalesce(c.last_revision::text, 'no_stream')) ORDER BY c.request_index)
      FILTER (WHERE c.outcome = 'conflict'), '[]'),
    coalesce(array_agg(c.request_index ORDER BY c.request_index) FILTER (WHERE c.outcome = 'write'), '{}'),
    coalesce(array_agg(c.request_index) FILTER (WHERE c.outcome = 'idempotent'), '{}'),
    coalesce(sum(c.n_events) FILTER (WHERE c.outcome = 'write'), 0)
  INTO v_foreign, v_conflicts, v_write, v_idempotent, v_count
  FROM checked AS c;

  IF jsonb_array_length(v_foreign) > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TY002', DETAIL = v_foreign::text,
      MESSAGE = 'event ids already stored in another stream';
  END IF;
  IF jsonb_array_length(v_conflicts) > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TY001', DETAIL = v_conflicts::text,
      MESSAGE = 'wrong expected revision';
  END IF;

  IF v_count > 0 THEN
    -- The lock makes this block of positions contiguous: nobody else draws from the sequence.
    v_first := nextval('events_position_seq');
    IF v_count > 1 THEN
      PERFORM setval('events_position_seq', v_first + v_count - 1);
    END IF;

    -- Per written request: where its block of positions starts (requests in order, each
    -- contiguous, so positions follow request order then event order as in 001) and the
    -- revision its first event takes: a window over the requests, not the events.
    WITH known AS (
      SELECT s.stream_id, s.last_revision FROM streams AS s WHERE s.stream_id = ANY (v_req_stream)
    ), written AS (
      SELECT q.request_index, q.stream_id, q.n_events,
             coalesce(s.last_revision, -1) AS base_revision,
             v_first + coalesce(sum(q.n_events) OVER (ORDER BY q.request_index
                                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS base_position
      FROM unnest(v_req_index, v_req_stream, v_req_events) AS q(request_index, stream_id, n_events)
      JOIN unnest(v_write) AS w(request_index) ON w.request_index = q.request_index
      LEFT JOIN known AS s ON s.stream_id = q.stream_id
    ), inserted AS (
      -- The unique indexes stay the last word on ids and (stream, revision).
      INSERT INTO events (position, event_id, stream_id, revision, type, data, metadata, recorded_at)
      SELECT w.base_position + e.ord - 1, e.event_id, w.stream_id, w.base_revision + e.ord, e.type, e.data, e.metadata, v_now
      FROM unnest(v_ev_req, v_ev_ord, v_ev_id, v_ev_type, v_ev_data, v_ev_metadata)
        AS e(request_index, ord, event_id, type, data, metadata)
      JOIN written AS w ON w.request_index = e.request_index
    )
    -- A data-modifying CTE runs to completion whether or not it is read; the streams rows are
    -- computed per request, so the events are not read back.
    INSERT INTO streams AS s (stream_id, last_revision, last_position)
    SELECT w.stream_id, w.base_revision + w.n_events, w.base_position + w.n_events - 1 FROM written AS w
    ON CONFLICT (stream_id) DO UPDATE SET last_revision = excluded.last_revision, last_position = excluded.last_position;

    IF p_notify_channel IS NOT NULL THEN
      -- Delivered at commit; listeners re-read from their checkpoint, so the payload is a hint.
      PERFORM pg_notify(p_notify_channel, (v_first + v_count - 1)::text);
    END IF;
  END IF;

  RETURN QUERY
    SELECT q.request_index, s.last_revision, s.last_position, i.request_index IS NOT NULL
    FROM unnest(v_req_index, v_req_stream) AS q(request_index, stream_id)
    JOIN (SELECT * FROM streams WHERE stream_id = ANY (v_req_stream)) AS s ON s.stream_id = q.stream_id
    LEFT JOIN unnest(v_idempotent) AS i(request_index) ON i.request_index = q.request_index
    ORDER BY q.request_index;
END;
$fn$;
