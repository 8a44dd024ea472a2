DROP TABLE collection_tubes;
DROP TABLE collections;
DROP TABLE appointments;
DROP TABLE prescribed_exams;
DROP TABLE prescriptions;
DROP TABLE patients;
