-- Who opened an admin session: 'admin:token', or 'admin:{username}' for a GitLab sign-in.
ALTER TABLE admin_sessions ADD COLUMN actor TEXT NOT NULL DEFAULT 'admin:token';

-- Admin sign-ins with GitLab on their way: the state is kept hashed and spent once, the PKCE
-- verifier sealed and bound to its row, the browser that started known by a cookie's hash.
CREATE TABLE admin_sign_ins (
    id TEXT PRIMARY KEY NOT NULL,
    state_hash TEXT NOT NULL UNIQUE,
    instance_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier_sealed BLOB NOT NULL,
    browser_binding_hash TEXT NOT NULL,
    next_path TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX admin_sign_ins_by_expiry ON admin_sign_ins (expires_at);
