ALTER TABLE instances DROP COLUMN client_rejected_at;
