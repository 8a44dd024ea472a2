DROP TABLE prescription_document_chunks;
DROP TABLE prescription_documents;
DROP TABLE paper_prescriptions;
