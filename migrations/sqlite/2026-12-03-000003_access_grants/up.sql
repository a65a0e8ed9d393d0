-- Scoped access: what a service may ever be granted (project path patterns, an access level),
-- and the short-lived access grants it mints for the proxy. Existing services keep every project,
-- read only.
ALTER TABLE services ADD COLUMN projects TEXT NOT NULL DEFAULT '**';
ALTER TABLE services ADD COLUMN max_access TEXT NOT NULL DEFAULT 'read';

-- A grant's token is stored only as its hash. Deleting the service or the instance ends the grant.
CREATE TABLE access_grants (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    service_id TEXT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    projects TEXT NOT NULL,
    access TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX access_grants_by_holder ON access_grants (instance_id, subject);
CREATE INDEX access_grants_by_expiry ON access_grants (expires_at);
