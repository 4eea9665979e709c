-- Append hands a stream's header back only where the caller will keep it (p_headers_wanted).
--
-- Why: 022 returns the header and its keys for every request it reduced itself, so that the
-- caller reduces that stream's next append in Node. A consumer over more streams than it keeps
-- headers for (100,000 customers, 200,000 balances, room for 20,000 headers) is handed about
-- 1,900 headers a 1,000-event call, which its cache's frequency admission then mostly drops:
-- built here, sent, parsed and thrown away (docs/benchmarks.md, 2026-12-03). The caller knows
-- before the call which it would keep, and says so per request.
--
-- The new argument is last and defaults to NULL, every header wanted (022's answer), so a
-- caller of the twelve arguments (a process from before 024, during a rolling upgrade) resolves
-- to this function and is answered as before. The old signature is dropped so that the name
-- names one function. The body is 023's, replaced whole (PostgreSQL has no way to patch one);
-- only the lines marked 024 are new.
DROP FUNCTION append_events(text[], text[], integer[], bigint[], uuid[], integer[], text, jsonb, integer[], jsonb, bytea[], text);

CREATE FUNCTION append_events(
  p_streams text[], p_expected text[], p_counts integer[], p_stream_nos bigint[],
  p_ids uuid[], p_shape_idx integer[], p_bodies text, p_metadata jsonb, p_absent integer[],
  p_shapes jsonb, p_markers bytea[], p_notify_channel text,
  -- 024: per request, whether its header is to be returned should this call reduce it; NULL: every one.
  p_headers_wanted boolean[] DEFAULT NULL)
RETURNS TABLE (request_index integer, last_revision bigint, last_position bigint, idempotent boolean,
               stream_no bigint, header_keys text[], header jsonb)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_column
DECLARE
  v_requests integer := coalesce(array_length(p_streams, 1), 0);
  v_events integer;
  v_bodies text[] := string_to_array(p_bodies, chr(31));
  v_recorded jsonb;
  v_shape_nos integer[];
  -- Each request's stream as found after the lock (NULL: no such stream yet).
  v_nos bigint[];
  v_last_revisions bigint[];
  v_last_positions bigint[];
  v_headers jsonb[];
  v_stale jsonb;
  v_misaligned boolean;
  -- Each event's request (0-based) and place in it (1-based).
  v_ev_req integer[];
  v_ev_ord integer[];
  v_metadata jsonb[];
  v_absent integer[];
  v_found_ids uuid[];
  v_found_nos bigint[];
  v_conflicts jsonb;
  v_foreign jsonb;
  v_write boolean[];
  v_idempotent boolean[];
  v_reduce boolean[];
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

  SELECT coalesce(sum(c), 0), coalesce(bool_or(c IS NULL OR c < 1), false) INTO v_events, v_misaligned
  FROM unnest(p_counts) AS c;
  IF v_misaligned
     OR coalesce(array_length(p_expected, 1), 0) <> v_requests OR coalesce(array_length(p_counts, 1), 0) <> v_requests
     OR coalesce(array_length(p_stream_nos, 1), 0) <> v_requests
     OR coalesce(array_length(p_ids, 1), 0) <> v_events OR coalesce(array_length(p_shape_idx, 1), 0) <> v_events
     OR coalesce(array_length(v_bodies, 1), 0) <> v_events OR coalesce(array_length(p_absent, 1), 0) <> v_events
     OR coalesce(jsonb_array_length(p_metadata), 0) <> v_events
     -- 024
     OR (p_headers_wanted IS NOT NULL AND coalesce(array_length(p_headers_wanted, 1), 0) <> v_requests) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'append_events: the columns do not line up, or a request has no events';
  END IF;
  IF (SELECT count(DISTINCT s) <> count(*) FROM unnest(p_streams) AS s) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a stream appears in more than one append request';
  END IF;

  -- Markers before the lock (see 005 for why, and for TY004).
  IF coalesce(cardinality(p_markers), 0) > 0 THEN
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
  END IF;
  IF v_requests = 0 THEN
    RETURN;
  END IF;

  -- Shapes before the lock too (see 018).
  SELECT coalesce(array_agg(es_shape_no(s.value) ORDER BY s.ord), '{}')
  INTO v_shape_nos
  FROM jsonb_array_elements(coalesce(p_shapes, '[]')) WITH ORDINALITY AS s(value, ord);
  IF EXISTS (SELECT 1 FROM unnest(p_shape_idx) AS i WHERE i IS NULL OR i < 0 OR i >= coalesce(array_length(v_shape_nos, 1), 0)) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'an event names no shape of the call';
  END IF;

  -- Writers are serialised so that commit order equals position order; see 001_event_store.sql
  -- for why (a subscriber must never skip an event) and why the key is this schema's `events`
  -- (a view since 017; the key only has to be the same for every writer of the schema).
  PERFORM pg_advisory_xact_lock(1952541797, 'events'::regclass::oid::integer);
  v_now := clock_timestamp();

  -- The one lookup of the call's streams: under the lock, so their revisions are current.
  SELECT array_agg(s.stream_no ORDER BY q.i), array_agg(s.last_revision ORDER BY q.i),
         -- Headers only where this call reduces: the others were reduced by the caller.
         array_agg(s.last_position ORDER BY q.i), array_agg(CASE WHEN q.assumed IS NULL THEN s.header END ORDER BY q.i),
         array_agg(q.assumed IS NULL ORDER BY q.i),
         jsonb_agg(q.i - 1 ORDER BY q.i) FILTER (WHERE q.assumed IS NOT NULL AND q.assumed IS DISTINCT FROM s.stream_no)
  INTO v_nos, v_last_revisions, v_last_positions, v_headers, v_reduce, v_stale
  FROM unnest(p_streams, p_stream_nos) WITH ORDINALITY AS q(stream_id, assumed, i)
  -- A stream the caller names by number is found by it (a bigint key, where a name is compared
  -- by collation), and must have the request's name: else it is no stream of the request.
  LEFT JOIN LATERAL (
    SELECT k.stream_no, k.last_revision, k.last_position, k.header FROM streams AS k
    WHERE q.assumed IS NOT NULL AND k.stream_no = q.assumed AND k.stream_id = q.stream_id
    UNION ALL
    SELECT k.stream_no, k.last_revision, k.last_position, k.header FROM streams AS k
    WHERE q.assumed IS NULL AND k.stream_id = q.stream_id
  ) AS s ON true;
  IF v_stale IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TY005', DETAIL = v_stale::text,
      MESSAGE = 'stream numbers that name no stream of the request: send its metadata unreduced';
  END IF;

  -- Each event's request and place in it, from the counts.
  SELECT array_agg((c.r - 1)::integer ORDER BY c.r, g.ord), array_agg(g.ord ORDER BY c.r, g.ord)
  INTO v_ev_req, v_ev_ord
  FROM unnest(p_counts) WITH ORDINALITY AS c(n, r)
  CROSS JOIN LATERAL generate_series(1, c.n) AS g(ord);

  -- Outcomes, per request: as 018 decided them. The ids already stored are one index scan for
  -- the whole array; none is the usual case, and then nothing is joined (the gate below keeps
  -- the join from even hashing the call's ids).
  SELECT array_agg(x.event_id), array_agg(x.stream_no) INTO v_found_ids, v_found_nos
  FROM event_log AS x WHERE x.event_id = ANY (p_ids);
  -- 023: with markers, an id already stored is an earlier run that recorded no marker (a writer
  -- from before 005): the caller has not seen it, and it fails here (TY006, DETAIL: the ids),
  -- writing nothing, for the caller to read it and decide again; never answered as idempotent
  -- beside the call's other writes.
  IF v_found_ids IS NOT NULL AND coalesce(cardinality(p_markers), 0) > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'TY006', DETAIL = to_jsonb(v_found_ids)::text,
      MESSAGE = 'events of a marked append are stored already, without their markers';
  END IF;
  WITH stored AS (
    SELECT e.r,
           count(*) FILTER (WHERE f.stream_no = v_nos[e.r + 1]) AS n_same,
           jsonb_agg(f.event_id) FILTER (WHERE f.stream_no IS DISTINCT FROM v_nos[e.r + 1]) AS foreign_ids
    FROM unnest(v_found_ids, v_found_nos) AS f(event_id, stream_no)
    JOIN unnest(p_ids, v_ev_req) AS e(event_id, r) ON e.event_id = f.event_id
    WHERE v_found_ids IS NOT NULL
    GROUP BY e.r
  ), checked AS (
    SELECT q.i - 1 AS r, q.stream_id, q.expected, q.n, v_last_revisions[q.i] AS last_revision, st.foreign_ids,
           CASE
             WHEN st.foreign_ids IS NOT NULL THEN 'foreign'
             WHEN coalesce(st.n_same, 0) = q.n THEN 'idempotent'
             -- Some ids stored, some not: the caller's view of the stream is stale.
             WHEN st.n_same > 0 THEN 'conflict'
             WHEN CASE q.expected
                    WHEN 'any' THEN true
                    WHEN 'no_stream' THEN v_last_revisions[q.i] IS NULL
                    WHEN 'stream_exists' THEN v_last_revisions[q.i] IS NOT NULL
                    ELSE v_last_revisions[q.i] IS NOT NULL AND v_last_revisions[q.i] = q.expected::bigint
                  END THEN 'write'
             ELSE 'conflict'
           END AS outcome
    FROM unnest(p_streams, p_expected, p_counts) WITH ORDINALITY AS q(stream_id, expected, n, i)
    LEFT JOIN stored AS st ON st.r = q.i - 1
  )
  SELECT
    coalesce(jsonb_agg(jsonb_build_object('streamId', c.stream_id, 'eventIds', c.foreign_ids) ORDER BY c.r)
      FILTER (WHERE c.outcome = 'foreign'), '[]'),
    coalesce(jsonb_agg(jsonb_build_object('streamId', c.stream_id, 'expected', c.expected,
                                          'actual', coalesce(c.last_revision::text, 'no_stream')) ORDER BY c.r)
      FILTER (WHERE c.outcome = 'conflict'), '[]'),
    array_agg(c.outcome = 'write' ORDER BY c.r),
    array_agg(c.outcome = 'idempotent' ORDER BY c.r),
    coalesce(sum(c.n) FILTER (WHERE c.outcome = 'write'), 0)
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

  -- A new stream's header is its first event's metadata (es_header's rule: the first 31 keys in
  -- jsonb's order), written out here as in 018 (a SQL function with a sub-select is not inlined).
  -- A new stream's request is never a reduced one: its number would have named no stream.
  IF EXISTS (SELECT 1 FROM unnest(v_nos) AS n WHERE n IS NULL) THEN
    SELECT array_agg(CASE WHEN v_nos[q.i] IS NOT NULL THEN v_headers[q.i] ELSE
             (SELECT coalesce(jsonb_object_agg(h.key, h.value), '{}')
              FROM (SELECT j.key, j.value FROM jsonb_each(p_metadata -> q.first_event) AS j LIMIT 31) AS h)
           END ORDER BY q.i)
    INTO v_headers
    FROM (SELECT c.i, (coalesce(sum(c.n) OVER (ORDER BY c.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::integer AS first_event
          FROM unnest(p_counts) WITH ORDINALITY AS c(n, i)) AS q;
  END IF;

  IF v_count > 0 THEN
    -- The lock makes this block of positions contiguous: nobody else draws from the sequence.
    v_first := nextval('events_position_seq');
    IF v_count > 1 THEN
      PERFORM setval('events_position_seq', v_first + v_count - 1);
    END IF;

    -- Metadata the caller did not reduce, reduced against its stream's header (017's
    -- es_meta_absent and es_meta_diff, written out: 018 measured calls 4 to 7 times slower).
    -- A reduced request's events are taken as they come (the common case: one pass, no lookup).
    SELECT array_agg(CASE WHEN NOT v_reduce[e.r + 1] THEN nullif(e.metadata, 'null'::jsonb)
                          WHEN e.metadata = v_headers[e.r + 1] THEN NULL ELSE
               (SELECT jsonb_object_agg(m.key, m.value) FROM jsonb_each(e.metadata) AS m
                WHERE v_headers[e.r + 1]->m.key IS DISTINCT FROM m.value) END ORDER BY e.i),
           array_agg(CASE WHEN NOT v_reduce[e.r + 1] THEN e.absent
                          WHEN e.metadata = v_headers[e.r + 1] THEN NULL ELSE
               (SELECT nullif(coalesce(sum(1 << (k.ord - 1)::integer) FILTER (WHERE NOT e.metadata ? k.key), 0), 0)::integer
                FROM jsonb_object_keys(v_headers[e.r + 1]) WITH ORDINALITY AS k(key, ord)) END ORDER BY e.i)
    INTO v_metadata, v_absent
    FROM ROWS FROM (jsonb_array_elements(p_metadata), unnest(v_ev_req), unnest(p_absent)) WITH ORDINALITY AS e(metadata, r, absent, i);

    -- Existing streams move on by number; new ones are inserted (ON CONFLICT only for a row a
    -- writer without the lock made meanwhile: 017's `events` view inserts streams directly).
    UPDATE streams AS s
    SET last_revision = w.last_revision, last_position = w.last_position
    FROM (
      SELECT v_nos[q.i] AS stream_no, v_last_revisions[q.i] + q.n AS last_revision,
             v_first + coalesce(sum(q.n) FILTER (WHERE v_write[q.i]) OVER (ORDER BY q.i ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0) - 1 AS last_position,
             q.i
      FROM unnest(p_counts) WITH ORDINALITY AS q(n, i)
    ) AS w
    WHERE v_write[w.i] AND w.stream_no IS NOT NULL AND s.stream_no = w.stream_no;

    IF EXISTS (SELECT 1 FROM generate_subscripts(p_counts, 1) AS k WHERE v_write[k] AND v_nos[k] IS NULL) THEN
      WITH w AS (
        SELECT q.i, p_streams[q.i] AS stream_id, q.n - 1 AS last_revision,
               v_first + sum(q.n) FILTER (WHERE v_write[q.i]) OVER (ORDER BY q.i ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - 1 AS last_position
        FROM unnest(p_counts) WITH ORDINALITY AS q(n, i)
      ), inserted AS (
        INSERT INTO streams AS s (stream_id, last_revision, last_position, header)
        SELECT w.stream_id, w.last_revision, w.last_position, v_headers[w.i]
        FROM w WHERE v_write[w.i] AND v_nos[w.i] IS NULL
        ON CONFLICT (stream_id) DO UPDATE SET last_revision = excluded.last_revision, last_position = excluded.last_position
        RETURNING s.stream_id, s.stream_no
      )
      SELECT array_agg(coalesce(v_nos[q.i], ins.stream_no) ORDER BY q.i)
      INTO v_nos
      FROM unnest(p_streams) WITH ORDINALITY AS q(stream_id, i)
      LEFT JOIN inserted AS ins ON ins.stream_id = q.stream_id;
    END IF;

    -- The unique indexes stay the last word on ids and (stream, revision).
    INSERT INTO event_log (position, event_id, revision, recorded_at, stream_no, shape_no, meta_absent, body, meta)
    SELECT v_first + row_number() OVER (ORDER BY e.i) - 1,
           e.event_id, coalesce(v_last_revisions[e.r + 1], -1) + e.ord, v_now, v_nos[e.r + 1], v_shape_nos[e.shape + 1],
           e.absent, e.body, e.metadata
    FROM unnest(p_ids, p_shape_idx, v_bodies, v_ev_req, v_ev_ord, v_absent, v_metadata) WITH ORDINALITY
      AS e(event_id, shape, body, r, ord, absent, metadata, i)
    WHERE v_write[e.r + 1];

    IF p_notify_channel IS NOT NULL THEN
      -- Delivered at commit; listeners re-read from their checkpoint, so the payload is a hint.
      PERFORM pg_notify(p_notify_channel, (v_first + v_count - 1)::text);
    END IF;
  END IF;

  -- One row per request, in request order, from the lookup and the writes: a written stream's
  -- last event is the request's last; an idempotent request leaves the stream as it was.
  RETURN QUERY
    SELECT (w.i - 1)::integer,
           CASE WHEN v_write[w.i] THEN coalesce(v_last_revisions[w.i], -1) + w.n ELSE v_last_revisions[w.i] END,
           CASE WHEN v_write[w.i] THEN w.last_position ELSE v_last_positions[w.i] END,
           v_idempotent[w.i],
           v_nos[w.i],
           -- 024: only where wanted (a NULL element, like a NULL array, wants it).
           CASE WHEN v_reduce[w.i] AND p_headers_wanted[w.i] IS DISTINCT FROM false THEN ARRAY(SELECT jsonb_object_keys(v_headers[w.i])) END,
           CASE WHEN v_reduce[w.i] AND p_headers_wanted[w.i] IS DISTINCT FROM false THEN v_headers[w.i] END
    FROM (
      SELECT q.i, q.n,
             v_first + sum(q.n) FILTER (WHERE v_write[q.i]) OVER (ORDER BY q.i ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - 1 AS last_position
      FROM unnest(p_counts) WITH ORDINALITY AS q(n, i)
    ) AS w
    ORDER BY w.i;
END;
$fn$;
