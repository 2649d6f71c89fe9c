"""cxprobe / Answer quality: what the human answers said, per target and channel (correct share,
first-contact resolution, language mismatches, mystery-shopping rubric score), which rubric
items each team misses, the same scenario's score on each channel side by side, and the probed
brands (your own and competitors') ranked on speed, answer quality and after-hours
availability, with the contact mode of each.

Verdicts and scores are pattern matching, not understanding (README, "Answer expectations" and
"Mystery-shopping rubric"): read them as a screen that says where to look at the evidence.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as model

from probes.base import Responder
from scenarios.model import AnswerVerdict

from .common import (
    AFTER_HOURS_SLO,
    COMPLIANCE_STEPS,
    QUALITY_UID,
    Panel,
    Steps,
    answer_quantile,
    bar_gauge,
    dashboard,
    data_table,
    increase,
    instant,
    legend_of,
    ratio,
    scenario_variable,
    slo_compliance,
    table_query,
    targets_channels_locations,
)

#: The selected targets, channels and locations (multi-value variables).
CHECK = 'target=~"$target", channel=~"$channel", location=~"$location"'
#: … running the one scenario compared across channels.
SAME_SCENARIO = f'{CHECK}, scenario="$scenario"'
BY_PAIR = "target, channel"
#: Rubric scores run from 0 to 100: red below 60 (the report's "low"), amber to 80.
RUBRIC_STEPS: Steps = ((None, "red"), (60.0, "orange"), (80.0, "green"))
#: The labels a brand's figures carry in the ranking.
BRAND = "target, contact_mode, competitor"


def with_brand(expr: str) -> str:
    """``expr`` (by target) with the target's contact mode and competitor flag."""
    info = f'max by ({BRAND}) (cxprobe_target_info{{target=~"$target"}})'
    return f"({expr}) * on (target) group_left (contact_mode, competitor) {info}"


def correct_share(match: str, by: str) -> str:
    """Of the judged runs with a human answer, the share whose answer was correct."""
    return ratio(
        increase(
            "cxprobe_answer_verdicts_total",
            f'{match}, verdict="{AnswerVerdict.CORRECT}"',
            "$__range",
            by,
        ),
        increase(
            "cxprobe_answer_verdicts_total",
            f'{match}, verdict!="{AnswerVerdict.NONE}"',
            "$__range",
            by,
        ),
    )


def resolved_share(match: str, by: str) -> str:
    return ratio(
        increase("cxprobe_resolved_total", f'{match}, resolved="true"', "$__range", by),
        increase("cxprobe_resolved_total", match, "$__range", by),
    )


def mean_rubric_score(match: str, by: str) -> str:
    """The mean rubric score (0-100) of the scored runs in the range."""
    return ratio(
        increase("cxprobe_rubric_score_sum", match, "$__range", by),
        increase("cxprobe_rubric_score_count", match, "$__range", by),
    )


def quality() -> builders.Dashboard:
    return dashboard(
        QUALITY_UID,
        "cxprobe / Answer quality",
        "What the human answers said per target and channel (correct, resolved at first "
        "contact, language, rubric score), the same scenario on each channel, and the probed "
        "brands ranked on speed, answer quality and after-hours availability.",
        time_from="now-7d",
        variables=[
            *targets_channels_locations(),
            scenario_variable("The scenario compared across channels."),
        ],
        rows=[
            ("Quality per target and channel", _per_pair()),
            ("Mystery-shopping rubric", _rubric()),
            ("Same scenario on each channel: $scenario", _same_scenario()),
            ("Competitor ranking", _ranking()),
        ],
    )


def _per_pair() -> list[Panel]:
    return [
        data_table(
            "Answer quality by target and channel",
            "Over the dashboard range: the share of human answers that were correct (every "
            "expected fact, no wrong one), the share of judged runs resolved by an answer "
            "before any follow-up (a first-contact-resolution proxy), runs answered in "
            "another language than the scenario's, and the mean mystery-shopping rubric "
            "score (0-100). Pattern matching, not understanding: open the run's evidence.",
            [
                table_query(correct_share(CHECK, BY_PAIR)),
                table_query(resolved_share(CHECK, BY_PAIR)),
                table_query(
                    increase("cxprobe_language_mismatch_total", CHECK, "$__range", BY_PAIR)
                ),
                table_query(mean_rubric_score(CHECK, BY_PAIR)),
            ],
            unit="percentunit",
            width=24,
            labels=BY_PAIR.split(", "),
            values={
                "Value #A": "Correct",
                "Value #B": "Resolved at first contact",
                "Value #C": "Language mismatches",
                "Value #D": "Rubric score",
            },
            link_target=True,
        )
        .override_by_name("Value #C", [model.DynamicConfigValue("unit", "short")])
        .override_by_name("Value #D", [model.DynamicConfigValue("unit", "none")]),
    ]


