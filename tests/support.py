"""Helpers shared by the integration and end-to-end tests: configs for the sandbox desk."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

ALL_DAY = ["00:00-24:00"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PROBE_ADDRESS = "probe@cxprobe.test"
PROBE_PASSWORD = "probe-secret"
SUPPORT_ADDRESS = "support@acme.test"


def require_binary(name: str) -> str:
    """The path of ``name``; fails (never skips) when a real peer is missing."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        raise AssertionError(
            f"{name} is not installed: run scripts/install-system-deps.sh (make test does)"
        )
    return path


def weekly(open_now: bool) -> dict[str, list[str]]:
    """Hours that are open all week, or closed all week (so every contact is after hours)."""
    return {day: ALL_DAY for day in DAYS} if open_now else {}


def desk_profile(
    open_now: bool = True, *, hours: dict[str, list[str]] | None = None, **mail: Any
) -> dict[str, Any]:
    """A sandbox profile (as data) with fast, fixed latencies and free ports."""
    profile_mail: dict[str, Any] = {
        "support_address": SUPPORT_ADDRESS,
        "probe_mailboxes": [{"address": PROBE_ADDRESS, "password": PROBE_PASSWORD}],
        "auto_ack": {
            "enabled": True,
            "delay": {"distribution": "fixed", "seconds": 0.3},
            "sender": "noreply@acme.test",
        },
        "after_hours": {"auto_reply": True, "delay": {"distribution": "fixed", "seconds": 0.3}},
        "queues": {
            "billing": {
                "keywords": ["invoice", "refund", "charge"],
                "sender": "billing@acme.test",
                "signature": "-- \nAcme Billing Team",
                "latency": {"distribution": "fixed", "seconds": 1.5},
            },
            "tech": {
                "keywords": ["error", "login", "fault"],
                "sender": "tech@acme.test",
                "signature": "-- \nAcme Technical Support",
                "latency": {"distribution": "fixed", "seconds": 1.5},
            },
            "sales": {
                "keywords": [],
                "sender": "sales@acme.test",
                "signature": "-- \nAcme Sales",
                "latency": {"distribution": "fixed", "seconds": 1.5},
            },
        },
        "default_queue": "sales",
    }
    profile_mail.update(mail)
    return {
        "seed": 1,
        "timezone": "Europe/London",
        "business_hours": weekly(open_now) if hours is None else hours,
        "mail": profile_mail,
    }


def monitor_config(
    tmp_path: Path,
    *,
    smtp_port: int,
    imap_port: int,
    open_now: bool = True,
    hours: dict[str, list[str]] | None = None,
    sla: dict[str, Any] | None = None,
    checks: list[dict[str, Any]] | None = None,
    scenarios: dict[str, Any] | None = None,
    http_port: int = 0,
    imap: dict[str, Any] | None = None,
    smtp: dict[str, Any] | None = None,
) -> Path:
    """A cxprobe config probing the sandbox desk; written to ``tmp_path/cxprobe.yaml``."""
    config = {
        "version": 1,
        "monitor": {
            "location": "test",
            "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
            "http": {"host": "127.0.0.1", "port": http_port},
            "log_format": "json",
        },
        "locations": {"test": {}},
        "channels": {
            "email": {
                "mailboxes": {
                    "probe": {
                        "address": PROBE_ADDRESS,
                        "smtp": {
                            "host": "127.0.0.1",
                            "port": smtp_port,
                            "tls": "none",
                            **(smtp or {}),
                        },
                        "imap": {
                            "host": "127.0.0.1",
                            "port": imap_port,
                            "tls": "none",
                            "username": PROBE_ADDRESS,
                            "password": "${CXPROBE_TEST_IMAP_PASSWORD}",
                            **(imap or {}),
                        },
                    }
                }
            }
        },
        "targets": {
            "acme": {
                "name": "Acme (sandbox)",
                "business_hours": {
                    "timezone": "Europe/London",
                    "weekly": weekly(open_now) if hours is None else hours,
                },
                "channels": {"email": {"to": SUPPORT_ADDRESS, "mailbox": "probe"}},
                "queues": {
                    "billing": {"match": [{"sender": r"^billing@acme\.test$"}]},
                    "tech": {"match": [{"sender": r"^tech@acme\.test$"}]},
                    "sales": {"match": [{"text": "Acme Sales"}]},
                },
                "slas": {
                    "email": sla
                    or {
                        "first_response": "5s",
                        "human_response": "10s",
                        "after_hours_response": "5s",
                        "deadline": "15s",
                    }
                },
                "rate_limit": {"max_contacts_per_hour": 1000},
            }
        },
        "checks": checks
        or [
            {
                "id": "acme-email-billing",
                "target": "acme",
                "channel": "email",
                "scenario": "billing-question",
                "schedule": {"every": "1h"},
            }
        ],
    }
    if scenarios:
        config["scenarios"] = scenarios
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fixed(seconds: float) -> dict[str, Any]:
    return {"distribution": "fixed", "seconds": seconds}


