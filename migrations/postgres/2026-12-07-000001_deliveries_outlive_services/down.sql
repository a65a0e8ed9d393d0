DELETE FROM webhook_deliveries WHERE service_id IS NULL;
ALTER TABLE webhook_deliveries DROP COLUMN secret_sealed;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_service_id_fkey;
ALTER TABLE webhook_deliveries ALTER COLUMN service_id SET NOT NULL;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_service_id_fkey
    FOREIGN KEY (service_id) REFERENCES services(id) ON DELETE CASCADE;
