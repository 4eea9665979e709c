-- A grant is made in two steps (services/subscriptions, subscriptionGranter.ts): under the
-- subscription's row lock, the one a cancellation and a change of terms take, the period is
-- reserved (reserved_through, never lowered) and the lock let go; the ledger's grant is then
-- appended without it, and granted_through raised after. A cancellation's final period is at least
-- the last period reserved, and a change of terms never applies from one, so a reserved period
-- whose append failed is granted again on the next run, on the terms it was reserved with.
--
-- granted_through becomes nullable: a period reserved before any is granted (NULL: none yet).
-- reserved_through is NULL in a row a process of the previous release inserted, which reserves
-- nothing: read it as granted_through (GREATEST ignores a NULL).
ALTER TABLE subscription_grant_watermarks ALTER COLUMN granted_through DROP NOT NULL;
ALTER TABLE subscription_grant_watermarks ADD COLUMN reserved_through integer;
UPDATE subscription_grant_watermarks SET reserved_through = granted_through;
