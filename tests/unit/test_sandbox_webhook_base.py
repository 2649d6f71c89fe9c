"""`--webhook-base-url`: webhook paths in a sandbox profile are joined to the monitor's base, and
whole URLs keep their path under it; a path without a base is an error naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.profile import PROFILES_DIR, Profile, ProfileError
from sandbox.webhook_base import check_base_url, with_webhook_base

SOURCE = Path("profile.yaml")


def demo(**hooks: Any) -> Profile:
    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    raw["messaging"]["inbound_webhooks"] = hooks.get("messaging", {})
    raw["generic_peer"]["webhook_url"] = hooks.get("generic")
    return Profile.model_validate(raw)


def test_paths_join_the_base_and_whole_urls_move_under_it() -> None:
    profile = demo(
        messaging={"+15005550006": "/webhooks/twilio/sms", "+15005550007": None},
        generic="http://127.0.0.1:9464/webhooks/generic/social?page=1",
    )
    base = check_base_url("http://127.0.0.1:7001/monitor/")
    resolved = with_webhook_base(profile, base, SOURCE)
    assert resolved.messaging is not None and resolved.generic_peer is not None
    assert resolved.messaging.inbound_webhooks == {
        "+15005550006": "http://127.0.0.1:7001/monitor/webhooks/twilio/sms",
        "+15005550007": None,
    }
    assert (
        resolved.generic_peer.webhook_url
        == "http://127.0.0.1:7001/monitor/webhooks/generic/social?page=1"
    )
    # Without a base, whole URLs stay as they are.
    assert with_webhook_base(demo(generic="http://h:1/x"), None, SOURCE) == demo(
        generic="http://h:1/x"
    )


def test_a_path_without_a_base_names_the_file_and_key() -> None:
    with pytest.raises(ProfileError) as error:
        with_webhook_base(demo(generic="/webhooks/generic/social"), None, SOURCE)
    assert str(error.value).startswith("profile.yaml: generic_peer.webhook_url is the path")
    assert "--webhook-base-url" in str(error.value)


@pytest.mark.parametrize("base", ["127.0.0.1:9464", "ftp://h", "http://", "http://h/a b"])
def test_a_bad_base_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="is not an http"):
        check_base_url(base)


def test_a_webhook_that_is_neither_url_nor_path_is_refused() -> None:
    with pytest.raises(ValueError, match="neither an http"):
        demo(generic="webhooks/generic/social")
