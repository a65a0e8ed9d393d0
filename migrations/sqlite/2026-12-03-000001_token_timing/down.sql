ALTER TABLE instances DROP COLUMN token_lifetime_seconds;
DROP INDEX connections_by_refresh_due;
CREATE INDEX connections_by_status ON connections (status, expires_at);
ALTER TABLE connections DROP COLUMN refresh_due_at;
ALTER TABLE connections DROP COLUMN token_issued_at;
