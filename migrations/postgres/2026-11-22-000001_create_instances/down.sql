DROP TABLE labgate_meta;
DROP TABLE instances;
