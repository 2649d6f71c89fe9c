"""The cxprobe exception tree, in one place.

    CxprobeError                 base of everything cxprobe raises on purpose
    ├── ConfigError              a configuration file is wrong (cxprobe.errors)
    └── ProbeError               a probe could not complete a contact; maps to a run outcome
        ├── ContactRejected      the channel refused the contact (bounce, 5xx)      -> "failed"
        │   └── OptedOut         the recipient asked for no more contacts, or cannot
        │                        take any for good (STOP, 21610, a permanent bounce)
        ├── ChannelUnavailable   the channel or its provider could not be reached   -> "error"
        ├── ProbeTimeout         a step the runner timed out (connect, send)        -> "error"
        └── ProviderError        the provider answered with an error                -> "error"

Probes are the bottom layer, so the tree is rooted here; :mod:`cxprobe.errors` re-exports it.
"""

from __future__ import annotations

from typing import ClassVar


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """Short error text, safe to log or show: the type, then the message if it has one.

    Callers pass only exceptions whose text carries no secrets (the mail libraries never echo
    passwords); the limit keeps a server's long answer from flooding the log.
    """
    text = str(exc)
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__


class CxprobeError(Exception):
    """Base class for errors cxprobe reports to its user."""


class ProbeError(CxprobeError):
    """A probe could not complete a contact. Each subclass maps to one run outcome."""

    outcome: ClassVar[str] = "error"


class ContactRejected(ProbeError):
    """The channel refused the contact (a bounce, an SMTP 5xx, an API refusal)."""

    outcome = "failed"


class ChannelUnavailable(ProbeError):
    """The channel or its provider could not be reached."""


class ProbeTimeout(ProbeError):
    """A step of the probe took longer than the runner allowed."""


class ProviderError(ProbeError):
    """The provider answered with an error that is not a refusal of the contact."""


class OptedOut(ContactRejected):
    """The recipient asked not to be contacted again (an SMS STOP, Twilio error 21610), or
    cannot be contacted for good (an email's permanent-failure bounce). The run is ``failed``
    and the runner pauses contacts to the recipient until an operator clears it
    (``cxprobe optout clear``)."""

    def __init__(self, message: str, *, recipient: str) -> None:
        super().__init__(message)
        self.recipient = recipient
