"""The ``/metrics`` body: prometheus_client's exposition formats, rendered fast.

prometheus_client builds every sample line from nothing on every scrape: a ``Sample`` with a
label dict per line, then each label name validated and escaped, each value escaped, the
labels sorted and joined, the float formatted (17 to 21 µs a line on the reference machine;
10,000 series took ~200 ms a scrape, 4 times the 50 ms goal of issue 11). All of that but the
value is the same on every scrape: a series' labels never change once its child exists.
:class:`Exposition` therefore keeps, per series, its lines *without their values* (rendered
once, with prometheus_client's own escaping functions, when it first meets the child) and on
each scrape reads the values live and joins. Each series also keeps its lines as last
rendered with the raw value(s) they show, and renders them again only when a value read now
differs (a counter's or gauge's value object, a histogram's 20 counts and sum): most series
do not change between two scrapes.

Nothing can go stale, by construction: every value is read on every scrape, and any text kept
is reused only for the very values (and the very child object) it was made from; a series
removed and created again is a new child with new templates; templates of removed series and
unregistered metrics are dropped. No write path needs to invalidate anything.

The output is byte for byte what ``prometheus_client.generate_latest`` (classic text) and
``prometheus_client.openmetrics.exposition.generate_latest`` (OpenMetrics 1.0.0) give for the
same registry; ``tests/unit/test_exposition.py`` compares them. What the fast path does not
know is handed to prometheus_client, family by family: collectors other than plain
``Counter``, ``Gauge`` and ``Histogram`` metrics, gauges with ``set_function``, names outside the
legacy character set, other negotiated formats or versions, and a registry with target info.
Exemplars are not rendered (cxprobe records none).

Reads prometheus_client internals (a registry's collectors, a metric's children, their value
cells): the byte-for-byte tests are what pins them to the installed version.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import metrics as client_metrics
from prometheus_client import values as client_values
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from prometheus_client.validation import _is_valid_legacy_labelname, _is_valid_legacy_metric_name

#: Escapings under which a legacy-valid name or label renders unchanged (the fast path's).
_PLAIN_ESCAPINGS = (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8)
_OPENMETRICS_EOF = "# EOF\n"
#: Distinct values whose text is remembered; beyond it the memo starts again (timestamps and
#: sums are mostly distinct, counts repeat).
_VALUE_MEMO_LIMIT = 50_000

_Children = dict[tuple[str, ...], MetricWrapperBase]
#: prometheus_client's in-process value cell keeps its float in ``_value``; reading it there
#: skips a lock that only makes increments atomic (a read of it is atomic by itself). Other
#: cells (multiprocess mode) are read with ``get()``.
_PLAIN_CELLS = client_values.ValueClass is client_values.MutexValue
#: prometheus_client's own float formatting and OpenMetrics encoder (untyped there).
_go_float = cast(Callable[[float], str], floatToGoString)
_openmetrics_latest = cast(Callable[[Collector], bytes], openmetrics.generate_latest)


class Format(Enum):
    TEXT = "text"  # the classic Prometheus text format 0.0.4
    OPENMETRICS = "openmetrics"  # OpenMetrics 1.0.0


@dataclass(frozen=True)
class Negotiated:
    """What a scraper's ``Accept`` header gets: prometheus_client's choice of encoder."""

    content_type: str
    library_encoder: Callable[[Collector], bytes]
    fast_format: Format | None  # None: only prometheus_client renders this variant


def negotiate(accept: str) -> Negotiated:
    """prometheus_client's content negotiation, and whether the fast path renders the result."""
    encoder, content_type = choose_encoder(accept)
    function = getattr(encoder, "func", encoder)
    options: dict[str, Any] = getattr(encoder, "keywords", {})
    fast: Format | None = None
    if options.get("escaping", openmetrics.UNDERSCORES) in _PLAIN_ESCAPINGS:
        if function is generate_latest:
            fast = Format.TEXT
        elif function is openmetrics.generate_latest and options.get("version") == "1.0.0":
            fast = Format.OPENMETRICS
    return Negotiated(content_type, encoder, fast)


class Exposition:
    """Renders ``registry`` for ``/metrics``; thread-safe (scrapes render in worker threads)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        # Per collector (the sample lines are the same in both formats; headers are kept
        # per format); None for what prometheus_client renders.
        self._templates: dict[Collector, _FamilyTemplate | None] = {}
        self._value_text = _ValueText()
        # One render at a time: two concurrent scrapes would share the templates and both
        # pay the full CPU; one after the other, the second waits no longer than that.
        self._lock = threading.Lock()

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The body and content type for a scrape with this ``Accept`` header."""
        negotiated = negotiate(accept)
        if negotiated.fast_format is None or self._registry._target_info:
            return negotiated.library_encoder(self._registry), negotiated.content_type
        return self.render_format(negotiated.fast_format), negotiated.content_type

    def render_format(self, fmt: Format) -> bytes:
        """The whole registry in ``fmt``."""
        with self._registry._lock:
            collectors = list(self._registry._collector_to_names)
        with self._lock:
            out: list[str] = []
            with_created = client_metrics._use_created
            for collector in collectors:
                template = self._template(collector)
                if template is None or not template.render(
                    out, fmt, self._value_text, with_created
                ):
                    out.append(_library_render(collector, fmt))
            self._forget_unregistered(collectors)
        if fmt is Format.OPENMETRICS:
            out.append(_OPENMETRICS_EOF)
        return "".join(out).encode("utf-8")

    def _template(self, collector: Collector) -> _FamilyTemplate | None:
        if collector not in self._templates:
            self._templates[collector] = _FamilyTemplate.of(collector)
        return self._templates[collector]

    def _forget_unregistered(self, collectors: Iterable[Collector]) -> None:
        registered = set(collectors)
        for collector in [known for known in self._templates if known not in registered]:
            del self._templates[collector]


