-- Registered GitLab instances. The client secret is sealed (XChaCha20-Poly1305, bound to this
-- row's id); `discovery` keeps the endpoints the last successful check found.
CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret_sealed BYTEA NOT NULL,
    ca_pem TEXT,
    scopes TEXT NOT NULL,
    discovery TEXT NOT NULL,
    last_check_ok BOOLEAN NOT NULL,
    last_check_report TEXT NOT NULL,
    last_checked_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Facts about this installation: the hash of a generated admin token, the id of the master key.
CREATE TABLE labgate_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
