"""The `chat:` section of sandbox profiles: shipped profiles load, bad ones say what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.chat.desk import find_token
from sandbox.profile import PROFILES_DIR, ProfileError, load_profile

Edit = Callable[[dict[str, Any]], None]


def test_shipped_profiles_have_a_chat_site() -> None:
    default = load_profile(PROFILES_DIR / "default.yaml").chat
    demo = load_profile(PROFILES_DIR / "demo.yaml").chat
    assert default is not None and demo is not None
    assert (default.port, default.alt_port) == (0, 0)
    assert (demo.port, demo.alt_port) == (8088, 8089)
    assert default.queues["billing"].label == "Billing team"


def test_chat_section_is_optional(tmp_path: Path) -> None:
    raw = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    del raw["chat"]
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_profile(path).chat is None


def _set(*keys: str, value: Any) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        node = raw
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("chat", "botname", value="X"), "chat.botname: Extra inputs are not permitted"),
        (
            _set("chat", "default_queue", value="vip"),
            "chat: Value error, default_queue 'vip' is not one of the queues "
            "['billing', 'sales', 'tech']",
        ),
        (
            _set("chat", "bot", "greeting", value="Hello {nam}"),
            "chat.bot.greeting: Value error, unknown placeholder {nam}; "
            "allowed placeholders: {name}",
        ),
        (
            _set("chat", "bot", "handoff_text", value="To {team"),
            "chat.bot.handoff_text: Value error, 'To {team' is not a valid template",
        ),
        (
            _set("chat", "queues", "sales", "agents", value=[]),
            "chat.queues.sales.agents: List should have at least 1 item",
        ),
        (_set("chat", "queues", "sales", "label", value=""), "chat.queues.sales.label"),
        (
            _set("chat", "misroute_rate", value=1.5),
            "chat.misroute_rate: Input should be less than or equal to 1",
        ),
        (
            lambda raw: raw["chat"].update(port=8088, alt_port=8088),
            "port and alt_port are both 8088",
        ),
        (
            _set("chat", "widget_delay", value={"distribution": "normal"}),
            "chat.widget_delay: Input tag 'normal' found using 'distribution' does not match",
        ),
    ],
    ids=[
        "misspelt-key",
        "unknown-default-queue",
        "unknown-placeholder",
        "broken-template",
        "no-agents",
        "empty-label",
        "misroute-rate",
        "same-ports",
        "unknown-distribution",
    ],
)
def test_invalid_chat_settings_name_the_key(tmp_path: Path, edit: Edit, message: str) -> None:
    raw = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    edit(raw)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("ref CXP-7K3M9Q2XZ4 please", "CXP-7K3M9Q2XZ4"),
        ("(CXP-0123456789) and CXP-ABCDEFGHJK", "CXP-0123456789"),
        ("probe+CXP-7K3M9Q2XZ4@cxprobe.test", "CXP-7K3M9Q2XZ4"),
        ("CXP-7K3M9Q2XZI has an I", None),  # Crockford base32 has no I, L, O or U
        ("cxp-7k3m9q2xz4 is lower case", None),
        ("CXP-7K3M9Q2XZ45 is too long", None),
        ("XCXP-7K3M9Q2XZ4 is inside a word", None),
    ],
)
def test_reference_token_is_found_as_a_whole_word(text: str, token: str | None) -> None:
    assert find_token(text) == token
