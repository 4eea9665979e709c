-- The compact ledger (issue 11 §5): each event stored once, in about a third of the bytes.
--
-- Before, a CreditConsumed row repeated the stream's text name (in the row and in the unique
-- (stream_id, revision) index), its type as text, every payload key in jsonb, and in its metadata
-- the balance, customer and product that every event of the stream carries: about 756 bytes per
-- event with its indexes. Now (measured in docs/benchmarks.md):
--
-- * streams are keyed by a number: `streams.stream_no`; events carry it, and the unique index is
--   (stream_no, revision), 16 bytes of key instead of the name.
-- * a payload is split into its shape and its values. The shape (the event type and the data's
--   keys, nested objects and how each value is written) is stored once, in `event_shapes`; the
--   row keeps its number and `body`, the JSON array of the values in shape order. Nothing queries
--   inside a payload (readers go through the event store, which decodes), so the body is text.
--   Some values are written shorter, losslessly: a decimal string that a JSON number spells the
--   same ("1.5") as that number ('n'); an ISO-8601 UTC time as JavaScript's toISOString() writes
--   it as epoch milliseconds, the body's first in full and the later ones after it ('t'); null
--   nowhere, the shape says it ('z'); any other value as JSON ('v').
-- * metadata keys equal to the stream's header are not stored: the header is the metadata of the
--   stream's first event (at most 31 keys), kept in its `streams` row. A row stores only the keys
--   whose values differ (`meta`, NULL when none) and a bit mask of the header keys it lacks
--   (`meta_absent`, bit i = the i-th key in jsonb's order; NULL when none).
--
-- The event store (services/event-store/src/eventPayloadCodec.ts) encodes and decodes payloads in
-- Node, where appends and reads run; the functions below are the same encoding in SQL, for this
-- conversion and for `events`, now a view that decodes every row as the old table held it (and
-- accepts INSERT, for scripts and tests that write history directly). A test keeps the two
-- encodings decoding each other (eventPayloadCodec.int.spec.ts).
--
-- The conversion runs in the migration's one transaction, like every migration: if it fails,
-- nothing changed and the next start runs it again from the old table. It rewrites the whole
-- ledger at about 85 µs an event here (docs/benchmarks.md): some 7 million events fit the
-- runner's default 10-minute statement bound; a larger store needs a larger bound or a window.

CREATE TABLE event_shapes (
  shape_no integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- [type, object shape]; object shape: [[key, kind], ...] in the data's key order, kind one of
  -- "v", "n", "t" or a nested object shape. jsonb, so that equal shapes are one row.
  shape jsonb NOT NULL,
  CONSTRAINT event_shapes_shape_key UNIQUE (shape)
);

-- The shape's number, registering it when new. Shapes are immutable, so a number once seen is
-- valid for ever; a registration whose transaction rolls back leaves no row and no number.
CREATE FUNCTION es_shape_no(p_shape jsonb) RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
  v_no integer;
BEGIN
  SELECT shape_no INTO v_no FROM event_shapes WHERE shape = p_shape;
  IF v_no IS NULL THEN
    INSERT INTO event_shapes (shape) VALUES (p_shape) ON CONFLICT (shape) DO NOTHING RETURNING shape_no INTO v_no;
    IF v_no IS NULL THEN
      SELECT shape_no INTO v_no FROM event_shapes WHERE shape = p_shape;
    END IF;
  END IF;
  RETURN v_no;
END;
$fn$;

-- 'n': a decimal string that JavaScript's String(Number(s)) gives back unchanged: no leading
-- zeros, no trailing fractional zeros, no exponent, at most 15 digits and 6 fractional ones.
CREATE FUNCTION es_is_compact_decimal(p text) RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $fn$
  SELECT p ~ '^-?(0|[1-9][0-9]*)(\.[0-9]{0,5}[1-9])?$' AND p <> '-0' AND length(regexp_replace(p, '[^0-9]', '', 'g')) <= 15
$fn$;

-- 't': epoch milliseconds of a time written as toISOString() writes it (years 1000 to 9999), or
-- NULL for any other string (an impossible date such as 02-30 included).
CREATE FUNCTION es_iso_millis(p text) RETURNS bigint
LANGUAGE sql STABLE
AS $fn$
  SELECT CASE
    WHEN p ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$'
     AND substr(p, 9, 2)::integer <= extract(day FROM (make_date(substr(p, 1, 4)::integer, substr(p, 6, 2)::integer, 1)
                                                         + interval '1 month - 1 day'))
    THEN (extract(epoch FROM p::timestamptz) * 1000)::bigint
  END
$fn$;

CREATE FUNCTION es_millis_iso(p bigint) RETURNS text
LANGUAGE sql IMMUTABLE
AS $fn$
  SELECT to_char(('epoch'::timestamp + p * interval '1 millisecond'), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$fn$;

-- An object's shape and its values as JSON texts joined by commas (the body without its
-- brackets; '' for no values), in jsonb's key order; base: the body's first time, which later
-- times are written after (p_base: the one met before this object, if any).
CREATE TYPE es_packed AS (shape jsonb, parts text, base bigint);

CREATE FUNCTION es_pack(p_object jsonb, p_base bigint DEFAULT NULL) RETURNS es_packed
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
  v_key text;
  v_value jsonb;
  v_text text;
  v_inner es_packed;
  v_millis bigint;
  v_shape jsonb[] := '{}';
  v_parts text[] := '{}';
  v_base bigint := p_base;
BEGIN
  FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_object) AS e LOOP
    IF jsonb_typeof(v_value) = 'object' THEN
      v_inner := es_pack(v_value, v_base);
      v_base := v_inner.base;
      v_shape := v_shape || jsonb_build_array(v_key, v_inner.shape);
      IF v_inner.parts <> '' THEN
        v_parts := v_parts || v_inner.parts;
      END IF;
      CONTINUE;
    END IF;
    IF jsonb_typeof(v_value) = 'null' THEN
      v_shape := v_shape || jsonb_build_array(v_key, 'z');
      CONTINUE;
    END IF;
    IF jsonb_typeof(v_value) = 'string' THEN
      v_text := v_value #>> '{}';
      IF es_is_compact_decimal(v_text) THEN
        v_shape := v_shape || jsonb_build_array(v_key, 'n');
        v_parts := v_parts || v_text;
        CONTINUE;
      END IF;
      v_millis := CASE WHEN length(v_text) = 24 THEN es_iso_millis(v_text) END;
      IF v_millis IS NOT NULL THEN
        v_shape := v_shape || jsonb_build_array(v_key, 't');
        v_parts := v_parts || (v_millis - coalesce(v_base, 0))::text;
        v_base := coalesce(v_base, v_millis);
        CONTINUE;
      END IF;
    END IF;
    v_shape := v_shape || jsonb_build_array(v_key, 'v');
    v_parts := v_parts || v_value::text;
  END LOOP;
  RETURN ROW(to_jsonb(v_shape), array_to_string(v_parts, ','), v_base)::es_packed;
