"""Who is speaking on a call, from cues: the one order both listening modes share.

Gather mode finds its cues in Twilio's transcript (the address's ``voicebot``, ``closed`` and
``human`` regular expressions); stream mode spots spoken words in the audio (``audio_cues``).
Either way a voice bot and the closed message are looked for before a person: "how can I help"
is a voice bot's line too.
"""

from __future__ import annotations

from collections.abc import Callable

from probes.base import Responder

#: The kinds a cue can name, in the order they are looked for.
CUE_ORDER = (Responder.BOT, Responder.AUTO, Responder.HUMAN)


def cued(found: Callable[[Responder], bool]) -> Responder | None:
    """The first kind whose cue ``found`` says is there; None when none is."""
    return next((responder for responder in CUE_ORDER if found(responder)), None)
