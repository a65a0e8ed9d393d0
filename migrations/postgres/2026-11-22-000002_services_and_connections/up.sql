-- Internal consumers of credentials. The secret is stored only as a SHA-256 hash.
CREATE TABLE services (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    -- "*" or space-separated instance names
    instances TEXT NOT NULL,
    scopes TEXT NOT NULL,
    -- space-separated origins, e.g. "https://bot.corp.example"
    return_origins TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Single-use connect links, found by the SHA-256 of the link's secret id. Once a browser follows
-- the link, the row holds the hash of the OAuth state, the nonce and the sealed PKCE verifier
-- until the callback spends it.
CREATE TABLE connect_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    service_id TEXT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    return_to TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    state_hash TEXT UNIQUE,
    nonce TEXT,
    pkce_verifier_sealed BYTEA,
    -- SHA-256 of the value in the cookie set on the browser that followed the link: the
    -- callback must come from that browser.
    browser_binding_hash TEXT,
    finished_at TIMESTAMP,
    outcome TEXT,
    connection_id TEXT
);

-- A person's GitLab grant for one (service, instance, subject, scope set): a subject is the
-- service's own id for its user, so two services' subjects never meet. Tokens are sealed,
-- bound to the row.
CREATE TABLE connections (
    id TEXT PRIMARY KEY NOT NULL,
    service_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    scopes TEXT NOT NULL,
    gitlab_user_id TEXT NOT NULL,
    gitlab_username TEXT NOT NULL,
    access_token_sealed BYTEA NOT NULL,
    refresh_token_sealed BYTEA NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    refreshed_at TIMESTAMP,
    UNIQUE (service_id, instance_id, subject, scopes)
);
CREATE INDEX connections_by_status ON connections (status, expires_at);
