-- append_events and append_events_marked over the compact ledger of 017.
--
-- The contract is 001's (see its comments): same result rows, error codes (TY001 to TY004,
-- 22023), lock and position order, and 010's linear, set-based shape. What changes is the input:
-- the event store encodes payloads before the call (services/event-store/src/eventPayloadCodec.ts),
-- so an event is { "id": uuid, "shape": <index into p_shapes>, "body": text, "metadata": {...} },
-- and p_shapes holds the call's distinct shapes ([type, object shape], see 017). Shapes are
-- registered before the store's append lock is taken, like markers: it is index work that other
-- appends need not wait behind, and a shape row is harmless if the append then fails.
-- Metadata is still sent whole; the function stores what differs from the stream's header.
DROP FUNCTION append_events_marked(jsonb, bytea[], text);
DROP FUNCTION append_events(jsonb, text);

CREATE FUNCTION append_events(p_requests jsonb, p_shapes jsonb, p_notify_channel text)
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
  v_ev_shape integer[];
  v_ev_body text[];
  v_ev_metadata jsonb[];
  -- Per event, its metadata against its stream's header: the header keys it lacks (a bit mask)
  -- and the keys whose values differ (see 017).
  v_ev_absent integer[];
  v_ev_diff jsonb[];
  -- The number of each of p_shapes, by its 0-based index.
  v_shape_nos integer[];
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

  -- The one walk over the input (see 010).
  SELECT
    array_agg((r.ord - 1)::integer) FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg(r.value->>'streamId') FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg(r.value->>'expectedRevision') FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg(coalesce(jsonb_array_length(r.value->'events'), 0)) FILTER (WHERE e.ord IS NULL OR e.ord = 1),
    array_agg((r.ord - 1)::integer) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.ord) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.id) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.shape) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(e.body) FILTER (WHERE e.ord IS NOT NULL),
    array_agg(coalesce(e.metadata, '{}'::jsonb)) FILTER (WHERE e.ord IS NOT NULL)
  INTO v_req_index, v_req_stream, v_req_expected, v_req_events,
       v_ev_req, v_ev_ord, v_ev_id, v_ev_shape, v_ev_body, v_ev_metadata
  FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord)
  LEFT JOIN LATERAL ROWS FROM (jsonb_to_recordset(r.value->'events') AS (id uuid, shape integer, body text, metadata jsonb))
    WITH ORDINALITY AS e(id, shape, body, metadata, ord) ON true;

  IF v_req_index IS NULL THEN
    RETURN;
  END IF;

  IF (SELECT count(DISTINCT s) <> count(*) FROM unnest(v_req_stream) AS s) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a stream appears in more than one append request';
  END IF;

  SELECT coalesce(array_agg(es_shape_no(s.value) ORDER BY s.ord), '{}')
  INTO v_shape_nos
  FROM jsonb_array_elements(coalesce(p_shapes, '[]')) WITH ORDINALITY AS s(value, ord);
  IF EXISTS (SELECT 1 FROM unnest(v_ev_shape) AS i WHERE i IS NULL OR i < 0 OR i >= coalesce(array_length(v_shape_nos, 1), 0)) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'an event names no shape of the call';
  END IF;

  -- Writers are serialised so that commit order equals position order; see 001_event_store.sql
  -- for why (a subscriber must never skip an event) and why the key is this schema's `events`
  -- (a view since 017; the key only has to be the same for every writer of the schema).
  PERFORM pg_advisory_xact_lock(1952541797, 'events'::regclass::oid::integer);
  v_now := clock_timestamp();

  WITH req AS (
    SELECT * FROM unnest(v_req_index, v_req_stream, v_req_expected, v_req_events)
      AS q(request_index, stream_id, expected, n_events)
  ), ev AS (
    SELECT * FROM unnest(v_ev_req, v_ev_id) AS e(request_index, event_id)
  ), known AS (
    SELECT s.stream_id, s.stream_no, s.last_revision FROM streams AS s WHERE s.stream_id = ANY (v_req_stream)
  ), found AS (
    -- One index scan for the whole array of ids; streams compared by number.
    SELECT x.event_id, x.stream_no FROM event_log AS x WHERE x.event_id = ANY (v_ev_id)
  ), stored AS (
    SELECT ev.request_index,
           count(*) FILTER (WHERE f.stream_no = k.stream_no) AS n_same,
           jsonb_agg(f.event_id) FILTER (WHERE f.stream_no IS DISTINCT FROM k.stream_no) AS foreign_ids
    FROM found AS f
    JOIN ev ON ev.event_id = f.event_id
    JOIN req ON req.request_index = ev.request_index
    LEFT JOIN known AS k ON k.stream_id = req.stream_id
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

    -- Each event's metadata reduced against its stream's header: an existing stream's (a header
    -- never changes), or for a new one its first event's metadata (es_header's rule, the first
    -- 31 keys). In a statement of its own, over the arrays: the same sub-selects in the insert
    -- below, correlated with its joins, measured ten times slower (2 s for 2,000 streams).
    WITH firsts AS (
      SELECT e.request_index, e.metadata
      FROM unnest(v_ev_req, v_ev_ord, v_ev_metadata) AS e(request_index, ord, metadata)
      WHERE e.ord = 1
    ), headers AS (
      SELECT q.request_index,
             coalesce(s.header,
                      (SELECT coalesce(jsonb_object_agg(h.key, h.value), '{}')
                       FROM (SELECT j.key, j.value FROM jsonb_each(f.metadata) AS j LIMIT 31) AS h)) AS header
      FROM unnest(v_req_index, v_req_stream) AS q(request_index, stream_id)
      JOIN unnest(v_write) AS w(request_index) ON w.request_index = q.request_index
      JOIN firsts AS f ON f.request_index = q.request_index
      LEFT JOIN streams AS s ON s.stream_id = q.stream_id
    ), reduced AS (
      SELECT e.i,
             CASE WHEN e.metadata = h.header THEN NULL ELSE
               (SELECT nullif(coalesce(sum(1 << (k.ord - 1)::integer) FILTER (WHERE NOT e.metadata ? k.key), 0), 0)::integer
                FROM jsonb_object_keys(h.header) WITH ORDINALITY AS k(key, ord))
             END AS absent,
             CASE WHEN e.metadata = h.header THEN NULL ELSE
               (SELECT jsonb_object_agg(m.key, m.value) FROM jsonb_each(e.metadata) AS m WHERE h.header->m.key IS DISTINCT FROM m.value)
             END AS diff
      FROM unnest(v_ev_req, v_ev_metadata) WITH ORDINALITY AS e(request_index, metadata, i)
      JOIN headers AS h ON h.request_index = e.request_index
    )
    SELECT array_agg(r.absent ORDER BY r.i), array_agg(r.diff ORDER BY r.i)
    INTO v_ev_absent, v_ev_diff
    FROM reduced AS r;

    -- The streams rows first (a new stream needs its number before its events), computed per
    -- request from the state before the call, as 010 did; a new stream's header is its first
    -- event's metadata. Then the events, encoded against the header the upsert returned.
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
    ), firsts AS (
      SELECT e.request_index, e.metadata
      FROM unnest(v_ev_req, v_ev_ord, v_ev_metadata) AS e(request_index, ord, metadata)
      WHERE e.ord = 1
    ), upserted AS (
      -- A new stream's header: es_header's rule (the first 31 keys), written out here because a
      -- SQL function with a sub-select is not inlined and costs an executor start per row; so
      -- are the metadata reductions below (es_meta_absent, es_meta_diff), measured 4 to 7 times
      -- slower per append as calls.
      INSERT INTO streams AS s (stream_id, last_revision, last_position, header)
      SELECT w.stream_id, w.base_revision + w.n_events, w.base_position + w.n_events - 1,
             CASE WHEN w.base_revision >= 0 THEN '{}'::jsonb ELSE
               (SELECT coalesce(jsonb_object_agg(h.key, h.value), '{}') FROM (SELECT j.key, j.value FROM jsonb_each(f.metadata) AS j LIMIT 31) AS h)
             END
      FROM written AS w JOIN firsts AS f ON f.request_index = w.request_index
      ON CONFLICT (stream_id) DO UPDATE SET last_revision = excluded.last_revision, last_position = excluded.last_position
      RETURNING s.stream_id, s.stream_no
    )
    -- The unique indexes stay the last word on ids and (stream, revision).
    INSERT INTO event_log (position, event_id, revision, recorded_at, stream_no, shape_no, meta_absent, body, meta)
    SELECT w.base_position + e.ord - 1, e.event_id, w.base_revision + e.ord, v_now, u.stream_no, v_shape_nos[e.shape + 1],
           e.absent, e.body, e.diff
    FROM unnest(v_ev_req, v_ev_ord, v_ev_id, v_ev_shape, v_ev_body, v_ev_absent, v_ev_diff)
      AS e(request_index, ord, event_id, shape, body, absent, diff)
    JOIN written AS w ON w.request_index = e.request_index
    JOIN upserted AS u ON u.stream_id = w.stream_id;

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

