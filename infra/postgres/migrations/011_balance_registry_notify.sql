-- The metering consumer caches the balance registry (which balances a customer has) instead of
-- querying it for every chunk of usage. Every change to the registry tells it which customer's
-- entry is stale: NOTIFY on `tally_credit_balances` with the customer id, from a trigger, so no
-- writer (the API, a script, a hand-written INSERT) can forget to. NOTIFY is delivered only once
-- the writing transaction commits, and not at all if it rolls back. The channel is database-wide:
-- a consumer of another schema's Tally in the same database drops an entry it need not, which
-- costs one query and never serves a stale registry.
CREATE FUNCTION credit_balances_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify('tally_credit_balances', OLD.customer_id);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('tally_credit_balances', NEW.customer_id);
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER credit_balances_notify
  AFTER INSERT OR UPDATE OR DELETE ON credit_balances
  FOR EACH ROW EXECUTE FUNCTION credit_balances_notify();

-- TRUNCATE has no rows: everyone forgets everything (an empty payload).
CREATE FUNCTION credit_balances_notify_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tally_credit_balances', '');
  RETURN NULL;
END;
$$;

CREATE TRIGGER credit_balances_notify_truncate
  AFTER TRUNCATE ON credit_balances
  FOR EACH STATEMENT EXECUTE FUNCTION credit_balances_notify_truncate();
