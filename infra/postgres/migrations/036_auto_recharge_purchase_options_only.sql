-- Whether an auto-recharge buys only what the portal offers: set on the portal by the customer,
-- who may set it to a purchase option alone, it must keep to the purchase options when it buys,
-- so a bundle the operator has taken off them since is refused at the warning (lastRefusal) as a
-- portal purchase would be.
ALTER TABLE auto_recharges
  ADD COLUMN purchase_options_only boolean NOT NULL DEFAULT false;

-- Settings made before this: one without an acting key was set on the portal (a key or console
-- session is always recorded), so it keeps to the purchase options as its setting was checked.
UPDATE auto_recharges SET purchase_options_only = true WHERE updated_by_key_id IS NULL;
