-- Auto-recharge: a balance that falls below its warning limit buys `quantity` of its product's
-- bundle `bundle_id` (autoRechargeProcessor.ts), once per low-balance warning. Settings, not
-- ledger state: each purchase it makes is a ledger event like any other.
CREATE TABLE auto_recharges (
  balance_id       text PRIMARY KEY REFERENCES credit_balances (id) ON DELETE CASCADE,
  bundle_id        text NOT NULL,
  quantity         integer NOT NULL CHECK (quantity >= 1),
  -- The event store's head when it was set: only warnings after it recharge, so turning it on
  -- never buys for a warning of the past (a processor catching up, or starting from 0).
  since_position   bigint NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  updated_by_key_id   text,
  updated_by_key_name text
);
