-- Single flight for refreshes across processes: a lease taken by compare-and-set.
ALTER TABLE connections ADD COLUMN refresh_lease_owner TEXT;
ALTER TABLE connections ADD COLUMN refresh_lease_until TIMESTAMP;
-- Set before a refresh request leaves, cleared when its outcome is known. Found set later, it
-- means GitLab may have rotated the pair without labgate learning the new one.
ALTER TABLE connections ADD COLUMN refresh_in_flight_since TIMESTAMP;
-- Why the connection stopped being usable, for administrators.
ALTER TABLE connections ADD COLUMN status_reason TEXT;

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    instance TEXT,
    subject TEXT,
    connection_id TEXT,
    scopes TEXT,
    detail TEXT
);
CREATE INDEX audit_events_by_time ON audit_events (at);