-- 005's append_events_marked, passing the shapes on (see 005 for the markers' contract).
CREATE FUNCTION append_events_marked(p_requests jsonb, p_shapes jsonb, p_markers bytea[], p_notify_channel text)
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

  RETURN QUERY SELECT * FROM append_events(p_requests, p_shapes, p_notify_channel);
END;
$fn$;

-- 001's input ({ "id", "type", "data", "metadata" } per event) still accepted, encoded here with
-- 017's SQL encoding: for scripts and tests that call append_events directly. The event store
-- encodes in Node and calls the three-argument form.
CREATE FUNCTION append_events(p_requests jsonb, p_notify_channel text)
RETURNS TABLE (request_index integer, last_revision bigint, last_position bigint, idempotent boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
  v_shapes jsonb;
  v_requests jsonb;
BEGIN
  WITH packed AS MATERIALIZED (
    -- No column carries the request document: 2,000 copies of it made 010's predecessor quadratic.
    SELECT r.ord AS request_ord, e.ord AS event_ord, e.value AS event,
           jsonb_build_array(e.value->>'type', p.shape) AS shape, '[' || p.parts || ']' AS body
    FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord)
    CROSS JOIN LATERAL jsonb_array_elements(r.value->'events') WITH ORDINALITY AS e(value, ord)
    CROSS JOIN LATERAL es_pack(coalesce(e.value->'data', '{}')) AS p
  ), shapes AS (
    SELECT s.shape, (row_number() OVER (ORDER BY s.shape) - 1)::integer AS shape_index
    FROM (SELECT DISTINCT packed.shape FROM packed) AS s
  )
  SELECT
    (SELECT coalesce(jsonb_agg(s.shape ORDER BY s.shape_index), '[]') FROM shapes AS s),
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
              'streamId', r.value->'streamId', 'expectedRevision', r.value->'expectedRevision',
              'events', coalesce((SELECT jsonb_agg(jsonb_build_object('id', p.event->'id', 'shape', s.shape_index, 'body', p.body,
                                                                     'metadata', coalesce(p.event->'metadata', '{}'))
                                                  ORDER BY p.event_ord)
                                  FROM packed AS p JOIN shapes AS s ON s.shape = p.shape
                                  WHERE p.request_ord = r.ord), '[]')) ORDER BY r.ord), '[]')
     FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, ord))
  INTO v_shapes, v_requests;
  RETURN QUERY SELECT * FROM append_events(v_requests, v_shapes, p_notify_channel);
END;
$fn$;
