"""Checks each request against Twilio's official OpenAPI description of the v2010 REST API.

The sandbox must not drift from the real API, so it does not describe the API itself: it reads
`specs/twilio/twilio_api_v2010.json` (vendored from twilio/twilio-oai) and checks the path,
method, path and query parameters and the form body of every request against it.

A small validator of our own rather than a general OpenAPI library, because what matters here
is what a general one gets wrong or leaves out for this API:

- bodies are `application/x-www-form-urlencoded` with flat schemas; array parameters are
  repeated keys (`StatusCallbackEvent=initiated&StatusCallbackEvent=ringing`), every value is a
  string to be read as the schema's type, and a repeated key for a scalar is an error;
- unknown parameters are rejected: the spec's schemas do not say `additionalProperties: false`,
  but a misspelt parameter is exactly the bug this sandbox exists to catch (real Twilio ignores
  it with warning 20001, and the call silently lacks what the client meant to ask for);
- Twilio's `x-twilio.conditional` groups (at least one of `Url`, `Twiml`, `ApplicationSid`);
- Twilio's own formats (`endpoint`, `phone-number`, `http-method`, `twiml`, ...).

Two constraints the spec states only in prose are added: the values of `StatusCallbackEvent`
are the spec's own `call_enum_event` enum (see `_ITEM_ENUMS`), and a Message's To and From may
be a channel address such as `whatsapp:+15552229999` as well as a phone number (see
`_CHANNEL_ADDRESSES`).
"""

from __future__ import annotations

import difflib
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

SPEC_PATH = Path(__file__).parent / "specs" / "twilio" / "twilio_api_v2010.json"

Location = Literal["path", "query", "form"]
Schema = Mapping[str, Any]

_METHODS = ("get", "post", "put", "delete", "patch")
_FORM = "application/x-www-form-urlencoded"

# (operationId, parameter) -> the spec component whose enum the array items must match. The
# CreateCall body leaves StatusCallbackEvent's items as plain strings and lists the values in
# its description; the spec declares exactly those values as `call_enum_event`.
_ITEM_ENUMS: dict[tuple[str, str], str] = {
    ("CreateCall", "StatusCallbackEvent"): "call_enum_event",
}

# (operationId, parameter) whose `phone-number` is, per its description, "a phone number in
# E.164 format or a channel address, e.g. whatsapp:+15552229999". Checked as the sandbox's own
# format `channel-address`; only WhatsApp is simulated, so only that channel is accepted.
_CHANNEL_ADDRESSES: frozenset[tuple[str, str]] = frozenset(
    (operation, name) for operation in ("CreateMessage", "ListMessage") for name in ("To", "From")
)

