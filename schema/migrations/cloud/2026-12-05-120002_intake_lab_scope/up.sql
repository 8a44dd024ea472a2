-- A gateway's mutations name rows by id; the lab comes from its credential. The database refuses a
-- collection whose references are not of that lab, so that the rule holds whatever the intake's code
-- does (issue 12). The intake checks the same rules first, set-wise, for precise per-item verdicts;
-- these constraints are the backstop, and it maps their names to the same reason codes.

-- What composite foreign keys need to reference.
ALTER TABLE staff ADD CONSTRAINT staff_id_lab_key UNIQUE (id, lab_id);
ALTER TABLE prescriptions
    ADD CONSTRAINT prescriptions_id_lab_key UNIQUE (id, lab_id),
    ADD CONSTRAINT prescriptions_id_patient_key UNIQUE (id, patient_id);
ALTER TABLE appointments
    ADD CONSTRAINT appointments_id_lab_key UNIQUE (id, lab_id),
    ADD CONSTRAINT appointments_id_patient_key UNIQUE (id, patient_id);
ALTER TABLE collections ADD CONSTRAINT collections_id_lab_key UNIQUE (id, lab_id);

-- A collection is recorded on one of its lab's prescriptions, for that prescription's patient (so the
-- patient is one the lab's share of the data holds: see the feed's scope), at one of its lab's
-- appointments of that patient when it names one, by a staff member of its lab. Moving a prescription
-- or an appointment that has collections to another lab is refused (the collections stay the lab's).
ALTER TABLE collections
    ADD CONSTRAINT collections_prescription_lab_fkey
        FOREIGN KEY (prescription_id, lab_id) REFERENCES prescriptions (id, lab_id),
    ADD CONSTRAINT collections_prescription_patient_fkey
        FOREIGN KEY (prescription_id, patient_id) REFERENCES prescriptions (id, patient_id),
    ADD CONSTRAINT collections_appointment_lab_fkey
        FOREIGN KEY (appointment_id, lab_id) REFERENCES appointments (id, lab_id),
    ADD CONSTRAINT collections_appointment_patient_fkey
        FOREIGN KEY (appointment_id, patient_id) REFERENCES appointments (id, patient_id),
    ADD CONSTRAINT collections_collected_by_lab_fkey
        FOREIGN KEY (collected_by, lab_id) REFERENCES staff (id, lab_id);

-- The cloud learns of tablets only from what gateways report, so an unknown device cannot be refused
-- (no foreign key); a device known as another lab's is.
CREATE FUNCTION collections_device_lab() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM devices d WHERE d.id = NEW.device_id AND d.lab_id <> NEW.lab_id) THEN
        RAISE EXCEPTION 'the device of a collection belongs to another lab'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'collections_device_lab',
                  TABLE = 'collections';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER collections_device_lab BEFORE INSERT OR UPDATE OF device_id, lab_id ON collections
    FOR EACH ROW EXECUTE FUNCTION collections_device_lab();

-- Tube barcodes are unique per lab, not across labs: a barcode one lab records never blocks another
-- lab's tube (a compromised gateway could otherwise take another lab's upcoming labels), and a lab
-- learns nothing of the barcodes other labs use. A tube is identified by its lab and its barcode.
ALTER TABLE collection_tubes ADD COLUMN lab_id uuid;
UPDATE collection_tubes t SET lab_id = c.lab_id FROM collections c WHERE c.id = t.collection_id;
ALTER TABLE collection_tubes
    ALTER COLUMN lab_id SET NOT NULL,
    ADD CONSTRAINT collection_tubes_collection_lab_fkey
        FOREIGN KEY (collection_id, lab_id) REFERENCES collections (id, lab_id) ON DELETE CASCADE,
    DROP CONSTRAINT collection_tubes_barcode_key,
    ADD CONSTRAINT collection_tubes_lab_barcode_key UNIQUE (lab_id, barcode);

-- Mutation ids are a lab's own: another lab's use of the same id neither answers with that lab's
-- outcome nor blocks it.
ALTER TABLE applied_mutations
    DROP CONSTRAINT applied_mutations_pkey,
    ADD CONSTRAINT applied_mutations_pkey PRIMARY KEY (lab_id, mutation_id);
