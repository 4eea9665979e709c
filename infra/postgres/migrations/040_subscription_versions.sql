-- A subscription's version: 1 as created, one more per change of its terms (overrides) or status
-- (the cancellation that stands); grants leave it alone. The API answers it as the ETag and takes
-- it back as If-Match (412 subscription_changed when another change came first), and each change
-- is made under the row's lock, so two concurrent changes are made one after the other.
-- Existing subscriptions start at 1; the previous release writes no version and leaves it alone.
ALTER TABLE subscriptions ADD COLUMN version integer NOT NULL DEFAULT 1;