_E164 = r"\+[1-9][0-9]{1,14}"
_ENDPOINT = re.compile(rf"^(?:{_E164}|client:[A-Za-z0-9_.@-]+|sip:[^@\s]+@[^@\s]+)$")
_CHANNEL_ADDRESS = re.compile(rf"^(?:whatsapp:)?{_E164}$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_NUMBER = re.compile(r"^-?[0-9]+(?:\.[0-9]+)?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_TWIML = 4000  # characters; CreateCall's description of Twiml


@dataclass(frozen=True)
class Problem:
    """One way a request breaks the spec; `message` names the parameter and the rule."""

    parameter: str | None
    rule: str  # unknown | required | repeated | type | enum | pattern | length | range | format
    message: str
    location: Location | None = None


@dataclass(frozen=True)
class Violation:
    """A break of Twilio's contract by the client under test, kept for tests to assert on.

    source: `request` (a REST request against the spec), `twiml` (a document the sandbox could
    not run) or `webhook` (a monitor endpoint that failed or answered with an error).
    """

    source: Literal["request", "twiml", "webhook"]
    code: int
    message: str
    method: str | None = None
    target: str | None = None  # the request path or the webhook URL
    operation: str | None = None
    parameter: str | None = None
    rule: str | None = None


@dataclass(frozen=True)
class Parameter:
    name: str
    location: Location
    schema: Schema
    required: bool = False
    item_enum: tuple[str, ...] | None = None  # from _ITEM_ENUMS

    @property
    def is_array(self) -> bool:
        return self.schema.get("type") == "array"


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  # upper case
    template: str
    path_params: Mapping[str, Parameter]
    query_params: Mapping[str, Parameter]
    form_params: Mapping[str, Parameter] | None  # None: the operation takes no body
    one_of_required: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern[str]
    operations: Mapping[str, Operation]  # by upper-case method
    literal_length: int  # more literal characters = more specific; tried first


class SpecMismatch(Exception):
    """The path is not in the spec (404) or does not take this method (405)."""

    def __init__(self, status: Literal[404, 405], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Matched:
    operation: Operation
    path_values: dict[str, str] = field(default_factory=dict)


class TwilioSpec:
    """The operations of the spec, indexed for matching requests."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document
        routes = [self._route(template, item) for template, item in document["paths"].items()]
        self._routes = sorted(routes, key=lambda r: -r.literal_length)

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> TwilioSpec:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    # -- matching ----------------------------------------------------------------------

    def match(self, method: str, path: str) -> Matched:
        """The operation for method and path, or SpecMismatch (404 or 405)."""
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            operation = route.operations.get(method.upper())
            if operation is None:
                allowed = ", ".join(sorted(route.operations)) or "none"
                raise SpecMismatch(
                    405, f"{method.upper()} is not allowed on {route.template} (allowed: {allowed})"
                )
            return Matched(operation, found.groupdict())
        raise SpecMismatch(404, f"no operation in the Twilio API spec matches the path {path}")

    def operation(self, operation_id: str) -> Operation:
        for route in self._routes:
            for operation in route.operations.values():
                if operation.operation_id == operation_id:
                    return operation
        raise KeyError(operation_id)

    def schema(self, name: str) -> Schema:
        """A component schema by name, e.g. `api.v2010.account.call`."""
        schema: Schema = self._document["components"]["schemas"][name]
        return schema

    # -- validation --------------------------------------------------------------------

    def check(
        self,
        matched: Matched,
        query: Sequence[tuple[str, str]],
        form: Sequence[tuple[str, str]],
        content_type: str | None,
    ) -> list[Problem]:
        """Every way the request breaks the operation's description (empty when it conforms)."""
        operation = matched.operation
        problems: list[Problem] = []
        for name, value in matched.path_values.items():
            problems += _check_values(operation.path_params[name], [value])
        problems += _check_group(operation.query_params, query, "query parameter")
        if operation.form_params is None:
            if form:
                problems.append(
                    Problem(None, "body", f"{operation.method} {operation.template} takes no body")
                )
            return problems
        if form and (content_type or "").split(";")[0].strip().lower() != _FORM:
            problems.append(
                Problem(
                    None,
                    "content-type",
                    f"the body must be {_FORM}, not {content_type or 'untyped'}",
                )
            )
            return problems
        problems += _check_group(operation.form_params, form, "parameter")
        present = {name for name, _ in form}
        for group in operation.one_of_required:
            if not present & set(group):
                problems.append(
                    Problem(
                        group[0],
                        "required",
                        f"one of the parameters {', '.join(group)} is required",
                    )
                )
        return problems

    # -- building ----------------------------------------------------------------------

    def _route(self, template: str, item: Mapping[str, Any]) -> Route:
        regex = "".join(
            f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", template)
            if part
        )
        literal = re.sub(r"\{[^}]+\}", "", template)
        operations = {
            method.upper(): self._operation(template, method, item[method])
            for method in _METHODS
            if method in item
        }
        return Route(template, re.compile(f"^{regex}$"), operations, len(literal))

    def _operation(self, template: str, method: str, op: Mapping[str, Any]) -> Operation:
        operation_id: str = op["operationId"]
        by_location: dict[str, dict[str, Parameter]] = {"path": {}, "query": {}}
        for raw in op.get("parameters", []):
            raw = self._resolve(raw)
            if raw["in"] not in by_location:
                continue  # header parameters: none in this spec's v2010 operations
            by_location[raw["in"]][raw["name"]] = Parameter(
                raw["name"],
                raw["in"],
                _channel_address(operation_id, raw["name"], self._resolve(raw["schema"])),
                bool(raw.get("required")),
            )
        form: dict[str, Parameter] | None = None
        body = op.get("requestBody")
        if body is not None:
            schema = self._resolve(body["content"][_FORM]["schema"])
            required = set(schema.get("required", []))
            form = {}
            for name, prop in schema.get("properties", {}).items():
                component = _ITEM_ENUMS.get((operation_id, name))
                form[name] = Parameter(
                    name,
                    "form",
                    _channel_address(operation_id, name, self._resolve(prop)),
                    name in required,
                    tuple(self.schema(component)["enum"]) if component else None,
                )
        groups = tuple(
            tuple(_param_name(snake, form or {}) for snake in group)
            for group in op.get("x-twilio", {}).get("conditional", [])
        )
        return Operation(
            operation_id,
            method.upper(),
            template,
            by_location["path"],
            by_location["query"],
            form,
            groups,
        )

    def _resolve(self, node: Mapping[str, Any]) -> Schema:
        """Follow local `$ref`s, including a schema whose array items are a `$ref`."""
        while "$ref" in node:
            ref: str = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local $refs are supported, not {ref}")
            target: Any = self._document
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
        if node.get("type") == "array" and "$ref" in node.get("items", {}):
            node = {**node, "items": self._resolve(node["items"])}
        return node


def _channel_address(operation_id: str, name: str, schema: Schema) -> Schema:
    if (operation_id, name) in _CHANNEL_ADDRESSES and schema.get("format") == "phone-number":
        return {**schema, "format": "channel-address"}
    return schema


def _param_name(snake: str, params: Mapping[str, Parameter]) -> str:
    """`application_sid` -> `ApplicationSid`, the parameter's name in the form."""
    wanted = snake.replace("_", "").lower()
    return next((name for name in params if name.lower() == wanted), snake)


def _check_group(
    params: Mapping[str, Parameter], items: Sequence[tuple[str, str]], noun: str
) -> list[Problem]:
    problems: list[Problem] = []
    counts = Counter(name for name, _ in items)
    for name in counts:
        if name not in params:
            close = difflib.get_close_matches(name, list(params), n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            problems.append(Problem(name, "unknown", f"unknown {noun} {name!r}{hint}"))
    for name, param in params.items():
        values = [value for key, value in items if key == name]
        if not values:
            if param.required:
                problems.append(Problem(name, "required", f"the {noun} {name!r} is required"))
            continue
        if len(values) > 1 and not param.is_array:
            problems.append(
                Problem(
                    name,
                    "repeated",
                    f"the {noun} {name!r} takes one value but was given {len(values)}",
                )
            )
            continue
        problems += _check_values(param, values)
    return problems


def _check_values(param: Parameter, values: Sequence[str]) -> list[Problem]:
    schema = param.schema
    if param.is_array:
        schema = schema.get("items", {})
        if param.item_enum is not None:
            schema = {**schema, "enum": list(param.item_enum)}
    problems: list[Problem] = []
    for value in values:
        failure = _check_scalar(value, schema)
        if failure is not None:
            rule, why = failure
            message = f"{param.name}={value!r}: {why}"
            problems.append(Problem(param.name, rule, message, param.location))
    return problems


def _check_scalar(value: str, schema: Schema) -> tuple[str, str] | None:
    """(rule, explanation) when value, as sent in a form or URL, breaks schema."""
    kind = schema.get("type", "string")
    if kind == "integer":
        if not _INTEGER.match(value):
            return "type", "must be an integer"
        return _check_range(int(value), schema)
    if kind == "number":
        if not _NUMBER.match(value):
            return "type", "must be a number"
        return _check_range(float(value), schema)
    if kind == "boolean":
        if value not in ("true", "false"):
            return "type", "must be true or false"
        return None
    if kind != "string":
        return "type", f"the sandbox cannot check values of type {kind!r}"
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        return "enum", f"must be one of {', '.join(map(str, enum))}"
    if len(value) < schema.get("minLength", 0):
        return "length", f"must be at least {schema['minLength']} characters long"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return "length", f"must be at most {schema['maxLength']} characters long"
    pattern = schema.get("pattern")
    if pattern is not None and not re.search(pattern, value):
        return "pattern", f"must match {pattern}"
    if schema.get("x-twilio", {}).get("ignoreFormat"):
        return None
    why = _format_problem(value, schema.get("format"))
    return None if why is None else ("format", why)


def _check_range(number: float, schema: Schema) -> tuple[str, str] | None:
    if "minimum" in schema and number < schema["minimum"]:
        return "range", f"must be >= {schema['minimum']}"
    if "maximum" in schema and number > schema["maximum"]:
        return "range", f"must be <= {schema['maximum']}"
    return None


def _format_problem(value: str, fmt: str | None) -> str | None:
    """Why value is not in Twilio's format fmt; formats that say nothing checkable pass."""
    if fmt == "uri":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "must be an absolute http(s) URL"
        if "_" in parts.hostname:
            return "must have a valid hostname (Twilio does not allow underscores)"
        return None
    if fmt in ("endpoint", "phone-number"):
        if not _ENDPOINT.match(value):
            return (
                "must be an E.164 phone number (+ then up to 15 digits), "
                "client:<identity> or sip:<user>@<host>"
            )
        return None
    if fmt == "channel-address":
        if not _CHANNEL_ADDRESS.match(value):
            return (
                "must be an E.164 phone number (+ then up to 15 digits) or a WhatsApp address "
                "whatsapp:<E.164 number>"
            )
        return None
    if fmt == "twiml":
        return _twiml_problem(value)
    if fmt == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return "must be a date YYYY-MM-DD"
        return None
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "must be an ISO 8601 date or date-time"
        return None
    if fmt == "iso-country-code" and not _COUNTRY.match(value):
        return "must be an ISO 3166-1 alpha-2 country code"
    if fmt == "currency" and not _CURRENCY.match(value):
        return "must be an ISO 4217 currency code"
    return None


def _twiml_problem(value: str) -> str | None:
    if len(value) > _MAX_TWIML:
        return f"must be at most {_MAX_TWIML} characters of TwiML"
    try:
        root = ET.fromstring(value)
    except ET.ParseError as err:
        return f"is not well-formed XML ({err})"
    if root.tag != "Response":
        return f"must be a TwiML document whose root is <Response>, not <{root.tag}>"
    return None
