"""The channel registry: every kind is a self-contained plugin, and nothing outside ``probes/``
names a channel kind in code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from cxprobe.report.methodology import precision_rows
from probes import CHANNEL_TYPES
from probes.base import ChannelType, DefaultSla

ROOT = Path(__file__).resolve().parents[2]
#: The product packages that must stay channel-agnostic (``probes/`` is where kinds live).
AGNOSTIC_PACKAGES = ("cxprobe", "exporters", "scenarios")
KINDS = sorted(CHANNEL_TYPES)


@pytest.mark.parametrize("kind", KINDS)
def test_each_type_is_registered_under_its_own_kind(kind: str) -> None:
    assert CHANNEL_TYPES[kind].kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_a_default_sla_with_a_deadline(kind: str) -> None:
    sla = CHANNEL_TYPES[kind].default_sla
    assert sla.deadline is not None and sla.deadline > 0
    figures = [sla.first_response, sla.human_response, sla.after_hours_response]
    assert all(figure is None or 0 < figure <= sla.deadline for figure in figures)


def test_default_slas_are_the_documented_industry_norms() -> None:
    messaging = DefaultSla(300, 3600, 300, 4 * 3600)
    assert {kind: channel_type.default_sla for kind, channel_type in CHANNEL_TYPES.items()} == {
        "email": DefaultSla(900, 3600, 900, 4 * 3600),
        "webchat": DefaultSla(30, 180, 30, 600),
        "phone": DefaultSla(60, 600, 60, 900),
        "sms": messaging,
        "whatsapp": messaging,
        "generic": messaging,
    }


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_says_how_it_times_a_run(kind: str) -> None:
    method = CHANNEL_TYPES[kind].methodology
    assert method.t0.strip() and method.reply_timing.strip() and method.precision.strip()


def test_the_report_has_a_timing_row_for_every_kind() -> None:
    listed = [kind for row in precision_rows(CHANNEL_TYPES) for kind in row[0].split(", ")]
    assert listed == list(CHANNEL_TYPES)


def _model_ids(channel_type: ChannelType[Any, Any]) -> Iterator[tuple[str, type[Any]]]:
    yield "settings", channel_type.settings_model
    yield "address", channel_type.address_model


@pytest.mark.parametrize(
    ("kind", "section", "model"),
    [
        (kind, section, model)
        for kind in KINDS
        for section, model in _model_ids(CHANNEL_TYPES[kind])
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_settings_and_address_models_reject_unknown_keys(
    kind: str, section: str, model: type[Any]
) -> None:
    with pytest.raises(ValidationError) as raised:
        model.model_validate({"no_such_key": 1})
    assert "extra_forbidden" in {error["type"] for error in raised.value.errors()}


@pytest.mark.parametrize("kind", KINDS)
def test_sections_are_narrowed_to_the_kinds_own_models(kind: str) -> None:
    channel_type = CHANNEL_TYPES[kind]
    stranger = UnrelatedSection()
    with pytest.raises(TypeError, match=f"channels.{kind}"):
        channel_type.settings_of(stranger)
    with pytest.raises(TypeError, match=f"channels.{kind}"):
        channel_type.address_of(None)


class UnrelatedSection(BaseModel):
    """A section of no channel's model."""


# -- no channel kind outside probes/ -----------------------------------------------------------


def kind_literals(source: str, kinds: frozenset[str]) -> list[tuple[int, str]]:
    """String constants in ``source`` that are a channel kind, used as code: every string
    constant but docstrings (a kind mentioned in prose is fine; comments are not in the AST)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in kinds
        and id(node) not in docstrings
    ]


def test_the_detector_finds_a_kind_used_as_code() -> None:
    source = '''
"""A module about phone calls."""
# a comment naming "phone" is fine
def route(kind: str) -> int:
    """Only "email" here, in prose."""
    if kind == "phone":
        return 1
    return {"sms": 2}.get(kind, f"{kind}-x" and 0)
'''
    assert sorted(kind_literals(source, frozenset(CHANNEL_TYPES))) == [(6, "phone"), (8, "sms")]


def test_no_module_outside_probes_names_a_channel_kind() -> None:
    kinds = frozenset(CHANNEL_TYPES)
    found = []
    for package in AGNOSTIC_PACKAGES:
        files = sorted((ROOT / package).rglob("*.py"))
        assert files, f"no modules under {package}/"
        for path in files:
            for line, kind in kind_literals(path.read_text(), kinds):
                found.append(f"{path.relative_to(ROOT)}:{line}: {kind!r}")
    assert not found, "channel kinds belong in probes/<kind>/ (the ChannelType): " + ", ".join(
        found
    )
