"""``vigil report``: one self-contained HTML page of the insights (works offline).

The page lists every insight, then per insight its summary, likely causes, recommendations
and a chart of each of its most telling member series (expected band, anomalies shaded,
change events as markers, for proactive insights the forecast cone up to the limit).  Charts
are inline SVG (:mod:`vigil.report.svg`); the page loads nothing from anywhere.

Series data come from a :class:`SeriesSource`: :class:`ArraySource` over a batch and its
scores in memory (the backtest), or :class:`TableSource` over a scores table (the store's
``scores`` table, or a backtest's ``scores.parquet``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.insights.model import Insight
from vigil.report.svg import ChartData, Cone, Marker, chart_svg, legend_svg
from vigil.timeparse import format_ms

HOUR = 3_600_000
MAX_CHARTS = 4
Arrays = dict[str, np.ndarray]


class SeriesSource(Protocol):
    def series(self, series_id: int, lo: int, hi: int) -> Arrays | None:
        """``t, value, expected, lower, upper`` of one series over ``[lo, hi)``."""
        ...


class ArraySource:
    """A batch (``series_ids, start, step, values``) and its scores, in memory."""

    def __init__(self, batch: Any, scores: Any) -> None:
        self.batch, self.scores = batch, scores
        self.row_of = {int(s): i for i, s in enumerate(np.asarray(batch.series_ids).tolist())}

    def series(self, series_id: int, lo: int, hi: int) -> Arrays | None:
        row = self.row_of.get(int(series_id))
        if row is None:
            return None
        b = self.batch
        first = max(0, (lo - b.start) // b.step)
        stop = min(b.n_steps, max(first, -(-(hi - b.start) // b.step)))
        if stop <= first:
            return None
        cols = np.arange(first, stop)
        return {"t": b.start + cols * b.step, "value": b.values[row, first:stop],
                "expected": self.scores.expected[row, first:stop],
                "lower": self.scores.lower[row, first:stop],
                "upper": self.scores.upper[row, first:stop]}


class TableSource:
    """Rows of a scores table (series_id, timestamp, value, expected, lower, upper)."""

    def __init__(self, table: pa.Table) -> None:
        need = {"series_id", "timestamp", "value", "expected", "lower", "upper"}
        missing = need - set(table.column_names)
        if missing:
            raise ValueError(f"the scores table lacks the column(s) {sorted(missing)}: it "
                             f"must hold {sorted(need)}")
        table = table.select(sorted(need))
        ts = table.column("timestamp")
        if pa.types.is_timestamp(ts.type):
            table = table.set_column(table.column_names.index("timestamp"), "timestamp",
                                     pc.cast(pc.cast(ts, pa.timestamp("ms")), pa.int64()))
        table = table.sort_by([("series_id", "ascending"), ("timestamp", "ascending")])
        self.cols = {c: table.column(c).to_numpy() for c in table.column_names}
        sid = self.cols["series_id"]
        uniq, first = np.unique(sid, return_index=True)
        stops = np.append(first[1:], len(sid))
        self.span = {int(s): (int(a), int(b)) for s, a, b in zip(uniq, first, stops,
                                                                 strict=True)}

    @classmethod
    def from_parquet(cls, path: Path, series_ids: Iterable[int]) -> TableSource:
        import pyarrow.parquet as pq

        ids = sorted({int(s) for s in series_ids})
        table = pq.read_table(path, columns=["series_id", "timestamp", "value", "expected",
                                             "lower", "upper"],
                              filters=[("series_id", "in", ids)] if ids else None)
        return cls(table)

    def series(self, series_id: int, lo: int, hi: int) -> Arrays | None:
        span = self.span.get(int(series_id))
        if span is None:
            return None
        a, b = span
        t = self.cols["timestamp"][a:b]
        m = (t >= lo) & (t < hi)
        if not m.any():
            return None
        return {k: np.asarray(self.cols[k][a:b][m], dtype=np.int64 if k == "t" else float)
                for k in ("value", "expected", "lower", "upper")} | {"t": t[m].astype(np.int64)}


def member_ids(insights: Iterable[Insight], per_insight: int = MAX_CHARTS) -> set[int]:
    """The series ids the report charts (to read only those from a large scores file)."""
    return {sid for ins in insights for sid, _ in _chart_series(ins, per_insight)}


def _chart_series(ins: Insight, limit: int) -> list[tuple[int, dict[str, str]]]:
    if ins.kind == "proactive" and ins.forecast is not None:
        first = [(ins.forecast.series_id, dict(ins.forecast.labels))]
        return first[:limit]
    weight: dict[int, float] = {}
    labels: dict[int, dict[str, str]] = {}
    for a in ins.anomalies:
        weight[a.series_id] = weight.get(a.series_id, 0.0) + (a.end - a.start + 1) * max(
            a.peak_score, 1.0)
        labels[a.series_id] = a.labels
    # the most telling series of each metric first, then the rest by weight
    order = sorted(weight, key=lambda s: (-weight[s], s))
    chosen: list[int] = []
    seen_metric: set[str] = set()
    for s in order:
        m = labels[s].get("__name__", "")
        if m not in seen_metric:
            chosen.append(s)
            seen_metric.add(m)
    chosen += [s for s in order if s not in chosen]
    return [(s, labels[s]) for s in chosen[:limit]]


def _window(ins: Insight) -> tuple[int, int]:
    if ins.kind == "proactive":
        f = ins.forecast
        lo = ins.start - 24 * HOUR
        hi = (f.evaluated_at if f is not None else ins.last_seen) + HOUR
        return lo, max(hi, ins.last_seen + HOUR)
    end = ins.end if ins.end is not None else ins.last_seen
    span = max(end - ins.onset, HOUR)
    return ins.onset - max(3 * HOUR, span // 2), end + max(2 * HOUR, span // 4)


def _label_text(labels: Mapping[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def insight_charts(ins: Insight, source: SeriesSource, events: Sequence[Mapping[str, Any]],
                   limit: int = MAX_CHARTS) -> list[str]:
    """The SVG charts of one insight (an empty chart with a note if no data is at hand)."""
    lo, hi = _window(ins)
    markers = [Marker(c.time, f"#{c.rank} {c.summary or c.kind}", strong=c.rank == 1)
               for c in ins.events]
    ranked = {c.event_id for c in ins.events}
    markers += [Marker(int(e["time"]), str(e.get("summary") or e.get("kind")))
                for e in events if e.get("event_id") not in ranked
                and lo <= int(e["time"]) < hi and _near(e, ins)]
    out = []
    for sid, labels in _chart_series(ins, limit):
        data = source.series(sid, lo, hi)
        shaded = [(a.start, a.end) for a in ins.anomalies if a.series_id == sid]
        cone = None
        f = ins.forecast
        if ins.kind == "proactive" and f is not None and f.series_id == sid:
            v = np.nan
            if data is not None:
                at = np.flatnonzero((data["t"] <= f.evaluated_at) & np.isfinite(data["value"]))
                v = float(data["value"][at[-1]]) if len(at) else np.nan
            cone = Cone(f.evaluated_at, v if np.isfinite(v) else f.limit, f.limit,
                        f.crossing_time_p50, f.crossing_time_lo, f.crossing_time_hi)
        if data is None:
            data = {"t": np.array([lo, hi]), "value": np.array([np.nan, np.nan])}
        out.append(chart_svg(ChartData(
            _label_text(labels), data["t"], data["value"], data.get("expected"),
            data.get("lower"), data.get("upper"), shaded, markers, cone)))
    if not out:  # an insight always gets a chart, even without member data
        out.append(chart_svg(ChartData(f"{ins.id}: no series data", np.array([lo, hi]),
                                       np.array([np.nan, np.nan]), markers=markers)))
    return out


def _near(event: Mapping[str, Any], ins: Insight) -> bool:
    """An event whose labels agree with the insight's group (same site, same service...)."""
    labels = event.get("labels") or {}
    if isinstance(labels, str):
        labels = json.loads(labels)
    keys = [k for k in ("site", "service", "node") if k in ins.group and k in labels]
    return bool(keys) and all(labels[k] == ins.group[k] for k in keys)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin:0 0 4px}
