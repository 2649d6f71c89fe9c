"""The configuration: pydantic models, the YAML loader and cross-reference checks.

``load_config(path)`` returns a validated :class:`Config` or raises :class:`ConfigError` with
every problem, each naming the file, the line, the key path and what to do. Unknown keys are
rejected everywhere (a misspelt key silently ignored is a probe that silently never runs).
Secrets are written as ``${ENV_VAR}`` and held as ``SecretStr``. A command that uses no
secret loads with ``environment="deferred"``: unset variables become placeholders listed in
``Config.unset`` (:mod:`cxprobe.unset_env`), and it asks for the ones it needs with
:meth:`Config.require_environment`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from cxprobe.budgets import Budget, CostEstimator, PriceTable
from cxprobe.errors import ConfigError
from cxprobe.store.leases import DEFAULT_LEASE_TIMEOUT, default_monitor_name
from cxprobe.store.retention import Retention
from cxprobe.unset_env import DeferredEnvironment, UnsetVariable, unset_variables
from cxprobe.yamlsource import KeyPath, YamlDocument, format_path, load_yaml, substitute_env
from probes import CHANNEL_TYPES
from probes.base import AddressUse, DefaultSla, Problem, Responder, ScenarioUse
from scenarios.durations import Duration
from scenarios.hours import BusinessHours
from scenarios.maintenance import MaintenanceWindow
from scenarios.model import ContactMode, Matcher, Scenario, Thresholds
from scenarios.schedule import Schedule

LIBRARY_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "library"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpSettings(Strict):
    host: str = Field("127.0.0.1", description="Address /metrics and /healthz bind to.")
    port: int = Field(9464, ge=0, le=65535)


class MonitorSettings(Strict):
    location: str = Field("default", description="Where this monitor runs (a `locations` key).")
    name: str = Field(
        default_factory=default_monitor_name,
        min_length=1,
        max_length=200,
        description="This monitor among those sharing the store (unique per monitor): "
        "$CXPROBE_MONITOR_NAME, else the host's name. A restarted monitor takes back at once "
        "the open runs its earlier process held under this name.",
    )
    lease_timeout: Duration = Field(
        DEFAULT_LEASE_TIMEOUT,
        ge=1,
        description="Longest an open run stays with a monitor that stopped renewing its lease "
        "(died, hung, cut off from the store) before another monitor of the location takes it "
        "over.",
    )
    store_url: str = Field(
        "sqlite+aiosqlite:///data/cxprobe.db", description="SQLAlchemy URL of the evidence store."
    )
    data_dir: Path = Field(
        Path("data"),
        description="Directory of the monitor's own files: replies spooled here (spool/) "
        "until the store has them, so a restart loses none. Local to each monitor, even when "
        "several share one store.",
    )
    http: HttpSettings = Field(default_factory=lambda: HttpSettings())
    customer_name: str = Field("Alex Morgan", description="Name the test customer signs with.")
    disclosure: str | None = Field(
        "This is an automated service-quality test contact (ref {token}).",
        description="Line every declared contact carries so staff can identify test contacts "
        "(targets in contact_mode: mystery go without it).",
    )
    concurrency: dict[str, int] = Field(
        default_factory=dict, description="Per channel kind: runs in progress at once."
    )
    send_timeout: Duration = Field(60.0, description="Longest a channel may take to accept.")
    shutdown_grace: Duration = Field(10.0, description="Wait this long for sends on SIGTERM.")
    log_format: Literal["json", "text"] = "json"

    @field_validator("disclosure")
    @classmethod
    def _disclosure_text(cls, value: str | None) -> str | None:
        # One way to go undisclosed: a target's contact_mode, whose reason is recorded.
        if value is None or not value.strip():
            raise ValueError(
                "the disclosure cannot be turned off here: set contact_mode: mystery and "
                "mystery: {reason: ...} on the targets whose contacts must not disclose "
                "themselves"
            )
        return value

    @field_validator("concurrency")
    @classmethod
    def _known_kinds(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, limit in value.items():
            if kind not in CHANNEL_TYPES:
                raise ValueError(
                    f"unknown channel kind {kind!r}; known: {', '.join(CHANNEL_TYPES)}"
                )
            if limit < 1:
                raise ValueError(f"concurrency for {kind} must be at least 1")
        return value


class Sla(Strict):
    """Service levels for one channel of one target (seconds; durations like 15m accepted)."""

    first_response: Duration | None = Field(None, description="Any answer (auto-ack counts).")
    human_response: Duration | None = Field(None, description="A human answer, business hours.")
    after_hours_response: Duration | None = Field(
        None, description="Outside business hours: an answer the scenario accepts (bot/auto)."
    )
    deadline: Duration | None = Field(
        None, description="How long a run waits for answers before it is judged."
    )
    objective: float = Field(0.95, gt=0, lt=1, description="Share of good probes promised.")


class Queue(Strict):
    """A team of the target, recognised in replies by any of its matchers."""

    description: str = ""
    match: list[Matcher] = Field(min_length=1)


class ResponderRule(Strict):
    """Re-classify replies the channel could not tell apart (e.g. a bot signing as a person)."""

    responder: Responder
    match: Matcher


#: Contacts per hour and channel when a target's rate_limit does not say: mystery contacts
#: do not say they are tests, so they are kept rarer.
DEFAULT_CONTACTS_PER_HOUR = {ContactMode.DECLARED: 6, ContactMode.MYSTERY: 1}


class RateLimit(Strict):
    max_contacts_per_hour: int | None = Field(
        None,
        ge=1,
        description="Per channel; slots beyond it are skipped (recorded as skipped: "
        "rate_limit). Default 6, or 1 for contact_mode: mystery.",
    )


class Mystery(Strict):
    """Why a target is probed without disclosure (kept with the configuration for audits)."""

    reason: str = Field(min_length=1, description="E.g. 'quarterly competitor benchmark'.")


def _target_channels_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        kind: (channel_type.address_model | None, None)
        for kind, channel_type in CHANNEL_TYPES.items()
    }
    return create_model("TargetChannels", __config__=ConfigDict(extra="forbid"), **fields)


def _channels_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        kind: (channel_type.settings_model | None, None)
        for kind, channel_type in CHANNEL_TYPES.items()
    }
    return create_model("Channels", __config__=ConfigDict(extra="forbid"), **fields)


if TYPE_CHECKING:
    # Generated from the registry, so the type checker knows them as plain models: their
    # sections are read through Config.channel_settings() and Target.address(), and typed per
    # kind by the channel's own ChannelType.
    TargetChannels = BaseModel
    Channels = BaseModel
else:
    TargetChannels = _target_channels_model()
    Channels = _channels_model()


class Target(Strict):
    name: str = Field(description="Brand name shown in reports.")
    business_hours: BusinessHours
    channels: TargetChannels
    queues: dict[str, Queue] = Field(default_factory=dict)
    responders: list[ResponderRule] = Field(default_factory=list)
    slas: dict[str, Sla] = Field(default_factory=dict)
    rate_limit: RateLimit = Field(default_factory=lambda: RateLimit())
    contact_mode: ContactMode = Field(
        ContactMode.DECLARED,
        description="declared: every contact says it is a test; mystery: it does not "
        "(needs mystery.reason).",
    )
    mystery: Mystery | None = Field(None, description="Required with contact_mode: mystery.")
    competitor: bool = Field(
        False, description="Another company's service: probed on public channels only."
    )

    def contacts_per_hour(self) -> int:
        """The contact budget per hour and channel: the configured one, else the mode's."""
        configured = self.rate_limit.max_contacts_per_hour
        return DEFAULT_CONTACTS_PER_HOUR[self.contact_mode] if configured is None else configured

    def address(self, kind: str) -> BaseModel | None:
        """The target's ``channels.<kind>`` section (the channel's address model), if any."""
        section: BaseModel | None = getattr(self.channels, kind, None)
        return section

    def sla(self, kind: str) -> Sla:
        """This target's SLA for ``kind``, unset figures taken from the channel's defaults."""
        channel_type = CHANNEL_TYPES.get(kind)
        default = (
            Sla(deadline=3600)
            if channel_type is None
            else Sla.model_validate(dataclasses.asdict(channel_type.default_sla))
        )
        own = self.slas.get(kind)
        if own is None:
            return default
        merged = default.model_dump()
        merged.update(own.model_dump(exclude_unset=True))
        return Sla.model_validate(merged)

    def sla_figures(self, kind: str) -> DefaultSla:
        """:meth:`sla` in the figures a channel's cross-check reads."""
        sla = self.sla(kind)
        return DefaultSla(
            first_response=sla.first_response,
            human_response=sla.human_response,
            after_hours_response=sla.after_hours_response,
            deadline=sla.deadline,
        )


