"""Fault switches of the Twilio sandbox: API throttling and errors, failed and unanswered calls.

Request faults count down ("the next N requests", sandbox/faults.py), so a test can show a
client retrying past a 429 or a 503 without timing anything. Call results either count down or,
with no count, hold until they are cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sandbox.faults import RequestFaults
from sandbox.twilio.profile import CallResult, StreamFault, TwilioFaults


@dataclass(frozen=True)
class RequestFault:
    status: Literal[429, 500, 503]
    code: int
    message: str
    retry_after: int | None = None


class Faults(RequestFaults):
    def __init__(self, initial: TwilioFaults) -> None:
        super().__init__(
            rate_limit=initial.rate_limit,
            server_error=initial.server_error,
            server_error_status=initial.server_error_status,
        )
        self.outage = initial.outage
        self._call_result: CallResult | None = initial.call_result
        self._call_result_left: int | None = None  # None: every call until cleared
        self.stream: StreamFault | None = initial.stream
        self.stream_drop_after = initial.stream_drop_after

    def set_stream_fault(self, fault: StreamFault | None, drop_after: float = 2.0) -> None:
        """What every media stream does from now on (None: carries the far end faithfully)."""
        self.stream, self.stream_drop_after = fault, drop_after

    def set_call_result(self, result: CallResult | None, count: int | None = None) -> None:
        """The next count calls (all of them when count is None) end busy/failed/no-answer."""
        self._call_result, self._call_result_left = result, count

    def take_request_fault(self) -> RequestFault | None:
        """The fault the request being answered gets, in Twilio's terms (codes 20429, 20500)."""
        fault = self.take()
        if fault == 429:
            return RequestFault(429, 20429, "Too Many Requests", self.retry_after)
        if fault == 503:
            return RequestFault(503, 20503, "Service Unavailable")
        if fault == 500:
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
            "stream": self.stream,
            "stream_drop_after": self.stream_drop_after,
            **super().state(),
        }
