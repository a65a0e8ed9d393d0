-- When GitLab first answered invalid_client for this instance's OAuth application (its secret
-- renewed or its application deleted); cleared once a check passes with new credentials.
ALTER TABLE instances ADD COLUMN client_rejected_at TIMESTAMP;
