"""The `twilio:` section of a sandbox profile."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sandbox import twilio_profile
from sandbox.twilio_profile import TwilioSettings


def test_the_documented_example_is_a_valid_profile() -> None:
    doc = twilio_profile.__doc__ or ""
    example = doc.split("::\n", 1)[1].split("\nBusiness hours", 1)[0]
    settings = TwilioSettings.model_validate(yaml.safe_load(textwrap.dedent(example))["twilio"])
    assert settings.ivr.menus["main"].by_speech("I have a question about an INVOICE") is not None
    assert settings.ivr.menus["main"].by_digit("2") is not None
    assert settings.ivr.queues["billing"].agents == ["Sam", "Alex"]


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
