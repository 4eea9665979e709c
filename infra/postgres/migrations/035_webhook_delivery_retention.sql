-- Delivered webhooks are kept for TALLY_WEBHOOKS_RETAIN_DELIVERED_MS (30 days), then deleted by
-- the sending deliverer with their attempts (services/webhooks): without it the table grows with
-- every ledger event and endpoint for good. This index finds the oldest delivered ones without
-- reading the rest; pending and given-up deliveries are never deleted (they wait to be sent).
CREATE INDEX webhook_deliveries_delivered_idx ON webhook_deliveries (delivered_at) WHERE status = 'succeeded';
