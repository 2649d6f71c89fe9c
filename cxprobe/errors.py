"""Errors cxprobe reports to its user. The whole tree is drawn in :mod:`probes.errors`."""

from __future__ import annotations

from probes.errors import (
    ChannelUnavailable,
    ContactRejected,
    CxprobeError,
    ProbeError,
    ProbeTimeout,
    ProviderError,
)


class ConfigError(CxprobeError):
    """A configuration file is invalid. ``problems`` holds one line per error."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


__all__ = [
    "ChannelUnavailable",
    "ConfigError",
    "ContactRejected",
    "CxprobeError",
    "ProbeError",
    "ProbeTimeout",
    "ProviderError",
]
