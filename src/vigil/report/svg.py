"""Inline SVG charts drawn by our own code (no JavaScript, nothing fetched: works offline).

One chart shows one series over a time window: the expected band (lower to upper), the value,
anomaly intervals shaded, change events as vertical markers and, for an exhaustion forecast,
the limit and the cone of crossing times (early to late, median dashed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

from vigil.timeparse import format_ms

WIDTH, HEIGHT = 760, 190
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 28
MAX_POINTS = 1500


@dataclass
class Marker:
    time: int
    text: str
    strong: bool = False


@dataclass
class Cone:
    evaluated_at: int
    value: float
    limit: float
    p50: int | None
    lo: int | None
    hi: int | None


@dataclass
class ChartData:
    title: str
    t: np.ndarray  # ms
    value: np.ndarray
    expected: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    shaded: list[tuple[int, int]] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    cone: Cone | None = None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[first, stop) index runs where mask is True."""
    if not len(mask):
        return []
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(),
                    strict=True))


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0"
    a = abs(v)
    if a >= 1 << 30:
        return f"{v / (1 << 30):.3g} Gi"
    if a >= 1 << 20:
        return f"{v / (1 << 20):.3g} Mi"
    if a >= 1e4:
        return f"{v / 1e3:.3g} k"
    return f"{v:.3g}"


def chart_svg(c: ChartData) -> str:
    """One chart as an ``<svg>`` element."""
    t = np.asarray(c.t, dtype=np.int64)
    if len(t) > MAX_POINTS:  # keep every k-th point: the shape, at a bounded size
        k = -(-len(t) // MAX_POINTS)
        sel = slice(None, None, k)
    else:
        sel = slice(None)
    t = t[sel]
    val = np.asarray(c.value, dtype=float)[sel]
    lower = None if c.lower is None else np.asarray(c.lower, dtype=float)[sel]
    upper = None if c.upper is None else np.asarray(c.upper, dtype=float)[sel]
    t0 = int(t.min()) if len(t) else 0
    t1 = int(t.max()) if len(t) else 1
    ys = [val]
    if lower is not None and upper is not None:
        ys += [lower, upper]
    if c.cone is not None:
        t1 = max([t1, *(x for x in (c.cone.p50, c.cone.hi, c.cone.lo) if x is not None)])
        ys.append(np.array([c.cone.limit, c.cone.value]))
    finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.empty(0)
    y0, y1 = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if y1 <= y0:
        y0, y1 = y0 - 1.0, y1 + 1.0
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    t1 = max(t1, t0 + 1)
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ms: float) -> float:
        return LEFT + (ms - t0) / (t1 - t0) * w

    def y(v: float) -> float:
        return TOP + (1.0 - (v - y0) / (y1 - y0)) * h

    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
           f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
           f"<title>{escape(c.title)}</title>",
           f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="#fff" stroke="#ccc"/>']
    for lo, hi in c.shaded:  # anomalies
        a, b = max(lo, t0), min(hi, t1)
        if b >= a:
            out.append(f'<rect class="anomaly" x="{x(a):.1f}" y="{TOP}" '
                       f'width="{max(x(b) - x(a), 2):.1f}" height="{h}" fill="#f4b4b4" '
                       'fill-opacity="0.55"><title>anomaly '
                       f"{escape(format_ms(lo))} to {escape(format_ms(hi))}</title></rect>")
    if lower is not None and upper is not None:
        ok = np.isfinite(lower) & np.isfinite(upper)
        for a, b in _runs(ok):
            up = " ".join(f"{x(t[i]):.1f},{y(upper[i]):.1f}" for i in range(a, b))
            down = " ".join(f"{x(t[i]):.1f},{y(lower[i]):.1f}" for i in range(b - 1, a - 1, -1))
            out.append(f'<polygon class="band" points="{up} {down}" fill="#9ec5ef" '
                       'fill-opacity="0.45" stroke="none"/>')
    for a, b in _runs(np.isfinite(val)):
        pts = " ".join(f"{x(t[i]):.1f},{y(val[i]):.1f}" for i in range(a, b))
        out.append(f'<polyline class="value" points="{pts}" fill="none" stroke="#1f3b73" '
                   'stroke-width="1.2"/>')
    if c.cone is not None:
        cone = c.cone
        ly = y(cone.limit)
        out.append(f'<line class="limit" x1="{LEFT}" x2="{LEFT + w}" y1="{ly:.1f}" '
                   f'y2="{ly:.1f}" stroke="#b00" stroke-dasharray="6 3"/>'
                   f'<text x="{LEFT + 4}" y="{ly - 3:.1f}" font-size="10" fill="#b00">limit '
                   f"{escape(_fmt(cone.limit))}</text>")
        sx, sy = x(cone.evaluated_at), y(cone.value)
        if cone.lo is not None and cone.hi is not None:
            out.append(f'<polygon class="cone" points="{sx:.1f},{sy:.1f} {x(cone.lo):.1f},'
                       f'{ly:.1f} {x(cone.hi):.1f},{ly:.1f}" fill="#f0a030" '
                       'fill-opacity="0.35" stroke="#d08020"/>')
        if cone.p50 is not None:
            out.append(f'<line class="forecast" x1="{sx:.1f}" y1="{sy:.1f}" '
                       f'x2="{x(cone.p50):.1f}" y2="{ly:.1f}" stroke="#d06000" '
                       'stroke-dasharray="4 2" stroke-width="1.5"/>'
                       f'<circle cx="{x(cone.p50):.1f}" cy="{ly:.1f}" r="3" fill="#d06000">'
                       f"<title>median crossing {escape(format_ms(cone.p50))}</title></circle>")
    for m in c.markers:
        if t0 <= m.time <= t1:
            mx = x(m.time)
            color = "#6a1b9a" if m.strong else "#888"
            out.append(f'<line class="event" x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" '
                       f'y2="{TOP + h}" stroke="{color}" stroke-width="1.5" '
                       f'stroke-dasharray="3 2"><title>{escape(m.text)}</title></line>'
                       f'<text x="{mx + 3:.1f}" y="{TOP + 10}" font-size="10" fill="{color}">'
                       f"{escape(m.text[:40])}</text>")
    for v in (y0 + pad, (y0 + y1) / 2, y1 - pad):
        out.append(f'<text x="{LEFT - 4}" y="{y(v) + 3:.1f}" font-size="10" '
                   f'text-anchor="end" fill="#555">{escape(_fmt(v))}</text>')
    for frac in (0.0, 0.5, 1.0):
        tm = t0 + frac * (t1 - t0)
        anchor = "start" if frac == 0 else "end" if frac == 1 else "middle"
        out.append(f'<text x="{x(tm):.1f}" y="{HEIGHT - 8}" font-size="10" '
                   f'text-anchor="{anchor}" fill="#555">'
                   f"{escape(format_ms(int(tm))[:16].replace('T', ' '))}</text>")
    out.append("</svg>")
    return "".join(out)


def legend_svg(items: Sequence[tuple[str, str]]) -> str:
    parts = []
    for i, (color, text) in enumerate(items):
        parts.append(f'<rect x="{4 + i * 150}" y="4" width="14" height="10" fill="{color}" '
                     f'fill-opacity="0.6"/><text x="{22 + i * 150}" y="13" font-size="11">'
                     f"{escape(text)}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{8 + 150 * len(items)}" '
            f'height="18">{"".join(parts)}</svg>')
