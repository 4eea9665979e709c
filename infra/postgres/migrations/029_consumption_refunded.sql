-- What refunds gave back of each bucket's consumption: a refund counts in the bucket of the charge
-- it refunds (consumptionProjector.ts), beside the charged credits, which stay counted as the
-- ledger keeps the charge. Empties the buckets and the projection's checkpoint so that the
-- processor counts every event again from position 0, refunds made before this version included;
-- until it has caught up, the charts show less than they will.
ALTER TABLE consumption_buckets ADD COLUMN refunded_micro_credits numeric NOT NULL DEFAULT 0;
TRUNCATE consumption_buckets;
DELETE FROM subscription_checkpoints WHERE name = 'consumption-projection';
