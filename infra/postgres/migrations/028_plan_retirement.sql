-- A plan is retired when its offer ends: new subscriptions to it are refused (409 plan_retired),
-- while the subscriptions it has keep granting as before, since a plan's terms never change.
-- Retiring is final and its key is written with its time, once; a renewed offer is a new plan.
ALTER TABLE plans
  ADD COLUMN retired_at          timestamptz,
  ADD COLUMN retired_by_key_id   text,
  ADD COLUMN retired_by_key_name text;
