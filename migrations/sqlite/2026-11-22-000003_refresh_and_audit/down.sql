DROP TABLE audit_events;
ALTER TABLE connections DROP COLUMN status_reason;
ALTER TABLE connections DROP COLUMN refresh_in_flight_since;
ALTER TABLE connections DROP COLUMN refresh_lease_until;
ALTER TABLE connections DROP COLUMN refresh_lease_owner;