def chat_site_profile(
    open_now: bool = True, *, agent_seconds: float = 0.6, **chat: Any
) -> dict[str, Any]:
    """The default sandbox profile (as data) with its chat site on fast, fixed latencies."""
    from sandbox.profile import PROFILES_DIR  # the sandbox is the outside world: import late

    raw: dict[str, Any] = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    raw["business_hours"] = weekly(open_now)
    settings = raw["chat"]
    settings["widget_delay"] = fixed(0.05)
    settings["bot"]["latency"] = fixed(0.2)
    settings["handoff_latency"] = fixed(0.3)
    settings["typing_seconds"] = 0.2
    for queue in settings["queues"].values():
        queue["latency"] = fixed(agent_seconds)
    settings.update(chat)
    return raw


def sandbox_widget(url: str, **overrides: Any) -> dict[str, Any]:
    """The webchat address of the sandbox site's widget, as config/sandbox.yaml has it."""
    widget: dict[str, Any] = {
        "url": url,
        "cookie_accept": "#cookie-accept",
        "launcher": "#chat-launcher",
        "prechat": {
            "fields": {
                "input[name=name]": "{customer_name}",
                "input[name=email]": "{email}",
                "select[name=topic]": "other",
            },
            "submit": "#prechat-start",
        },
        "email": "probe+{token}@cxprobe.test",
        "input": "#chat-input",
        "send": "#chat-send",
        "messages": {
            "list": "ol.messages",
            "item": "li.msg",
            "brand": ".msg--bot, .msg--agent, .msg--system",
            "bot": ".msg--bot",
            "system": ".msg--system",
            "handoff": "now chatting with",
            "ignore": ".typing",
            "text": ".msg-text",
            "author": ".msg-author",
            "team_label": ".team-label",
        },
        "end": {"button": "#chat-end", "confirm": "#chat-end-confirm"},
    }
    widget.update(overrides)
    return widget


def webchat_config(
    tmp_path: Path,
    widget: dict[str, Any],
    *,
    open_now: bool = True,
    sla: dict[str, Any] | None = None,
    browser: dict[str, Any] | None = None,
    scenario: str = "billing-question",
    expected_queue: str | None = None,
) -> Path:
    """A cxprobe config probing one chat widget; written to ``tmp_path/cxprobe.yaml``."""
    check: dict[str, Any] = {
        "id": "acme-chat",
        "target": "acme",
        "channel": "webchat",
        "scenario": scenario,
        "schedule": {"every": "1h"},
    }
    if expected_queue:
        check["expected_queue"] = expected_queue
    config = {
        "version": 1,
        "monitor": {
            "location": "test",
            "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
            "http": {"host": "127.0.0.1", "port": 0},
            "log_format": "json",
        },
        "locations": {"test": {}},
        "channels": {"webchat": {"browser": {"step_timeout": 5, **(browser or {})}}},
        "targets": {
            "acme": {
                "name": "Acme (sandbox)",
                "business_hours": {"timezone": "Europe/London", "weekly": weekly(open_now)},
                "channels": {"webchat": widget},
                "queues": {
                    "billing": {"match": [{"headers": {"Team": "^Billing"}}]},
                    "tech": {"match": [{"headers": {"Team": "^Technical"}}]},
                    "sales": {"match": [{"headers": {"Team": "^Sales"}}]},
                },
                "slas": {
                    "webchat": sla
                    or {
                        "first_response": "5s",
                        "human_response": "10s",
                        "after_hours_response": "5s",
                        "deadline": "12s",
                    }
                },
                "rate_limit": {"max_contacts_per_hour": 1000},
            }
        },
        "checks": [check],
    }
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def generic_platform(peer: Any) -> dict[str, Any]:
    """A ``channels.generic`` platform for the sandbox's generic peer (a running GenericPeer),
    as config/sandbox.yaml describes it."""
    settings = peer.settings
    return {
        "send": {
            "url": peer.send_url,
            "headers": {"Authorization": f"Bearer {settings.access_token}"},
            "body": {
                "recipient": {"id": "{recipient}"},
                "sender": {"id": "{sender}"},
                "message": {"text": "{text}", "metadata": {"ref": "{token}"}},
            },
            "message_id": "$.message_id",
        },
        "signature": {"secret": settings.app_secret},
        "inbound": {
            "messages": "$.entry[*].messaging[*]",
            "sender": "$.sender.id",
            "recipient": "$.recipient.id",
            "text": "$.message.text",
            "id": "$.message.mid",
            "time": "$.timestamp",
            "skip_if_true": "$.message.is_echo",
        },
    }


def monitor_section(tmp_path: Path) -> dict[str, Any]:
    """A config's ``monitor`` section for a test monitor: location ``test``, the store under
    ``tmp_path``, HTTP on an ephemeral loopback port, JSON logs."""
    return {
        "location": "test",
        "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
        "http": {"host": "127.0.0.1", "port": 0},
        "log_format": "json",
    }
