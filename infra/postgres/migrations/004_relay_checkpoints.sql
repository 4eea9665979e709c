-- Checkpoints of catch-up subscriptions to the event store: the global position of the last
-- event a named subscriber has finished with (for the ledger relay: the last event Kafka
-- acknowledged). General-purpose: any subscriber that must resume where it stopped after a
-- restart keeps one row here under a name of its own.
CREATE TABLE subscription_checkpoints (
  name       text PRIMARY KEY,
  -- Exclusive: the subscriber resumes with the first event after this position (0: from the start).
  position   bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT subscription_checkpoints_position_check CHECK (position >= 0)
);
