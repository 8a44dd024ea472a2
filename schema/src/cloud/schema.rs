// @generated automatically by Diesel CLI.

diesel::table! {
    applied_mutations (lab_id, mutation_id) {
        mutation_id -> Uuid,
        lab_id -> Uuid,
        kind -> Text,
        outcome -> Text,
        detail -> Nullable<Jsonb>,
        applied_at -> Timestamptz,
    }
}

diesel::table! {
    appointments (id) {
        id -> Uuid,
        lab_id -> Uuid,
        patient_id -> Uuid,
        prescription_id -> Nullable<Uuid>,
        kind -> Text,
        scheduled_at -> Timestamptz,
        duration_min -> Int2,
        address_line -> Nullable<Text>,
        postal_code -> Nullable<Text>,
        city -> Nullable<Text>,
        access_notes -> Nullable<Text>,
        assigned_staff_id -> Nullable<Uuid>,
        round_position -> Nullable<Int2>,
        status -> Text,
        status_reason -> Nullable<Text>,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    audit_checkpoints (lab_id, chain_seq) {
        lab_id -> Uuid,
        chain_seq -> Int8,
        chain_hash -> Bytea,
        record_count -> Int8,
        signed_at -> Timestamptz,
        signature -> Bytea,
        received_at -> Timestamptz,
        continuity_ok -> Bool,
        prev_chain_seq -> Nullable<Int8>,
        prev_chain_hash -> Nullable<Bytea>,
        gateway_id -> Nullable<Uuid>,
        mutation_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> Int8,
        at -> Timestamptz,
        lab_id -> Nullable<Uuid>,
        actor -> Text,
        staff_id -> Nullable<Uuid>,
        device_id -> Nullable<Uuid>,
        action -> Text,
        patient_id -> Nullable<Uuid>,
        resource -> Nullable<Text>,
        request_id -> Nullable<Text>,
        chain_seq -> Nullable<Int8>,
        prev_hash -> Nullable<Bytea>,
        hash -> Nullable<Bytea>,
    }
}

diesel::table! {
    change_log (position) {
        position -> Int8,
        entity -> Text,
        entity_id -> Text,
        lab_id -> Nullable<Uuid>,
        op -> Text,
        changed_at -> Timestamptz,
    }
}

diesel::table! {
    collection_tubes (collection_id, barcode) {
        collection_id -> Uuid,
        barcode -> Text,
        tube_type -> Text,
        lab_id -> Uuid,
    }
}

diesel::table! {
    collection_voids (collection_id) {
        collection_id -> Uuid,
        lab_id -> Uuid,
        reason -> Text,
        voided_by -> Uuid,
        device_id -> Nullable<Uuid>,
        voided_at -> Timestamptz,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    collections (id) {
        id -> Uuid,
        lab_id -> Uuid,
        patient_id -> Uuid,
        appointment_id -> Nullable<Uuid>,
        prescription_id -> Uuid,
        collected_at -> Timestamptz,
        collected_by -> Uuid,
        device_id -> Uuid,
        identity_checked -> Bool,
        identity_check_method -> Nullable<Text>,
        comments -> Nullable<Text>,
        recorded_at -> Timestamptz,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    devices (id) {
        id -> Uuid,
        lab_id -> Uuid,
        label -> Text,
        status -> Text,
        enrolled_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_seen_at -> Nullable<Timestamptz>,
        app_version -> Nullable<Text>,
        reported_at -> Timestamptz,
    }
}

diesel::table! {
    exam_catalog (code) {
        code -> Text,
        label -> Text,
        tube_type -> Text,
        volume_ul -> Int4,
        fasting -> Bool,
        active -> Bool,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    feed_horizon (singleton) {
        singleton -> Bool,
        horizon -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    fhir_identifiers (resource_type, system, value) {
        resource_type -> Text,
        system -> Text,
        value -> Text,
        resource_id -> Uuid,
    }
}

diesel::table! {
    fhir_subscriptions (id) {
        id -> Uuid,
        client_id -> Uuid,
        criteria -> Text,
        endpoint -> Text,
        active -> Bool,
        cursor -> Int8,
        failures -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    gateways (id) {
        id -> Uuid,
        lab_id -> Uuid,
        cert_serial -> Text,
        cert_sha256 -> Text,
        cert_not_after -> Timestamptz,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_contact_at -> Nullable<Timestamptz>,
        reported_state -> Nullable<Text>,
        reported_backlog -> Nullable<Int8>,
        reported_oldest_unsent_s -> Nullable<Int8>,
        reported_feed_lag_s -> Nullable<Int8>,
        cert_pem -> Nullable<Text>,
    }
}

diesel::table! {
    integration_clients (id) {
        id -> Uuid,
        name -> Text,
        scopes -> Text,
        cert_serial -> Text,
        cert_sha256 -> Text,
        cert_not_after -> Timestamptz,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    labs (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        kind -> Text,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        slot_minutes -> Int2,
        lab_places -> Int2,
        opening_hours -> Jsonb,
        home_slot_minutes -> Int2,
        home_hours -> Jsonb,
    }
}

diesel::table! {
    paper_prescriptions (id) {
        id -> Uuid,
        patient_id -> Uuid,
        lab_id -> Uuid,
        prescriber_name -> Nullable<Text>,
        prescriber_rpps -> Nullable<Text>,
        issued_on -> Date,
        notes -> Nullable<Text>,
        status -> Text,
        recorded_by -> Nullable<Uuid>,
        device_id -> Nullable<Uuid>,
        recorded_at -> Timestamptz,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    patients (id) {
        id -> Uuid,
        nir -> Nullable<Text>,
        ins_oid -> Nullable<Text>,
        identity_status -> Text,
        birth_family_name -> Text,
        birth_given_names -> Text,
        first_given_name -> Text,
        used_family_name -> Nullable<Text>,
        used_given_name -> Nullable<Text>,
        birth_date -> Date,
        sex -> Text,
        birth_place_code -> Nullable<Text>,
        phone -> Nullable<Text>,
        address_line -> Nullable<Text>,
        postal_code -> Nullable<Text>,
        city -> Nullable<Text>,
        version -> Int8,
        updated_at -> Timestamptz,
        identity_method -> Nullable<Text>,
        identity_validation_mode -> Nullable<Text>,
        registered_lab_id -> Nullable<Uuid>,
        registered_at -> Nullable<Timestamptz>,
        merged_into -> Nullable<Uuid>,
    }
}

diesel::table! {
    practitioners (id) {
        id -> Uuid,
        login -> Text,
        rpps -> Nullable<Text>,
        display_name -> Text,
        active -> Bool,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    prescribed_exams (prescription_id, exam_code) {
        prescription_id -> Uuid,
        exam_code -> Text,
    }
}

diesel::table! {
    prescription_document_chunks (document_id, chunk_index) {
        document_id -> Uuid,
        chunk_index -> Int4,
        data -> Bytea,
    }
}

diesel::table! {
    prescription_documents (id) {
        id -> Uuid,
        prescription_id -> Uuid,
        lab_id -> Uuid,
        patient_id -> Uuid,
        media_type -> Text,
        size_bytes -> Int4,
        sha256 -> Bytea,
        chunk_count -> Int4,
        content -> Nullable<Bytea>,
        sha1 -> Nullable<Bytea>,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    prescriptions (id) {
        id -> Uuid,
        patient_id -> Uuid,
        lab_id -> Uuid,
        prescriber_name -> Text,
        prescriber_rpps -> Text,
        issued_on -> Date,
        fasting -> Bool,
        status -> Text,
        notes -> Nullable<Text>,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    specimen_feed (position) {
        position -> Int8,
        collection_id -> Uuid,
        committed_at -> Timestamptz,
    }
}

diesel::table! {
    staff (id) {
        id -> Uuid,
        lab_id -> Uuid,
        login -> Text,
        display_name -> Text,
        role -> Text,
        pin_hash -> Text,
        password_hash -> Nullable<Text>,
        active -> Bool,
        version -> Int8,
        updated_at -> Timestamptz,
        practitioner_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    tube_types (code) {
        code -> Text,
        label -> Text,
        cap_color -> Text,
        additive -> Nullable<Text>,
        capacity_ul -> Int4,
        draw_order -> Int2,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(applied_mutations -> labs (lab_id));
diesel::joinable!(appointments -> labs (lab_id));
diesel::joinable!(appointments -> patients (patient_id));
diesel::joinable!(appointments -> prescriptions (prescription_id));
diesel::joinable!(appointments -> staff (assigned_staff_id));
diesel::joinable!(audit_checkpoints -> gateways (gateway_id));
diesel::joinable!(audit_checkpoints -> labs (lab_id));
diesel::joinable!(collection_tubes -> collections (collection_id));
diesel::joinable!(collection_tubes -> tube_types (tube_type));
diesel::joinable!(collection_voids -> collections (collection_id));
diesel::joinable!(collection_voids -> labs (lab_id));
diesel::joinable!(collection_voids -> staff (voided_by));
diesel::joinable!(collections -> appointments (appointment_id));
diesel::joinable!(collections -> labs (lab_id));
diesel::joinable!(collections -> patients (patient_id));
diesel::joinable!(collections -> prescriptions (prescription_id));
diesel::joinable!(collections -> staff (collected_by));
diesel::joinable!(devices -> labs (lab_id));
diesel::joinable!(exam_catalog -> tube_types (tube_type));
diesel::joinable!(fhir_subscriptions -> integration_clients (client_id));
diesel::joinable!(gateways -> labs (lab_id));
diesel::joinable!(paper_prescriptions -> labs (lab_id));
diesel::joinable!(paper_prescriptions -> patients (patient_id));
diesel::joinable!(paper_prescriptions -> staff (recorded_by));
diesel::joinable!(patients -> labs (registered_lab_id));
diesel::joinable!(prescribed_exams -> exam_catalog (exam_code));
diesel::joinable!(prescribed_exams -> prescriptions (prescription_id));
diesel::joinable!(prescription_document_chunks -> prescription_documents (document_id));
diesel::joinable!(prescription_documents -> labs (lab_id));
diesel::joinable!(prescription_documents -> paper_prescriptions (prescription_id));
diesel::joinable!(prescription_documents -> patients (patient_id));
diesel::joinable!(prescriptions -> labs (lab_id));
diesel::joinable!(prescriptions -> patients (patient_id));
diesel::joinable!(specimen_feed -> collections (collection_id));
diesel::joinable!(staff -> labs (lab_id));
diesel::joinable!(staff -> practitioners (practitioner_id));

diesel::allow_tables_to_appear_in_same_query!(
    applied_mutations,
    appointments,
    audit_checkpoints,
    audit_log,
    change_log,
    collection_tubes,
    collection_voids,
    collections,
    devices,
    exam_catalog,
    feed_horizon,
    fhir_identifiers,
    fhir_subscriptions,
    gateways,
    integration_clients,
    labs,
    paper_prescriptions,
    patients,
    practitioners,
    prescribed_exams,
    prescription_document_chunks,
    prescription_documents,
    prescriptions,
    specimen_feed,
    staff,
    tube_types,
);
