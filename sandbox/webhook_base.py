"""`python -m sandbox --webhook-base-url URL`: where the monitor's webhooks are, given once.

The sandbox posts to the monitor: SMS and WhatsApp messages to its numbers
(`messaging.inbound_webhooks`) and the generic platform's replies (`generic_peer.webhook_url`).
A profile may name those as paths (`/webhooks/twilio/sms`) under the base URL, or as whole URLs;
with a base URL, whole URLs keep their path and take the base's scheme, host and port, so one
profile serves a monitor on any port. (Twilio's call status callbacks need nothing here: every
call names its own StatusCallback URL, as with the real Twilio.)
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from sandbox.profile import Profile, ProfileError

_BASE = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")


def check_base_url(base: str) -> str:
    """base without a trailing slash; ValueError if it is not http(s)://host[:port][/prefix]."""
    if not _BASE.match(base):
        raise ValueError(
            f"--webhook-base-url {base!r} is not an http(s) URL like http://127.0.0.1:9464"
        )
    return base.rstrip("/")


def with_webhook_base(profile: Profile, base: str | None, source: Path) -> Profile:
    """The profile with every webhook URL absolute: paths joined to base, whole URLs moved
    under it. ProfileError (naming the file and key) for a path when there is no base."""
    generic = profile.generic_peer
    messaging = profile.messaging
    if generic is not None and generic.webhook_url is not None:
        url = _resolve(generic.webhook_url, base, source, "generic_peer.webhook_url")
        generic = generic.model_copy(update={"webhook_url": url})
    if messaging is not None:
        hooks = {
            number: None
            if url is None
            else _resolve(url, base, source, f"messaging.inbound_webhooks[{number!r}]")
            for number, url in messaging.inbound_webhooks.items()
        }
        messaging = messaging.model_copy(update={"inbound_webhooks": hooks})
    return profile.model_copy(update={"generic_peer": generic, "messaging": messaging})


def _resolve(url: str, base: str | None, source: Path, key: str) -> str:
    if url.startswith("/"):
        if base is None:
            raise ProfileError(
                f"{source}: {key} is the path {url!r}; start the sandbox with "
                "--webhook-base-url http://HOST:PORT (the monitor's) or give a whole URL"
            )
        return base + url
    if base is None:
        return url
    parts = urlsplit(url)
    return base + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
