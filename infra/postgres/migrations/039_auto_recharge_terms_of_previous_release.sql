-- A setting stored by an API of the release before terms (037) has none, even when it replaces
-- one that had: that API's upsert never touches terms_*, so it kept the replaced setting's terms
-- (another bundle's, or the bundle's before a repricing), and the processor refused the new
-- setting at every warning. Replaced without terms, it buys at the catalog's terms, as that
-- release's settings did. This release marks its own writes (set_config, autoRecharges.ts), which
-- keep the terms they give. Only statements that set bundle_id (the PUT's upsert, never the
-- processor's outcome updates) fire it.
CREATE FUNCTION auto_recharges_terms_of_previous_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('tally.auto_recharge_terms', true) IS DISTINCT FROM 'given' THEN
    NEW.terms_credits := NULL;
    NEW.terms_price_amount := NULL;
    NEW.terms_currency := NULL;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER auto_recharges_terms_of_previous_release
  BEFORE UPDATE OF bundle_id ON auto_recharges
  FOR EACH ROW EXECUTE FUNCTION auto_recharges_terms_of_previous_release();
