"""Configuration models of the email channel (``channels.email`` and a target's email address).

Kept apart from :mod:`probes.email.channel` so the IMAP watcher can use them without importing the
channel driver.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from probes.settings import Strict

TlsMode = Literal["none", "starttls", "implicit"]


class SmtpSettings(Strict):
    """How the probe mailbox submits its contacts."""

    host: str = Field(description="SMTP submission server host name.")
    port: int = Field(ge=1, le=65535, description="SMTP port: usually 587 (starttls) or 465.")
    tls: TlsMode = Field(
        description="none: plain text; starttls: upgrade after connecting (port 587); "
        "implicit: TLS from the first byte (port 465)."
    )
    username: str | None = Field(default=None, description="Login name; omit for no SMTP AUTH.")
    password: SecretStr | None = Field(default=None, description="Login password (use ${ENV_VAR}).")
    ca_file: Path | None = Field(
        default=None, description="Extra CA certificate (PEM) to trust, e.g. a private or test CA."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds allowed for each SMTP step.")


class ImapSettings(Strict):
    """How the probe mailbox is watched for replies."""

    host: str = Field(description="IMAP server host name.")
    port: int = Field(ge=1, le=65535, description="IMAP port: usually 993 (implicit) or 143.")
    tls: TlsMode = Field(
        description="none: plain text; starttls: upgrade after connecting (port 143); "
        "implicit: TLS from the first byte (port 993)."
    )
    username: str = Field(description="IMAP login name.")
    password: SecretStr = Field(description="IMAP login password (use ${ENV_VAR}).")
    ca_file: Path | None = Field(
        default=None, description="Extra CA certificate (PEM) to trust, e.g. a private or test CA."
    )
    folder: str = Field(default="INBOX", description="Folder the replies are delivered to.")
    idle: bool = Field(default=True, description="Use IMAP IDLE when the server offers it.")
    poll_interval: float = Field(
        default=30.0, gt=0, description="Seconds between checks when IDLE is missing or disabled."
    )
    idle_renew: float = Field(
        default=300.0,
        gt=0,
        le=29 * 60,
        description="Seconds after which IDLE is re-issued (RFC 2177 allows at most 29 min).",
    )
    reconnect_max_backoff: float = Field(
        default=60.0, gt=0, description="Longest wait in seconds between reconnection attempts."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds allowed for each IMAP command.")
    max_message_bytes: int = Field(
        # 1 MiB: a reply's own text is at its top; Python's email parser peaks at several
        # times its input, so 4 MiB cost the monitor ~35 MiB per large reply (BENCHMARKS.md).
        default=1024 * 1024,
        ge=64 * 1024,
        description="Bytes of a reply that are parsed (its headers and text); the whole message "
        "is still kept as evidence, spooled to a file under monitor.data_dir and copied into "
        "the store in chunks.",
    )
    parse_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a reply's parsing may take (off the event loop) before only its "
        "headers are read.",
    )


class Mailbox(Strict):
    """One probe mailbox: the test customer's address and its servers."""

    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="The probe's own email address.")
    smtp: SmtpSettings = Field(description="Outgoing mail (submission) server.")
    imap: ImapSettings = Field(description="Incoming mail server watched for replies.")

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


class EmailChannelSettings(Strict):
    """The ``channels.email`` section: the probe's mailboxes, by name."""

    mailboxes: dict[str, Mailbox] = Field(
        min_length=1, description="Probe mailboxes by name; targets refer to them by name."
    )


class EmailAddress(Strict):
    """A target's ``channels.email`` section: where and from which mailbox to write."""

    to: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+$", description="The support address contacts are sent to."
    )
    mailbox: str = Field(description="Name of the probe mailbox (a `channels.email` key).")
    cc: list[str] = Field(default_factory=list, description="Extra recipients, rarely needed.")

    def check_against(self, settings: EmailChannelSettings | None) -> str | None:
        """A problem with this address given the ``channels.email`` section, if any."""
        if settings is None:
            return "the target has an email address but there is no 'channels.email' section"
        if self.mailbox not in settings.mailboxes:
            return (
                f"mailbox {self.mailbox!r} is not defined under channels.email.mailboxes "
                f"(defined: {', '.join(sorted(settings.mailboxes))})"
            )
        return None


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context trusting the system CAs plus ``ca_file``."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context
