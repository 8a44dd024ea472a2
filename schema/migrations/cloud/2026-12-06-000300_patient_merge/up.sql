-- A patient merged by the LIS into another (FHIR Patient.link replaced-by): the record stays, marked,
-- so that whoever still holds the old id (a tablet, a gateway's outbox) is led to the survivor.
ALTER TABLE patients
    ADD COLUMN merged_into uuid REFERENCES patients (id),
    ADD CONSTRAINT patients_not_merged_into_itself CHECK (merged_into <> id);
CREATE INDEX patients_merged_into ON patients (merged_into) WHERE merged_into IS NOT NULL;

-- The merge moves the old patient's prescriptions, appointments and collections to the survivor in
-- one transaction; a collection names its patient through both its prescription and its appointment,
-- so those two checks wait for the commit during a merge (and only then: IMMEDIATE otherwise).
ALTER TABLE collections
    ALTER CONSTRAINT collections_prescription_patient_fkey DEFERRABLE INITIALLY IMMEDIATE,
    ALTER CONSTRAINT collections_appointment_patient_fkey DEFERRABLE INITIALLY IMMEDIATE;
