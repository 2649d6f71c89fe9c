"""CPU seconds of this process and its descendants, by role: what the web-chat benchmark reads.

Roles: ``python`` (this process), ``driver`` (Playwright's node), ``browser`` (Chromium's main
process), ``renderer``, ``gpu``, ``utility`` (network, storage, audio services), ``zygote``, and
``other``. A process that exited is counted through its parent's ``children_*`` times, which
the kernel adds when the parent reaps it: Chromium's zygote reaps renderers (so its children's
time is ``renderer``), the browser reaps utility and GPU processes (``utility``), the driver
reaps the browser (``browser``). Processes whose pid is in ``exclude`` (the chat site the
benchmark runs in a child process) are left out with their own children.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import psutil

ROLES = ("python", "driver", "browser", "renderer", "gpu", "utility", "zygote", "other")
#: Chromium's ``--type=`` values by role.
_CHROMIUM_TYPES = {"renderer": "renderer", "gpu-process": "gpu", "utility": "utility"}
#: Whose processes a process of a role reaps, when they exit.
_REAPS = {
    "zygote": "renderer",
    "browser": "utility",
    "driver": "browser",
    "python": "driver",
    "renderer": "other",
    "gpu": "other",
    "utility": "other",
    "other": "other",
}


def role_of(name: str, cmdline: list[str], is_self: bool) -> str:
    """The role of a process from its name and command line."""
    if is_self:
        return "python"
    if "node" in name:
        return "driver"
    if "chrom" not in name:
        return "other"
    types = [arg.removeprefix("--type=") for arg in cmdline if arg.startswith("--type=")]
    if not types:
        return "browser"
    if types[0] == "zygote":
        return "zygote"
    return _CHROMIUM_TYPES.get(types[0], "other")


def cpu_by_role(exclude: Collection[int] = ()) -> dict[str, float]:
    """User plus system CPU seconds of this process and its descendants, by role (including
    the descendants that already exited)."""
    me = psutil.Process()
    totals: dict[str, float] = defaultdict(float)
    pending = [me]
    while pending:
        process = pending.pop()
        try:
            if process.pid in exclude:
                continue
            role = role_of(process.name(), process.cmdline(), process.pid == me.pid)
            times = process.cpu_times()
            children = process.children()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        totals[role] += times.user + times.system
        totals[_REAPS[role]] += times.children_user + times.children_system
        pending += children
    return totals


def difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """``after - before`` for every role (a role may not go down: a process that exited between
    the readings moved to its parent's reaped time, which both readings count the same way)."""
    return {role: after.get(role, 0.0) - before.get(role, 0.0) for role in ROLES}
