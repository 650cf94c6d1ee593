"""Metric types and the derived series (views) Vigil models instead of raw cumulative series.

Pure domain code: label sets, declared types and dense arrays in, plans and arrays out.

**Type of a metric** (:func:`metric_type`), first match wins:

1. a declared type for the series' metric name or its family name (the name without
   ``_total``, ``_bucket``, ``_count``, ``_sum``, ``_created``, ``_info``): from remote-write
   metadata, ``# TYPE`` lines, or the user's override (``vigil types set``);
2. Prometheus/OpenMetrics naming: ``_bucket`` with an ``le`` label is a histogram bucket;
   ``_created`` a creation time; ``_info`` an info metric; ``_total`` a counter; ``_count`` and
   ``_sum`` are the parts of a histogram when the catalog holds ``<base>_bucket`` series and of
   a summary when it holds ``<base>{quantile=...}`` series; a ``quantile``-labelled series beside
   ``<base>_count``/``<base>_sum`` is a summary quantile;
3. otherwise a gauge.  A lone ``..._count`` or ``..._sum`` with no histogram or summary beside it
   stays a gauge: many exporters publish per-interval counts under such names, and taking the
   rate of a series that is not cumulative would destroy it.

**Roles** (:data:`ROLE_SCORED`, :data:`ROLE_SOURCE`, :data:`ROLE_IGNORED`): gauges, unknown
metrics and summary quantiles are modelled as they are; counters, histogram buckets and the
``_count`` of histograms and summaries are *sources* of views (their raw samples stay in the
store, untouched, and are not scored); ``_created``, ``_info`` and the ``_sum`` of histograms
and summaries are not scored.

**Views** (documented ids and names; the id is :func:`vigil.series.series_id` of the view's
labels, so it is stable across processes and releases):

* ``rate``: a counter's per-second rate, labels = the counter's labels plus
  ``vigil_view="rate"`` (``__name__`` unchanged, e.g. ``http_requests_total``).  On the grid,
  cell ``k`` holds ``increase / elapsed`` between the previous observed cell and ``k``, with
  Prometheus' reset rule: any decrease is a reset and the increase across it is the new value;
* ``p50``/``p90``/``p99``: a classic histogram's quantiles by ``histogram_quantile``'s
  interpolation over the buckets' increases in each grid step; labels = the buckets' labels
  without ``le``, ``__name__`` the histogram's base name (``http_request_duration_seconds``)
  and ``vigil_view="p99"``.  A step with no observation in it has no quantile (NaN);
* ``used``: a capacity gauge ``<prefix>_size_<unit>`` beside ``<prefix>_avail_<unit>`` with the
  same other labels (node-exporter's ``node_filesystem_size_bytes`` / ``..._avail_bytes`` per
  device and mountpoint) gives ``size - avail``, labels = the size series' plus
  ``vigil_view="used"``: the usage whose limit is the size (:mod:`vigil.engine.limits`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from vigil.series import METRIC_LABEL, series_id

COUNTER, GAUGE, HISTOGRAM, SUMMARY, INFO, STATESET, UNKNOWN = (
    "counter", "gauge", "histogram", "summary", "info", "stateset", "unknown")
METRIC_TYPES = (COUNTER, GAUGE, HISTOGRAM, SUMMARY, INFO, STATESET, UNKNOWN)
ROLE_SCORED, ROLE_SOURCE, ROLE_IGNORED = "scored", "source", "ignored"
VIEW_LABEL = "vigil_view"
RATE = "rate"
USED = "used"
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info")


def metric_key(labels: Mapping[str, str]) -> str:
    """The metric a series stands for: its ``__name__``, or for a derived series
    ``view(name)`` (``rate(http_requests_total)``, ``p99(http_request_duration_seconds)``): the
    name insights show and limit pairs match."""
    name = labels.get(METRIC_LABEL, "")
    view = labels.get(VIEW_LABEL)
    return f"{view}({name})" if view else name


def check_type(name: str, value: str) -> str:
    """A declared type, validated: one of :data:`METRIC_TYPES` (case-insensitive)."""
    low = str(value).strip().lower()
    if low not in METRIC_TYPES:
        raise ValueError(f"metric type {value!r} for {name!r} is invalid: expected one of "
                         f"{list(METRIC_TYPES)}")
    return low


def family_name(name: str) -> str:
    """The metric family of a sample name: the name without its OpenMetrics suffix."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class SeriesKind:
    """What one series is: its metric type, its part within the type, its role."""

    type: str
    part: str  # "value", "bucket", "count", "sum", "quantile", "created", "info"
    role: str