def _library_render(collector: Collector, fmt: Format) -> str:
    """One collector's families as prometheus_client renders them (the fallback)."""
    if fmt is Format.TEXT:
        return generate_latest(collector).decode("utf-8")
    text = _openmetrics_latest(collector).decode("utf-8")
    return text.removesuffix(_OPENMETRICS_EOF)  # the whole body ends with one EOF


class _ValueText:
    """``floatToGoString``, remembered: most values of a scrape are a few small counts."""

    def __init__(self) -> None:
        self._memo: dict[float, str] = {}

    def __call__(self, value: float) -> str:
        if not value:
            # 0.0 and -0.0 are equal keys but render differently; both are cheap anyway.
            return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
        text = self._memo.get(value)
        if text is None:
            text = _go_float(value)
            if value == value:  # NaN never equals a key, so remembering it would only grow
                if len(self._memo) >= _VALUE_MEMO_LIMIT:
                    self._memo.clear()
                self._memo[value] = text
        return text


@dataclass
class _SeriesTemplate:
    """One child's sample lines up to their values, and its ``_created`` line."""

    child: MetricWrapperBase
    prefixes: list[str]  # "name{labels} " of each sample but _created, in exposition order
    created_prefix: str
    created_value: float | None = None
    created_line: str = ""
    # The lines as last rendered and the raw value(s) they show: most series do not change
    # between two scrapes, and comparing values costs a fraction of rendering them again.
    last_value: object = None  # a counter's or gauge's value cell content
    last_values: tuple[float, ...] = ()  # a histogram's bucket counts and sum
    last_lines: str = ""

    def created(self, value_text: _ValueText) -> str:
        value: float = self.child._created  # type: ignore[attr-defined]
        if value != self.created_value:  # Counter.reset() restarts it
            self.created_value = value
            self.created_line = f"{self.created_prefix}{value_text(value)}\n"
        return self.created_line


class _FamilyTemplate:
    """A metric family's headers (per format) and its series' templates."""

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self.metric = metric
        self.headers = {fmt: _header(metric, fmt) for fmt in Format}
        self.created_header = _header(metric, Format.TEXT, suffix="_created")  # text only
        self.series: dict[tuple[str, ...], _SeriesTemplate] = {}

    @classmethod
    def of(cls, collector: Collector) -> _FamilyTemplate | None:
        """The template of ``collector``, or None if the fast path does not know its kind."""
        if type(collector) not in (Counter, Gauge, Histogram):  # subclasses may sample otherwise
            return None
        assert isinstance(collector, Counter | Gauge | Histogram)
        names = [collector._name, *collector._labelnames]
        if not all(map(_is_valid_legacy_metric_name, names[:1])) or not all(
            map(_is_valid_legacy_labelname, names[1:])
        ):
            return None
        return cls(collector)

    def render(
        self, out: list[str], fmt: Format, value_text: _ValueText, with_created: bool
    ) -> bool:
        """Append the family to ``out``; False (nothing appended) if the library must."""
        children = self._children()
        if isinstance(self.metric, Gauge) and any(
            "_child_samples" in vars(child) for child in children.values()
        ):
            return False  # a Gauge with set_function computes its own samples
        lines: list[str] = []
        created: list[str] = []
        render_values = _VALUE_RENDERERS[type(self.metric)]
        inline_created = fmt is Format.OPENMETRICS  # the text format gathers them after
        for template in self._series_of(children):
            render_values(template, lines, value_text)
            if with_created and template.created_prefix:
                (lines if inline_created else created).append(template.created(value_text))
        out.append(self.headers[fmt])
        out.extend(lines)
        if created:
            out.append(self.created_header)
            out.extend(created)
        return True

    def _children(self) -> _Children:
        metric = self.metric
        if not metric._labelnames:
            return {(): metric}
        with metric._lock:
            return cast(_Children, dict(metric._metrics))

    def _series_of(self, children: _Children) -> list[_SeriesTemplate]:
        templates = []
        for labelvalues, child in children.items():
            template = self.series.get(labelvalues)
            if template is None or template.child is not child:
                template = self.series[labelvalues] = self._new_series(labelvalues, child)
            templates.append(template)
        if len(self.series) > len(templates):  # some were removed: keep only the live ones
            self.series = {labelvalues: self.series[labelvalues] for labelvalues in children}
        return templates

    def _new_series(
        self, labelvalues: tuple[str, ...], child: MetricWrapperBase
    ) -> _SeriesTemplate:
        metric = self.metric
        labels = dict(zip(metric._labelnames, labelvalues, strict=True))
        name = metric._name
        if isinstance(metric, Counter):
            prefixes = [_prefix(f"{name}_total", labels)]
        elif isinstance(metric, Gauge):
            prefixes = [_prefix(name, labels)]
        else:
            prefixes = [
                _prefix(f"{name}_bucket", {**labels, "le": _go_float(bound)})
                for bound in metric._upper_bounds
            ]
            prefixes.append(_prefix(f"{name}_count", labels))
            if metric._upper_bounds[0] >= 0:  # as prometheus_client: no _sum below zero
                prefixes.append(_prefix(f"{name}_sum", labels))
        created = "" if isinstance(metric, Gauge) else _prefix(f"{name}_created", labels)
        return _SeriesTemplate(child, prefixes, created)


