-- The catalog: credit products, and the registry of which credit balances exist for
-- which customer and product. Balances themselves live in the event store; this table
-- only lets the metering consumer find a customer's balances in one query.

CREATE TABLE credit_products (
  id                    text PRIMARY KEY,
  name                  text NOT NULL,
  description           text NOT NULL DEFAULT '',
  -- Rules and bundles as the API carries them (amounts as decimal strings).
  consumption           jsonb NOT NULL DEFAULT '[]',
  low_balance_threshold text,
  bundles               jsonb NOT NULL DEFAULT '[]',
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE credit_balances (
  id          text PRIMARY KEY,
  customer_id text NOT NULL,
  product_id  text NOT NULL REFERENCES credit_products (id),
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- One balance per customer and product: the API answers 409 for a second.
  CONSTRAINT credit_balances_customer_product_key UNIQUE (customer_id, product_id)
);