def _declared(name: str, declared: Mapping[str, str]) -> str | None:
    if name in declared:
        return declared[name]
    fam = family_name(name)
    return declared.get(fam)


def metric_type(name: str, labels: Mapping[str, str], names: frozenset[str],
                quantile_bases: frozenset[str], declared: Mapping[str, str]) -> SeriesKind:
    """The kind of one series (see the module doc).  ``names``: every metric name of the
    tenant's catalog; ``quantile_bases``: the names that carry a ``quantile`` label."""
    dec = _declared(name, declared)
    fam = family_name(name)
    if name.endswith("_created"):
        return SeriesKind(dec or COUNTER, "created", ROLE_IGNORED)
    if dec in (INFO, STATESET) or (dec is None and name.endswith("_info")):
        return SeriesKind(dec or INFO, "info", ROLE_IGNORED)
    hist = dec == HISTOGRAM or (dec is None and f"{fam}_bucket" in names)
    summ = dec == SUMMARY or (dec is None and fam in quantile_bases
                              and (f"{fam}_count" in names or f"{fam}_sum" in names))
    if name.endswith("_bucket") and "le" in labels and (hist or dec is None):
        return SeriesKind(HISTOGRAM, "bucket", ROLE_SOURCE)
    if name != fam and name.endswith("_count") and (hist or summ):
        return SeriesKind(HISTOGRAM if hist else SUMMARY, "count", ROLE_SOURCE)
    if name != fam and name.endswith("_sum") and (hist or summ):
        return SeriesKind(HISTOGRAM if hist else SUMMARY, "sum", ROLE_IGNORED)
    if "quantile" in labels and (summ or dec == SUMMARY):
        return SeriesKind(SUMMARY, "quantile", ROLE_SCORED)
    if dec == COUNTER or (dec is None and name.endswith("_total")):
        return SeriesKind(COUNTER, "value", ROLE_SOURCE)
    return SeriesKind(dec if dec in (GAUGE, UNKNOWN) else GAUGE, "value", ROLE_SCORED)


