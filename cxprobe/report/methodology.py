"""The report's methodology section: how each figure is measured, and how precise it is.

Kept beside the code that measures (DESIGN.md "Timing semantics", docs/metrics.md) so the text
changes when the measurement does.
"""

from __future__ import annotations

from cxprobe.report.model import Section, TableBlock, Text

PRECISION: tuple[tuple[str, str, str, str], ...] = (
    (
        "email",
        "the SMTP server's 250 reply to DATA",
        "mailbox arrival time: IMAP INTERNALDATE (observation time via IDLE kept too)",
        "±0.5 s (INTERNALDATE has one-second resolution; IDLE adds ~0.5 s, not counted)",
    ),
    (
        "webchat",
        "the message sent in the page",
        "in-page MutationObserver stamping performance.now(), pushed out at once (no polling)",
        "milliseconds",
    ),
    (
        "phone",
        "the call created by the provider",
        "provider status events (answered) and partial speech results (who speaks: IVR, human)",
        "~0.5 to 1 s (speech is recognised in partial results as it is heard)",
    ),
    (
        "sms, whatsapp, generic",
        "the message accepted by the provider's API",
        "provider webhook arrival, or the message's date_sent",
        "1 s (date_sent resolution; webhook arrival adds the provider's delivery delay)",
    ),
)

DEFINITIONS = (
    "Every figure comes from runs in the evidence store: one run is one scheduled test contact "
    "of one check (target, channel, scenario). Times are wall-clock UTC, shown in the "
    "target's local time where the hour matters; t0 is when the channel accepted the contact.",
    "Period: business hours, after hours or holiday, from the target's calendar (IANA zone, "
    "weekly hours, public holidays, dated exceptions) at the slot time of the run.",
    "Compliance = met ÷ judged runs, where judged = met + breached + failed (a refused "
    "contact is the service's failure). Error and interrupted runs are the monitor's own "
    "failures: listed as 'not run', they count neither way. Per-SLO shares use the same events "
    "as the Prometheus SLO rules: first and human response in business hours, the after-hours "
    "response outside them.",
    "Answered = some reply (human, bot, auto-reply or IVR) before the run's deadline; replies "
    "after it are kept as evidence (late) but are not answers. Answer rate = answered ÷ "
    "contacts sent; time to first answer = t0 to the first such reply; medians are over "
    "answered runs.",
    "After-hours availability = runs met ÷ judged outside business hours: a bot, auto-reply or "
    "person answered as the scenario accepts, within the after-hours limit.",
    "Routing correctness = correct ÷ (correct + wrong), for runs whose scenario expects a team; "
    "the team is recognised from the reply (sender, signature, headers, IVR menu). 'Unknown' "
    "routes (no team recognised) are listed apart.",
    "Worst incidents: the worst refused contact, the worst breach (by how far past its limit "
    "the answer came; no answer ranks worst) and the worst wrong route, then the next of each "
    "kind, and so on.",
    "Integrity: each finished run is sealed in the store's hash chain (docs/evidence.md). "
    "`cxprobe evidence export` of the same period gives every run behind these figures with "
    "its raw evidence and a manifest that `cxprobe evidence verify` checks.",
)


def methodology() -> Section:
    return Section(
        "Methodology",
        (
            Text(DEFINITIONS),
            TableBlock(
                columns=("channel", "t0", "first answer timed by", "precision"),
                rows=PRECISION,
                title="Timing and precision per channel",
                numbers_from=99,
            ),
        ),
    )
