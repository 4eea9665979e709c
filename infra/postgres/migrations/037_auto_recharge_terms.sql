-- The bundle's terms (credits and unit price) an auto-recharge was set at, as its setter was shown
-- them: the processor refuses a purchase whose bundle's terms differ now (a portal purchase's
-- `expected`), and setting it again accepts the new ones. Settings made before this have none and
-- buy at the catalog's terms of the moment, as they did.
ALTER TABLE auto_recharges
  ADD COLUMN terms_credits bigint,
  ADD COLUMN terms_price_amount text,
  ADD COLUMN terms_currency text,
  ADD CONSTRAINT auto_recharges_terms_whole CHECK (
    (terms_credits IS NULL) = (terms_price_amount IS NULL) AND (terms_credits IS NULL) = (terms_currency IS NULL)
  );
