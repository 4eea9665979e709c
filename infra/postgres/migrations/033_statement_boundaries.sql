-- Where a balance's statement periods begin (services/ledger/src/postgresStatementStarts.ts).
--
-- A statement of [from, to) is a run of its balance's revisions, from the first entry recorded at
-- or after `from` (createStatementFold, in @tally/api). A row says, for one instant, the revision
-- of the first entry recorded at or after it: known once that entry is, and never changed after,
-- since no entry before it is ever rewritten. A statement then folds from the balance's stored
-- state before the latest such revision at or before its `from` (balance_snapshots), not from the
-- ledger's start: a month of a balance with years of usage reads that month.
--
-- Only a cache, as balance_snapshots: deleting any or every row changes no statement, it only
-- makes the next one read the ledger from its start again (and keep what it finds).
CREATE TABLE statement_boundaries (
  stream_id text NOT NULL,
  boundary timestamptz NOT NULL,
  revision bigint NOT NULL CHECK (revision >= 0),
  -- Also the index of "the latest boundary at or before an instant" (a backward range scan).
  PRIMARY KEY (stream_id, boundary)
);
