"""Writes cxprobe's Grafana dashboards (``grafana/dashboards/*.json``) from ``grafana/generator/``.

Run ``python grafana/generate.py`` (dev venv, any working directory) after changing a dashboard
and commit ``grafana/dashboards/*.json``: Grafana provisions the committed JSON
(``grafana/provisioning/``), and ``tests/unit/test_dashboards.py`` fails while those files differ
from what this script writes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

GRAFANA_DIR = Path(__file__).resolve().parent
#: Where the committed dashboards live (Grafana's file provider reads them from here).
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"

# Run as a script, Python puts grafana/ on the path but not the checkout around it. The generator
# takes label values from the product's packages (probes, scenarios, exporters): this checkout's,
# not whichever copy of them happens to be installed.
sys.path.insert(0, str(GRAFANA_DIR.parent))

from generator import DASHBOARDS, render  # noqa: E402  (needs the path above)


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = directory / name
        path.write_text(render(build()), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output",
        type=Path,
        default=DASHBOARDS_DIR,
        help=f"directory to write the dashboards to (default: {DASHBOARDS_DIR})",
    )
    arguments = parser.parse_args(argv)
    for path in write(arguments.output):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
