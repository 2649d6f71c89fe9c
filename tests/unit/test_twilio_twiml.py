"""The sandbox's TwiML parser and its webhook signatures."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from sandbox.twilio.partials import words_begun
from sandbox.twilio.signature import twilio_signature
from sandbox.twilio.twiml import (
    Gather,
    Hangup,
    Pause,
    Play,
    Redirect,
    Say,
    TwimlError,
    parse_twiml,
)

DOC = "https://monitor.example.com/twilio/voice?run=42"


def test_a_probe_document_parses_into_verbs() -> None:
    verbs = parse_twiml(
        """<?xml version="1.0" encoding="UTF-8"?>
        <Response>
          <Say voice="alice" loop="2">Hello</Say>
          <Play digits="ww1w2"/>
          <Gather input="dtmf speech" action="heard" method="GET" timeout="7"
                  speechTimeout="auto" actionOnEmptyResult="true" language="en-GB">
            <Say>Listening</Say><Pause length="2"/><Play>https://cdn.example.com/beep.mp3</Play>
          </Gather>
          <Pause/>
          <Redirect>/twilio/next</Redirect>
          <Hangup/>
        </Response>""",
        DOC,
    )
    assert verbs == [
        Say("Hello", loop=2),
        Play(url=None, digits="ww1w2"),
        Gather(
            inputs=frozenset({"dtmf", "speech"}),
            action="https://monitor.example.com/twilio/heard",
            method="GET",
            timeout=7.0,
            speech_timeout="auto",
            action_on_empty_result=True,
            children=(
                Say("Listening"),
                Pause(2.0),
                Play(url="https://cdn.example.com/beep.mp3", digits=None),
            ),
        ),
        Pause(1.0),
        Redirect("https://monitor.example.com/twilio/next", "POST"),
        Hangup(),
    ]


def test_gather_defaults_follow_twilio() -> None:
    (gather,) = parse_twiml("<Response><Gather/></Response>", DOC)
    assert gather == Gather(
        inputs=frozenset({"dtmf"}),
        action=DOC,  # no action: Twilio posts back to the document's own URL
        method="POST",
        timeout=5.0,
        speech_timeout=None,
        action_on_empty_result=False,
        children=(),
    )


@pytest.mark.parametrize(
    ("twiml", "says"),
    [
        ("<Response><Say>hi</Response>", "not well-formed"),
        ("<Say>hi</Say>", "root element is <Say>"),
        ('<Response><Gather speechTimout="auto"/></Response>', "unknown attributes"),
        ('<Response><Gather input="voice"/></Response>', "must be dtmf, speech"),
        ('<Response><Gather timeout="soon"/></Response>', "must be an integer"),
        ("<Response><Gather><Hangup/></Gather></Response>", "cannot be nested in <Gather>"),
        ('<Response><Play digits="12x"/></Response>', "0-9, *, #, w and W"),
        ("<Response><Dial>+15005550006</Dial></Response>", "does not simulate"),
        ("<Response><Speak>hi</Speak></Response>", "not a TwiML voice verb"),
        ('<Response><Redirect method="PUT">/x</Redirect></Response>', "must be GET or POST"),
        (
            '<Response><Gather partialResultCallback="/p" partialResultCallbackMethod="PUT"/>'
            "</Response>",
            "must be GET or POST",
        ),
        ("<Response><Say><prosody>hi</prosody></Say></Response>", "SSML"),
    ],
)
def test_invalid_twiml_is_refused_with_a_reason(twiml: str, says: str) -> None:
    with pytest.raises(TwimlError) as raised:
        parse_twiml(twiml, DOC)
    assert says in raised.value.message
    assert raised.value.code in (12100, 12200)


def test_relative_urls_need_a_document_url() -> None:
    with pytest.raises(TwimlError, match="inline Twiml has no document URL"):
        parse_twiml("<Response><Redirect>/next</Redirect></Response>", None)
    (gather,) = parse_twiml('<Response><Gather input="speech"/></Response>', None)
    assert isinstance(gather, Gather) and gather.action is None  # an error only if it posts
    (redirect,) = parse_twiml(
        "<Response><Redirect>http://127.0.0.1:9/n</Redirect></Response>", None
    )
    assert redirect == Redirect("http://127.0.0.1:9/n", "POST")


def test_partial_result_callback_resolves_like_action() -> None:
    (gather,) = parse_twiml(
        '<Response><Gather input="speech" partialResultCallback="partial"'
        ' partialResultCallbackMethod="GET"/></Response>',
        DOC,
    )
    assert isinstance(gather, Gather)
    assert gather.partial_result_callback == "https://monitor.example.com/twilio/partial"
    assert gather.partial_result_callback_method == "GET"
    with pytest.raises(TwimlError, match="inline Twiml has no document URL"):
        parse_twiml('<Response><Gather partialResultCallback="/p"/></Response>', None)


@pytest.mark.parametrize(
    ("characters", "words"),
    [
        (0, "Hi,"),  # the recognizer's first guess is the first word
        (5, "Hi, you're"),  # a word counts once its first character is spoken
        (4, "Hi,"),
        (17, "Hi, you're through"),
        (1000, "Hi, you're through to Sam."),
    ],
)
def test_partial_results_hold_the_words_begun(characters: float, words: str) -> None:
    assert words_begun("Hi, you're through to Sam.", characters) == words


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (DOC, [("CallSid", "CA1"), ("Digits", "1234"), ("From", "+14158675310")]),
        ("http://127.0.0.1:8080/heard", [("SpeechResult", "Hi, you're through to Sam")]),
        ("https://x.example/cb", []),
        ("https://x.example/cb", [("B", "2"), ("A", "é ü"), ("AB", "")]),
    ],
)
def test_signatures_validate_with_twilios_own_validator(
    url: str, params: list[tuple[str, str]]
) -> None:
    token = "12345"
    signature = twilio_signature(token, url, params)
    assert RequestValidator(token).validate(url, dict(params), signature)
    assert not RequestValidator("other").validate(url, dict(params), signature)


def test_signature_matches_twilios_documented_example() -> None:
    # The worked example of Twilio's webhook security docs (auth token 12345).
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    expected = RequestValidator("12345").compute_signature(url, params)
    assert twilio_signature("12345", url, params.items()) == expected
