-- A deleted service's events are still delivered: its pending deliveries keep their webhook's
-- secret, sealed and bound to their own row, and lose only their link to the service. SQLite
-- changes a foreign key only by rebuilding the table.
CREATE TABLE webhook_deliveries_new (
    id TEXT PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    service_id TEXT REFERENCES services(id) ON DELETE SET NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    secret_sealed BLOB
);
INSERT INTO webhook_deliveries_new (id, event_id, event_type, service_id, url, body, status,
    attempts, last_error, next_attempt_at, lease_owner, lease_until, delivered_at, created_at)
SELECT id, event_id, event_type, service_id, url, body, status, attempts, last_error,
    next_attempt_at, lease_owner, lease_until, delivered_at, created_at
FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_service ON webhook_deliveries (service_id, created_at, id);
