-- Webhook endpoints and their deliveries (services/webhooks). The deliverer records a delivery
-- per endpoint and ledger event from a checkpointed subscription to the event store, then sends
-- them, retrying with backoff; what was sent, when, and what the receiver answered is kept here.

CREATE TABLE webhook_endpoints (
  id                    text PRIMARY KEY,
  url                   text NOT NULL,
  description           text,
  -- Webhook event types the endpoint receives (credit_balance.low, ...).
  events                text[] NOT NULL,
  -- The signing key, `whsec_` + base64. Kept as it is: HMAC needs the key itself, not a hash.
  secret                text NOT NULL,
  -- After a rotation, the secret it replaced: still signed with until previous_secret_until,
  -- so receivers can switch keys without losing a message.
  previous_secret       text,
  previous_secret_until timestamptz,
  -- Events at or before this global position are not delivered: an endpoint receives what
  -- happens after it was created, not the ledger's history.
  after_position        bigint NOT NULL,
  -- Set when the deliverer gave up on it (every retry for the retry period failed), or by hand.
  disabled_at           timestamptz,
  disabled_reason       text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhook_endpoints_events_check CHECK (cardinality(events) > 0),
  CONSTRAINT webhook_endpoints_previous_check CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL))
);

CREATE TABLE webhook_deliveries (
  -- The webhook-id: derived from endpoint and ledger event (webhookMessageId), so recording the
  -- same delivery twice (a redelivered batch, a takeover) finds this row and adds nothing.
  id               text PRIMARY KEY,
  endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  ledger_event_id  text NOT NULL,
  balance_id       text NOT NULL,
  -- The ledger event's global position: a balance's deliveries to an endpoint go in this order.
  position         bigint NOT NULL,
  event_type       text NOT NULL,
  -- The exact JSON sent on every attempt (the signature covers these bytes).
  body             text NOT NULL,
  -- pending: to be sent (again) at next_attempt_at; succeeded: a 2xx came back; failed: given up.
  status           text NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  -- Start of the retry period (the first attempt since recorded or since retried by hand).
  first_attempt_at timestamptz,
  last_attempt_at  timestamptz,
  delivered_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'succeeded', 'failed'))
);

-- The sender's question: the oldest pending delivery of each endpoint and balance.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, balance_id, position) WHERE status = 'pending';
-- An endpoint's deliveries, newest first.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, position DESC, id);

CREATE TABLE webhook_delivery_attempts (
  delivery_id   text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt       integer NOT NULL,
  started_at    timestamptz NOT NULL,
  duration_ms   integer NOT NULL,
  -- The receiver's HTTP status; null when none came (refused, timed out, connection failed).
  status_code   integer,
  error         text,
  -- The first KiB of the response body, no more.
  response_body text,
  PRIMARY KEY (delivery_id, attempt)
);