class Check(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Stable id (lowercase).")
    target: str
    channel: str
    scenario: str
    schedule: Schedule
    locations: list[str] | None = Field(None, description="Where it runs; default everywhere.")
    expected_queue: str | None = Field(None, description="Overrides the scenario's queue.")
    enabled: bool = True


class Location(Strict):
    description: str = ""


class Config(Strict):
    version: Literal[1] = Field(description="Config format version; this build reads 1.")
    monitor: MonitorSettings = Field(default_factory=lambda: MonitorSettings())
    locations: dict[str, Location] = Field(default_factory=lambda: {"default": Location()})
    channels: Channels = Field(default_factory=lambda: Channels())
    targets: dict[str, Target]
    scenarios: dict[str, Scenario] = Field(default_factory=dict)
    checks: list[Check] = Field(min_length=1)
    retention: Retention = Field(default_factory=lambda: Retention())
    maintenance: list[MaintenanceWindow] = Field(
        default_factory=list,
        description="Declared maintenance windows (more are added with cxprobe maintenance).",
    )
    budgets: dict[str, Budget] = Field(
        default_factory=dict, description="Money budgets per account or target (by name)."
    )
    prices: PriceTable | None = Field(None, description="What a contact costs, per channel.")

    # Filled by load_config, not read from YAML.
    source: Path | None = Field(default=None, exclude=True)
    sha256: str = Field(default="", exclude=True)
    #: ``${VAR}`` references left unset (loaded with ``environment="deferred"``).
    unset: list[UnsetVariable] = Field(default_factory=list, exclude=True)

    @model_validator(mode="after")
    def _plan_coverage(self) -> Config:
        """Coverage schedules are planned in their target's calendar and rate limit (a check
        naming an unknown target is reported by the cross-checks)."""
        for check in self.checks:
            target = self.targets.get(check.target)
            if check.schedule.coverage is not None and target is not None:
                check.schedule = check.schedule.planned(
                    seed=check.id,
                    hours=target.business_hours,
                    contacts_per_hour=target.contacts_per_hour(),
                    contacts_per_slot=len(check.locations or self.locations) or 1,
                )
        return self

    def require_environment(self, under: KeyPath = ()) -> None:
        """Refuse (:class:`ConfigError`, one problem per variable) if a ``${VAR}`` under
        ``under`` (default: anywhere) was left unset; call before using those values."""
        missing = [variable.problem() for variable in self.unset if variable.under(under)]
        if missing:
            raise ConfigError(str(self.source), missing)

    def channel_settings(self, kind: str) -> BaseModel | None:
        """The ``channels.<kind>`` section (the channel's settings model), if configured."""
        section: BaseModel | None = getattr(self.channels, kind, None)
        return section

    def check(self, check_id: str) -> Check | None:
        """The check with id ``check_id``, wherever and whether or not it runs."""
        return next((check for check in self.checks if check.id == check_id), None)

    def checks_here(self) -> list[Check]:
        """Enabled checks that run at this monitor's location."""
        here = self.monitor.location
        return [
            check
            for check in self.checks
            if check.enabled and (check.locations is None or here in check.locations)
        ]

    def cost_estimator(self) -> CostEstimator:
        """What contacts cost and the budgets they spend (cxprobe.budgets)."""
        return CostEstimator(self.budgets, self.prices)

    def thresholds(self, check: Check) -> Thresholds:
        sla = self.targets[check.target].sla(check.channel)
        figures = [sla.first_response, sla.human_response, sla.after_hours_response]
        deadline = sla.deadline or max((f for f in figures if f is not None), default=3600.0)
        return Thresholds(
            first_response=sla.first_response,
            human_response=sla.human_response,
            after_hours_response=sla.after_hours_response,
            deadline=deadline,
        )


EnvironmentMode = Literal["required", "deferred"]


def load_config(
    path: Path,
    environ: Mapping[str, str] | None = None,
    *,
    environment: EnvironmentMode = "required",
) -> Config:
    """Read, substitute secrets, validate and cross-check ``path``.

    ``environment="required"``: an unset ``${VAR}`` is a problem. ``"deferred"``: it becomes
    a placeholder, listed in ``Config.unset`` (for commands that use no secret)."""
    document = load_yaml(path)
    if not isinstance(document.data, dict):
        raise ConfigError(str(path), [f"{path}: the file must hold a mapping (key: value)"])
    env = os.environ if environ is None else environ
    deferred = environment == "deferred"
    problems = substitute_env(document, DeferredEnvironment(env) if deferred else env)
    unset = unset_variables(document) if deferred else []
    library, library_problems = load_scenario_library()
    problems += library_problems
    if problems:
        raise ConfigError(str(path), problems)
    try:
        config = Config.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(str(path), _explain(exc, document, unset)) from None
    config.scenarios = {**library, **config.scenarios}
    problems = [
        f"{document.where(key_path)}: {message}" for key_path, message in _cross_check(config)
    ]
    if problems:
        raise ConfigError(str(path), problems)
    config.source = path
    config.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    config.unset = unset
    return config


def load_scenario_library(directory: Path = LIBRARY_DIR) -> tuple[dict[str, Scenario], list[str]]:
    """Ready-made scenarios, one per file, keyed by file stem."""
    scenarios: dict[str, Scenario] = {}
    problems: list[str] = []
    for file in sorted(directory.glob("*.yaml")):
        try:
            document = load_yaml(file)
        except ConfigError as exc:
            problems += exc.problems
            continue
        try:
            scenarios[file.stem] = Scenario.model_validate(document.data)
        except ValidationError as exc:
            problems += _explain(exc, document)
    return scenarios, problems


def _explain(
    exc: ValidationError, document: YamlDocument, unset: Sequence[UnsetVariable] = ()
) -> list[str]:
    unset_at = {variable.key_path: variable.name for variable in unset}
    lines = []
    for error in exc.errors(include_url=False):
        key_path: KeyPath = tuple(part for part in error["loc"] if isinstance(part, str | int))
        message = error["msg"]
        if key_path in unset_at:
            name = unset_at[key_path]
            message = (
                f"environment variable {name} is not set, and this value cannot be checked "
                f"without it ({message}); export {name}=..."
            )
        elif error["type"] == "extra_forbidden":
            parent = key_path[:-1]
            message = (
                f"unknown key {key_path[-1]!r} under {format_path(parent)}; "
                "check its spelling (see config/example.yaml for every option)"
            )
        elif error["type"] == "missing":
            message = "this key is required but missing"
        elif error["type"] == "too_short":
            minimum = (error.get("ctx") or {}).get("min_length", 1)
            message = f"needs at least {minimum} item{'s' if minimum != 1 else ''}; add one"
        elif key_path == ("version",):
            message = "this build reads config version 1; convert the file or upgrade cxprobe"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        lines.append(f"{document.where(key_path)}: {message}")
    return lines


def _cross_check(config: Config) -> list[Problem]:
    """References between sections: the problems pydantic cannot see one model at a time."""
    return [
        *_location_problems(config),
        *_sla_kind_problems(config),
        *_channel_problems(config),
        *_check_problems(config),
        *_coverage_problems(config),
        *_series_problems(config),
        *courtesy_problems(config),
        *_budget_problems(config),
        *_turn_problems(config),
    ]


def _turn_problems(config: Config) -> list[Problem]:
    """A conversation turn waiting only for responder kinds its check's channel never
    reports (nor the target's ``responders`` rules) can never match: named at the check."""
    problems: list[Problem] = []
    for index, check in enumerate(config.checks):
        scenario = config.scenarios.get(check.scenario)
        channel_type = CHANNEL_TYPES.get(check.channel)
        target = config.targets.get(check.target)
        if scenario is None or channel_type is None or target is None:
            continue  # reported by the check's own references
        possible = channel_type.responders | {rule.responder for rule in target.responders}
        matchers = [(f"turns[{i}]", turn.when) for i, turn in enumerate(scenario.turns)]
        if scenario.fallback is not None:
            matchers.append(("fallback", scenario.fallback.when))
        for name, when in matchers:
            if when.responder and not possible & set(when.responder):
                problems.append(
                    (
                        ("checks", index, "scenario"),
                        f"scenario {check.scenario!r} {name}.when.responder "
                        f"({', '.join(when.responder)}) can never match on {check.channel}, "
                        f"whose replies are {', '.join(sorted(possible))}; change the turn's "
                        "responder or add a target responders rule that tells that kind",
                    )
                )
    return problems


def _unknown_kind(kind: str) -> str:
    return f"unknown channel kind {kind!r}; known: {', '.join(CHANNEL_TYPES)}"


def _location_problems(config: Config) -> list[Problem]:
    if config.monitor.location in config.locations:
        return []
    return [
        (
            ("monitor", "location"),
            f"location {config.monitor.location!r} is not defined "
            f"under 'locations' (defined: {', '.join(config.locations)})",
        )
    ]


def _sla_kind_problems(config: Config) -> list[Problem]:
    return [
        (("targets", target_id, "slas", kind), _unknown_kind(kind))
        for target_id, target in config.targets.items()
        for kind in target.slas
        if kind not in CHANNEL_TYPES
    ]


def _channel_problems(config: Config) -> list[Problem]:
    """Each channel's own cross-check, on the targets' addresses and the checks' scenarios."""
    problems: list[Problem] = []
    for kind, channel_type in CHANNEL_TYPES.items():
        addresses = [
            AddressUse(
                address=address,
                sla=target.sla_figures(kind),
                where=("targets", target_id, "channels", kind),
                sla_where=("targets", target_id, "slas"),
            )
            for target_id, target in config.targets.items()
            if (address := target.address(kind)) is not None
        ]
        checks = [
            ScenarioUse(
                scenario=check.scenario,
                after_hours_accepts=frozenset(scenario.after_hours_accepts),
                where=("checks", index, "scenario"),
            )
            for index, check in enumerate(config.checks)
            if check.channel == kind
            and (scenario := config.scenarios.get(check.scenario)) is not None
        ]
        problems += channel_type.check_config(config.channel_settings(kind), addresses, checks)
    return problems


def _check_problems(config: Config) -> list[Problem]:
    problems: list[Problem] = []
    seen_ids: dict[str, int] = {}
    for index, check in enumerate(config.checks):
        where: KeyPath = ("checks", index)
        if check.id in seen_ids:
            problems.append(
                (
                    (*where, "id"),
                    f"check id {check.id!r} is already used by "
                    f"checks[{seen_ids[check.id]}]; ids must be unique",
                )
            )
        seen_ids.setdefault(check.id, index)
        problems += _check_references(config, check, where)
    return problems


def _check_references(config: Config, check: Check, where: KeyPath) -> list[Problem]:
    """What one check names: its target, channel, scenario, queue and locations."""
    problems: list[Problem] = []
    target: Target | None = config.targets.get(check.target)
    if target is None:
        problems.append(
            (
                (*where, "target"),
                f"unknown target {check.target!r}; defined "
                f"targets: {', '.join(config.targets) or '(none)'}",
            )
        )
    problems += _check_channel_problems(config, check, target, where)
    scenario = config.scenarios.get(check.scenario)
    if scenario is None:
        problems.append(
            (
                (*where, "scenario"),
                f"unknown scenario {check.scenario!r}; "
                f"available: {', '.join(sorted(config.scenarios))}",
            )
        )
    queue = check.expected_queue or (scenario.expected_queue if scenario else None)
    if target is not None and queue is not None and target.queues and queue not in target.queues:
        problems.append(
            (
                (*where, "expected_queue" if check.expected_queue else "scenario"),
                f"queue {queue!r} is not one of target {check.target!r}'s queues "
                f"({', '.join(target.queues)})",
            )
        )
    problems += [
        (
            (*where, "locations"),
            f"unknown location {location!r}; defined: {', '.join(config.locations)}",
        )
        for location in check.locations or []
        if location not in config.locations
    ]
    return problems


def _check_channel_problems(
    config: Config, check: Check, target: Target | None, where: KeyPath
) -> list[Problem]:
    if check.channel not in CHANNEL_TYPES:
        return [((*where, "channel"), _unknown_kind(check.channel))]
    problems: list[Problem] = []
    if config.channel_settings(check.channel) is None:
        problems.append(
            (
                (*where, "channel"),
                f"channel {check.channel!r} is not "
                f"configured: add a 'channels.{check.channel}' section",
            )
        )
    if target is not None and target.address(check.channel) is None:
        problems.append(
            (
                (*where, "channel"),
                f"target {check.target!r} has no 'channels.{check.channel}' address to contact",
            )
        )
    return problems


def _coverage_problems(config: Config) -> list[Problem]:
    """Coverage plans that cannot keep their target's rate limit."""
    return [
        (("checks", index, "schedule", "coverage", "samples_per_week"), problem)
        for index, check in enumerate(config.checks)
        if check.enabled
        and check.schedule.coverage is not None
        and check.target in config.targets
        and (plan := check.schedule.plan) is not None
        and (problem := plan.fit_problem()) is not None
    ]


def _series_problems(config: Config) -> list[Problem]:
    """Metrics are labelled by target, channel, scenario and location: two enabled checks that
    share the first three and can run at one location would count as one."""
    problems: list[Problem] = []
    seen_series: dict[tuple[str, str, str], list[tuple[int, set[str]]]] = {}
    for index, check in enumerate(config.checks):
        if not check.enabled:
            continue
        series = (check.target, check.channel, check.scenario)
        places = set(check.locations) if check.locations is not None else set(config.locations)
        for other, other_places in seen_series.get(series, []):
            if places & other_places:
                problems.append(
                    (
                        ("checks", index),
                        f"checks[{other}] already probes the same target, channel and scenario "
                        f"at {', '.join(sorted(places & other_places))}; their metrics would "
                        "collide (give them different locations, or disable one)",
                    )
                )
                break
        seen_series.setdefault(series, []).append((index, places))
    return problems


def courtesy_problems(config: Config) -> list[Problem]:
    """Contact modes, competitors' channels and maintenance windows (issue 12)."""
    return [
        *_contact_mode_problems(config),
        *_competitor_problems(config),
        *_maintenance_problems(config),
    ]


def _contact_mode_problems(config: Config) -> list[Problem]:
    problems: list[Problem] = []
    for target_id, target in config.targets.items():
        where: KeyPath = ("targets", target_id)
        if target.contact_mode is ContactMode.MYSTERY and target.mystery is None:
            problems.append(
                (
                    (*where, "contact_mode"),
                    "contact_mode: mystery needs its reason on record: add "
                    "mystery: {reason: ...} (why this target is probed without disclosure)",
                )
            )
        elif target.contact_mode is ContactMode.DECLARED and target.mystery is not None:
            problems.append(
                (
                    (*where, "mystery"),
                    "mystery is set but contact_mode is declared: set contact_mode: mystery, "
                    "or remove mystery",
                )
            )
    return problems


def _competitor_problems(config: Config) -> list[Problem]:
    """A competitor is reached only where any member of the public may reach it."""
    return [
        (
            ("checks", index, "channel"),
            f"target {check.target!r} is a competitor (competitor: true), and "
            f"{check.channel} is not a public channel: probe competitors only on public "
            f"channels ({', '.join(kind for kind, t in CHANNEL_TYPES.items() if t.public)})",
        )
        for index, check in enumerate(config.checks)
        if (target := config.targets.get(check.target)) is not None
        and target.competitor
        and (channel_type := CHANNEL_TYPES.get(check.channel)) is not None
        and not channel_type.public
    ]


def _maintenance_problems(config: Config) -> list[Problem]:
    problems: list[Problem] = []
    for index, window in enumerate(config.maintenance):
        where: KeyPath = ("maintenance", index)
        if window.target is not None and window.target not in config.targets:
            problems.append(
                (
                    (*where, "target"),
                    f"unknown target {window.target!r}; defined "
                    f"targets: {', '.join(config.targets)}",
                )
            )
        if window.channel is not None and window.channel not in CHANNEL_TYPES:
            problems.append(((*where, "channel"), _unknown_kind(window.channel)))
    return problems


def _budget_problems(config: Config) -> list[Problem]:
    """Budgets name known targets and share the price table's currency (no conversion)."""
    problems: list[Problem] = []
    for name, budget in config.budgets.items():
        where: KeyPath = ("budgets", name)
        if budget.target is not None and budget.target not in config.targets:
            problems.append(
                (
                    (*where, "target"),
                    f"unknown target {budget.target!r}; defined targets: "
                    f"{', '.join(config.targets) or '(none)'}",
                )
            )
        if config.prices is None:
            problems.append(
                (
                    where,
                    "a budget needs a 'prices' table to estimate contacts from: add "
                    f"prices: {{currency: {budget.currency}, channels: ...}}",
                )
            )
        elif budget.currency != config.prices.currency:
            problems.append(
                (
                    (*where, "currency"),
                    f"the budget is in {budget.currency} but prices are in "
                    f"{config.prices.currency}; cxprobe does not convert: use one currency",
                )
            )
    return problems
