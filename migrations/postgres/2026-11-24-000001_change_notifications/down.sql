DROP TRIGGER instances_changed ON instances;
DROP TRIGGER services_changed ON services;
DROP TRIGGER connections_changed ON connections;
DROP FUNCTION labgate_notify_change();
