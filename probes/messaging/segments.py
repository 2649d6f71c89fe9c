"""How many SMS segments a text is charged as (GSM 03.38 / 3GPP TS 23.038).

A text of GSM-7 characters only fits 160 septets in one segment (153 per part when split, the
rest is the concatenation header; extension characters take two septets); any other character
makes the whole text UCS-2: 70 code units in one segment, 67 per part.
"""

from __future__ import annotations

import math

# GSM 03.38: the basic character set (one septet each) and its extension table (two each).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def sms_segments(text: str) -> int:
    """The segments ``text`` is sent (and charged) as; an empty text is one segment."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        septets = sum(2 if c in _GSM_EXTENSION else 1 for c in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)
