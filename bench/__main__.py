"""Run every benchmark and print the figures as JSON (copy them into BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform

import psutil

from bench.accuracy import measure as measure_accuracy
from bench.capacity import measure as measure_capacity
from bench.claims import measure as measure_claims
from bench.large_mail import measure as measure_large_mail
from bench.metrics import measure as measure_metrics
from bench.phone_audio import LEVELS as PHONE_LEVELS
from bench.phone_audio import measure as measure_phone_audio
from bench.scheduler import measure as measure_scheduler
from bench.webchat import BASELINE, LEVELS
from bench.webchat import measure as measure_webchat

PARTS = (
    "accuracy",
    "capacity",
    "scheduler",
    "metrics",
    "claims",
    "webchat",
    "large-mail",
    "phone-audio",
)


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        # The machine is shared: how busy it was when the run started.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=30, help="accuracy: runs against the desk")
    parser.add_argument("--open-runs", type=int, default=1000, help="capacity: open runs")
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=None,
        help="capacity: connections of the baseline (default: open runs, at most 1000; 0: none)",
    )
    parser.add_argument("--checks", type=int, default=10_000, help="scheduler: checks")
    parser.add_argument(
        "--scheduler-seconds", type=float, default=120.0, help="scheduler: seconds measured"
    )
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="scheduler: every check on the same slots (worst case) instead of spread",
    )
    parser.add_argument("--series", type=int, default=10_000, help="metrics: series at least")
    parser.add_argument("--scrapes", type=int, default=50, help="metrics: scrapes timed")
    parser.add_argument(
        "--chat-levels",
        default=",".join(map(str, LEVELS)),
        help="webchat: concurrency levels, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--chat-baseline",
        default=BASELINE,
        help="webchat: git revision whose channel runs beside today's ('' for none)",
    )
    parser.add_argument("--chat-rounds", type=int, default=3, help="webchat: rounds per level")
    parser.add_argument(
        "--chat-warmup-rounds",
        type=int,
        default=1,
        help="webchat: unmeasured rounds per level first (a running monitor's warm contexts)",
    )
    parser.add_argument(
        "--chat-spread", type=float, default=2.0, help="webchat: seconds a round's starts span"
    )
    parser.add_argument(
        "--claim-monitors", type=int, default=4, help="claims: monitors competing on PostgreSQL"
    )
    parser.add_argument("--large-messages", type=int, default=10, help="large-mail: replies")
    parser.add_argument("--large-mib", type=int, default=20, help="large-mail: MiB per reply")
    parser.add_argument("--phone-calls", type=int, default=40, help="phone-audio: calls")
    parser.add_argument("--phone-prompts", type=int, default=60, help="phone-audio: checks")
    parser.add_argument(
        "--phone-levels",
        default=",".join(map(str, PHONE_LEVELS)),
        help="phone-audio: concurrent streams, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--phone-seed", type=int, default=4242, help="phone-audio: audio seed")
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, default=PARTS, help="the parts to run (default: all)"
    )
    args = parser.parse_args()
    figures: dict[str, object] = {"machine": machine()}
    if "accuracy" in args.only:
        figures["accuracy"] = asyncio.run(measure_accuracy(args.runs))
    if "capacity" in args.only:
        figures["capacity"] = asyncio.run(
            measure_capacity(args.open_runs, baseline_runs=args.baseline_runs)
        )
    if "scheduler" in args.only:
        figures["scheduler"] = asyncio.run(
            measure_scheduler(args.checks, args.scheduler_seconds, aligned=args.aligned)
        )
    if "metrics" in args.only:
        figures["metrics"] = asyncio.run(measure_metrics(args.series, args.scrapes))
    if "claims" in args.only:
        figures["claims"] = asyncio.run(measure_claims(args.claim_monitors))
    if "webchat" in args.only:
        levels = tuple(int(level) for level in args.chat_levels.split(","))
        figures["webchat"] = asyncio.run(
            measure_webchat(
                levels,
                args.chat_rounds,
                args.chat_spread,
                args.chat_baseline,
                args.chat_warmup_rounds,
            )
        )
    if "large-mail" in args.only:
        figures["large_mail"] = asyncio.run(measure_large_mail(args.large_messages, args.large_mib))
    if "phone-audio" in args.only:
        figures["phone_audio"] = asyncio.run(
            measure_phone_audio(
                args.phone_calls,
                args.phone_prompts,
                tuple(int(level) for level in args.phone_levels.split(",")),
                seed=args.phone_seed,
            )
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
