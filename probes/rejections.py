"""Counting and logging webhook requests refused (a bad signature; a stream for no call here).

Anyone on the internet can post to a public webhook, so refusals are counted (``/healthz`` and
the ``cxprobe_webhooks_rejected_total`` metric) and logged sparingly: the first few, then one
in every hundred, so a flood cannot drown the monitor's log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

#: Refusals logged one by one before logging thins out.
LOG_FIRST = 10
#: After that, one refusal in this many is logged (with the running count).
LOG_EVERY = 100


class Rejections:
    def __init__(self, logger: logging.Logger, on_rejected: Callable[[], None]) -> None:
        self._log = logger
        self._on_rejected = on_rejected
        self.count = 0

    def record(self, reason: str, **details: object) -> None:
        self.count += 1
        self._on_rejected()
        if self.count <= LOG_FIRST or self.count % LOG_EVERY == 0:
            self._log.warning(
                "webhook rejected: %s (%d so far)", reason, self.count, extra=dict(details)
            )
