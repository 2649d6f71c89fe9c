"""The YAML loader: anchors and merge keys as any YAML loader reads them, with every key's line
kept for error messages, and the problems a user meets named with their fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxprobe.errors import ConfigError
from cxprobe.yamlsource import load_yaml

WIDGET_TWICE = """\
targets:
  acme:
    chat: &widget
      url: https://acme.example/help
      launcher: button.open-chat
      messages:
        container: ol.log
        item: li
  beta:
    chat:
      <<: *widget
      url: https://beta.example/help
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_merge_key_copies_the_block_and_own_keys_win(tmp_path: Path) -> None:
    document = load_yaml(_write(tmp_path, WIDGET_TWICE))
    acme, beta = document.data["targets"]["acme"]["chat"], document.data["targets"]["beta"]["chat"]
    assert beta == {**acme, "url": "https://beta.example/help"}
    # Own key: the line where beta writes it; merged keys: the anchored block's lines.
    assert document.lines[("targets", "beta", "chat", "url")] == 12
    assert document.lines[("targets", "beta", "chat", "launcher")] == 5
    assert document.lines[("targets", "beta", "chat", "messages", "item")] == 8


def test_of_several_merged_blocks_the_first_wins_and_merges_nest(tmp_path: Path) -> None:
    text = """\
base: &base {a: 1, b: 1}
more: &more
  <<: *base
  b: 2
  c: 2
both:
  <<: [*more, {a: 3, d: 3}]
  d: 4
"""
    data = load_yaml(_write(tmp_path, text)).data
    assert data["more"] == {"a": 1, "b": 2, "c": 2}
    assert data["both"] == {"a": 1, "b": 2, "c": 2, "d": 4}


def test_a_duplicate_own_key_is_still_refused_beside_a_merge(tmp_path: Path) -> None:
    text = "base: &base {a: 1}\nuse:\n  <<: *base\n  a: 2\n  a: 3\n"
    with pytest.raises(ConfigError) as raised:
        load_yaml(_write(tmp_path, text))
    assert raised.value.problems == [
        f"{tmp_path / 'config.yaml'}:5: use.a: duplicate key (first at line 4); keep only one"
    ]


def test_a_merge_of_a_scalar_is_refused_with_the_form_to_use(tmp_path: Path) -> None:
    text = "base: &base 1\nuse:\n  <<: *base\n"
    with pytest.raises(ConfigError) as raised:
        load_yaml(_write(tmp_path, text))
    assert "config.yaml:3: use: '<<' merges a mapping (<<: *block)" in raised.value.problems[0]


def test_a_recursive_alias_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_yaml(_write(tmp_path, "loop: &loop\n  - *loop\n"))
    assert "cannot be recursive" in raised.value.problems[0]


@pytest.mark.parametrize(
    "line",
    [
        "smtp: {host: mail.example, password: ${SMTP_PASSWORD}}",
        "recipients: [${FIRST}, second@example.net]",
    ],
)
def test_an_unquoted_variable_in_a_flow_collection_says_to_quote_it(
    tmp_path: Path, line: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_yaml(_write(tmp_path, f"version: 1\n{line}\n"))
    (problem,) = raised.value.problems
    assert problem.startswith(f"{tmp_path / 'config.yaml'}:2: not valid YAML: ")
    assert 'must be quoted: write "${' in problem


def test_other_syntax_errors_keep_pyyamls_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_yaml(_write(tmp_path, 'smtp: {host: "${HOST}", port: 25\nnext: 1\n'))
    (problem,) = raised.value.problems
    assert "must be quoted" not in problem
    assert "not valid YAML: expected ',' or '}'" in problem
