DROP TABLE webhook_deliveries;
DROP TABLE service_webhooks;
