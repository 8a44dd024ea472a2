ALTER TABLE collections
    ALTER CONSTRAINT collections_prescription_patient_fkey NOT DEFERRABLE,
    ALTER CONSTRAINT collections_appointment_patient_fkey NOT DEFERRABLE;
DROP INDEX patients_merged_into;
ALTER TABLE patients DROP CONSTRAINT patients_not_merged_into_itself, DROP COLUMN merged_into;
