-- The sums, by source, of what a balance's entries before each statement start added and took
-- (services/ledger/src/postgresStatementStarts.ts): a statement's totals are the difference of
-- its period's two ends' sums, so with a start kept near each end it reads the entries near them,
-- not every entry between (a month of a balance metered every second is millions).
--
-- A JSON object {"toppedUp": {source: micro-credits}, "consumed": {source: micro-credits}}, the
-- amounts as integer strings. Rows kept before this migration have none and are not used as
-- starts any more (a statement that finds their instant again fills it in); a process of the
-- previous release still reads every row and writes rows without it, which this one ignores.
ALTER TABLE statement_boundaries ADD COLUMN totals jsonb;
