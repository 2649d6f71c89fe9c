"""The Twilio sandbox's request validator, against the vendored official OpenAPI description."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from sandbox.twilio.resource import CallRecord, CallRequest
from sandbox.twilio.spec import SPEC_PATH, Problem, SpecMismatch, TwilioSpec

ACCOUNT = "AC" + "0123456789abcdef" * 2
CALL = "CA" + "fedcba9876543210" * 2
CALLS = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
ONE_CALL = f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
FORM = "application/x-www-form-urlencoded"
GOOD_CREATE = [
    ("To", "+442071234567"),
    ("From", "+15005550006"),
    ("Url", "http://127.0.0.1:8080/voice?run=abc"),
    ("StatusCallback", "https://monitor.example.com/status"),
    ("StatusCallbackEvent", "initiated"),
    ("StatusCallbackEvent", "ringing"),
    ("StatusCallbackEvent", "answered"),
    ("StatusCallbackEvent", "completed"),
    ("StatusCallbackMethod", "POST"),
    ("Timeout", "30"),
    ("Record", "false"),
]


@pytest.fixture(scope="module")
def spec() -> TwilioSpec:
    return TwilioSpec.load()


def check(
    spec: TwilioSpec,
    method: str,
    path: str,
    form: Sequence[tuple[str, str]] = (),
    query: Sequence[tuple[str, str]] = (),
    content_type: str | None = FORM,
) -> list[Problem]:
    return spec.check(spec.match(method, path), query, form, content_type if form else None)


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def replaced(form: Sequence[tuple[str, str]], **values: str) -> list[tuple[str, str]]:
    return [(k, values.get(k, v)) for k, v in form if values.get(k, v) != ""]


def test_the_vendored_spec_is_twilios_v2010_description() -> None:
    document = json.loads(SPEC_PATH.read_text())
    assert document["info"]["title"] == "Twilio - Api"
    assert (SPEC_PATH.parent / "LICENSE").read_text().startswith("MIT License")
    assert "twilio/twilio-oai" in (SPEC_PATH.parent / "SOURCE.txt").read_text()


def test_operations_are_matched_by_path_and_method(spec: TwilioSpec) -> None:
    assert spec.match("POST", CALLS).operation.operation_id == "CreateCall"
    assert spec.match("GET", CALLS).operation.operation_id == "ListCall"
    fetched = spec.match("GET", ONE_CALL)
    assert fetched.operation.operation_id == "FetchCall"
    assert fetched.path_values == {"AccountSid": ACCOUNT, "Sid": CALL}
    assert spec.match("POST", ONE_CALL).operation.operation_id == "UpdateCall"
    events = f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}/Events.json"
    assert spec.match("GET", events).operation.operation_id == "ListCallEvent"


def test_conforming_requests_pass(spec: TwilioSpec) -> None:
    assert check(spec, "POST", CALLS, GOOD_CREATE) == []
    twiml = [("To", "client:alice"), ("From", "+15005550006"), ("Twiml", "<Response/>")]
    assert check(spec, "POST", CALLS, twiml) == []
    assert check(spec, "POST", ONE_CALL, [("Status", "completed")]) == []
    assert check(spec, "POST", ONE_CALL, [("Twiml", "<Response><Hangup/></Response>")]) == []
    query = [("PageSize", "20"), ("Status", "in-progress"), ("StartTime>", "2024-05-01")]
    assert check(spec, "GET", CALLS, query=query) == []
    assert check(spec, "GET", ONE_CALL) == []


def test_missing_to_is_rejected(spec: TwilioSpec) -> None:
    problem = only(check(spec, "POST", CALLS, replaced(GOOD_CREATE, To="")))
    assert (problem.parameter, problem.rule) == ("To", "required")
    assert problem.message == "the parameter 'To' is required"


def test_one_of_url_twiml_application_sid_is_required(spec: TwilioSpec) -> None:
    problem = only(check(spec, "POST", CALLS, replaced(GOOD_CREATE, Url="")))
    assert problem.rule == "required"
    assert problem.message == "one of the parameters Url, Twiml, ApplicationSid is required"


def test_status_callback_event_values_are_the_specs_call_enum_event(spec: TwilioSpec) -> None:
    form = [*GOOD_CREATE, ("StatusCallbackEvent", "in-progress")]
    problem = only(check(spec, "POST", CALLS, form))
    assert (problem.parameter, problem.rule) == ("StatusCallbackEvent", "enum")
    assert problem.message == (
        "StatusCallbackEvent='in-progress': must be one of initiated, ringing, answered, completed"
    )
    # Space-separated values in one field are not the documented form: one value per key.
    joined = [*replaced(GOOD_CREATE, StatusCallbackEvent=""), ("StatusCallbackEvent", "a b")]
    assert only(check(spec, "POST", CALLS, joined)).rule == "enum"


def test_bad_method_enum_is_rejected(spec: TwilioSpec) -> None:
    problem = only(check(spec, "POST", CALLS, replaced(GOOD_CREATE, StatusCallbackMethod="PUT")))
    assert problem.message == "StatusCallbackMethod='PUT': must be one of GET, POST"


def test_unknown_parameter_is_rejected_with_a_suggestion(spec: TwilioSpec) -> None:
    problem = only(check(spec, "POST", CALLS, [*GOOD_CREATE, ("StatusCallbackEvents", "ringing")]))
    assert (problem.parameter, problem.rule) == ("StatusCallbackEvents", "unknown")
    assert "did you mean 'StatusCallbackEvent'" in problem.message
    query_problem = only(check(spec, "GET", CALLS, query=[("Limit", "5")]))
    assert query_problem.message.startswith("unknown query parameter 'Limit'")


def test_a_scalar_given_twice_is_rejected(spec: TwilioSpec) -> None:
    problem = only(check(spec, "POST", CALLS, [*GOOD_CREATE, ("To", "+442071234568")]))
    assert (problem.parameter, problem.rule) == ("To", "repeated")


@pytest.mark.parametrize(
    ("field", "value", "rule", "says"),
    [
        ("Timeout", "thirty", "type", "must be an integer"),
        ("Record", "yes", "type", "must be true or false"),
        ("To", "020 7123 4567", "format", "E.164"),
        ("Url", "/voice", "format", "absolute http(s) URL"),
        ("StatusCallback", "http://my_host/status", "format", "underscores"),
        ("Byoc", "BY123", "length", "at least 34"),
    ],
)
def test_types_and_formats(spec: TwilioSpec, field: str, value: str, rule: str, says: str) -> None:
    form = [*replaced(GOOD_CREATE, **{field: ""}), (field, value)]
    problem = only(check(spec, "POST", CALLS, form))
    assert (problem.parameter, problem.rule) == (field, rule)
    assert says in problem.message and repr(value) in problem.message


def test_inline_twiml_must_be_a_response_document(spec: TwilioSpec) -> None:
    form = [("To", "+442071234567"), ("From", "+15005550006"), ("Twiml", "<Say>hi</Say>")]
    assert "root is <Response>" in only(check(spec, "POST", CALLS, form)).message
    form[2] = ("Twiml", "<Response><Say>hi</Response>")
    assert "not well-formed XML" in only(check(spec, "POST", CALLS, form)).message


def test_query_ranges_and_path_patterns(spec: TwilioSpec) -> None:
    problem = only(check(spec, "GET", CALLS, query=[("PageSize", "5000")]))
    assert (problem.parameter, problem.rule) == ("PageSize", "range")
    bad_sid = f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{'XX' + CALL[2:]}.json"
    problem = only(check(spec, "GET", bad_sid))
    assert (problem.parameter, problem.rule, problem.location) == ("Sid", "pattern", "path")


def test_bodies_must_be_form_encoded_and_gets_take_none(spec: TwilioSpec) -> None:
    problem = only(check(spec, "POST", CALLS, GOOD_CREATE, content_type="application/json"))
    assert problem.rule == "content-type"
    assert only(check(spec, "GET", ONE_CALL, [("Status", "completed")])).rule == "body"


def test_wrong_method_and_unknown_path(spec: TwilioSpec) -> None:
    with pytest.raises(SpecMismatch) as wrong_method:
        spec.match("PUT", CALLS)
    assert wrong_method.value.status == 405
    assert "PUT is not allowed on /2010-04-01/Accounts/{AccountSid}/Calls.json" in str(
        wrong_method.value
    )
    with pytest.raises(SpecMismatch) as unknown:
        spec.match("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Call.json")
    assert unknown.value.status == 404
    with pytest.raises(SpecMismatch):
        spec.match("GET", f"/2010-04-01/Accounts/{ACCOUNT}/Calls")  # no .json


def _json_type_ok(value: Any, schema: dict[str, Any], spec: TwilioSpec) -> bool:
    if "$ref" in schema:
        schema = dict(spec.schema(schema["$ref"].rsplit("/", 1)[1]))
        return value in schema["enum"]
    if value is None:
        return bool(schema.get("nullable"))
    expected = {"string": str, "object": dict, "integer": int, "boolean": bool}[schema["type"]]
    return isinstance(value, expected)


def test_call_resource_has_the_specs_call_shape(spec: TwilioSpec) -> None:
    call = CallRecord(
        CALL, ACCOUNT, CallRequest.from_form(GOOD_CREATE), price_unit="USD", status="queued"
    )
    call.answer()
    call.finish("completed", Decimal("0.0130"))
    resource = call.resource()
    schema = spec.schema("api.v2010.account.call")["properties"]
    assert set(resource) == set(schema)
    wrong = {k: v for k, v in resource.items() if not _json_type_ok(v, schema[k], spec)}
    assert wrong == {}
    assert resource["price"] == "-0.0130" and resource["duration"] == "1"  # rounded up
    assert resource["date_created"].endswith("+0000")
    assert resource["uri"] == ONE_CALL
    assert resource["subresource_uris"]["events"] == ONE_CALL.replace(".json", "/Events.json")
