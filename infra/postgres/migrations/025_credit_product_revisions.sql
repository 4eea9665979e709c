-- Every version of every credit product, so that what usage cost at any moment can be read back:
-- credit_products holds only the current version. A create or update writes its revision in the
-- same statement as the product (postgresCatalogStore.ts), so the history misses no change, and
-- the product row's own revision, bumped under its row lock, numbers concurrent updates apart.
ALTER TABLE credit_products ADD COLUMN revision integer NOT NULL DEFAULT 1;

CREATE TABLE credit_product_revisions (
  product_id text NOT NULL REFERENCES credit_products (id),
  revision   integer NOT NULL,
  -- The product as the API carries it (a CreditProductDto), as it was then: an old version is
  -- shown as stored, even where today's validation would refuse it.
  product    jsonb NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (product_id, revision)
);

-- A product from before this migration starts its history at its current version, as of its last change.
INSERT INTO credit_product_revisions (product_id, revision, product, changed_at)
SELECT id, 1,
       jsonb_build_object('id', id, 'name', name, 'description', description, 'consumption', consumption,
                          'lowBalanceThreshold', low_balance_threshold, 'bundles', bundles),
       updated_at
  FROM credit_products;
