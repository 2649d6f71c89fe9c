"""Run every benchmark and print the figures as JSON (copy them into BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform

from bench.accuracy import measure as measure_accuracy
from bench.capacity import measure as measure_capacity
from bench.webchat import LEVELS
from bench.webchat import measure as measure_webchat


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=30, help="accuracy: runs against the desk")
    parser.add_argument("--open-runs", type=int, default=1000, help="capacity: open runs")
    parser.add_argument(
        "--chat-levels",
        default=",".join(map(str, LEVELS)),
        help="webchat: concurrency levels, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--chat-rounds", type=int, default=3, help="webchat: rounds per level")
    parser.add_argument(
        "--chat-spread", type=float, default=2.0, help="webchat: seconds a round's starts span"
    )
    parser.add_argument("--only", choices=["accuracy", "capacity", "webchat"], default=None)
    args = parser.parse_args()
    figures: dict[str, object] = {"machine": machine()}
    if args.only in (None, "accuracy"):
        figures["accuracy"] = asyncio.run(measure_accuracy(args.runs))
    if args.only in (None, "capacity"):
        figures["capacity"] = asyncio.run(measure_capacity(args.open_runs))
    if args.only in (None, "webchat"):
        levels = tuple(int(level) for level in args.chat_levels.split(","))
        figures["webchat"] = asyncio.run(
            measure_webchat(levels, args.chat_rounds, args.chat_spread)
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
