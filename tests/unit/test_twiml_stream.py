"""<Connect><Stream> and <Start><Stream> are validated as Twilio documents them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sandbox.twilio.twiml import Pause, Stream, TwimlError, parse_stream_verb, parse_twiml


def test_connect_stream_with_parameters() -> None:
    stream = parse_stream_verb(
        ET.fromstring(
            '<Connect><Stream url="wss://monitor.example.com/twilio/media" name="probe">'
            '<Parameter name="run" value="r1"/></Stream></Connect>'
        )
    )
    assert stream.mode == "connect"
    assert stream.url == "wss://monitor.example.com/twilio/media"
    assert stream.parameters == (("run", "r1"),)


@pytest.mark.parametrize(
    "twiml",
    [
        '<Connect><Stream url="https://monitor.example.com/media"/></Connect>',
        '<Connect><Stream url="wss://m.example.com/media" track="both_tracks"/></Connect>',
        '<Start><Stream url="wss://m.example.com/media" colour="red"/></Start>',
        "<Start/>",
        '<Start><Stream url="wss://m.example.com/m"><Say>hi</Say></Stream></Start>',
    ],
)
def test_invalid_streams_are_refused(twiml: str) -> None:
    with pytest.raises(TwimlError):
        parse_stream_verb(ET.fromstring(twiml))


def test_start_stream_may_fork_both_tracks() -> None:
    element = ET.fromstring('<Start><Stream url="ws://127.0.0.1:1/m" track="both_tracks"/></Start>')
    assert parse_stream_verb(element).mode == "start"


def test_a_document_may_start_a_stream_and_go_on() -> None:
    verbs = parse_twiml(
        '<Response><Start><Stream url="wss://m.example.com/media/T">'
        '<Parameter name="token" value="T"/></Stream></Start><Pause length="60"/></Response>',
        None,
    )
    assert verbs == [
        Stream("wss://m.example.com/media/T", "start", None, "inbound_track", (("token", "T"),)),
        Pause(60.0),
    ]


def test_connect_attributes_are_not_simulated() -> None:
    with pytest.raises(TwimlError, match="not simulated"):
        parse_twiml(
            '<Response><Connect action="/next"><Stream url="wss://m.example.com/m"/></Connect>'
            "</Response>",
            None,
        )
