"""The state file of `python -m sandbox --state-file PATH`: what runs where, as JSON.

A script or test that starts the sandbox on free ports (port 0 in the profile) reads the chosen
ports and URLs here instead of parsing the sandbox's stdout. The file is replaced atomically
(written beside it, then renamed), so a reader sees a whole state or none: `"status":
"starting"` while the parts start, `"running"` with every started part's addresses once all of
them serve, and `"stopped"` (same addresses, `stopped_at`) when the sandbox has shut down.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from sandbox.clock import iso_utc, real_now

Status = Literal["starting", "running", "stopped"]


class StateFile:
    def __init__(self, path: Path, *, profile: Path, workdir: Path) -> None:
        self.path = path
        self._state: dict[str, Any] = {
            "status": "starting",
            "pid": os.getpid(),
            "profile": str(profile),
            "workdir": str(workdir.resolve()),
            "started_at": iso_utc(real_now()),
            "parts": {},
        }

    def starting(self) -> None:
        self._write()

    def running(self, parts: dict[str, dict[str, Any]], **extra: Any) -> None:
        self._state.update(extra, status="running", parts=parts)
        self._write()

    def stopped(self) -> None:
        self._state.update(status="stopped", stopped_at=iso_utc(real_now()))
        self._write()

    def _write(self) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(self._state, file, indent=2, sort_keys=True)
                file.write("\n")
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
