ALTER TABLE services DROP COLUMN secret_rotated_at;
