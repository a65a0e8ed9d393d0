-- Connections that hold a GitLab access token (personal, project or group) instead of an
-- OAuth grant. Their refresh-token column seals an empty token; labgate rotates the access
-- token itself through GitLab's self-rotation.
ALTER TABLE connections ADD COLUMN kind TEXT NOT NULL DEFAULT 'oauth';
-- GitLab's id of the access token held now (it changes with each rotation).
ALTER TABLE connections ADD COLUMN access_token_id TEXT;
-- The token cannot rotate itself (neither `api` nor `self_rotate`): it is announced before
-- it expires instead.
ALTER TABLE connections ADD COLUMN rotation_impossible BOOLEAN NOT NULL DEFAULT FALSE;
-- When `connection.expiring` was written for the token held now.
ALTER TABLE connections ADD COLUMN expiry_announced_at TIMESTAMP;
