DROP TABLE appointments;
DROP TABLE prescribed_exams;
DROP TABLE prescriptions;
DROP TABLE patients;
DROP TABLE exam_catalog;
DROP TABLE tube_types;
DROP TABLE staff;
DROP TABLE labs;
