"""The `messaging:` and `generic_peer:` profile sections and the pieces behind them."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sandbox import __main__ as sandbox_main
from sandbox import messaging_profile
from sandbox.generic import profile as generic_peer_profile
from sandbox.generic.profile import GenericPeerSettings
from sandbox.latency import Latency, LognormalLatency, UniformLatency
from sandbox.messaging_profile import MessagingSettings, ReplyTeam
from sandbox.profile import PROFILES_DIR, load_profile
from sandbox.reply_team import ReplyPlanner, find_token
from sandbox.routing import DeskStreams
from sandbox.twilio.content import ContentError, render
from sandbox.twilio.message import Direction, MessageRecord, count_segments
from sandbox.twilio.messages_api import _date_sent_filter
from sandbox.twilio.spec import TwilioSpec

ACCOUNT = "AC" + "0123456789abcdef" * 2
TEMPLATE = "HX" + "0" * 31 + "1"


def example(module: Any, section: str) -> dict[str, Any]:
    doc = module.__doc__ or ""
    text = doc.split("::\n", 1)[1].split("\nBusiness hours", 1)[0]
    loaded: dict[str, Any] = yaml.safe_load(textwrap.dedent(text))[section]
    return loaded


def team(**overrides: Any) -> ReplyTeam:
    raw: dict[str, Any] = {
        "queues": {
            "billing": {
                "label": "Billing",
                "keywords": ["bill"],
                "agents": ["Sam"],
                "latency": {"distribution": "fixed", "seconds": 5},
            },
            "sales": {
                "label": "Sales",
                "agents": ["Al"],
                "latency": {"distribution": "fixed", "seconds": 7},
            },
        },
        "default_queue": "sales",
    }
    raw.update(overrides)
    return ReplyTeam.model_validate(raw)


def message(direction: Direction) -> MessageRecord:
    return MessageRecord(
        sid="SM" + "0" * 32,
        account_sid=ACCOUNT,
        direction=direction,
        from_="+15005550006",
        to="+442071234568",
        body="Hi",
        price_per_segment=Decimal("0.0079"),
        price_unit="USD",
    )


def test_the_documented_examples_are_valid() -> None:
    settings = MessagingSettings.model_validate(example(messaging_profile, "messaging"))
    assert settings.line_for("whatsapp:+442071234569") is settings.whatsapp
    assert settings.line_for("+442071234568") is settings.sms
    assert settings.line_for("+15005550006") is None
    peer = GenericPeerSettings.model_validate(example(generic_peer_profile, "generic_peer"))
    assert peer.queues["billing"].agents == ["Sam", "Priya"]


@pytest.mark.parametrize(("name", "peer_port"), [("default.yaml", 0), ("demo.yaml", 8031)])
def test_shipped_profiles_have_messaging_and_a_generic_peer(name: str, peer_port: int) -> None:
    profile = load_profile(PROFILES_DIR / name)
    assert profile.messaging is not None and profile.generic_peer is not None
    assert profile.generic_peer.port == peer_port
    assert profile.messaging.sms is not None and profile.messaging.whatsapp is not None
    # The same teams as the mail, chat and phone desks.
    assert set(profile.messaging.queues) == set(profile.mail.queues)
    assert set(profile.generic_peer.queues) == set(profile.mail.queues)
    for template in profile.messaging.templates.values():
        assert "{{1}}" in template


def test_demo_replies_come_within_about_5_to_15_seconds() -> None:
    profile = load_profile(PROFILES_DIR / "demo.yaml")
    assert profile.messaging is not None and profile.generic_peer is not None

    def bounds(latency: Latency) -> tuple[float, float]:
        assert not isinstance(latency, LognormalLatency), "a long tail would stall the demo"
        if isinstance(latency, UniformLatency):
            return latency.low, latency.high
        return latency.seconds, latency.seconds

    for replies in (profile.messaging, profile.generic_peer):
        latencies = [replies.bot.latency, *(q.latency for q in replies.queues.values())]
        assert all(bounds(x)[0] >= 4 and bounds(x)[1] <= 15 for x in latencies)
    hooks = profile.messaging.inbound_webhooks
    assert hooks == {
        "+15005550006": "http://127.0.0.1:9464/webhooks/twilio/sms",
        "whatsapp:+15005550006": "http://127.0.0.1:9464/webhooks/twilio/whatsapp",
    }
    assert profile.generic_peer.webhook_url == "http://127.0.0.1:9464/webhooks/generic/social"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"templates": {"HX123": "Hi"}}, "not a ContentSid"),
        ({"whatsapp": {"address": "+442071234569"}}, "String should match pattern"),
        ({"sms": None, "whatsapp": None}, "at least one line"),
        ({"default_queue": "nobody"}, "is not one of the queues"),
        ({"inbound_webhooks": {"15005550006": "http://x"}}, "not an E.164 number"),
        ({"bot": {"text": "Hi {name}"}}, "unknown placeholder {name}"),
        ({"sms": {"address": "+442071234568", "outtage": True}}, "Extra inputs"),
    ],
)
def test_invalid_messaging_sections_say_what_is_wrong(change: dict[str, Any], says: str) -> None:
    raw = {**example(messaging_profile, "messaging"), **change}
    with pytest.raises(ValidationError, match=says):
        MessagingSettings.model_validate(raw)


def test_python_m_sandbox_refuses_messaging_without_twilio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    del raw["twilio"]
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_profile(path).messaging is not None  # loading alone is fine
    assert sandbox_main.main(["--profile", str(path), "--workdir", str(tmp_path / "w")]) == 1
    assert "add a twilio: section" in capsys.readouterr().err


def test_planner_business_hours_after_hours_outage_and_switches() -> None:
    planner = ReplyPlanner(team(), DeskStreams(1, "messaging"))
    plan = planner.plan("About my bill", "business", token="CXP-7K3M9Q2XZ4")
    assert (plan.queue, plan.intended_queue) == ("billing", "billing")
    assert [(r.responder, r.delay, r.agent) for r in plan.replies] == [
        ("bot", 0.5, None),
        ("agent", 5.0, "Sam"),
    ]
    assert plan.replies[1].body.endswith("\n— Sam, Acme Billing")
    after = planner.plan("About my bill", "after_hours", token=None)
    assert [r.responder for r in after.replies] == ["bot"]
    assert after.replies[0].body == team().bot.after_hours_text
    assert planner.plan("bill", "business", token=None, silent=True).replies == ()
    assert [r.responder for r in planner.plan("x", "business", token=None, bot=False).replies] == [
        "agent"
    ]
    assert planner.plan("x", "after_hours", token=None, bot=False).replies == ()
    quiet_bot = ReplyPlanner(team(bot={"enabled": False}), DeskStreams(1, "messaging"))
    assert [r.responder for r in quiet_bot.plan("x", "business", token=None).replies] == ["agent"]


def test_planner_draws_the_same_whatever_the_switches() -> None:
    lognormal = {"distribution": "lognormal", "median": 5, "p95": 20}
    varied = team(
        misroute_rate=0.5,
        queues={
            "a": {"label": "A", "agents": ["1", "2", "3"], "latency": lognormal},
            "b": {"label": "B", "agents": ["4", "5"], "latency": lognormal},
        },
        default_queue="a",
    )
    first, second = (
        ReplyPlanner(varied, DeskStreams(3, "messaging")),
        ReplyPlanner(varied, DeskStreams(3, "messaging")),
    )
    for n in range(5):
        first.plan("x", "business", token=None, silent=n % 2 == 0)
        second.plan("x", "after_hours", token=None)
    assert first.plan("x", "business", token=None) == second.plan("x", "business", token=None)


def test_reply_texts_may_quote_the_reference() -> None:
    with_ref = team(bot={"text": "Got it ({ref})"})
    plan = ReplyPlanner(with_ref, DeskStreams(0, "messaging")).plan("x", "business", token="CXP-1")
    assert plan.replies[0].body == "Got it (CXP-1)"
    assert find_token("no token", "Ref CXP-7K3M9Q2XZ4!") == "CXP-7K3M9Q2XZ4"
    assert find_token("CXP-7K3M9Q2XZI") is None  # I is not Crockford base32


def test_segments() -> None:
    assert count_segments("a" * 160, "sms") == 1
    assert count_segments("a" * 161, "sms") == 2
    assert count_segments("€" * 80, "sms") == 1  # two septets each
    assert count_segments("€" * 81, "sms") == 2
    assert count_segments("—" * 70, "sms") == 1  # not GSM-7: UCS-2, 70 a part
    assert count_segments("—" * 71, "sms") == 2
    assert count_segments("a" * 1000, "whatsapp") == 1


def test_content_templates() -> None:
    templates = {TEMPLATE: "Bill {{1}}, order {{ 2 }}, {{3}}"}
    assert render(templates, TEMPLATE, '{"1": "CXP-1", "2": 42}') == "Bill CXP-1, order 42, {{3}}"
    with pytest.raises(ContentError) as unknown:
        render(templates, "HX" + "f" * 32, None)
    assert unknown.value.code == 21655
    for bad in ("not json", "[1]", '{"1": {"a": 1}}'):
        with pytest.raises(ContentError) as invalid:
            render(templates, TEMPLATE, bad)
        assert invalid.value.code == 21656


def test_message_resource_has_the_specs_message_shape() -> None:
    spec = TwilioSpec.load()
    record = message("outbound-api")
    record.mark_sent()
    resource = record.resource()
    schema = spec.schema("api.v2010.account.message")["properties"]
    assert set(resource) == set(schema)
    for name, value in resource.items():
        prop = schema[name]
        if "$ref" in prop:
            enum = spec.schema(prop["$ref"].rsplit("/", 1)[1])["enum"]
            assert value in enum, name
        elif value is None:
            assert prop.get("nullable"), name
        else:
            kinds = {"string": str, "object": dict, "integer": int}
            assert isinstance(value, kinds[prop["type"]]), name
    assert resource["price"] == "-0.00790" and resource["date_sent"].endswith("+0000")


def test_whatsapp_addresses_are_valid_only_where_messages_take_them() -> None:
    spec = TwilioSpec.load()
    messages = spec.match("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    form = [("To", "whatsapp:+442071234569"), ("From", "whatsapp:+15005550006"), ("Body", "x")]
    content = "application/x-www-form-urlencoded"
    assert spec.check(messages, [], form, content) == []
    calls = spec.match("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
    call = [("To", "+442071234569"), ("From", "whatsapp:+15005550006"), ("Url", "http://x.test")]
    (problem,) = spec.check(calls, [], call, content)
    assert (problem.parameter, problem.rule) == ("From", "format")


def test_date_sent_filters() -> None:
    record = message("inbound")
    record.date_sent = datetime(2024, 5, 1, 9, 30, 15, 700000, tzinfo=UTC)

    def matches(*conditions: tuple[str, str]) -> bool:
        return _date_sent_filter(dict(conditions))(record)

    assert matches(("DateSent>", "2024-05-01T09:30:15Z"))  # to the second: on or after
    assert not matches(("DateSent>", "2024-05-01T09:30:16Z"))
    assert matches(("DateSent<", "2024-05-01T09:30:15Z"))  # on or before
    assert not matches(("DateSent<", "2024-05-01T09:30:14Z"))
    assert matches(("DateSent", "2024-05-01")) and not matches(("DateSent", "2024-05-02"))
    assert matches(("DateSent<", "2024-05-01")) and not matches(("DateSent>", "2024-05-02"))
    record.date_sent = None
    assert not matches(("DateSent>", "2024-05-01")) and matches()
