-- When the service's secret last changed: tokens and access grants from before then are refused.
-- It was read from updated_at, which a policy change now moves too.
ALTER TABLE services ADD COLUMN secret_rotated_at TIMESTAMP;
UPDATE services SET secret_rotated_at = updated_at;
ALTER TABLE services ALTER COLUMN secret_rotated_at SET NOT NULL;
