"""The sandbox mail desk: real Dovecot (IMAP, LMTP) behind an SMTP front, with desk logic."""
