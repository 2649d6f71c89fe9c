"""Reading a customer's message and writing the desk's threaded replies to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Literal

ReplyKind = Literal["auto_ack", "human", "after_hours"]

# RFC 3834 marks, plus the two de-facto headers many mail filters look for instead.
AUTO_HEADERS = {
    "Auto-Submitted": "auto-replied",
    "X-Autoreply": "yes",
    "Precedence": "auto_reply",
}


@dataclass(frozen=True)
class Contact:
    """What the desk needs from an incoming message."""

    message_id: str | None
    subject: str
    references: str
    reply_to: str | None  # Reply-To, else From; None if neither holds an address
    sender_display: str
    text: str

    @property
    def routing_text(self) -> str:
        return f"{self.subject}\n{self.text}"


def parse_contact(raw: bytes) -> Contact:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # guaranteed by policy.default
    addresses = [a for _, a in getaddresses(message.get_all("Reply-To", []))] or [
        a for _, a in getaddresses(message.get_all("From", []))
    ]
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    message_id = message.get("Message-ID")
    return Contact(
        message_id=str(message_id).strip() if message_id else None,
        subject=str(message.get("Subject", "")),
        references=" ".join(str(message.get("References", "")).split()),
        reply_to=next((a for a in addresses if a), None),
        sender_display=str(message.get("From", "")),
        text=str(text),
    )


def reply_subject(subject: str) -> str:
    # Keep one "Re:" so follow-ups in a long thread do not grow "Re: Re: Re:".
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def quote(contact: Contact, received_at: datetime) -> str:
    lines = contact.text.rstrip("\n").splitlines() or [""]
    header = f"On {format_datetime(received_at)}, {contact.sender_display} wrote:"
    return "\n".join([header, *(f"> {line}" if line else ">" for line in lines)])


def compose(
    contact: Contact,
    *,
    kind: ReplyKind,
    sender: str,
    to: str,
    body: str,
    domain: str,
    now: datetime,
) -> EmailMessage:
    """A reply threaded onto contact; auto kinds carry AUTO_HEADERS, human replies none."""
    reply = EmailMessage(policy=policy.SMTP)
    reply["From"] = sender
    reply["To"] = to
    reply["Subject"] = reply_subject(contact.subject)
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain=domain)
    if contact.message_id:
        reply["In-Reply-To"] = contact.message_id
        reply["References"] = " ".join(filter(None, [contact.references, contact.message_id]))
    if kind != "human":
        for name, value in AUTO_HEADERS.items():
            reply[name] = value
    reply.set_content(body)
    return reply
