// @generated automatically by Diesel CLI.

diesel::table! {
    admin_sessions (id_sha256) {
        id_sha256 -> Bytea,
        staff_id -> Uuid,
        csrf_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    appointment_window (only_row) {
        only_row -> Bool,
        ends_at -> Timestamptz,
        updated_at -> Timestamptz,
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
    }
}

diesel::table! {
    audit_anchors (chain_seq) {
        chain_seq -> Int8,
        hash -> Bytea,
        first_chain_seq -> Int8,
        purged_rows -> Int8,
        cutoff -> Timestamptz,
        purged_at -> Timestamptz,
    }
}

diesel::table! {
    audit_checkpoints (chain_seq) {
        chain_seq -> Int8,
        chain_hash -> Bytea,
        record_count -> Int8,
        prev_chain_seq -> Nullable<Int8>,
        prev_chain_hash -> Nullable<Bytea>,
        signed_at -> Timestamptz,
        signature -> Bytea,
        signer_cert_sha256 -> Text,
        mutation_id -> Uuid,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> Int8,
        at -> Timestamptz,
        lab_id -> Uuid,
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
    audit_pending (id) {
        id -> Int8,
        at -> Timestamptz,
        lab_id -> Uuid,
        staff_id -> Nullable<Uuid>,
        device_id -> Nullable<Uuid>,
        action -> Text,
        patient_id -> Nullable<Uuid>,
        resource -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    audit_retention (singleton) {
        singleton -> Bool,
        months -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    auth_sessions (id) {
        id -> Uuid,
        device_id -> Uuid,
        staff_id -> Uuid,
        cert_sha256 -> Nullable<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    change_log (position) {
        position -> Int8,
        entity -> Text,
        entity_id -> Uuid,
        op -> Text,
        changed_at -> Timestamptz,
        xid -> Int8,
    }
}

diesel::table! {
    collection_tubes (collection_id, barcode) {
        collection_id -> Uuid,
        barcode -> Text,
        tube_type -> Text,
    }
}

diesel::table! {
    collection_voids (collection_id) {
        collection_id -> Uuid,
        reason -> Text,
        voided_by -> Uuid,
        device_id -> Uuid,
        voided_at -> Timestamptz,
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
    }
}

diesel::table! {
    conflicts (id) {
        id -> Uuid,
        outbox_seq -> Int8,
        mutation_id -> Uuid,
        entity_key -> Text,
        local_payload -> Jsonb,
        server_version -> Nullable<Int8>,
        server_state -> Nullable<Jsonb>,
        detected_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        resolved_by -> Nullable<Uuid>,
        resolution -> Nullable<Text>,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> Uuid,
        outbox_seq -> Int8,
        mutation_id -> Uuid,
        lane -> Int2,
        kind -> Text,
        entity_key -> Text,
        payload -> Jsonb,
        reason -> Text,
        attempts -> Int4,
        quarantined_at -> Timestamptz,
        replayed_at -> Nullable<Timestamptz>,
        discarded_at -> Nullable<Timestamptz>,
        handled_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    devices (id) {
        id -> Uuid,
        label -> Text,
        status -> Text,
        secret_hash -> Text,
        cert_sha256 -> Nullable<Text>,
        enrolled_at -> Timestamptz,
        enrolled_by -> Nullable<Uuid>,
        last_seen_at -> Nullable<Timestamptz>,
        app_version -> Nullable<Text>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    enrollment_codes (code_sha256) {
        code_sha256 -> Bytea,
        created_by -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        device_id -> Nullable<Uuid>,
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
    }
}

diesel::table! {
    idempotency_keys (device_id, staff_id, idempotency_key) {
        device_id -> Uuid,
        idempotency_key -> Text,
        request_sha256 -> Bytea,
        response_status -> Int2,
        response_body -> Jsonb,
        created_at -> Timestamptz,
        staff_id -> Uuid,
    }
}

diesel::table! {
    labs (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        kind -> Text,
        version -> Int8,
        slot_minutes -> Int2,
        lab_places -> Int2,
        opening_hours -> Jsonb,
        home_slot_minutes -> Int2,
        home_hours -> Jsonb,
    }
}

diesel::table! {
    login_failures (scope) {
        scope -> Text,
        failures -> Int4,
        locked_until -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        id -> Uuid,
        kind -> Text,
        login -> Text,
        device_id -> Nullable<Uuid>,
        source -> Nullable<Text>,
        lockouts -> Int4,
    }
}

diesel::table! {
    outbox (seq) {
        seq -> Int8,
        mutation_id -> Uuid,
        lane -> Int2,
        kind -> Text,
        entity_key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        upstream -> Nullable<Text>,
        outcome -> Nullable<Text>,
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
        recorded_by -> Uuid,
        device_id -> Uuid,
        recorded_at -> Timestamptz,
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
        birth_family_key -> Nullable<Text>,
        used_family_key -> Nullable<Text>,
        merged_into -> Nullable<Uuid>,
    }
}

diesel::table! {
    pin_reset_codes (staff_id) {
        staff_id -> Uuid,
        code_sha256 -> Bytea,
        created_by -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        device_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    prescribed_exams (prescription_id, exam_code) {
        prescription_id -> Uuid,
        exam_code -> Text,
    }
}

diesel::table! {
    prescription_documents (id) {
        id -> Uuid,
        prescription_id -> Uuid,
        media_type -> Text,
        size_bytes -> Int4,
        sha256 -> Bytea,
        content -> Bytea,
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
    }
}

diesel::table! {
    reconciliation_runs (id) {
        id -> Int8,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        ok -> Nullable<Bool>,
        tables -> Jsonb,
        repaired_rows -> Int8,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_sha256) {
        token_sha256 -> Bytea,
        session_id -> Uuid,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        secret -> Nullable<Bytea>,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
        sealed_secret -> Nullable<Bytea>,
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
    }
}

diesel::table! {
    staff_revocations (staff_id) {
        staff_id -> Uuid,
        revoked_at -> Timestamptz,
        revoked_by -> Nullable<Uuid>,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    storage_samples (at) {
        at -> Timestamptz,
        database_bytes -> Int8,
    }
}

diesel::table! {
    sync_checkpoints (stream) {
        stream -> Text,
        position -> Int8,
        updated_at -> Timestamptz,
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
    }
}

diesel::joinable!(collection_tubes -> collections (collection_id));
diesel::joinable!(collection_voids -> collections (collection_id));
diesel::joinable!(pin_reset_codes -> staff (staff_id));
diesel::joinable!(prescribed_exams -> prescriptions (prescription_id));
diesel::joinable!(prescription_documents -> paper_prescriptions (prescription_id));
diesel::joinable!(refresh_tokens -> auth_sessions (session_id));

diesel::allow_tables_to_appear_in_same_query!(
    admin_sessions,
    appointment_window,
    appointments,
    audit_anchors,
    audit_checkpoints,
    audit_log,
    audit_pending,
    audit_retention,
    auth_sessions,
    change_log,
    collection_tubes,
    collection_voids,
    collections,
    conflicts,
    dead_letters,
    devices,
    enrollment_codes,
    exam_catalog,
    idempotency_keys,
    labs,
    login_failures,
    outbox,
    paper_prescriptions,
    patients,
    pin_reset_codes,
    prescribed_exams,
    prescription_documents,
    prescriptions,
    reconciliation_runs,
    refresh_tokens,
    signing_keys,
    staff,
    staff_revocations,
    storage_samples,
    sync_checkpoints,
    tube_types,
);
