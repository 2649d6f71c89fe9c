"""The Messages operations of the Twilio sandbox's REST API: create, fetch and list.

The request has already passed `RestApi.handle` (spec check, authentication, faults); what is
left are the rules Twilio applies beyond the spec, each with Twilio's error code:

- 21603: no From (the sandbox does not simulate Messaging Services' sender pools);
- 21910: From and To on different channels (`whatsapp:` one side only);
- 21266: To and From the same;
- 21655 / 21656: a ContentSid that is not an approved template, or bad ContentVariables;
- 21602 / 21617: an empty Body (without media or template), or one over 1,600 characters.

Listing filters by To, From and DateSent (`DateSent`, `DateSent>`, `DateSent<`: on-or-after and
on-or-before, to the second; a bare date means the whole UTC day) and lists the newest first.
`next_page_uri` carries a `PageToken` naming the last message shown, so the next page starts
after it even when new messages (replies!) arrive between the two requests, as with Twilio.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sandbox.messaging_profile import MessagingSettings
from sandbox.twilio.brand_lines import BrandLines
from sandbox.twilio.content import ContentError, render
from sandbox.twilio.errors import NOT_FOUND, twilio_error
from sandbox.twilio.message import MAX_BODY, MessageRecord, MessageRequest, channel_of
from sandbox.twilio.messages import MessageBook

# Twilio error codes.
FROM_REQUIRED = 21603
CHANNEL_MISMATCH = 21910
SAME_TO_AND_FROM = 21266
BODY_REQUIRED = 21602
BODY_TOO_LONG = 21617
#: The recipient texted STOP to the sender: nothing more may be sent to it.
UNSUBSCRIBED = 21610

_DEFAULT_PAGE_SIZE = 50
_PAGING = ("Page", "PageSize", "PageToken")
_TOKEN_PREFIX = "PA"


class MessagesApi:
    def __init__(self, settings: MessagingSettings, book: MessageBook, lines: BrandLines) -> None:
        self._settings = settings
        self._book = book
        self._lines = lines

    def handle(
        self,
        operation: str,
        account_sid: str,
        path: str,
        path_values: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> web.Response | None:
        """The answer to a Messages operation; None when the sandbox does not simulate it."""
        if operation == "CreateMessage":
            return self._create(account_sid, form)
        if operation == "FetchMessage":
            message = self._book.get(path_values["Sid"])
            if message is None:
                return twilio_error(404, NOT_FOUND, f"The requested resource {path} was not found")
            return web.json_response(message.resource())
        if operation == "ListMessage":
            return web.json_response(self._list(path, query))
        return None

    def _create(self, account_sid: str, form: Sequence[tuple[str, str]]) -> web.Response:
        request = MessageRequest.from_form(form)
        from_ = request.from_
        if from_ is None:
            return twilio_error(
                400,
                FROM_REQUIRED,
                "A 'From' phone number is required (the sandbox does not simulate Messaging "
                "Services: pass From)",
            )
        if channel_of(from_) != channel_of(request.to):
            return twilio_error(
                400,
                CHANNEL_MISMATCH,
                f"Invalid From and To pair. From and To should be of the same channel "
                f"({from_} -> {request.to})",
            )
        if from_ == request.to:
            return twilio_error(400, SAME_TO_AND_FROM, "'To' and 'From' number cannot be the same")
        body = request.body or ""
        try:
            if request.content_sid is not None:
                body = render(
                    self._settings.templates, request.content_sid, request.content_variables
                )
            elif request.content_variables is not None:
                raise ContentError(
                    21656, "The ContentVariables Parameter is invalid: it needs a ContentSid"
                )
        except ContentError as err:
            return twilio_error(400, err.code, err.message)
        if len(body) > MAX_BODY:
            return twilio_error(
                400,
                BODY_TOO_LONG,
                f"The concatenated message body exceeds the {MAX_BODY} character limit",
            )
        if not body and not request.media_urls:
            return twilio_error(400, BODY_REQUIRED, "Message body is required")
        if self._lines.opted_out(request.to):
            return twilio_error(400, UNSUBSCRIBED, "Attempt to send to unsubscribed recipient")
        failure = self._lines.failure_for(
            from_, request.to, template=request.content_sid is not None
        )
        message = self._book.send(account_sid, request, from_, body, failure)
        return web.json_response(message.resource(), status=201)

    def _list(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        filters = dict(query)
        size = int(filters.get("PageSize", _DEFAULT_PAGE_SIZE))
        page = int(filters.get("Page", 0))
        sent = _date_sent_filter(filters)
        matching = [
            message
            for message in reversed(self._book.records())  # Twilio lists the newest first
            if filters.get("To", message.to) == message.to
            and filters.get("From", message.from_) == message.from_
            and sent(message)
        ]
        start = page * size
        token = filters.get("PageToken", "")
        after = token.removeprefix(_TOKEN_PREFIX)
        sids = [message.sid for message in matching]
        if token.startswith(_TOKEN_PREFIX) and after in sids:
            start = sids.index(after) + 1
        shown = matching[start : start + size]
        kept = [(k, v) for k, v in query if k not in _PAGING]

        def page_uri(number: int, after: MessageRecord | None = None) -> str:
            paging = [("PageSize", str(size)), ("Page", str(number))]
            if after is not None:
                paging.append(("PageToken", _TOKEN_PREFIX + after.sid))
            return f"{path}?{urlencode([*kept, *paging])}"

        more = start + len(shown) < len(matching)
        return {
            "messages": [message.resource() for message in shown],
            "end": start + max(0, len(shown) - 1),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1, shown[-1]) if more and shown else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": page_uri(page),
            "last_page_uri": page_uri(max(0, math.ceil(len(matching) / size) - 1)),
        }


def _date_sent_filter(filters: Mapping[str, str]) -> Callable[[MessageRecord], bool]:
    """The DateSent conditions of a list request, as one predicate (False while unsent)."""
    bounds: list[tuple[datetime | None, datetime | None]] = []  # low <= sent < high
    for name, raw in filters.items():
        if name not in ("DateSent", "DateSent>", "DateSent<"):
            continue
        if len(raw) == 10:  # YYYY-MM-DD: the whole day, in UTC
            day = date.fromisoformat(raw)
            low = datetime(day.year, day.month, day.day, tzinfo=UTC)
            high = low + timedelta(days=1)
        else:
            instant = datetime.fromisoformat(raw).replace(microsecond=0)
            low = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
            high = low + timedelta(seconds=1)  # to the second, like date_sent itself
        if name == "DateSent":
            bounds.append((low, high))
        elif name == "DateSent>":
            bounds.append((low, None))
        else:
            bounds.append((None, high))

    def matches(message: MessageRecord) -> bool:
        if not bounds:
            return True
        if message.date_sent is None:
            return False
        sent = message.date_sent.replace(microsecond=0)
        return all(
            (low is None or low <= sent) and (high is None or sent < high) for low, high in bounds
        )

    return matches
