-- Signed-in administrators of the admin pages. Only the SHA-256 of the session cookie's value
-- is kept, so a database dump signs no one in; signing out deletes the row.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);
