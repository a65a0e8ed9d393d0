-- The rotation ledger: each refresh attempt of a connection and how it ended, kept bounded
-- (the newest per connection), so an administrator can see what happened to a grant.
CREATE TABLE refresh_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    outcome TEXT NOT NULL,
    gitlab_request_id TEXT,
    process TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX refresh_attempts_by_connection ON refresh_attempts (connection_id, id);
