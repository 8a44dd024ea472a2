DROP TABLE pin_reset_codes;
