"""The cxprobe sandbox: a local reference contact centre for demos and tests.

It stands in for the outside world, so it imports nothing from cxprobe, probes, scenarios or
exporters: shared code would hide a bug on both sides.

Four peers, one package each: `mail/` (MailDesk: Dovecot behind an SMTP front), `chat/`
(ChatSite), `twilio/` (TwilioSandbox: calls, SMS and WhatsApp) and `generic/` (GenericPeer).
Each is a `SandboxPeer` (peer.py: lifecycle, ground truth, clock and business hours) serving
one `HttpServer` (server.py, 127.0.0.1 only) with `ControlRoutes` (control.py: state, clock,
ground truth, switches, the counted request faults of faults.py) plus its own routes.
`python -m sandbox` runs those its profile (profile.py) configures.
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
