-- Who made each change to plans, subscriptions and webhook endpoints, as 026 records it for a
-- product's versions: the API key's id (a prefix of its SHA-256, never the key) and the name it
-- was configured with, as they were at the change. Null for rows from before this migration and
-- for changes made without a key (Tally's own, such as a deliverer disabling an endpoint).
ALTER TABLE plans
  ADD COLUMN created_by_key_id   text,
  ADD COLUMN created_by_key_name text;

-- canceled_by is written with canceled_at, once: the first cancellation stands, and so does its key.
ALTER TABLE subscriptions
  ADD COLUMN created_by_key_id    text,
  ADD COLUMN created_by_key_name  text,
  ADD COLUMN canceled_by_key_id   text,
  ADD COLUMN canceled_by_key_name text;

-- Each override version names the key that set it; the initial versions, the subscription's creator.
ALTER TABLE subscription_overrides
  ADD COLUMN changed_by_key_id   text,
  ADD COLUMN changed_by_key_name text;

-- updated_by follows updated_at: the key of the last change, null when that change was Tally's.
ALTER TABLE webhook_endpoints
  ADD COLUMN created_by_key_id   text,
  ADD COLUMN created_by_key_name text,
  ADD COLUMN updated_by_key_id   text,
  ADD COLUMN updated_by_key_name text;

-- The one reading of such a pair of columns: the API's { keyId, keyName }, or null without a key.
CREATE FUNCTION acting_key(key_id text, key_name text) RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN key_id IS NULL THEN NULL ELSE jsonb_build_object('keyId', key_id, 'keyName', key_name) END $$;
