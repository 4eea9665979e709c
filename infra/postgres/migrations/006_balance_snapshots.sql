-- Snapshots of credit balances (services/ledger/src/postgresBalanceSnapshotStore.ts).
--
-- A snapshot is only a cache: the fold of a balance's stream up to `revision`, kept so that a
-- write on a long stream reads the events after it (the tail) instead of the whole stream. The
-- stream stays the truth; deleting any or every row here changes no balance, it only makes the
-- next write fold from the beginning again.
--
-- `version` names the event schema and the fold (`evolve`) that made the state; a snapshot of
-- another version is never read, so changing either invalidates every older snapshot at once.
-- Writers keep one row per (stream, revision) they wrote at: a replayed command answers the
-- state it first answered by reading the snapshot at its own revision.
CREATE TABLE balance_snapshots (
  stream_id text NOT NULL,
  version text NOT NULL,
  revision bigint NOT NULL,
  -- Read back whole, never queried inside: json, not jsonb.
  state json NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Also the index of "the latest snapshot at or before revision r" (a backward range scan).
  CONSTRAINT balance_snapshots_pkey PRIMARY KEY (stream_id, version, revision),
  CONSTRAINT balance_snapshots_revision_check CHECK (revision >= 0)
);
