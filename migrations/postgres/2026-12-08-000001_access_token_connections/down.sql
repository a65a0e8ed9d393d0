ALTER TABLE connections DROP COLUMN expiry_announced_at;
ALTER TABLE connections DROP COLUMN rotation_impossible;
ALTER TABLE connections DROP COLUMN access_token_id;
ALTER TABLE connections DROP COLUMN kind;
