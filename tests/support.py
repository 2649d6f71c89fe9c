"""Helpers shared by the integration, contract and end-to-end tests: sandbox profiles and the
cxprobe configs that probe them, one builder per channel on one shared document skeleton."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from scenarios.answers import EVIDENCE_KIND as ANSWER_QUALITY_EVIDENCE
from scenarios.conversation import EVIDENCE_KIND as CONVERSATION_EVIDENCE
from scenarios.model import RunResult
from scenarios.rubric import EVIDENCE_KIND as RUBRIC_EVIDENCE

ALL_DAY = ["00:00-24:00"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PROBE_ADDRESS = "probe@cxprobe.test"
PROBE_PASSWORD = "probe-secret"
SUPPORT_ADDRESS = "support@acme.test"
#: The monitor's own number on the Twilio sandbox (calls, SMS and WhatsApp).
PROBE_NUMBER = "+15005550006"
#: The account of the fast phone line (``phone_line``); its token comes from the environment.
PHONE_ACCOUNT_SID = "AC" + "5a" * 16
PHONE_AUTH_TOKEN = "sandbox-phone-token"
SUPPORT_LINE = "+442071234567"
#: The SLA of the chat-like channels' configs (web chat and messaging): answers in seconds.
CHAT_SLA = {
    "first_response": "5s",
    "human_response": "10s",
    "after_hours_response": "5s",
    "deadline": "12s",
}


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


def fixed(seconds: float) -> dict[str, Any]:
    return {"distribution": "fixed", "seconds": seconds}


# -- the config document every channel's builder fills in -----------------------------------


def write_config(
    tmp_path: Path,
    *,
    channels: dict[str, Any],
    target: dict[str, Any],
    checks: list[dict[str, Any]],
    scenarios: dict[str, Any] | None = None,
    http_port: int = 0,
) -> Path:
    """A cxprobe config with one target, ``acme``, written to ``tmp_path/cxprobe.yaml``.

    ``target`` holds the target's business hours, channel addresses, queues and SLAs.
    """
    config: dict[str, Any] = {
        "version": 1,
        "monitor": {
            "location": "test",
            "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
            "data_dir": str(tmp_path / "data"),
            "http": {"host": "127.0.0.1", "port": http_port},
            "log_format": "json",
        },
        "locations": {"test": {}},
        "channels": channels,
        "targets": {
            "acme": {
                "name": "Acme (sandbox)",
                **target,
                "rate_limit": {"max_contacts_per_hour": 1000},
            }
        },
        "checks": checks,
    }
    if scenarios:
        config["scenarios"] = scenarios
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def one_check(check_id: str, channel: str, scenario: str = "billing-question") -> dict[str, Any]:
    return {
        "id": check_id,
        "target": "acme",
        "channel": channel,
        "scenario": scenario,
        "schedule": {"every": "1h"},
    }


def hours_in(
    zone: str, open_now: bool, hours: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"timezone": zone, "weekly": weekly(open_now) if hours is None else hours}


# -- email: the sandbox desk (Dovecot behind an SMTP front) ----------------------------------


def desk_profile(
    open_now: bool = True,
    *,
    hours: dict[str, list[str]] | None = None,
    human_seconds: float = 1.5,
    **mail: Any,
) -> dict[str, Any]:
    """A sandbox profile (as data) with fast, fixed latencies and free ports; every queue's
    human answers ``human_seconds`` after the contact."""
    profile_mail: dict[str, Any] = {
        "support_address": SUPPORT_ADDRESS,
        "probe_mailboxes": [{"address": PROBE_ADDRESS, "password": PROBE_PASSWORD}],
        "auto_ack": {
            "enabled": True,
            "delay": fixed(0.3),
            "sender": "noreply@acme.test",
        },
        "after_hours": {"auto_reply": True, "delay": fixed(0.3)},
        "queues": {
            "billing": {
                "keywords": ["invoice", "refund", "charge"],
                "sender": "billing@acme.test",
                "signature": "-- \nAcme Billing Team",
                "latency": fixed(human_seconds),
            },
            "tech": {
                "keywords": ["error", "login", "fault"],
                "sender": "tech@acme.test",
                "signature": "-- \nAcme Technical Support",
                "latency": fixed(human_seconds),
            },
            "sales": {
                "keywords": [],
                "sender": "sales@acme.test",
                "signature": "-- \nAcme Sales",
                "latency": fixed(human_seconds),
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
    mailbox = {
        "address": PROBE_ADDRESS,
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "tls": "none", **(smtp or {})},
        "imap": {
            "host": "127.0.0.1",
            "port": imap_port,
            "tls": "none",
            "username": PROBE_ADDRESS,
            "password": "${CXPROBE_TEST_IMAP_PASSWORD}",
            **(imap or {}),
        },
    }
    target = {
        "business_hours": hours_in("Europe/London", open_now, hours),
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
    }
    return write_config(
        tmp_path,
        channels={"email": {"mailboxes": {"probe": mailbox}}},
        target=target,
        checks=checks or [one_check("acme-email-billing", "email")],
        scenarios=scenarios,
        http_port=http_port,
    )


# -- web chat: the sandbox chat site in Chromium ---------------------------------------------


def chat_site_profile(
    open_now: bool = True, *, agent_seconds: float = 0.6, **chat: Any
) -> dict[str, Any]:
    """The default sandbox profile (as data) with its chat site on fast, fixed latencies."""
    raw = default_profile_data()
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
    check = one_check("acme-chat", "webchat", scenario)
    if expected_queue:
        check["expected_queue"] = expected_queue
    target = {
        "business_hours": hours_in("Europe/London", open_now),
        "channels": {"webchat": widget},
        "queues": {
            "billing": {"match": [{"headers": {"Team": "^Billing"}}]},
            "tech": {"match": [{"headers": {"Team": "^Technical"}}]},
            "sales": {"match": [{"headers": {"Team": "^Sales"}}]},
        },
        "slas": {"webchat": sla or CHAT_SLA},
    }
    return write_config(
        tmp_path,
        channels={"webchat": {"browser": {"step_timeout": 5, **(browser or {})}}},
        target=target,
        checks=[check],
    )


# -- phone: the Twilio sandbox's IVR line ----------------------------------------------------


def phone_line(**overrides: Any) -> Any:
    """A fast sandbox line (``TwilioSettings``): billing on 1, 'support' on 2 is miswired to
    sales. ``queue_wait`` (seconds on hold before the agent) is one of the overrides."""
    from sandbox.twilio.profile import TwilioSettings  # the sandbox is the outside world

    wait = fixed(overrides.pop("queue_wait", 1.0))
    profile: dict[str, Any] = {
        "account_sid": PHONE_ACCOUNT_SID,
        "auth_token": PHONE_AUTH_TOKEN,
        "speech_rate": 40,
        "post_dial_delay": fixed(0.1),
        "ring_time": fixed(0.3),
        "partial_result_delay": fixed(0.3),
        "partial_result_interval": 0.5,
        "max_call_seconds": 60,
        "hangup_delay_seconds": 0.3,
        "ivr": {
            "root": "main",
            "menus": {
                "main": {
                    "prompt": "Welcome to Acme. For billing press 1. For support press 2.",
                    "options": [
                        {"digit": "1", "keywords": ["billing"], "goto": "billing"},
                        {
                            "digit": "2",
                            "keywords": ["support"],
                            "goto": "sales",
                            "intended": "tech",
                        },
                    ],
                    "no_input_seconds": 3,
                }
            },
            "queues": {
                "billing": {"label": "Billing", "wait": wait, "agents": ["Sam"]},
                "tech": {"label": "Technical Support", "wait": wait, "agents": ["Jo"]},
                "sales": {"label": "Sales", "wait": wait, "agents": ["Al"]},
            },
        },
        "after_hours": {
            "message": "Thank you for calling Acme. Our lines are open Monday to Friday 9 to "
            "5:30. Please call back then."
        },
    }
    profile.update(overrides)
    return TwilioSettings.model_validate(profile)


#: The IVR's prompt on :func:`heard_line`.
STREAM_PROMPT = "Welcome to Acme. For billing press 1. For support press 2."


def heard_line(**main_menu: Any) -> Any:
    """A sandbox line (``TwilioSettings``) whose far end is heard over a media stream: ringback
    after the answer, the IVR's prompt, hold, an agent (``main_menu``: overrides of the main
    menu's settings)."""
    menus = phone_line(queue_wait=2.0).ivr.model_dump()
    menus["menus"]["main"]["prompt"] = STREAM_PROMPT
    menus["menus"]["main"].update(main_menu)
    return phone_line(
        speech_rate=14,  # about espeak-ng's pace, so an utterance's audio fills its time
        answer_ringback_seconds=1.0,
        ivr=menus,
    )


