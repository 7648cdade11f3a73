"""A real Dovecot IMAP server for tests and load tests: install, run, provision, delay."""
