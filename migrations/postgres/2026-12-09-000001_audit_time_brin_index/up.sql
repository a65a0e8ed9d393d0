-- The audit log only grows, and in time order: a BRIN index (the range of `at` in each block of
-- rows) finds events since a time as the B-tree did, and costs almost nothing to keep, where
-- the B-tree was a second index insertion for every event, one per handout.
DROP INDEX audit_events_by_time;
CREATE INDEX audit_events_by_time ON audit_events USING brin (at);
