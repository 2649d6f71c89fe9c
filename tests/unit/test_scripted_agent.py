"""The sandbox's scripted agents (sandbox/scripted_agent.py): ask each question in turn, answer
once every one is satisfied, stay with the queue that took the conversation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.scripted_agent import Ask, ScriptedAgents, Step

ASKS = [
    Ask(question="Your order number?", expects=r"\b\d{6}\b"),
    Ask(question="And your e-mail?", expects=r"@"),
]


def test_each_question_in_turn_then_the_usual_answer() -> None:
    agents = ScriptedAgents({"billing": ASKS, "sales": []})
    assert agents.next_step("T1", "billing", "Where is my order?") == Step(
        "billing", "Your order number?", 0
    )
    # Not satisfied: the same question again.
    assert agents.next_step("T1", "billing", "I do not know").asked == 0
    assert agents.next_step("T1", "sales", "It is 482913") == Step("billing", "And your e-mail?", 1)
    assert agents.next_step("T1", "sales", "pat@example.net") == Step("billing")
    assert agents.next_step("T1", "billing", "thanks") == Step("billing")


def test_queues_without_asks_and_unkeyed_messages_answer_at_once() -> None:
    agents = ScriptedAgents({"billing": ASKS, "sales": []})
    assert agents.next_step("T2", "sales", "hello") == Step("sales")
    assert agents.next_step(None, "billing", "hello") == Step("billing")
    # Each conversation has its own progress.
    assert agents.next_step("T3", "billing", "hi").asked == 0
    assert agents.next_step("T4", "billing", "hi 482913").asked == 0


def test_an_ask_needs_a_valid_pattern() -> None:
    with pytest.raises(ValidationError, match="not a regular expression"):
        Ask(question="q", expects="(")
