-- Stored balance states that replace one another (services/ledger/src/balanceStates.ts).
--
-- The metering consumer keeps its balances' states write-behind (a flush every
-- TALLY_CONSUMER_STATE_FLUSH_MS, at a graceful stop, and after a load that folded a long tail),
-- and `tally keep-balance-states` keeps one for every balance after a bulk import. Those rows
-- only shorten the next load: none is the answer of a command at its revision (the rows a replayed
-- command reads stay as 006 describes). So each such row replaces the stream's older ones of the
-- same kind, in the statement that writes it, and a stream keeps one of them, however often its
-- state is flushed, instead of one row per flush.
ALTER TABLE balance_snapshots ADD COLUMN replaceable boolean NOT NULL DEFAULT false;
