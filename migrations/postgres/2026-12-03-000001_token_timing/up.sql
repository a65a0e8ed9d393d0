-- Refresh timing follows each token's own lifetime (GitLab allows 300 to 7200 s): when the
-- token was issued, and when the background refresher will rotate it. Existing tokens were
-- GitLab's default two-hour ones, due 10 minutes before expiry as before.
ALTER TABLE connections ADD COLUMN token_issued_at TIMESTAMP;
ALTER TABLE connections ADD COLUMN refresh_due_at TIMESTAMP;
UPDATE connections SET
    token_issued_at = expires_at - INTERVAL '7200 seconds',
    refresh_due_at = expires_at - INTERVAL '600 seconds';
ALTER TABLE connections ALTER COLUMN token_issued_at SET NOT NULL;
ALTER TABLE connections ALTER COLUMN refresh_due_at SET NOT NULL;
-- The sweeper now looks for active connections by when their refresh is due, not by expiry.
DROP INDEX connections_by_status;
CREATE INDEX connections_by_refresh_due ON connections (status, refresh_due_at);
-- The access-token lifetime GitLab last granted on this instance, shown to administrators.
ALTER TABLE instances ADD COLUMN token_lifetime_seconds BIGINT;
