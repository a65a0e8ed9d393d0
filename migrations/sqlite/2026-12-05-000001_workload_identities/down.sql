ALTER TABLE services DROP COLUMN identities;
