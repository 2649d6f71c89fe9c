"""The import graph: the rooms of docs/architecture.md import only downwards, and nothing
imports itself back (no cycle between packages or between modules inside one).

Read from the source with ``ast`` (every import statement, inside functions too), so a lazy
import that hides a cycle at run time is found as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("probes", "scenarios", "exporters", "cxprobe", "sandbox")

#: Each room and the rooms it may import (besides itself). ``cxprobe`` is the shell: the
#: modules directly in cxprobe/ (cli, settings, scheduler, runner, app, server, ...).
ALLOWED: dict[str, set[str]] = {
    "probes": set(),
    "scenarios": {"probes"},
    "cxprobe.store": {"probes", "scenarios"},
    "cxprobe.evidence": {"probes", "scenarios", "cxprobe.store"},
    "cxprobe.report": {"probes", "scenarios", "cxprobe.store", "cxprobe.evidence"},
    "cxprobe.rules": {"probes", "scenarios"},
    "exporters": {"probes", "scenarios"},
    "cxprobe": {
        "probes",
        "scenarios",
        "exporters",
        "cxprobe.store",
        "cxprobe.evidence",
        "cxprobe.report",
        "cxprobe.rules",
    },
    # A stand-in for the outside world: sharing code with the product could hide a bug on both
    # sides.
    "sandbox": set(),
}
ROLE_PACKAGES = ("cxprobe.store", "cxprobe.evidence", "cxprobe.report", "cxprobe.rules")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The product modules ``path`` imports (a name imported from a package that is itself a
    module, as in ``from sandbox.mail import lmtp``, counts as that module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in known else base for t in targets]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PRODUCT:
                yield target


def room(module: str) -> str:
    for package in ROLE_PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return module.split(".")[0]


def graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {name: set(imported(path, name, known)) - {name} for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read() -> None:
    edges = graph()
    # A few edges that certainly exist: if parsing broke, the other tests would pass vacuously.
    assert "probes.base" in edges["probes.email.channel"]
    assert "cxprobe.store.schema" in edges["cxprobe.store.ledger"]
    assert "sandbox.mail.lmtp" in edges["sandbox.mail.dovecot"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_itself_back() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for source, targets in graph().items():
        rooms.setdefault(room(source), set()).update(room(t) for t in targets)
    for name, targets in rooms.items():
        targets.discard(name)
    cycle = find_cycle(rooms)
    assert cycle is None, "rooms import each other: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("source_room", sorted(ALLOWED))
def test_rooms_import_only_downwards(source_room: str) -> None:
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in graph().items()
        if room(source) == source_room
        for target in targets
        if room(target) != source_room
        and room(target) not in ALLOWED[source_room]
        # The package's own __init__ (its version) is not a layer.
        and target != "cxprobe"
    )
    assert not wrong, "\n".join(wrong)