def listen_on_stream(
    phone: dict[str, Any], line: dict[str, Any], stream_url: str, **media_stream: Any
) -> None:
    """A ``channels.phone`` section and a target's phone line (as data) made to hear the call
    over a media stream at ``stream_url`` (the monitor's own port), pressing 1 for billing."""
    phone["media_stream_url"] = stream_url
    phone["media_stream"] = {"connect_timeout": 3, **media_stream}
    line["listen"] = "stream"
    line["ivr"] = {"billing": [{"digits": "1"}], "tech": [{"digits": "2"}]}


def phone_channel(
    api_base_url: str, *, status_only: bool = False, retry_for: float = 10.0
) -> dict[str, Any]:
    """A ``channels.phone`` section calling the sandbox line at ``api_base_url`` (its token in
    ``CXPROBE_TEST_TWILIO_TOKEN``)."""
    return {
        "twilio": {
            "account_sid": PHONE_ACCOUNT_SID,
            "auth_token": "${CXPROBE_TEST_TWILIO_TOKEN}",
            "api_base_url": api_base_url,
            "retry_for": retry_for,
        },
        "from_number": PROBE_NUMBER,
        "webhook": {"status_only": status_only, "poll_interval": 0.2},
        "listen_timeout": 5,
        "closing_line": "Thanks, goodbye.",
    }


