-- Consumption is projected by a checkpointed processor now (see 014), not by a trigger on the
-- PostgreSQL event store: that trigger worked with one store only, added to every append and read
-- the stored encoding's jsonb fields. Removes it from databases that applied 014's first version
-- (IF EXISTS: a database created since has none) and empties the buckets it filled, so that the
-- processor, having no checkpoint yet, counts every event once from position 0.
DROP TRIGGER IF EXISTS events_consumption_buckets ON events;
DROP FUNCTION IF EXISTS consumption_of_events();
DROP FUNCTION IF EXISTS consumption_hour(jsonb, timestamptz);
DROP FUNCTION IF EXISTS consumed_micro_credits(jsonb);
TRUNCATE consumption_buckets;
DELETE FROM subscription_checkpoints WHERE name = 'consumption-projection';
