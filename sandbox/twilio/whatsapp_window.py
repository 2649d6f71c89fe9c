"""WhatsApp's customer-service window, seen from the sender the monitor uses.

WhatsApp lets a business send free-form text to a user only within 24 hours of that user's
last message to it; outside the window only an approved template goes through, and Twilio
fails a free-form message with error 63016. Here the monitor's WhatsApp sender is the
"business" and the brand's line the "user": a window opens (or restarts) whenever the brand's
line writes to the monitor's address, so a first contact must be a template, and a follow-up in
free form works once the brand has answered.

Windows are timed on the desk clock, so shifting the clock a day ahead closes them, just as the
same shift moves the line into or out of business hours.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

OUTSIDE_WINDOW = 63016
OUTSIDE_WINDOW_MESSAGE = (
    "Failed to send freeform message because you are outside the allowed window. If you want "
    "to send messages outside the window, please use a Message Template."
)


class SessionWindows:
    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._last_brand_message: dict[tuple[str, str], datetime] = {}

    def brand_wrote(self, line: str, customer: str) -> None:
        """The brand's line sent customer a message: the window opens for another 24 hours."""
        self._last_brand_message[(line, customer)] = self._now()

    def is_open(self, line: str, customer: str, hours: float) -> bool:
        since = self._last_brand_message.get((line, customer))
        return since is not None and self._now() - since < timedelta(hours=hours)

    def close(self, line: str, customer: str) -> None:
        self._last_brand_message.pop((line, customer), None)

    def open_windows(self, hours: float) -> list[dict[str, str]]:
        return [
            {"line": line, "customer": customer, "since": since.isoformat()}
            for (line, customer), since in self._last_brand_message.items()
            if self._now() - since < timedelta(hours=hours)
        ]
