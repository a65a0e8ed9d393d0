DROP TABLE connections;
DROP TABLE connect_sessions;
DROP TABLE services;
