DROP TABLE appointment_window;
