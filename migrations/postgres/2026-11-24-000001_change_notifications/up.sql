-- Every labgate process sharing this database remembers what handouts read; these triggers
-- tell them, as each change commits, that something a handout reads has changed. Lease and
-- in-flight marks do not matter to handouts, so connections notify only for the columns that do.
CREATE FUNCTION labgate_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('labgate_changes', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER connections_changed
    AFTER INSERT OR DELETE OR UPDATE OF access_token_sealed, expires_at, status, scopes, updated_at
    ON connections FOR EACH STATEMENT EXECUTE FUNCTION labgate_notify_change();
CREATE TRIGGER services_changed
    AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION labgate_notify_change();
CREATE TRIGGER instances_changed
    AFTER INSERT OR UPDATE OR DELETE ON instances
    FOR EACH STATEMENT EXECUTE FUNCTION labgate_notify_change();
