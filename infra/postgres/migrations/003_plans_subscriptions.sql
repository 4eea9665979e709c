-- Plans, subscriptions and their credit overrides (services/subscriptions). Grants themselves
-- are ledger events; nothing here is needed to know whether a period was granted.

-- Plans are immutable: every past grant can be recomputed from the plan as it was.
CREATE TABLE plans (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  -- Items as the API carries them: [{ productId, creditsPerPeriod, period, lowBalanceThreshold }].
  items      jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
  id                  text PRIMARY KEY,
  customer_id         text NOT NULL,
  plan_id             text NOT NULL REFERENCES plans (id),
  starts_at           timestamptz NOT NULL,
  canceled_at         timestamptz,
  -- Set by the scheduler once a canceled subscription has granted its last period, so later
  -- ticks skip it; active subscriptions never have it.
  grants_completed_at timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT subscriptions_completed_check CHECK (grants_completed_at IS NULL OR canceled_at IS NOT NULL)
);

-- The scheduler pages through the subscriptions that may still grant, by id.
CREATE INDEX subscriptions_schedulable_idx ON subscriptions (id) WHERE grants_completed_at IS NULL;

-- One row per change of a product's override; the row with the greatest effective_from_period
-- at or below a period is the one in force for it. NULL amounts take the plan item's value.
CREATE TABLE subscription_overrides (
  subscription_id       text NOT NULL REFERENCES subscriptions (id),
  product_id            text NOT NULL,
  effective_from_period integer NOT NULL,
  credits_per_period    text,
  low_balance_threshold text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, product_id, effective_from_period),
  CONSTRAINT subscription_overrides_period_check CHECK (effective_from_period >= 0)
);

-- The last period known to be granted per subscription and product: an optimisation only.
-- Correctness comes from the ledger's deterministic grant event ids (see subscriptionGranter.ts).
CREATE TABLE subscription_grant_watermarks (
  subscription_id text NOT NULL REFERENCES subscriptions (id),
  product_id      text NOT NULL,
  granted_through integer NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, product_id)
);
