DROP TABLE refresh_attempts;
