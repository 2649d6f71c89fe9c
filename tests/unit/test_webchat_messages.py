"""How the web-chat conversation reads the observer's reports, without a browser.

The observer's reports are plain mappings; these tests feed them to a conversation directly.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from probes.base import ChannelUnavailable, Responder
from probes.webchat.channel import WebchatChannel, WebchatConversation, author_and_text
from probes.webchat.settings import BrowserSettings, WebchatAddress
from tests.support import sandbox_widget

SENT_AT = 1_800_000_000_000.0


def _conversation(**messages: Any) -> WebchatConversation:
    widget = sandbox_widget("http://127.0.0.1:1/")
    widget["messages"].update(messages)
    channel = SimpleNamespace(_log=logging.getLogger("test"), browser_settings=BrowserSettings())
    tab = cast(Any, SimpleNamespace(binding="__cxprobe_test", page=None))
    conversation = WebchatConversation(
        cast(WebchatChannel, channel), WebchatAddress.model_validate(widget), "T1", tab
    )
    conversation._sent_ms = SENT_AT
    conversation._sends = 1
    return conversation


def _event(conversation: WebchatConversation, **fields: Any) -> dict[str, Any]:
    return {"kind": "message", "nonce": conversation._nonce, "at": SENT_AT + 100, **fields}


def test_author_label_ending_with_a_colon_is_normalised_and_not_repeated() -> None:
    assert author_and_text("Dana: ", "Dana: Hi, how can I help?") == (
        "Dana",
        "Hi, how can I help?",
    )
    assert author_and_text(" Dana : ", "Dana :Hi") == ("Dana", "Hi")
    assert author_and_text("Dana", "Danaë is away") == ("Dana", "Danaë is away")
    assert author_and_text("", "Hi") == ("", "Hi")
    conversation = _conversation()
    event = _event(conversation, role="agent", author="Dana: ", text="Dana: Hi, how can I help?")
    conversation.on_report({}, event)
    reply = conversation._reply(conversation._events.get_nowait())  # type: ignore[arg-type]
    assert reply is not None and reply.responder is Responder.HUMAN
    assert (reply.sender, reply.text) == ("Dana", "Hi, how can I help?")
    transcript = conversation._transcript_evidence().content.decode()
    assert "Dana: Hi, how can I help?" in transcript
    assert "Dana::" not in transcript and "Dana: Dana:" not in transcript


def test_typing_indicators_without_author_name_messages_ignore_as_the_fix() -> None:
    conversation = _conversation()
    for index, text in enumerate(["Hi there", "Dana is typing…", "Dana is typing…"]):
        event = _event(conversation, role="customer", author="", text=text, index=index)
        assert conversation._reply(event) is None
    failure = conversation._failure
    assert isinstance(failure, ChannelUnavailable)
    assert "messages.ignore" in str(failure)
    assert "typing" in str(failure)
    assert str(failure).index("messages.ignore") < str(failure).index("messages.brand")


def test_brand_selector_out_of_date_still_names_messages_brand_first() -> None:
    conversation = _conversation()
    for index, text in enumerate(["Hi there", "Your invoice includes", "A person will help"]):
        event = _event(conversation, role="customer", author="", text=text, index=index)
        conversation._reply(event)
    failure = conversation._failure
    assert isinstance(failure, ChannelUnavailable)
    assert "messages.brand" in str(failure) and "update the selector" in str(failure)


def test_block_list_expands_resource_types_and_refuses_unknown_words() -> None:
    widget = sandbox_widget("http://127.0.0.1:1/")
    default = WebchatAddress.model_validate(widget).blocked_url_patterns()
    assert "*.woff2" in default and "*.mp4" in default and "*.png" not in default
    custom = WebchatAddress.model_validate({**widget, "block": ["image", "*tracker.example*"]})
    assert custom.blocked_url_patterns()[-1] == "*tracker.example*"
    assert "*.png" in custom.blocked_url_patterns()
    assert WebchatAddress.model_validate({**widget, "block": []}).blocked_url_patterns() == []
    with pytest.raises(ValidationError, match="neither a resource type"):
        WebchatAddress.model_validate({**widget, "block": ["fonts"]})
