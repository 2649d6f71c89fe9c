"""IVR prompt checks with the local recogniser, on a real synthesised prompt (issue 14)."""

from __future__ import annotations

import pytest

from probes.phone.prompts import PromptChecker, UnknownWord
from sandbox.twilio.audio import Voicebox, mulaw_encode

PROMPT = "Welcome to Acme. For billing press 1. For support press 2."


@pytest.fixture(scope="module", params=["en-us", "flite:slt"])
def prompt(request: pytest.FixtureRequest) -> bytes:
    """The prompt from espeak-ng's formant voice and from flite's recorded speaker."""
    return mulaw_encode(Voicebox().speak(PROMPT, voice=request.param))


def test_a_word_the_prompt_says_is_heard(prompt: bytes) -> None:
    check = PromptChecker().check(prompt, ["billing"])
    assert check.passed and check.heard == "billing"


def test_a_word_the_prompt_does_not_say_is_missing(prompt: bytes) -> None:
    check = PromptChecker().check(prompt, ["insurance"])
    assert not check.passed and check.missing == ["insurance"]


def test_a_word_outside_the_dictionary_is_refused(prompt: bytes) -> None:
    with pytest.raises(UnknownWord, match="qwzxv"):
        PromptChecker().check(prompt, ["qwzxv"])
