"""probes.email.parse never loses a message to its encoding: unknown charsets, bytes that do
not fit their charset and broken RFC 2047 words are decoded by fallback, and recorded."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import Message

import pytest

from probes.base import Responder
from probes.email.parse import (
    DECODING_HEADER,
    ParsedMail,
    cut_on_line,
    decode_bytes,
    parse_mail,
    to_reply,
)

TOKEN = "CXP-7F3K9Q2M1Z"


def reply_in(charset: str, body: bytes, *, subject: str = f"Re: Refund [{TOKEN}]") -> bytes:
    head = "\r\n".join(
        [
            "From: Jane Agent <jane@acme.test>",
            "To: probe@cxprobe.test",
            f"Subject: {subject}",
            "Message-ID: <r1@acme.test>",
            "MIME-Version: 1.0",
            f"Content-Type: text/plain; charset={charset}",
            "Content-Transfer-Encoding: 8bit",
        ]
    )
    return head.encode() + b"\r\n\r\n" + body


def test_an_unknown_charset_keeps_the_human_reply_and_says_what_was_done() -> None:
    raw = reply_in("x-unknown-charset", "Hello, your refund is on its way. Ça marche.".encode())
    mail = parse_mail(raw)
    assert mail.responder is Responder.HUMAN
    assert "refund is on its way. Ça marche." in mail.text
    assert TOKEN in mail.tokens
    assert mail.raw == raw  # the evidence is the message as received
    (note,) = mail.decoding_notes
    assert "unknown charset 'x-unknown-charset'" in note and "utf-8" in note
    reply = to_reply(
        mail, external_id="1", internaldate=None, observed_at=datetime.now(UTC), sent_at=None
    )
    assert reply.headers[DECODING_HEADER] == note


def test_bytes_that_fit_no_declared_charset_still_read_as_text() -> None:
    mail = parse_mail(reply_in("us-ascii", "Bonjour, c\u2019est réglé.".encode("cp1252")))
    assert "Bonjour" in mail.text and "gl" in mail.text
    assert mail.decoding_notes and "not valid us-ascii" in mail.decoding_notes[0]


def test_a_declared_charset_that_works_needs_no_note() -> None:
    mail = parse_mail(reply_in("iso-8859-1", "Voilà, réglé.".encode("latin-1")))
    assert mail.text == "Voilà, réglé."
    assert mail.decoding_notes == ()


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (f"=?x-unknown-charset?q?Re=3A_Refund?= [{TOKEN}]", f"Re: Refund [{TOKEN}]"),
        (f"=?utf-8?b?UmU6IFJlZnVuZA==?= [{TOKEN}]", f"Re: Refund [{TOKEN}]"),
        ("=?utf-8?q?caf=E9?=", "café"),  # latin-1 bytes inside a utf-8 word
    ],
)
def test_encoded_words_are_decoded_whatever_their_charset(subject: str, expected: str) -> None:
    mail = parse_mail(reply_in("utf-8", b"Done.", subject=subject))
    assert mail.subject == expected


def test_an_html_part_in_an_unknown_charset_is_read() -> None:
    raw = reply_in("x-unknown-charset", "<p>Réglé, merci.</p>".encode()).replace(
        b"text/plain", b"text/html"
    )
    mail = parse_mail(raw)
    assert mail.text == "Réglé, merci."
    assert "text/html part" in mail.decoding_notes[0]


@pytest.mark.parametrize(
    ("payload", "declared", "used"),
    [
        (b"plain", "x-nope", "utf-8"),
        ("Grüße aus Köln, wir melden uns morgen früh.".encode("latin-1"), "x-nope", "detected"),
        (bytes(range(256)), "x-nope", None),
        (b"abc", "base64_codec", "utf-8"),  # a bytes-to-bytes codec is not a charset
    ],
)
def test_decode_bytes_never_raises(payload: bytes, declared: str, used: str | None) -> None:
    text, note = decode_bytes(payload, declared)
    assert text
    assert note is not None
    if used is not None:
        assert f"decoded as {used}" in note


def test_a_message_the_structured_parser_cannot_read_is_read_leniently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from probes.email import parse

    structured = parse._parse

    def failing_on_the_default_policy(
        message: Message, raw: bytes, notes: parse._DecodingNotes
    ) -> ParsedMail:
        if message.policy is parse.default_policy:
            raise IndexError("a header parser bug")
        return structured(message, raw, notes)

    monkeypatch.setattr(parse, "_parse", failing_on_the_default_policy)
    mail = parse_mail(reply_in("utf-8", b"Refund sent."))
    assert mail.text == "Refund sent." and TOKEN in mail.tokens
    assert mail.decoding_notes == ("structured parsing failed (IndexError); read leniently",)


def test_a_message_read_up_to_a_cap_keeps_its_text_decoded() -> None:
    """A reply bigger than imap.max_message_bytes is read up to the cap: its base64 body must
    still decode (cut on a line, not inside one) and a UTF-8 character cut at the end must not
    turn the whole part into Latin-1."""
    body = ("Привет 你好 the price increase applies; refunds within 14 days.\n" * 4000).encode()
    raw = (
        b"From: billing@acme.test\r\nTo: probe@cxprobe.test\r\nSubject: Re: invoice\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(body).replace(b"\n", b"\r\n")
    )
    seen = set()
    for cap in range(100_000, 100_000 + 78 * 4, 13):  # cuts anywhere in a line and a character
        prefix = cut_on_line(raw[:cap])
        assert raw.startswith(prefix) and prefix.endswith(b"\r\n") and len(prefix) > cap - 80
        mail = parse_mail(prefix, cut_short=True)
        assert mail.text.startswith("Привет 你好 the price increase applies")
        assert "Ð" not in mail.text  # no UTF-8 read as Latin-1
        seen.add(mail.decoding_notes)
    assert any("cut-off utf-8 character" in note for notes in seen for note in notes)
