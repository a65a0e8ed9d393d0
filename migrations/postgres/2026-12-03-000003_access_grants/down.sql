DROP TABLE access_grants;
ALTER TABLE services DROP COLUMN max_access;
ALTER TABLE services DROP COLUMN projects;
