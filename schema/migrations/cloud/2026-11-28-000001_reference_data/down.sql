DROP TABLE exam_catalog;
DROP TABLE tube_types;
DROP TABLE devices;
DROP TABLE staff;
DROP TABLE gateways;
DROP TABLE labs;
