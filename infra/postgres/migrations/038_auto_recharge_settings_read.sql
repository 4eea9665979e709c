-- How far the auto-recharge processor has read the settings for: the last event store position of
-- the latest batch whose settings it read (under the settings lock, autoRecharges.ts). A new
-- setting's `since` is at least this, so a warning the processor passed before the setting was
-- stored is at or before `since`, and the PUT's belowWarningLimit (read after) says so. One row;
-- 0 until a processor of this release reads a batch's settings.
CREATE TABLE auto_recharge_settings_read (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  read_through bigint NOT NULL
);
INSERT INTO auto_recharge_settings_read (read_through) VALUES (0);
