"""Fault switches of the Twilio sandbox: API throttling and errors, failed and unanswered calls.

Request faults count down ("the next N requests"), so a test can show a client retrying past a
429 or a 503 without timing anything. Call results either count down or, with no count, hold
until they are cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sandbox.twilio.profile import CallResult, TwilioFaults


@dataclass(frozen=True)
class RequestFault:
    status: Literal[429, 500, 503]
    code: int
    message: str
    retry_after: int | None = None


class Faults:
    def __init__(self, initial: TwilioFaults) -> None:
        self.outage = initial.outage
        self._call_result: CallResult | None = initial.call_result
        self._call_result_left: int | None = None  # None: every call until cleared
        self._rate_limited = initial.rate_limit
        self._retry_after = 1
        self._server_errors = initial.server_error
        self._server_error_status: Literal[500, 503] = initial.server_error_status

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        """The next count API requests get 429 Too Many Requests with Retry-After."""
        self._rate_limited, self._retry_after = count, retry_after

    def server_error(self, count: int, status: Literal[500, 503] = 500) -> None:
        self._server_errors, self._server_error_status = count, status

    def set_call_result(self, result: CallResult | None, count: int | None = None) -> None:
        """The next count calls (all of them when count is None) end busy/failed/no-answer."""
        self._call_result, self._call_result_left = result, count

    def take_request_fault(self) -> RequestFault | None:
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return RequestFault(429, 20429, "Too Many Requests", self._retry_after)
        if self._server_errors > 0:
            self._server_errors -= 1
            if self._server_error_status == 503:
                return RequestFault(503, 20503, "Service Unavailable")
            return RequestFault(500, 20500, "Internal Server Error")
        return None

    def take_call_result(self) -> CallResult | None:
        result = self._call_result
        if result is not None and self._call_result_left is not None:
            self._call_result_left -= 1
            if self._call_result_left <= 0:
                self._call_result, self._call_result_left = None, None
        return result

    def state(self) -> dict[str, Any]:
        return {
            "outage": self.outage,
            "call_result": self._call_result,
            "call_result_left": self._call_result_left,
            "rate_limited_requests_left": self._rate_limited,
            "retry_after_seconds": self._retry_after,
            "server_errors_left": self._server_errors,
            "server_error_status": self._server_error_status,
        }
