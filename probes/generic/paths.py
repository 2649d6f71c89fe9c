"""JSONPath (RFC 9535) queries of the generic channel's mappings, by ``python-jsonpath`` in
its strict mode: filters (``$.events[?@.type == 'message']``), slices, descendants and the
standard functions, nothing beyond the RFC (a mapping written here works with any compliant
implementation).

Paths are compiled once when the config loads; a bad one is a ``ValueError`` naming the
position, which the config loader reports with the file, key and line.
"""

from __future__ import annotations

import functools
from typing import Any

from jsonpath import JSONPath, JSONPathEnvironment, JSONPathError

__all__ = ["JSONPath", "compile_path", "first_value"]


@functools.cache
def _rfc9535() -> JSONPathEnvironment:
    return JSONPathEnvironment(strict=True)


@functools.lru_cache(maxsize=256)
def compile_path(text: str) -> JSONPath:
    """``text`` compiled as an RFC 9535 query; ``ValueError`` when it is not one."""
    try:
        compiled = _rfc9535().compile(text)
    except JSONPathError as exc:
        token = exc.token
        position = len(text) if token is None or token.index < 0 else token.index
        reason = exc.args[0] if exc.args else str(exc)
        raise ValueError(
            f"JSONPath {text!r} is not valid RFC 9535 at position {position} ({reason}); "
            "e.g. $.message.text, $.entry[*].messaging[*], $.events[?@.type == 'message']"
        ) from None
    if not isinstance(compiled, JSONPath):  # pragma: no cover - strict mode has no unions
        raise ValueError(f"JSONPath {text!r}: one query, not a union of queries")
    return compiled


def first_value(path: JSONPath, document: Any) -> Any:
    """The first value ``path`` selects in ``document`` (document order), or None."""
    match = path.match(document)
    return None if match is None else match.obj
