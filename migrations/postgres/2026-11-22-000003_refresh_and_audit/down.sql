DROP TABLE audit_events;
ALTER TABLE connections DROP COLUMN status_reason, DROP COLUMN refresh_in_flight_since,
    DROP COLUMN refresh_lease_until, DROP COLUMN refresh_lease_owner;
