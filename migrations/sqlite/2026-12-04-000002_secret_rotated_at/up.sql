-- When the service's secret last changed: tokens and access grants from before then are refused.
-- It was read from updated_at, which a policy change now moves too.
ALTER TABLE services ADD COLUMN secret_rotated_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE services SET secret_rotated_at = updated_at;