@dataclass(frozen=True)
class ViewPlan:
    """The series a tenant models and how each view is computed from raw series.

    ``kind``/``role`` per raw series (catalog order); ``views``: one entry per derived series,
    sorted by id, with its labels, kind (``rate``, ``p50``...) and source ids (one counter;
    the buckets of one histogram, sorted by ``le``, with their ``le`` bounds)."""

    raw_ids: np.ndarray  # int64 [n] the catalog's ids
    role: np.ndarray  # object [n]: ROLE_*
    type: np.ndarray  # object [n]: the metric type
    view_ids: np.ndarray  # int64 [v], sorted
    view_labels: tuple[dict[str, str], ...]
    view_kind: tuple[str, ...]
    view_sources: tuple[np.ndarray, ...]  # int64 source ids per view
    view_le: tuple[np.ndarray, ...]  # float64 bucket bounds (quantile views), else empty

    @property
    def scored_raw_ids(self) -> np.ndarray:
        return self.raw_ids[self.role == ROLE_SCORED]

    def view_index(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position of each id among the views and whether it is one."""
        if len(self.view_ids) == 0:
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        pos = np.clip(np.searchsorted(self.view_ids, ids), 0, len(self.view_ids) - 1)
        return pos, self.view_ids[pos] == ids


def _parse_le(text: str) -> float:
    try:
        return float(text)  # "+Inf", "0.5", "1e3"
    except ValueError:
        return math.nan


def plan_views(ids: np.ndarray, label_sets: Sequence[Mapping[str, str]],
               declared: Mapping[str, str] | None = None) -> ViewPlan:
    """The view plan of a catalog (ids and their label sets, same order)."""
    declared = dict(declared or {})
    names = frozenset(ls.get(METRIC_LABEL, "") for ls in label_sets)
    quantile_bases = frozenset(ls.get(METRIC_LABEL, "") for ls in label_sets if "quantile" in ls)
    n = len(label_sets)
    role = np.empty(n, dtype=object)
    mtype = np.empty(n, dtype=object)
    cache: dict[tuple[str, bool, bool], SeriesKind] = {}
    views: dict[int, tuple[dict[str, str], str, list[int], list[float]]] = {}
    hist_groups: dict[str, list[tuple[float, int]]] = defaultdict(list)
    hist_labels: dict[str, dict[str, str]] = {}
    for i, ls in enumerate(label_sets):  # one pass over the catalog, per-name work cached
        name = ls.get(METRIC_LABEL, "")
        key = (name, "le" in ls, "quantile" in ls)
        kind = cache.get(key)
        if kind is None:
            kind = metric_type(name, ls, names, quantile_bases, declared)
            cache[key] = kind
        role[i], mtype[i] = kind.role, kind.type
        if kind.role != ROLE_SOURCE:
            continue
        if kind.part == "bucket":
            base = {k: v for k, v in ls.items() if k != "le"}
            base[METRIC_LABEL] = family_name(name)
            text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(base.items()))
            hist_groups[text].append((_parse_le(ls["le"]), int(ids[i])))
            hist_labels[text] = base
        else:  # counters and the _count of histograms and summaries: a rate
            lab = {**ls, VIEW_LABEL: RATE}
            views[series_id(lab)] = (lab, RATE, [int(ids[i])], [])
    _capacity_views(ids, label_sets, views)
    for text, members in hist_groups.items():
        members.sort()
        les = [le for le, _ in members]
        if not members or not math.isinf(les[-1]) or any(math.isnan(x) for x in les):
            continue  # no +Inf bucket: histogram_quantile has no answer either
        for view, _q in QUANTILES:
            lab = {**hist_labels[text], VIEW_LABEL: view}
            views[series_id(lab)] = (lab, view, [m for _, m in members], les)
    order = sorted(views)
    return ViewPlan(
        np.asarray(ids, dtype=np.int64), role, mtype, np.array(order, dtype=np.int64),
        tuple(views[v][0] for v in order), tuple(views[v][1] for v in order),
        tuple(np.array(views[v][2], dtype=np.int64) for v in order),
        tuple(np.array(views[v][3], dtype=np.float64) for v in order))


def _capacity_views(ids: np.ndarray, label_sets: Sequence[Mapping[str, str]],
                    views: dict[int, tuple[dict[str, str], str, list[int], list[float]]]) -> None:
    """``used`` views of ``<prefix>_size_<unit>`` / ``<prefix>_avail_<unit>`` pairs."""
    avail: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    sizes = []
    for i, ls in enumerate(label_sets):
        name = ls.get(METRIC_LABEL, "")
        if "_avail_" in name:
            rest = tuple(sorted((k, v) for k, v in ls.items() if k != METRIC_LABEL))
            avail[(name.replace("_avail_", "_size_", 1), rest)] = int(ids[i])
        elif "_size_" in name:
            sizes.append(i)
    for i in sizes:
        ls = label_sets[i]
        rest = tuple(sorted((k, v) for k, v in ls.items() if k != METRIC_LABEL))
        hit = avail.get((ls[METRIC_LABEL], rest))
        if hit is not None:
            lab = {**ls, VIEW_LABEL: USED}
            views[series_id(lab)] = (lab, USED, [int(ids[i]), hit], [])


def quantile_of(kind: str) -> float:
    for view, q in QUANTILES:
        if view == kind:
            return q
    raise ValueError(f"view {kind!r} is not a quantile view: expected one of "
                     f"{[v for v, _ in QUANTILES]}")


# ---------------------------------------------------------------------------- kernels


@njit(cache=True)
def increases(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Per row of cumulative ``values`` [n, T] (NaN: no sample): the increase since the
    previous observed cell with Prometheus' reset rule (a decrease is a reset; the increase
    across it is the new value), and the number of steps it spans; NaN / 0 at a row's first
    observed cell and where unobserved."""
    n, t_len = values.shape
    inc = np.full((n, t_len), np.nan)
    span = np.zeros((n, t_len))
    for i in range(n):
        prev = np.nan
        last = -1
        for t in range(t_len):
            v = values[i, t]
            if v != v:
                continue
            if last >= 0:
                inc[i, t] = v - prev if v >= prev else v
                span[i, t] = t - last
            prev = v
            last = t
    return inc, span


def rates(values: np.ndarray, step_ms: int) -> np.ndarray:
    """Per-second rates of cumulative ``values`` [n, T] on a grid of ``step_ms``."""
    inc, span = increases(np.ascontiguousarray(values, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, inc / (span * (step_ms / 1000.0)), np.nan)


@njit(cache=True)
def _bucket_quantile(q: float, les: np.ndarray, counts: np.ndarray) -> float:  # pragma: no cover
    """``histogram_quantile`` of one step: ``les`` sorted upper bounds (last +Inf), ``counts``
    their cumulative counts (made monotone here, as Prometheus does)."""
    k = len(les)
    cum = np.empty(k)
    run = 0.0
    for j in range(k):
        c = counts[j]
        if c != c:
            return np.nan
        run = max(run, c)
        cum[j] = run
    total = cum[k - 1]
    if total <= 0.0 or k < 2:
        return np.nan
    rank = q * total
    j = 0
    while j < k - 1 and cum[j] < rank:
        j += 1
    if j == k - 1:  # in the +Inf bucket: the highest finite bound
        return les[k - 2]
    start = 0.0
    below = 0.0
    if j > 0:
        start = les[j - 1]
        below = cum[j - 1]
    elif les[0] <= 0.0:
        return les[0]
    width = cum[j] - below
    if width <= 0.0:
        return les[j]
    return start + (les[j] - start) * (rank - below) / width


@njit(cache=True)
def bucket_quantiles(q: float, les: np.ndarray, inc: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Per column of bucket increases ``inc`` [k, T] (rows sorted by ``les``): the quantile."""
    k, t_len = inc.shape
    out = np.full(t_len, np.nan)
    col = np.empty(k)
    for t in range(t_len):
        for j in range(k):
            col[j] = inc[j, t]
        out[t] = _bucket_quantile(q, les, col)
    return out


def view_values(plan: ViewPlan, positions: np.ndarray, ids: np.ndarray, values: np.ndarray,
                step_ms: int) -> np.ndarray:
    """Values [len(positions), T] of the views at ``positions`` of ``plan``, from the dense
    rows ``values`` [n, T] of raw series ``ids`` (sorted; a source not among them is all
    NaN).  Rate views are gathered and computed at once; the loop is over the histograms and
    capacity pairs only."""
    n_steps = values.shape[1]
    padded = np.vstack([values, np.full((1, n_steps), np.nan)])

    def rows(src: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(ids, src), 0, max(len(ids) - 1, 0))
        found = (pos < len(ids)) & (ids[pos] == src) if len(ids) else np.zeros(len(src), bool)
        return padded[np.where(found, pos, len(ids))]

    out = np.full((len(positions), n_steps), np.nan)
    kinds = np.array(plan.view_kind, dtype=object)[np.asarray(positions, dtype=np.int64)]
    is_rate = kinds == RATE
    if is_rate.any():
        first = np.array([plan.view_sources[p][0] for p in positions[is_rate]], dtype=np.int64)
        out[is_rate] = rates(rows(first), step_ms)
    for r in np.flatnonzero(~is_rate).tolist():  # histograms and capacity pairs
        p = int(positions[r])
        src = rows(plan.view_sources[p])
        if plan.view_kind[p] == USED:
            out[r] = src[0] - src[1]
            continue
        inc, _ = increases(np.ascontiguousarray(src, dtype=np.float64))
        out[r] = bucket_quantiles(quantile_of(plan.view_kind[p]), plan.view_le[p], inc)
    return out


_MODELLED = {ROLE_SCORED: "as is", ROLE_SOURCE: "as views", ROLE_IGNORED: "not scored"}


def summarise(plan: ViewPlan, label_sets: Sequence[Mapping[str, str]],
              declared: Mapping[str, str]) -> list[dict[str, Any]]:
    """Per metric name of a catalog (``label_sets`` in the order of ``plan``): its type, the
    declared type, how it is modelled, its series count and the views derived from it."""
    rows: dict[str, dict[str, Any]] = {}
    for ls, role, kind in zip(label_sets, plan.role, plan.type, strict=True):
        name = ls.get(METRIC_LABEL, "")
        row = rows.setdefault(name, {"metric": name, "type": kind,
                                     "declared": _declared(name, declared),
                                     "modelled": _MODELLED[role], "series": 0, "views": {}})
        row["series"] += 1
    for lab, kind in zip(plan.view_labels, plan.view_kind, strict=True):
        name = lab.get(METRIC_LABEL, "")
        src = rows.get(name) or rows.get(f"{name}_bucket")
        if src is not None:
            src["views"][kind] = src["views"].get(kind, 0) + 1
    return sorted(rows.values(), key=lambda r: str(r["metric"]))