def _rubric() -> list[Panel]:
    item_share = ratio(
        increase("cxprobe_rubric_items_total", f'{CHECK}, result="met"', "$__range", "item"),
        increase("cxprobe_rubric_items_total", CHECK, "$__range", "item"),
    )
    return [
        bar_gauge(
            "Rubric score by target and channel",
            "Mean mystery-shopping rubric score (0-100) of the scored runs over the dashboard "
            "range: red below 60, where a team scores low. Runs nobody answered are not "
            "scored; items that did not apply to a run were rescaled away.",
            [instant(mean_rubric_score(CHECK, BY_PAIR), legend_of(BY_PAIR))],
            unit="none",
            width=12,
            steps=RUBRIC_STEPS,
            link_labels=True,
        ).max(100),
        bar_gauge(
            "Rubric items met",
            "Of the scored runs an item applied to, the share that met it (greeting, the "
            "customer's name, empathy in complaints, sign-off, reference number, expected "
            "facts, SLA, and custom items), across the selected targets and channels.",
            [instant(item_share, "{{item}}")],
            unit="percentunit",
            width=12,
            steps=COMPLIANCE_STEPS,
            ratio_scale=True,
        ),
    ]


def _same_scenario() -> list[Panel]:
    return [
        bar_gauge(
            "Rubric score per channel",
            "The mean rubric score of the same customer script on each channel over the "
            "dashboard range (selected targets together): cross-channel consistency of "
            "content, not only of speed.",
            [instant(mean_rubric_score(SAME_SCENARIO, "channel"), "{{channel}}")],
            unit="none",
            width=12,
            steps=RUBRIC_STEPS,
        ).max(100),
        bar_gauge(
            "Correct answers per channel",
            "The share of the scenario's human answers that were correct, on each channel.",
            [instant(correct_share(SAME_SCENARIO, "channel"), "{{channel}}")],
            unit="percentunit",
            width=12,
            steps=COMPLIANCE_STEPS,
            ratio_scale=True,
        ),
    ]


def _ranking() -> list[Panel]:
    human = f'{CHECK}, responder="{Responder.HUMAN}", period="business"'
    return [
        data_table(
            "Brands ranked",
            "Each probed brand over the dashboard range, all its channels and scenarios: "
            "median time to the first human answer in business hours, correct share, mean "
            "rubric score, and after-hours availability (the share of after-hours probes "
            "answered within the limit); its contact mode (declared: contacts said they were "
            "tests; mystery: they did not) and whether it is a competitor. Sort by a column "
            "to rank; compare brands probed on the same scenarios and channels.",
            [
                table_query(with_brand(answer_quantile(0.5, human, "$__range", "target"))),
                table_query(with_brand(correct_share(CHECK, "target"))),
                table_query(with_brand(mean_rubric_score(CHECK, "target"))),
                table_query(
                    with_brand(
                        slo_compliance(
                            f'target=~"$target", channel=~"$channel", slo="{AFTER_HOURS_SLO}"',
                            "$__range",
                            "target",
                        )
                    )
                ),
            ],
            unit="s",
            width=24,
            labels=("target", "contact_mode", "competitor"),
            values={
                "Value #A": "Median to human",
                "Value #B": "Correct",
                "Value #C": "Rubric score",
                "Value #D": "After hours",
            },
            link_target=False,
        )
        .override_by_name("Value #B", [model.DynamicConfigValue("unit", "percentunit")])
        .override_by_name("Value #C", [model.DynamicConfigValue("unit", "none")])
        .override_by_name("Value #D", [model.DynamicConfigValue("unit", "percentunit")]),
    ]
