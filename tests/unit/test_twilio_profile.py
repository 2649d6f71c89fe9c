"""The `twilio:` section of a sandbox profile."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sandbox.latency import FixedLatency, Latency, LognormalLatency, UniformLatency
from sandbox.profile import PROFILES_DIR, ProfileError, load_profile
from sandbox.twilio import profile as twilio_profile
from sandbox.twilio.profile import TwilioSettings


def test_the_documented_example_is_a_valid_profile() -> None:
    doc = twilio_profile.__doc__ or ""
    example = doc.split("::\n", 1)[1].split("\nBusiness hours", 1)[0]
    settings = TwilioSettings.model_validate(yaml.safe_load(textwrap.dedent(example))["twilio"])
    assert settings.ivr.menus["main"].by_speech("I have a question about an INVOICE") is not None
    assert settings.ivr.menus["main"].by_digit("2") is not None
    assert settings.ivr.queues["billing"].agents == ["Sam", "Alex"]


@pytest.mark.parametrize(("name", "port"), [("default.yaml", 0), ("demo.yaml", 8030)])
def test_shipped_profiles_have_a_phone_line(name: str, port: int) -> None:
    loaded = load_profile(PROFILES_DIR / name)
    line = loaded.twilio
    assert line is not None and line.port == port
    assert line.auth_token.startswith("sandbox-")  # obviously not a real account's token
    # The phone queues are the mail and chat desks' teams, with the chat desk's agents.
    assert loaded.chat is not None
    assert set(line.ivr.queues) == set(loaded.mail.queues) == set(loaded.chat.queues)
    for name_, queue in line.ivr.queues.items():
        assert queue.agents == loaded.chat.queues[name_].agents
    main = line.ivr.menus[line.ivr.root]
    routes = {option.digit: option.goto for option in main.options}
    assert routes == {"1": "billing", "2": "tech", "3": "sales"}
    assert main.by_speech("it's about an invoice") is not None
    assert "Please call back" in line.after_hours.message


def test_demo_calls_reach_an_agent_within_about_30_seconds() -> None:
    line = load_profile(PROFILES_DIR / "demo.yaml").twilio
    assert line is not None

    def longest(latency: Latency) -> float:
        assert not isinstance(latency, LognormalLatency), "a long tail would stall the demo"
        return latency.high if isinstance(latency, UniformLatency) else latency.seconds

    menu = line.speaking_seconds(line.ivr.menus[line.ivr.root].prompt)
    for name, queue in line.ivr.queues.items():
        agent = max(queue.agents, key=len)
        greeting = queue.greeting.format(agent=agent, label=queue.label or name)
        seconds = (
            longest(line.post_dial_delay)
            + longest(line.ring_time)
            + menu
            + line.speaking_seconds(queue.hold_message or "")
            + longest(queue.wait)
            + line.speaking_seconds(greeting)
        )
        assert seconds <= 30, f"a call to {name} can take {seconds:.1f} s"


def test_twilio_section_is_optional_and_checked(tmp_path: Path) -> None:
    raw = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    del raw["twilio"]
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_profile(path).twilio is None
    raw = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    raw["twilio"]["account_sid"] = "AC123"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match=r"twilio\.account_sid: String should match pattern"):
        load_profile(path)


def test_partial_results_default_to_a_fixed_recognizer_delay() -> None:
    settings = TwilioSettings.model_validate(profile())
    assert settings.partial_result_delay == FixedLatency(seconds=0.4)
    assert settings.partial_result_interval == 1.0


def profile(**ivr: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "root": "main",
        "menus": {"main": {"prompt": "Press 1.", "options": [{"digit": "1", "goto": "billing"}]}},
        "queues": {"billing": {}},
    }
    section.update(ivr)
    return {"account_sid": "AC" + "0" * 32, "auth_token": "t", "ivr": section}


def test_a_minimal_profile_gets_defaults() -> None:
    settings = TwilioSettings.model_validate(profile())
    assert settings.ivr.queues["billing"].agents == ["Sam"]
    assert settings.speaking_seconds("x" * 30) == 2.0
    assert settings.faults.call_result is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"root": "start"}, "root 'start' is not one of the menus"),
        (
            {"menus": {"main": {"prompt": "p", "options": [{"digit": "1", "goto": "bill"}]}}},
            "goto 'bill' is not a menu or queue",
        ),
        (
            {"menus": {"main": {"prompt": "p", "options": [{"goto": "billing"}]}}},
            "needs a digit or keywords",
        ),
        (
            {"queues": {"billing": {"greeting": "Hi, {name} here"}}},
            "placeholders {agent} and {label}",
        ),
        (
            {
                "menus": {
                    "main": {"prompt": "p", "options": [{"digit": "1", "goto": "billing"}]},
                    "billing": {"prompt": "p", "options": [{"digit": "1", "goto": "main"}]},
                }
            },
            "name both a menu and a queue",
        ),
    ],
)
def test_profile_mistakes_are_named(change: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("{", r"\{").replace("}", r"\}")):
        TwilioSettings.model_validate(profile(**change))
