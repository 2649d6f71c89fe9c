"""Counted request faults, shared by the sandbox's HTTP APIs (the Twilio sandbox, the generic peer).

They count down ("the next N requests get 429 with Retry-After, or a 500/503"), so a test can
show a client retrying past a fault without timing anything. Each API answers a fault in its
own provider's error shape; this only decides which fault the next request gets.
"""

from __future__ import annotations

from typing import Any, Literal

ServerErrorStatus = Literal[500, 503]
RequestFault = Literal[429, 500, 503]


class RequestFaults:
    def __init__(
        self,
        *,
        rate_limit: int = 0,
        retry_after: int = 1,
        server_error: int = 0,
        server_error_status: ServerErrorStatus = 500,
    ) -> None:
        self._rate_limited = rate_limit
        self._retry_after = retry_after
        self._server_errors = server_error
        self._server_error_status: ServerErrorStatus = server_error_status

    @property
    def retry_after(self) -> int:
        """Seconds a rate-limited request is told to wait (its Retry-After header)."""
        return self._retry_after

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        """The next count requests get 429 Too Many Requests with Retry-After."""
        self._rate_limited, self._retry_after = count, retry_after

    def server_error(self, count: int, status: int = 500) -> None:
        """The next count requests (after any rate-limited ones) get status, 500 or 503."""
        if status not in (500, 503):
            raise ValueError(f"status must be 500 or 503, not {status}")
        self._server_errors, self._server_error_status = count, 503 if status == 503 else 500

    def take(self) -> RequestFault | None:
        """The fault the request being answered gets, if any; counts it down."""
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return 429
        if self._server_errors > 0:
            self._server_errors -= 1
            return self._server_error_status
        return None

    def state(self) -> dict[str, Any]:
        return {
            "rate_limited_requests_left": self._rate_limited,
            "retry_after_seconds": self._retry_after,
            "server_errors_left": self._server_errors,
            "server_error_status": self._server_error_status,
        }
