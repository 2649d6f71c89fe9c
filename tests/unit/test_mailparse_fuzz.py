"""parse_mail never raises: on arbitrary bytes, and on MIME trees built to be hostile (random
charsets, transfer encodings, headers, RFC 2047 words, nesting). Bounded and derandomized, so it
runs in ``make test`` in a few seconds and fails the same way every time."""

from __future__ import annotations

import base64
import quopri

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.base import Responder
from probes.email.parse import ParsedMail, parse_mail

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CHARSETS = st.sampled_from(
    ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "shift_jis", "utf-16", "utf-7",
     "x-unknown-charset", "base64_codec", "rot13", "", '"utf-8"', "idna", "punycode"]
)  # fmt: skip
ENCODINGS = st.sampled_from(["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode"])
SUBTYPES = st.sampled_from(["plain", "html", "rfc822-headers", "enriched"])
HEADER_NAMES = st.sampled_from(
    ["Subject", "From", "Return-Path", "Auto-Submitted", "Precedence", "In-Reply-To",
     "References", "Message-ID", "X-Cxprobe-Token", "Content-Disposition", "X-Autoreply"]
)  # fmt: skip
TEXT = st.text(max_size=80)


@st.composite
def encoded_word(draw: st.DrawFn) -> str:
    charset = draw(CHARSETS)
    raw = draw(st.binary(max_size=30))
    if draw(st.booleans()):
        return f"=?{charset}?b?{base64.b64encode(raw).decode()}?="
    return f"=?{charset}?q?{quopri.encodestring(raw, header=True).decode()}?="


@st.composite
def header_line(draw: st.DrawFn) -> bytes:
    value = " ".join(draw(st.lists(st.one_of(encoded_word(), TEXT), max_size=4)))
    return f"{draw(HEADER_NAMES)}: {value}".encode("utf-8", "surrogateescape")


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    charset, encoding = draw(CHARSETS), draw(ENCODINGS)
    body = draw(
        st.one_of(st.binary(max_size=200), TEXT.map(lambda t: t.encode("utf-8", "replace")))
    )
    if encoding == "base64" and draw(st.booleans()):
        body = base64.encodebytes(body)
    elif encoding == "quoted-printable" and draw(st.booleans()):
        body = quopri.encodestring(body)
    disposition = draw(st.sampled_from(["", "attachment; filename*=x-nope''%FF%FE.txt",
                                         "attachment; filename=\"=?x-bad?q?=FF?=\""]))  # fmt: skip
    lines = [
        f"Content-Type: text/{draw(SUBTYPES)}; charset={charset}".encode(),
        f"Content-Transfer-Encoding: {encoding}".encode(),
        *([f"Content-Disposition: {disposition}".encode()] if disposition else []),
        *draw(st.lists(header_line(), max_size=3)),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def mime_tree(depth: int = 3) -> st.SearchStrategy[bytes]:
    return st.recursive(leaf(), _container, max_leaves=6) if depth else leaf()


def _container(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["mixed", "alternative", "report; report-type=delivery-status",
                                     "related"]))  # fmt: skip
        parts = draw(st.lists(children, min_size=0, max_size=3))
        boundary = draw(st.sampled_from(["b1", "", "=_x", 'b1"broken']))
        head = f'Content-Type: multipart/{kind}; boundary="{boundary}"'.encode()
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
        closing = b"--" + boundary.encode() + b"--\r\n" if draw(st.booleans()) else b""
        if draw(st.booleans()):  # a returned message, as a bounce carries it
            body += b"--" + boundary.encode() + b"\r\nContent-Type: message/rfc822\r\n\r\n"
            body += draw(children) + b"\r\n"
        return head + b"\r\n\r\n" + body + closing

    return build()


@st.composite
def hostile_message(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(header_line(), max_size=6))
    return b"\r\n".join(headers) + b"\r\n" + draw(mime_tree())


def _well_formed(mail: ParsedMail, raw: bytes) -> None:
    assert mail.raw == raw
    assert isinstance(mail.text, str) and isinstance(mail.subject, str)
    assert mail.responder in (Responder.HUMAN, Responder.AUTO)
    assert all(isinstance(note, str) for note in mail.decoding_notes)


@FUZZ
@given(st.binary(max_size=2000))
def test_parse_mail_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    _well_formed(parse_mail(raw), raw)


@FUZZ
@given(hostile_message())
def test_parse_mail_never_raises_on_hostile_mime_trees(raw: bytes) -> None:
    _well_formed(parse_mail(raw), raw)