def _prefix(sample_name: str, labels: dict[str, str]) -> str:
    """``name{labels} ``: a sample line up to its value, escaped as prometheus_client does."""
    if not labels:
        return f"{sample_name} "
    pairs = ",".join(
        f'{openmetrics.escape_label_name(name)}="{_escape_text(value)}"'
        for name, value in sorted(labels.items())
    )
    return f"{sample_name}{{{pairs}}} "


def _escape_text(text: str) -> str:
    """Backslash, newline and double quote escaped, as label values and OpenMetrics HELP are."""
    return openmetrics._escape(text, openmetrics.ALLOWUTF8, openmetrics._is_legacy_labelname_rune)


def _header(metric: Counter | Gauge | Histogram, fmt: Format, suffix: str = "") -> str:
    """``# HELP``/``# TYPE`` (and ``# UNIT``) of the family, or of its ``_created`` gauge."""
    doc = metric._documentation
    if fmt is Format.OPENMETRICS:
        doc = _escape_text(doc)
        name = metric._name
        unit = f"# UNIT {name} {metric._unit}\n" if metric._unit else ""
        return f"# HELP {name} {doc}\n# TYPE {name} {metric._type}\n{unit}"
    doc = doc.replace("\\", r"\\").replace("\n", r"\n")
    if suffix:
        name, kind = metric._name + suffix, "gauge"  # the text format has no _created type
    else:
        name = metric._name + ("_total" if isinstance(metric, Counter) else "")
        kind = metric._type
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


# -- the live values, per kind of metric ----------------------------------------------------


def _single_value(template: _SeriesTemplate, out: list[str], text: _ValueText) -> None:
    cell: Any = template.child._value  # type: ignore[attr-defined]
    value = cell._value if _PLAIN_CELLS else cell.get()
    # The very same object shows the same text (and, referenced here, cannot be freed and
    # its address reused); any write stores a new object, or an equal small int.
    if value is not template.last_value:
        template.last_value = value
        template.last_lines = f"{template.prefixes[0]}{text(value)}\n"
    out.append(template.last_lines)


def _histogram_values(template: _SeriesTemplate, out: list[str], text: _ValueText) -> None:
    child: Any = template.child
    # The values themselves, not their text, decide: a change always shows. Bucket counts
    # and the sum start at 0.0 and are only added to, so none becomes -0.0 (which equals
    # 0.0 but renders otherwise); a NaN sum is the same object until it changes.
    if _PLAIN_CELLS:
        values = (*(bucket._value for bucket in child._buckets), child._sum._value)
    else:
        values = (*(bucket.get() for bucket in child._buckets), child._sum.get())
    if values != template.last_values:
        template.last_values = values
        template.last_lines = _histogram_lines(template.prefixes, values, text)
    out.append(template.last_lines)


def _histogram_lines(prefixes: list[str], values: tuple[float, ...], text: _ValueText) -> str:
    """Cumulative ``_bucket`` lines, ``_count`` and (if it has a prefix) ``_sum``."""
    *buckets, sum_value = values
    lines = []
    cumulative = 0.0
    for prefix, count in zip(prefixes, buckets, strict=False):
        cumulative += count
        lines.append(f"{prefix}{text(cumulative)}\n")
    lines.append(f"{prefixes[len(buckets)]}{text(cumulative)}\n")  # _count: every observation
    if len(prefixes) > len(buckets) + 1:
        lines.append(f"{prefixes[len(buckets) + 1]}{text(sum_value)}\n")
    return "".join(lines)


_VALUE_RENDERERS: dict[type, Callable[[_SeriesTemplate, list[str], _ValueText], None]] = {
    Counter: _single_value,
    Gauge: _single_value,  # one value cell too; the names differ only in the prefix
    Histogram: _histogram_values,
}