def phone_config(
    tmp_path: Path,
    api_base_url: str,
    *,
    open_now: bool = True,
    scenario: str = "billing-question",
    status_only: bool = False,
    retry_for: float = 10.0,
    sla: dict[str, Any] | None = None,
    scenarios: dict[str, Any] | None = None,
    http_port: int = 0,
) -> Path:
    """A cxprobe config calling the sandbox phone line at ``api_base_url`` (its base URL)."""
    phone = phone_channel(api_base_url, status_only=status_only, retry_for=retry_for)
    target = {
        "business_hours": hours_in("UTC", open_now),
        "channels": {
            "phone": {
                "number": SUPPORT_LINE,
                "ivr": {"billing": [{"digits": "w1"}], "tech": [{"digits": "w2"}]},
            }
        },
        "queues": {
            "billing": {"match": [{"text": r"\bin Billing\b"}]},
            "tech": {"match": [{"text": r"\bin Technical Support\b"}]},
            "sales": {"match": [{"text": r"\bin Sales\b"}]},
        },
        "slas": {
            "phone": sla
            or {
                "first_response": "10s",
                "human_response": "20s",
                "after_hours_response": "10s",
                "deadline": "25s",
            }
        },
    }
    return write_config(
        tmp_path,
        channels={"phone": phone},
        target=target,
        checks=[one_check("acme-phone", "phone", scenario)],
        scenarios=scenarios,
        http_port=http_port,
    )


# -- messaging: SMS and WhatsApp on the Twilio sandbox, and the generic peer -----------------


def default_profile_data() -> dict[str, Any]:
    """The sandbox's default profile (``sandbox/profiles/default.yaml``), as data."""
    from sandbox.profile import PROFILES_DIR  # the sandbox is the outside world: import late

    raw: dict[str, Any] = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    return raw


def messaging_profile(*, generic_peer: dict[str, Any] | None = None, **messaging: Any) -> Any:
    """The default sandbox ``Profile`` with its ``messaging:`` (and ``generic_peer:``) sections
    updated; ``misroute_rate`` and ``outage`` apply to both."""
    from sandbox.profile import Profile

    raw = default_profile_data()
    raw["messaging"].update(messaging)
    raw["generic_peer"].update(
        {k: v for k, v in messaging.items() if k in ("misroute_rate", "outage")}
    )
    raw["generic_peer"].update(generic_peer or {})
    return Profile.model_validate(raw)


