"""Parses the voice TwiML the monitor returns into verbs the call simulation can run.

The sandbox is strict where Twilio is forgiving: an attribute Twilio would ignore with a
warning (12200) is an error here, so a misspelt `actionOnEmptyResult` is caught in a test
instead of silently changing what a real call does. Valid TwiML the sandbox does not simulate
(`<Dial>`, `<Record>`, ...) is refused with a message saying so.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

# Twilio's error codes for TwiML it cannot run.
PARSE_FAILURE = 12100
SCHEMA_VIOLATION = 12200

_UNSIMULATED = {
    "Dial",
    "Enqueue",
    "Leave",
    "Pay",
    "Prompt",
    "Record",
    "Refer",
    "Reject",
    "Sms",
    "Stop",
}
# Verbs that hold a noun (<Connect>/<Start> a <Stream>), parsed by parse_stream_verb.
_STREAM_VERBS = frozenset({"Connect", "Start"})
_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "Say": frozenset({"voice", "language", "loop"}),
    "Play": frozenset({"loop", "digits"}),
    "Pause": frozenset({"length"}),
    "Hangup": frozenset(),
    "Redirect": frozenset({"method"}),
    "Gather": frozenset(
        {
            "action",
            "actionOnEmptyResult",
            "bargeIn",
            "debug",
            "enhanced",
            "finishOnKey",
            "hints",
            "input",
            "language",
            "method",
            "numDigits",
            "partialResultCallback",
            "partialResultCallbackMethod",
            "profanityFilter",
            "speechModel",
            "speechTimeout",
            "timeout",
        }
    ),
}
_GATHER_CHILDREN = frozenset({"Say", "Play", "Pause"})
_DIGITS = re.compile(r"^[0-9*#wW]+$")
_FINISH_ON_KEY = re.compile(r"^[0-9*#]?$")


class TwimlError(Exception):
    """The document cannot be run; `code` is Twilio's (12100 parse, 12200 schema)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Say:
    text: str
    loop: int = 1  # 0: until the call ends


@dataclass(frozen=True)
class Play:
    url: str | None
    digits: str | None
    loop: int = 1


@dataclass(frozen=True)
class Pause:
    seconds: float = 1.0


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Redirect:
    url: str
    method: Literal["GET", "POST"] = "POST"


@dataclass(frozen=True)
class Gather:
    inputs: frozenset[str]
    action: str | None  # None: inline Twiml without an action attribute
    method: Literal["GET", "POST"]
    timeout: float
    # None: Twilio's default, the `timeout` value; "auto": end of speech.
    speech_timeout: float | Literal["auto"] | None
    action_on_empty_result: bool
    children: tuple[Say | Play | Pause, ...]
    # Where interim speech results go while the far end is still speaking (None: nowhere).
    partial_result_callback: str | None = None
    partial_result_callback_method: Literal["GET", "POST"] = "POST"


Nested = Say | Play | Pause


