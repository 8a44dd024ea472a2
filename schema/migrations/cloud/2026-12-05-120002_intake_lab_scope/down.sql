ALTER TABLE applied_mutations
    DROP CONSTRAINT applied_mutations_pkey,
    ADD CONSTRAINT applied_mutations_pkey PRIMARY KEY (mutation_id);

ALTER TABLE collection_tubes
    DROP CONSTRAINT collection_tubes_lab_barcode_key,
    ADD CONSTRAINT collection_tubes_barcode_key UNIQUE (barcode),
    DROP CONSTRAINT collection_tubes_collection_lab_fkey,
    DROP COLUMN lab_id;

DROP TRIGGER collections_device_lab ON collections;
DROP FUNCTION collections_device_lab();

ALTER TABLE collections
    DROP CONSTRAINT collections_prescription_lab_fkey,
    DROP CONSTRAINT collections_prescription_patient_fkey,
    DROP CONSTRAINT collections_appointment_lab_fkey,
    DROP CONSTRAINT collections_appointment_patient_fkey,
    DROP CONSTRAINT collections_collected_by_lab_fkey,
    DROP CONSTRAINT collections_id_lab_key;
ALTER TABLE appointments
    DROP CONSTRAINT appointments_id_lab_key,
    DROP CONSTRAINT appointments_id_patient_key;
ALTER TABLE prescriptions
    DROP CONSTRAINT prescriptions_id_lab_key,
    DROP CONSTRAINT prescriptions_id_patient_key;
ALTER TABLE staff DROP CONSTRAINT staff_id_lab_key;