def agents_answering_after(section: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The ``queues`` of a profile section (as data) with every agent answering after
    ``seconds``."""
    return {name: {**queue, "latency": fixed(seconds)} for name, queue in section["queues"].items()}


def twilio_messaging(
    api_base_url: str, loaded: Any, mode: str = "webhook", retry_for: float | None = None
) -> dict[str, Any]:
    """A ``channels.sms`` or ``channels.whatsapp`` section for the Twilio sandbox at
    ``api_base_url``, on the account of the loaded profile."""
    twilio: dict[str, Any] = {
        "account_sid": loaded.twilio.account_sid,
        "auth_token": loaded.twilio.auth_token,
        "api_base_url": api_base_url,
    }
    if retry_for is not None:
        twilio["retry_for"] = retry_for
    return {
        "twilio": twilio,
        "from_numbers": [PROBE_NUMBER],
        "receiving": {"mode": mode, "poll_interval": 0.3, "page_size": 20},
        "status_wait": 10,
    }


def brand_number(loaded: Any, line: str) -> str:
    """The E.164 number of the profile's ``sms`` or ``whatsapp`` line."""
    return str(getattr(loaded.messaging, line).address).removeprefix("whatsapp:")


def messaging_config(
    tmp_path: Path,
    channel: str,
    address: dict[str, Any],
    channels: dict[str, Any],
    *,
    open_now: bool = True,
    scenario: str = "billing-question",
    sla: dict[str, Any] | None = None,
) -> Path:
    """A cxprobe config with one check on a messaging ``channel`` (sms, whatsapp, generic)."""
    target = {
        "business_hours": hours_in("UTC", open_now),
        "channels": {channel: address},
        "queues": {
            "billing": {"match": [{"text": "Acme Billing"}]},
            "tech": {"match": [{"text": "Acme Technical Support"}]},
            "sales": {"match": [{"text": "Acme Sales"}]},
        },
        "responders": [
            {"responder": "bot", "match": {"text": "automated assistant"}},
            {"responder": "bot", "match": {"text": "will reply when we reopen"}},
        ],
        "slas": {channel: sla or CHAT_SLA},
    }
    return write_config(
        tmp_path,
        channels=channels,
        target=target,
        checks=[one_check(f"acme-{channel}", channel, scenario)],
    )


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
            # RFC 9535 filter: Messenger-like platforms mix message, delivery and read events.
            "messages": "$.entry[*].messaging[?@.message]",
            "sender": "$.sender.id",
            "recipient": "$.recipient.id",
            "text": "$.message.text",
            "id": "$.message.mid",
            "time": "$.timestamp",
            "skip_if_true": "$.message.is_echo",
        },
    }


def generic_channels(peer: Any) -> dict[str, Any]:
    """The ``channels`` section for the generic peer as the platform ``social``."""
    return {"generic": {"platforms": {"social": generic_platform(peer)}}}


def monitor_section(tmp_path: Path) -> dict[str, Any]:
    """A config's ``monitor`` section for a test monitor: location ``test``, the store under
    ``tmp_path``, HTTP on an ephemeral loopback port, JSON logs."""
    return {
        "location": "test",
        "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
        "data_dir": str(tmp_path / "data"),
        "http": {"host": "127.0.0.1", "port": 0},
        "log_format": "json",
    }


def run_evidence_kinds(result: RunResult, *channel_kinds: str) -> set[str]:
    """The run-level evidence a finished run keeps: its channel's kinds, plus the
    ``answer-quality`` document when its scenario judged the answers (expectations or a
    language, scenarios.answers), the ``conversation`` timeline when it was scripted
    (scenarios.conversation) and the ``rubric`` document when its scenario has a rubric
    (scenarios.rubric)."""
    judged = result.answer is not None or result.language is not None
    scripted = [CONVERSATION_EVIDENCE] if result.turns else []
    rubric = [RUBRIC_EVIDENCE] if result.rubric_items else []
    return {*channel_kinds, *([ANSWER_QUALITY_EVIDENCE] if judged else []), *scripted, *rubric}
