DROP TABLE admin_sign_ins;
ALTER TABLE admin_sessions DROP COLUMN actor;
