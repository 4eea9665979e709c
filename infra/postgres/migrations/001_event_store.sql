-- The event store (services/event-store): an append-only log in which every event belongs to
-- one stream, at a 0-based revision within it, and sits at one global position ($all).
-- Every name here is unqualified: migrate() runs this with search_path set to the target schema.

-- Positions start at 1, so 0 can mean "before the first event" (a subscription's start, the
-- head of an empty store). Rolled-back appends leave gaps; readers never rely on density.
CREATE SEQUENCE events_position_seq AS bigint START WITH 1;

CREATE TABLE events (
  position bigint PRIMARY KEY,
  event_id uuid NOT NULL,
  stream_id text NOT NULL,
  revision bigint NOT NULL,
  type text NOT NULL,
  data jsonb NOT NULL,
  metadata jsonb NOT NULL,
  recorded_at timestamptz NOT NULL,
  -- An event id is stored once in the whole store: re-appending it is idempotent.
  CONSTRAINT events_event_id_key UNIQUE (event_id),
  -- Also the index that reads a stream in either direction.
  CONSTRAINT events_stream_revision_key UNIQUE (stream_id, revision),
  CONSTRAINT events_revision_check CHECK (revision >= 0),
  CONSTRAINT events_position_check CHECK (position > 0)
);

ALTER SEQUENCE events_position_seq OWNED BY events.position;

-- One row per stream with its last event, so an append checks the expected revision with one
-- key lookup. Maintained only by append_events, in the same statement as the insert.
CREATE TABLE streams (
  stream_id text PRIMARY KEY,
  last_revision bigint NOT NULL,
  last_position bigint NOT NULL
);

-- Appends to many streams in one call: one statement, one transaction, all or nothing.
--
-- p_requests: [{ "streamId": text, "expectedRevision": "any" | "no_stream" | "stream_exists" | "<n>",
--                "events": [{ "id": uuid, "type": text, "data": {...}, "metadata": {...} }] }]
-- Returns one row per request, in request order: the stream's last revision and position after
-- the call, and whether the request was an idempotent repeat (every event id already stored in
-- that stream; nothing written, no revision check, as EventStoreDB does).
--
-- Errors (SQLSTATE, DETAIL is JSON):
--   TY001 wrong expected revision: [{ streamId, expected, actual }] (actual: "<n>" | "no_stream").
--         Also raised when only some of a request's event ids are stored: the caller's view of
--         the stream is stale.
--   TY002 event id stored in another stream: [{ streamId, eventIds }].
--   TY003 not called at READ COMMITTED (see the lock below).
--   22023 a stream named by two requests.
CREATE FUNCTION append_events(p_requests jsonb, p_notify_channel text)
RETURNS TABLE (request_index integer, last_revision bigint, last_position bigint, idempotent boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_column
DECLARE
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

  IF (SELECT count(DISTINCT r->>'streamId') <> count(*) FROM jsonb_array_elements(p_requests) AS r) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a stream appears in more than one append request';
  END IF;

  -- Writers are serialised so that commit order equals position order. Positions come from a
  -- sequence; with concurrent writers, a transaction that took position 10 could commit after
  -- one that took 11, and a subscriber that had already read 11 would move its checkpoint past
  -- 10 and never see it. Holding this lock from before positions are allocated until commit
  -- (transaction-scoped: PostgreSQL releases it after the commit is visible) means that when
  -- any reader sees position n, every committed position below n is visible too, so the one
  -- bigint position is a safe checkpoint everywhere (API, projections, cursors). The cost is
  -- one append transaction at a time per store; batching (many streams per call) is how
  -- throughput scales. The key is this schema's events table, so stores in other schemas of
  -- the database (tests) do not wait for each other.
  PERFORM pg_advisory_xact_lock(1952541797, 'events'::regclass::oid::integer);
  v_now := clock_timestamp();

  -- Classify every request in one set-based pass: foreign ids, idempotent repeat, revision
  -- conflict, or to be written.
  WITH req AS (
    SELECT (r.ord - 1)::integer AS request_index,
           r.value->>'streamId' AS stream_id,
           r.value->>'expectedRevision' AS expected,
           jsonb_array_length(r.value->'events') AS n_events
    FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord)
  ), stored AS (
    -- One join for all the call's event ids, not one lookup per request.
    SELECT (r.ord - 1)::integer AS request_index,
           count(*) FILTER (WHERE x.stream_id = r.value->>'streamId') AS n_same,
           jsonb_agg(x.event_id) FILTER (WHERE x.stream_id <> r.value->>'streamId') AS foreign_ids
    FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord)
    CROSS JOIN LATERAL jsonb_array_elements(r.value->'events') AS e(value)
    JOIN events AS x ON x.event_id = (e.value->>'id')::uuid
    GROUP BY r.ord
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
    LEFT JOIN streams AS s ON s.stream_id = req.stream_id
    LEFT JOIN stored ON stored.request_index = req.request_index
  )
  SELECT
    coalesce(jsonb_agg(jsonb_build_object('streamId', c.stream_id, 'eventIds', c.foreign_ids) ORDER BY c.request_index)
      FILTER (WHERE c.outcome = 'foreign'), '[]'),
    coalesce(jsonb_agg(jsonb_build_object('streamId', c.stream_id, 'expected', c.expected,
                                          'actual', coalesce(c.last_revision::text, 'no_stream')) ORDER BY c.request_index)
      FILTER (WHERE c.outcome = 'conflict'), '[]'),
    coalesce(array_agg(c.request_index) FILTER (WHERE c.outcome = 'write'), '{}'),
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

    WITH ev AS (
      SELECT r.value->>'streamId' AS stream_id, e.value AS event, r.ord AS request_ord, e.ord AS event_ord
      FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord)
      JOIN unnest(v_write) AS w(request_index) ON w.request_index = r.ord - 1
      CROSS JOIN LATERAL jsonb_array_elements(r.value->'events') WITH ORDINALITY AS e(value, ord)
    ), numbered AS (
      SELECT ev.stream_id, ev.event,
             v_first - 1 + row_number() OVER (ORDER BY ev.request_ord, ev.event_ord) AS position,
             coalesce(s.last_revision, -1) + ev.event_ord AS revision
      FROM ev
      LEFT JOIN streams AS s ON s.stream_id = ev.stream_id
    ), inserted AS (
      INSERT INTO events (position, event_id, stream_id, revision, type, data, metadata, recorded_at)
      SELECT n.position, (n.event->>'id')::uuid, n.stream_id, n.revision, n.event->>'type', n.event->'data',
             coalesce(n.event->'metadata', '{}'::jsonb), v_now
      FROM numbered AS n
      RETURNING events.stream_id, events.revision, events.position
    )
    INSERT INTO streams AS s (stream_id, last_revision, last_position)
    SELECT i.stream_id, max(i.revision), max(i.position) FROM inserted AS i GROUP BY i.stream_id
    ON CONFLICT (stream_id) DO UPDATE SET last_revision = excluded.last_revision, last_position = excluded.last_position;

    IF p_notify_channel IS NOT NULL THEN
      -- Delivered at commit; listeners re-read from their checkpoint, so the payload is a hint.
      PERFORM pg_notify(p_notify_channel, (v_first + v_count - 1)::text);
    END IF;
  END IF;

  RETURN QUERY
    SELECT (r.ord - 1)::integer, s.last_revision, s.last_position, (r.ord - 1)::integer = ANY (v_idempotent)
    FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord)
    JOIN streams AS s ON s.stream_id = r.value->>'streamId'
    ORDER BY r.ord;
END;
$fn$;