def parse_twiml(text: str, document_url: str | None) -> list[Verb]:
    """The verbs of a TwiML document; relative URLs resolve against document_url."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise TwimlError(PARSE_FAILURE, f"the TwiML is not well-formed XML: {err}") from err
    if root.tag != "Response":
        raise TwimlError(SCHEMA_VIOLATION, f"the root element is <{root.tag}>, not <Response>")
    _no_attributes(root)
    return [_verb(element, document_url) for element in root]


def _verb(element: ET.Element, base: str | None) -> Verb:
    tag = element.tag
    if tag in _STREAM_VERBS:
        if element.attrib:
            # <Connect action> and friends: valid TwiML, not simulated.
            raise TwimlError(
                SCHEMA_VIOLATION, f"<{tag}> attributes {sorted(element.attrib)} are not simulated"
            )
        return parse_stream_verb(element)
    if tag in _UNSIMULATED:
        raise TwimlError(
            SCHEMA_VIOLATION, f"<{tag}> is valid TwiML, but the sandbox does not simulate it"
        )
    if tag not in _ATTRIBUTES:
        raise TwimlError(SCHEMA_VIOLATION, f"<{tag}> is not a TwiML voice verb")
    _known_attributes(element)
    if tag == "Gather":
        return _gather(element, base)
    if tag == "Redirect":
        _no_children(element)
        return Redirect(_url(element, _text(element), base), _method(element, "method"))
    return _nested(element)


def _nested(element: ET.Element) -> Nested | Hangup:
    tag = element.tag
    _no_children(element)
    if tag == "Say":
        text = _text(element)
        if not text:
            raise TwimlError(SCHEMA_VIOLATION, "<Say> has nothing to say")
        return Say(text, _integer(element, "loop", 1, minimum=0))
    if tag == "Play":
        loop = _integer(element, "loop", 1, minimum=0)
        digits = element.get("digits")
        url = _text(element) or None
        if digits is not None and not _DIGITS.match(digits):
            raise TwimlError(
                SCHEMA_VIOLATION, f"<Play digits={digits!r}> may hold only 0-9, *, #, w and W"
            )
        if digits is None and url is None:
            raise TwimlError(SCHEMA_VIOLATION, "<Play> needs a URL or a digits attribute")
        return Play(url, digits, loop)
    if tag == "Pause":
        return Pause(float(_integer(element, "length", 1, minimum=0)))
    if tag == "Hangup":
        return Hangup()
    raise TwimlError(SCHEMA_VIOLATION, f"<{tag}> cannot be nested in <Gather>")


def _gather(element: ET.Element, base: str | None) -> Gather:
    inputs = frozenset((element.get("input") or "dtmf").split())
    if not inputs or not inputs <= {"dtmf", "speech"}:
        raise TwimlError(
            SCHEMA_VIOLATION,
            f"<Gather input={element.get('input')!r}> must be dtmf, speech or 'dtmf speech'",
        )
    raw_speech_timeout = element.get("speechTimeout")
    speech_timeout: float | Literal["auto"] | None
    if raw_speech_timeout is None:
        speech_timeout = None
    elif raw_speech_timeout == "auto":
        speech_timeout = "auto"
    else:
        speech_timeout = float(_integer(element, "speechTimeout", 0, minimum=1))
    empty = element.get("actionOnEmptyResult", "false")
    if empty not in ("true", "false"):
        raise TwimlError(
            SCHEMA_VIOLATION, f"<Gather actionOnEmptyResult={empty!r}> must be true or false"
        )
    finish = element.get("finishOnKey", "#")
    if not _FINISH_ON_KEY.match(finish):
        raise TwimlError(SCHEMA_VIOLATION, f"<Gather finishOnKey={finish!r}> must be one key")
    _integer(element, "numDigits", 1, minimum=1)
    children: list[Nested] = []
    for child in element:
        if child.tag not in _GATHER_CHILDREN:
            raise TwimlError(SCHEMA_VIOLATION, f"<{child.tag}> cannot be nested in <Gather>")
        _known_attributes(child)
        nested = _nested(child)
        if isinstance(nested, Hangup):  # unreachable: Hangup is not in _GATHER_CHILDREN
            raise TwimlError(SCHEMA_VIOLATION, "<Hangup> cannot be nested in <Gather>")
        children.append(nested)
    action = element.get("action")
    # Without action Twilio posts to the document's own URL; inline Twiml has none, which
    # is only an error once there is something to post (see the executor).
    action_url = base if action is None else _url(element, action, base)
    partial = element.get("partialResultCallback")
    return Gather(
        inputs=inputs,
        action=action_url,
        method=_method(element, "method"),
        timeout=float(_integer(element, "timeout", 5, minimum=1)),
        speech_timeout=speech_timeout,
        action_on_empty_result=empty == "true",
        children=tuple(children),
        partial_result_callback=None if partial is None else _url(element, partial, base),
        partial_result_callback_method=_method(element, "partialResultCallbackMethod"),
    )


# -- attribute helpers -------------------------------------------------------------------


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _no_attributes(element: ET.Element) -> None:
    if element.attrib:
        raise TwimlError(
            SCHEMA_VIOLATION, f"<{element.tag}> takes no attributes, got {sorted(element.attrib)}"
        )


def _no_children(element: ET.Element) -> None:
    if len(element):
        raise TwimlError(
            SCHEMA_VIOLATION,
            f"<{element.tag}> cannot contain <{element[0].tag}> (SSML is not simulated)",
        )


def _known_attributes(element: ET.Element) -> None:
    unknown = sorted(set(element.attrib) - _ATTRIBUTES[element.tag])
    if unknown:
        raise TwimlError(
            SCHEMA_VIOLATION,
            f"<{element.tag}> has unknown attributes {unknown}; it takes "
            f"{sorted(_ATTRIBUTES[element.tag]) or 'none'}",
        )


def _integer(element: ET.Element, name: str, default: int, *, minimum: int) -> int:
    raw = element.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < minimum:
        raise TwimlError(
            SCHEMA_VIOLATION, f"<{element.tag} {name}={raw!r}> must be an integer >= {minimum}"
        )
    return int(raw)


def _method(element: ET.Element, name: str) -> Literal["GET", "POST"]:
    raw = element.get(name, "POST")
    if raw == "GET":
        return "GET"
    if raw == "POST":
        return "POST"
    raise TwimlError(SCHEMA_VIOLATION, f"<{element.tag} {name}={raw!r}> must be GET or POST")


def _url(element: ET.Element, raw: str, base: str | None) -> str:
    if not raw:
        raise TwimlError(SCHEMA_VIOLATION, f"<{element.tag}> needs a URL")
    url = urljoin(base, raw) if base is not None else raw
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TwimlError(
            SCHEMA_VIOLATION,
            f"<{element.tag}> URL {raw!r} is not absolute"
            + ("" if base else " (inline Twiml has no document URL to resolve it against)"),
        )
    return url


# -- Media Streams (<Connect><Stream> / <Start><Stream>) ------------------------------------
# Run by the executor with sandbox/twilio/stream_line.py.

_STREAM_ATTRIBUTES = frozenset({"url", "name", "track", "statusCallback", "statusCallbackMethod"})
_STREAM_TRACKS = frozenset({"inbound_track", "outbound_track", "both_tracks"})


@dataclass(frozen=True)
class Stream:
    url: str
    # "connect": bidirectional, the TwiML waits on it; "start": one-way, the TwiML goes on.
    mode: Literal["connect", "start"]
    name: str | None
    track: str
    parameters: tuple[tuple[str, str], ...]


Verb = Say | Play | Pause | Hangup | Redirect | Gather | Stream


def parse_stream_verb(element: ET.Element) -> Stream:
    """A <Connect> or <Start> holding exactly one <Stream> (with its <Parameter>s)."""
    if element.tag not in ("Connect", "Start"):
        raise TwimlError(SCHEMA_VIOLATION, f"<{element.tag}> does not hold a <Stream>")
    streams = list(element)
    if len(streams) != 1 or streams[0].tag != "Stream":
        raise TwimlError(SCHEMA_VIOLATION, f"<{element.tag}> must hold exactly one <Stream>")
    stream = streams[0]
    unknown = sorted(set(stream.attrib) - _STREAM_ATTRIBUTES)
    if unknown:
        raise TwimlError(SCHEMA_VIOLATION, f"<Stream> has unknown attributes {unknown}")
    url = stream.get("url", "")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise TwimlError(SCHEMA_VIOLATION, f"<Stream url={url!r}> must be an absolute ws(s) URL")
    track = stream.get("track", "inbound_track")
    mode: Literal["connect", "start"] = "connect" if element.tag == "Connect" else "start"
    if track not in _STREAM_TRACKS or (mode == "connect" and track != "inbound_track"):
        raise TwimlError(SCHEMA_VIOLATION, f"<Stream track={track!r}> is not allowed here")
    return Stream(url, mode, stream.get("name"), track, _stream_parameters(stream))


def _stream_parameters(stream: ET.Element) -> tuple[tuple[str, str], ...]:
    parameters: list[tuple[str, str]] = []
    for child in stream:
        if child.tag != "Parameter" or set(child.attrib) != {"name", "value"}:
            raise TwimlError(SCHEMA_VIOLATION, "<Stream> holds only <Parameter name=... value=...>")
        parameters.append((child.attrib["name"], child.attrib["value"]))
    return tuple(parameters)
