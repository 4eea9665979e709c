-- A monthly limit on auto-recharge: at most `monthly_limit` purchases for the low-balance
-- warnings of one calendar month (UTC), so a runaway usage loop cannot buy without end. NULL: no
-- limit, as before.
ALTER TABLE auto_recharges
  ADD COLUMN monthly_limit integer CHECK (monthly_limit BETWEEN 1 AND 1000);

-- The purchases auto-recharge made, one per warning (the purchase's command id derives from the
-- warning's id, so this key is the ledger's once-per-warning): the limit counts them by the month
-- of their warning's stored time, which a warning handled again reads the same. Written after
-- each purchase, again (and idempotently) when a warning is handled again; kept when the setting
-- is removed, so turning it off and on again does not reset a month.
CREATE TABLE auto_recharge_purchases (
  warning_event_id text PRIMARY KEY,
  balance_id       text NOT NULL REFERENCES credit_balances (id) ON DELETE CASCADE,
  warning_month    date NOT NULL CHECK (warning_month = date_trunc('month', warning_month)),
  bought_at        timestamptz NOT NULL
);
CREATE INDEX auto_recharge_purchases_balance_month ON auto_recharge_purchases (balance_id, warning_month);
