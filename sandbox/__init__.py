"""The cxprobe sandbox: a local reference contact centre for demos and tests.

It stands in for the outside world, so it imports nothing from cxprobe, probes, scenarios or
exporters: shared code would hide a bug on both sides.
"""

from sandbox.mail.desk import MailDesk
from sandbox.mail.dovecot import Dovecot, DovecotError, MailUser
from sandbox.profile import Profile, ProfileError, load_profile

__all__ = [
    "Dovecot",
    "DovecotError",
    "MailDesk",
    "MailUser",
    "Profile",
    "ProfileError",
    "load_profile",
]
