DROP TABLE prescription_documents;
DROP TABLE paper_prescriptions;
