"""Budgets before sending, on the SMS channel against the sandbox's Twilio peer: the estimate
is recorded in the claim, a budget that runs out stops the send (the run says ``skipped:
budget``), and Twilio's actual price, null right after the send as on Twilio and fetched on a
later pass, replaces the estimate in what the budget counts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from cxprobe.budgets import Budget
from cxprobe.store.database import RunCost
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import Outcome
from tests.integration.test_messaging_runs import hook, monitoring, run_once, twilio_lines
from tests.support import brand_number, messaging_config, twilio_messaging

#: Far dearer than the sandbox's price, so the estimate and the actual price tell apart.
ESTIMATED_PER_SEGMENT = 1.0
#: The sandbox rates a message this long after it is sent: never, within the test, unless
#: it is told to rate (POST /_control/messaging/rate, here ``book.rate_now()``).
RATED_AFTER = {"distribution": "fixed", "seconds": 3600}


def sent(sandbox: TwilioSandbox) -> list[dict[str, Any]]:
    """The messages the probe sent, as the sandbox's API shows them."""
    return [m for m in sandbox.messaging.messages() if m["direction"] == "outbound-api"]


def with_budget(path: Path, daily: float) -> None:
    """Add a price table and a daily budget on the target to the config at ``path``."""
    config = yaml.safe_load(path.read_text())
    config["prices"] = {"currency": "USD", "channels": {"sms": {"default": ESTIMATED_PER_SEGMENT}}}
    config["budgets"] = {"acme-sms": {"currency": "USD", "target": "acme", "daily": daily}}
    path.write_text(yaml.safe_dump(config))


async def test_a_spent_budget_skips_and_the_actual_price_replaces_the_estimate(
    tmp_path: Path,
) -> None:
    async with twilio_lines(tmp_path, delivery={"rated": RATED_AFTER}) as (sandbox, loaded):
        path = messaging_config(
            tmp_path,
            "sms",
            {"to": brand_number(loaded, "sms")},
            {"sms": twilio_messaging(sandbox.base_url, loaded)},
        )
        with_budget(path, daily=1000.0)
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "sms")
            store, runner = monitor.store, monitor.runner
            first = await run_once(monitor)
            assert first.outcome is Outcome.MET, first.reason
            # Twilio had not rated the message by the end of the run: the estimate stands.
            (message,) = sent(sandbox)
            assert message["price"] is None
            segments = int(message["num_segments"])
            estimate = segments * ESTIMATED_PER_SEGMENT
            costs = await store.run_costs(first.run_id)
            assert costs == RunCost(estimate, None, "USD", loaded.twilio.account_sid)

            # The budget leaves room for less than another such contact: the next is skipped.
            limit = 1.5 * estimate
            budgets = {"acme-sms": Budget(currency="USD", target="acme", daily=limit)}
            runner.reconfigure(runner.config.model_copy(update={"budgets": budgets}))
            skipped = await run_once(monitor)
            assert skipped.outcome is Outcome.SKIPPED
            assert skipped.reason == (
                f"skipped: budget acme-sms daily ({estimate:g}/{limit:g} USD)"
            )
            assert skipped.sent_at is None
            assert len(sent(sandbox)) == 1  # never sent
            stored = await store.load_run(skipped.run_id)
            assert stored is not None and stored.outcome is Outcome.SKIPPED

            # Twilio rates the message; a later pass fetches the price, which replaces the
            # estimate, and the budget has room again.
            assert sandbox.messaging.book.rate_now() == 1
            assert runner.prices is not None
            assert await runner.prices.sweep() == 1
            (message,) = sent(sandbox)
            charged = float(abs(Decimal(message["price"])))
            assert charged > 0 and message["price_unit"] == "USD"
            costs = await store.run_costs(first.run_id)
            assert costs is not None and (costs.estimated, costs.actual) == (estimate, charged)
            window = {"budget": "acme-sms", "window": "daily", "currency": "USD"}
            sample = monitor.registry.get_sample_value
            assert sample("cxprobe_budget_spent", window) == charged  # the sweep refreshed it
            third = await run_once(monitor)
            assert third.outcome is Outcome.MET, third.reason

            labels = {"target": "acme", "channel": "sms"}
            assert sample("cxprobe_runs_skipped_total", {**labels, "reason": "budget"}) == 1
            assert sample("cxprobe_runs_skipped_total", {**labels, "reason": "rate_limit"}) == 0
            assert sample("cxprobe_contact_quota_used", labels) == 2
            quota = runner.config.targets["acme"].contacts_per_hour()
            assert sample("cxprobe_contact_quota_limit", labels) == quota
            assert sample("cxprobe_budget_limit", window) == limit
            assert sample("cxprobe_budget_spent", window) == round(charged + estimate, 5)
            assert sample("cxprobe_budget_left", window) == max(
                0.0, limit - round(charged + estimate, 5)
            )
            skipped_runs = {
                **labels,
                "scenario": "billing-question",
                "location": "test",
                "period": "business",
                "outcome": "skipped",
            }
            assert sample("cxprobe_runs_total", skipped_runs) == 1
            for result in ("good", "bad"):  # two runs judged; the skipped one is no event
                events = sample(
                    "cxprobe_slo_events_total",
                    {**labels, "slo": "first_response", "result": result},
                )
                assert events == (2 if result == "good" else 0)
