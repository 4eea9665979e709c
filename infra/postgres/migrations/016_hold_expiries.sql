-- Open holds by when they expire (issue 15): the index the hold expiry worker polls for holds to
-- free. Derived from the ledger by a checkpointed processor (a row per CreditsHeld, deleted at the
-- hold's capture, release or expiry), so it survives restarts and can be rebuilt from the event
-- store by resetting that processor's checkpoint. Never the truth of a hold: expiring one is a
-- command decided on its balance's stream, which refuses a hold that is no longer open.
CREATE TABLE hold_expiries (
  hold_id    text PRIMARY KEY,
  balance_id text NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE INDEX hold_expiries_by_time ON hold_expiries (expires_at);
