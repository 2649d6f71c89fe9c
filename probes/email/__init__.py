"""The email channel: SMTP out, one IMAP watcher per probe mailbox in, RFC 3834-aware parsing."""

from probes.email.channel import EMAIL

__all__ = ["EMAIL"]
