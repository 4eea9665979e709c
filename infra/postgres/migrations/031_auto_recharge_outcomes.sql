-- What an auto-recharge last did, for the operator and the customer reading its setting: when it
-- last bought, and when and why it was last refused (a bundle removed from the catalog). Kept
-- beside the setting, not in the ledger: the purchases themselves are ledger events.
ALTER TABLE auto_recharges
  ADD COLUMN last_recharged_at timestamptz,
  ADD COLUMN last_refused_at   timestamptz,
  ADD COLUMN last_refusal      text;
