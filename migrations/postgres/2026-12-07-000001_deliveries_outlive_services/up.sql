-- A deleted service's events are still delivered: its pending deliveries keep their webhook's
-- secret, sealed and bound to their own row, and lose only their link to the service.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_service_id_fkey;
ALTER TABLE webhook_deliveries ALTER COLUMN service_id DROP NOT NULL;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_service_id_fkey
    FOREIGN KEY (service_id) REFERENCES services(id) ON DELETE SET NULL;
ALTER TABLE webhook_deliveries ADD COLUMN secret_sealed BYTEA;