table.list{border-collapse:collapse;width:100%;font-size:13px}
table.list td,table.list th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
vertical-align:top}
.sev{display:inline-block;padding:1px 7px;border-radius:8px;color:#fff;font-size:12px}
.high{background:#c62828}.medium{background:#ef6c00}.low{background:#607d8b}
section.insight{border:1px solid #ddd;border-radius:6px;padding:12px 14px;margin:18px 0}
.meta{color:#555;font-size:13px}.small{font-size:12px;color:#555}
ol,ul{margin:4px 0 8px 18px;padding:0;font-size:13px}
svg.chart{display:block;margin:6px 0}
"""


def render_report(insights: Sequence[Insight], source: SeriesSource,
                  events: pa.Table | Sequence[Mapping[str, Any]] | None = None,
                  title: str = "Vigil insights", note: str = "") -> str:
    """The whole page as text."""
    raw = events.to_pylist() if isinstance(events, pa.Table) else list(events or [])
    evs: list[Mapping[str, Any]] = [dict(e, event_id=e.get("event_id", e.get("id")))
                                    for e in raw]
    rows = []
    for ins in insights:
        top = ins.events[0].summary if ins.events else "-"
        rec = ins.recommendations[0].action if ins.recommendations else "-"
        rows.append(
            f'<tr><td><span class="sev {ins.severity}">{ins.severity}</span></td>'
            f"<td>{ins.kind}</td><td>{ins.status}</td>"
            f'<td><a href="#{ins.id}">{escape(ins.summary)}</a></td>'
            f"<td>{escape(top)}</td><td>{escape(rec)}</td></tr>")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<p>Vigil learns what normal looks like for every metric series and groups what "
        "deviates into <b>insights</b>: one finding per affected service or node, with when "
        "it started, the change that most probably caused it and what to do. "
        "<b>Reactive</b> insights are about something already abnormal; <b>proactive</b> ones "
        "forecast that a resource (memory, disk) will reach its limit.</p>",
        f'<p class="small">{escape(note)}</p>' if note else "",
        "<p class='small'>How to read a chart: the dark line is the measured value; the blue "
        "band is the range Vigil expected; red shading marks anomalies; dashed vertical "
        "lines are change events (purple: the top-ranked cause); for a forecast, the red "
        "dashed line is the limit and the orange cone spans the likely crossing times "
        "(median as a dot).</p>",
        legend_svg([("#9ec5ef", "expected band"), ("#f4b4b4", "anomaly"),
                    ("#6a1b9a", "top cause"), ("#f0a030", "forecast cone")]),
        f"<h2>{len(insights)} insights</h2>",
        "<table class='list'><tr><th>severity</th><th>kind</th><th>status</th><th>summary"
        "</th><th>top cause</th><th>recommendation</th></tr>", *rows, "</table>",
    ]
    for ins in insights:
        parts.append(_section(ins, source, evs))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(ins: Insight, source: SeriesSource, events: Sequence[Mapping[str, Any]]) -> str:
    end = "ongoing" if ins.end is None else format_ms(ins.end)
    causes = "".join(
        f"<li><b>{escape(c.summary or c.kind)}</b> at {format_ms(c.time)} "
        f"(score {c.score:.2f}): {escape(c.reason)}</li>" for c in ins.events
    ) or "<li>no change event precedes it</li>"
    recs = "".join(
        f"<li>{escape(r.action)} <span class='small'>(rule {escape(r.rule_id)} "
        f"v{r.rule_version}; evidence: {escape('; '.join(r.evidence))})</span></li>"
        for r in ins.recommendations) or "<li>no rule matched</li>"
    forecast = ""
    f = ins.forecast
    if f is not None:
        forecast = (f"<p class='meta'>Forecast at {format_ms(f.evaluated_at)}: limit "
                    f"{f.limit:g}, probability {f.probability:.2f}, crossing "
                    f"{format_ms(f.crossing_time_p50)} (interval "
                    f"{format_ms(f.crossing_time_lo)} to {format_ms(f.crossing_time_hi)})</p>")
    charts = "".join(insight_charts(ins, source, events))
    muted = f" · muted by {', '.join(ins.muted_by)}" if ins.muted_by else ""
    return (
        f'<section class="insight" id="{ins.id}"><h2><span class="sev {ins.severity}">'
        f"{ins.severity}</span> {escape(ins.summary)}</h2>"
        f"<p class='meta'>{ins.id} · {ins.kind} · {ins.status} · from {format_ms(ins.start)}"
        f" to {end} · {len(ins.series)} series · metrics {escape(', '.join(ins.metrics))}"
        f"{muted}</p>{forecast}"
        f"<p class='meta'>Likely causes:</p><ol>{causes}</ol>"
        f"<p class='meta'>What to do:</p><ul>{recs}</ul>{charts}</section>")


def write_report(path: Path, insights: Sequence[Insight], source: SeriesSource,
                 events: pa.Table | Sequence[Mapping[str, Any]] | None = None,
                 title: str = "Vigil insights", note: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(insights, source, events, title, note), encoding="utf-8")
    return path


__all__ = ["ArraySource", "SeriesSource", "TableSource", "member_ids", "render_report",
           "write_report"]