END;
$fn$;

-- The object an object shape describes, reading its values from p_values at p_index on, and
-- the body's first time once met (p_base).
CREATE FUNCTION es_unpack(p_shape jsonb, p_values jsonb, INOUT p_index integer, INOUT p_base bigint, OUT object jsonb)
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
  v_entry jsonb;
  v_inner record;
  v_value jsonb;
  v_millis bigint;
BEGIN
  object := '{}';
  FOR v_entry IN SELECT e.value FROM jsonb_array_elements(p_shape) AS e LOOP
    IF jsonb_typeof(v_entry->1) = 'array' THEN
      v_inner := es_unpack(v_entry->1, p_values, p_index, p_base);
      p_index := v_inner.p_index;
      p_base := v_inner.p_base;
      object := object || jsonb_build_object(v_entry->>0, v_inner.object);
    ELSIF v_entry->>1 = 'z' THEN
      object := object || jsonb_build_object(v_entry->>0, NULL::jsonb);
    ELSE
      v_value := p_values->p_index;
      p_index := p_index + 1;
      IF v_entry->>1 = 't' THEN
        v_millis := coalesce(p_base, 0) + (v_value #>> '{}')::bigint;
        p_base := coalesce(p_base, v_millis);
        v_value := to_jsonb(es_millis_iso(v_millis));
      ELSIF v_entry->>1 = 'n' THEN
        v_value := to_jsonb(v_value #>> '{}');
      END IF;
      object := object || jsonb_build_object(v_entry->>0, v_value);
    END IF;
  END LOOP;
END;
$fn$;

CREATE FUNCTION es_decode_data(p_shape jsonb, p_body text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
  SELECT (es_unpack(p_shape->1, p_body::jsonb, 0, NULL)).object
$fn$;

-- A stream's header: its first event's metadata, at most 31 keys so that a mask fits an integer.
CREATE FUNCTION es_header(p_metadata jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $fn$
  SELECT coalesce(jsonb_object_agg(h.key, h.value), '{}')
  FROM (SELECT e.key, e.value FROM jsonb_each(p_metadata) AS e LIMIT 31) AS h
$fn$;

-- The metadata keys whose values differ from the header's (NULL when none).
CREATE FUNCTION es_meta_diff(p_header jsonb, p_metadata jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $fn$
  SELECT CASE WHEN p_metadata = p_header THEN NULL ELSE
    (SELECT jsonb_object_agg(m.key, m.value) FROM jsonb_each(p_metadata) AS m WHERE p_header->m.key IS DISTINCT FROM m.value)
  END
$fn$;

-- Bit i set: the header's i-th key (jsonb order) is missing from the metadata (NULL when none).
CREATE FUNCTION es_meta_absent(p_header jsonb, p_metadata jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE
AS $fn$
  SELECT CASE WHEN p_metadata = p_header THEN NULL ELSE
    (SELECT nullif(coalesce(sum(1 << (k.ord - 1)::integer) FILTER (WHERE NOT p_metadata ? k.key), 0), 0)::integer
     FROM jsonb_object_keys(p_header) WITH ORDINALITY AS k(key, ord))
  END
$fn$;

CREATE FUNCTION es_decode_metadata(p_header jsonb, p_meta jsonb, p_absent integer) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $fn$
  SELECT CASE WHEN p_absent IS NULL THEN p_header ELSE
    p_header - ARRAY(SELECT k.key FROM jsonb_object_keys(p_header) WITH ORDINALITY AS k(key, ord)
                     WHERE p_absent & (1 << (k.ord - 1)::integer) <> 0)
  END || coalesce(p_meta, '{}')
$fn$;

ALTER TABLE streams ADD COLUMN stream_no bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE streams ADD CONSTRAINT streams_stream_no_key UNIQUE (stream_no);
ALTER TABLE streams ADD COLUMN header jsonb NOT NULL DEFAULT '{}';

ALTER TABLE events RENAME TO events_before_017;

-- Columns ordered so that alignment wastes nothing: the fixed 8-byte ones, the two integers,
-- then the variable ones.
CREATE TABLE event_log (
  position bigint NOT NULL,
  event_id uuid NOT NULL,
  revision bigint NOT NULL,
  recorded_at timestamptz NOT NULL,
  stream_no bigint NOT NULL,
  shape_no integer NOT NULL,
  meta_absent integer,
  body text NOT NULL,
  meta jsonb,
  CONSTRAINT event_log_pkey PRIMARY KEY (position),
  -- An event id is stored once in the whole store: re-appending it is idempotent.
  CONSTRAINT event_log_event_id_key UNIQUE (event_id),
  -- Also the index that reads a stream in either direction.
  CONSTRAINT event_log_stream_revision_key UNIQUE (stream_no, revision),
  CONSTRAINT event_log_revision_check CHECK (revision >= 0),
  CONSTRAINT event_log_position_check CHECK (position > 0)
);

ALTER SEQUENCE events_position_seq OWNED BY event_log.position;

UPDATE streams AS s SET header = es_header(f.metadata)
FROM events_before_017 AS f
WHERE f.stream_id = s.stream_id AND f.revision = 0;

WITH packed AS MATERIALIZED (
  SELECT o.position, o.event_id, o.revision, o.recorded_at, o.stream_id, o.metadata,
         jsonb_build_array(o.type, p.shape) AS shape, '[' || p.parts || ']' AS body
  FROM events_before_017 AS o
  CROSS JOIN LATERAL es_pack(o.data) AS p
), shapes AS (
  INSERT INTO event_shapes (shape) SELECT DISTINCT packed.shape FROM packed
  RETURNING shape_no, shape
)
INSERT INTO event_log (position, event_id, revision, recorded_at, stream_no, shape_no, meta_absent, body, meta)
SELECT p.position, p.event_id, p.revision, p.recorded_at, s.stream_no, sh.shape_no,
       es_meta_absent(s.header, p.metadata), p.body, es_meta_diff(s.header, p.metadata)
FROM packed AS p
JOIN streams AS s ON s.stream_id = p.stream_id
JOIN shapes AS sh ON sh.shape = p.shape;

DROP TABLE events_before_017;

-- Every row as the old table held it: for scripts, tests and anything reading SQL directly.
-- Decoding happens in SQL here, slower than the event store's reads; columns not selected are
-- not decoded.
CREATE VIEW events AS
SELECT e.position, e.event_id, s.stream_id, e.revision, sh.shape->>0 AS type,
       es_decode_data(sh.shape, e.body) AS data,
       es_decode_metadata(s.header, e.meta, e.meta_absent) AS metadata,
       e.recorded_at
FROM event_log AS e
JOIN streams AS s ON s.stream_no = e.stream_no
JOIN event_shapes AS sh ON sh.shape_no = e.shape_no;

-- INSERT INTO events (and COPY into it) writes encoded rows. Like the old table, it neither
-- checks nor moves the stream's last revision: a stream it creates starts at the row's revision
-- and position, and the writer updates `streams` as it did before.
CREATE FUNCTION events_insert() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
  v_stream record;
  v_packed record;
BEGIN
  SELECT stream_no, header INTO v_stream FROM streams WHERE stream_id = NEW.stream_id;
  IF NOT FOUND THEN
    INSERT INTO streams (stream_id, last_revision, last_position, header)
    VALUES (NEW.stream_id, NEW.revision, NEW.position, es_header(NEW.metadata))
    RETURNING stream_no, header INTO v_stream;
  END IF;
  v_packed := es_pack(NEW.data);
  INSERT INTO event_log (position, event_id, revision, recorded_at, stream_no, shape_no, meta_absent, body, meta)
  VALUES (NEW.position, NEW.event_id, NEW.revision, NEW.recorded_at, v_stream.stream_no,
          es_shape_no(jsonb_build_array(NEW.type, v_packed.shape)), es_meta_absent(v_stream.header, NEW.metadata),
          '[' || v_packed.parts || ']', es_meta_diff(v_stream.header, NEW.metadata));
  RETURN NEW;
END;
$fn$;

CREATE TRIGGER events_insert INSTEAD OF INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_insert();
