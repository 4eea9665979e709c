-- Who made each version of a credit product: the API key's id (a prefix of its SHA-256, never the
-- key) and the name it was configured with (`TALLY_API_KEYS=key:scopes:name`), as they were at the
-- change. Both stay null for revisions from before this migration and for changes made outside
-- the API, which had no key to name.
ALTER TABLE credit_product_revisions
  ADD COLUMN changed_by_key_id   text,
  ADD COLUMN changed_by_key_name text;
