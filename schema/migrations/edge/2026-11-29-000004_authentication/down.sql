DROP TABLE staff_revocations;
DROP TABLE signing_keys;
DROP TABLE admin_sessions;
DROP TABLE login_failures;
DROP TABLE refresh_tokens;
DROP TABLE auth_sessions;
DROP TABLE enrollment_codes;
