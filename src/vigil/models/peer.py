"""``PeerModel``: each series against its peers (same metric and service, other pods/sites).

Groups are an int array ``group[n]`` given by the caller (e.g. :func:`peer_groups` over label
names), or computed from ``batch.labels`` with the ``group_by`` label names.  At each step,
for series ``i`` of group ``g``:

* normalised values ``u_j = y_j - offset_j`` (``offset_j`` a series' learnt persistent offset
  from its group, a robust EWMA; 0 for a new series);
* the reference set: the group's observed *established* members (at least ``min_history``
  observed points); if fewer than ``min_peers`` of them, every observed member;
* ``expected_i = offset_i + median of u over the reference set without i`` (leave-one-out, so
  a deviant pod cannot pull its own reference), from the sorted ``u`` in O(1) per member;
* scale: the series' own running mean absolute deviation from that expectation once it is
  established, else the median of the established peers' scales (the peer distribution's
  robust spread) — so a **new series is scored from its first point** against its peers,
  with ``warming_up`` True until it has ``min_history`` points of its own; never below
  ``scale_floor`` times that peer median (a series whose own scale collapsed cannot lock
  itself into permanent alarms), nor below a quarter of the series' value lattice step
  (``calibration.value_quantum``: the mean absolute deviation of rounding noise; a count of 1
  among replicas at 0 is not an infinite deviation).  While warming up the offset and scale
  are running means; when no peer is established yet (a whole new group, or the start of
  ``fit``) there is no scale, no score, and every point is learnt;
* ``p``, ``anomaly_score``, band and guards as in :mod:`vigil.models.calibration` (with the
  surprise-tail recalibration fitted on the fit window: replicas whose ordinary bursts are
  independent, e.g. sparse counters, are not flagged for each one) and
  :mod:`vigil.models.guards`; points whose t-law score is above 1 do not teach offset or
  scale.

Fewer than ``min_peers`` other observed members: no opinion (NaN outputs).  Rows are coupled
within a group (that is the point), so row partitions must keep groups whole; across groups
results are independent of the partition.  ``forecast`` is not defined for peers: it returns
NaN (an ensemble should take forecasts from the per-series models).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
from numba import njit

from vigil.batch import SeriesBatch
from vigil.models.base import Scores
from vigil.models.calibration import (
    DEFAULT_ALPHA,
    SurpriseTail,
    anomaly_score,
    check_alpha,
    fast_log_tail2,
    fit_surprise_tail,
    fit_tail,
    identity_surprise,
    log_p_value,
    mean_abs_t,
    recalibrate_array,
    t_lbeta,
    tail_tables,
    value_quantum,
)
from vigil.models.ets_scoring import recalibrated_band
from vigil.models.guards import Guards, apply_guards
from vigil.models.persist import StatefulModel
from vigil.models.seasonality import select

# replicas: one metric of one service's pods in one place (site / cluster / region), since
# pods of one service in different sites serve different traffic and scale apart
DEFAULT_GROUP_BY = ("__name__", "site", "cluster", "region", "namespace", "job", "service",
                    "container")


def peer_groups(labels: Sequence[Mapping[str, str]], keys: Sequence[str]) -> np.ndarray:
    """int64 group ids: series with equal values of the label names ``keys`` (missing = "")
    share a group; ids are dense (0..G-1) in order of the sorted key values."""
    if not keys:
        raise ValueError("group_by is empty: expected label names such as ['__name__', 'job']")
    text = np.array(["\xff".join(lab.get(k, "") for k in keys) for lab in labels], dtype=str)
    if text.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(text, return_inverse=True)[1].astype(np.int64).ravel()


@njit(cache=True)
def _loo_median(v: np.ndarray, m: int, r: int) -> float:  # pragma: no cover - compiled
    """Median of the sorted ``v[:m]`` without rank ``r`` (``r < 0``: nothing removed)."""
    ln = m - 1 if r >= 0 else m
    if ln <= 0:
        return np.nan
    h = ln // 2
    a = v[h] if (r < 0 or h < r) else v[h + 1]
    if ln % 2 == 1:
        return a
    b = v[h - 1] if (r < 0 or h - 1 < r) else v[h]
    return 0.5 * (a + b)


@njit(cache=True, error_model="numpy")
def _peer_run(
    values: np.ndarray,
    order: np.ndarray,
    bounds: np.ndarray,
    offset: np.ndarray,
    scale: np.ndarray,
    count: np.ndarray,
    nu: np.ndarray,
    c: np.ndarray,
    qband: np.ndarray,
    tabrow: np.ndarray,
    tabs: np.ndarray,
    zmax: np.ndarray,
    par: np.ndarray,
    qmad: np.ndarray,  # [n] lower bound of the scale: a quarter of the value lattice's step
    out: np.ndarray,
    warming: np.ndarray,
) -> None:  # pragma: no cover - compiled
    n, t_len = values.shape  # groups are independent: each group is run over time in turn
    min_hist, min_peers, orate, srate, huber, log_alpha, floor = (
        par[0], par[1], par[2], par[3], par[4], par[5], par[6],
    )  # fmt: skip
    lb = np.empty(n)
    for i in range(n):
        lb[i] = t_lbeta(nu[i])
    cap = 1
    for g in range(bounds.shape[0] - 1):
        cap = max(cap, bounds[g + 1] - bounds[g])
    u = np.empty(cap)
    idx = np.empty(cap, np.int64)
    rank = np.full(n, -1, np.int64)
    sbuf = np.empty(cap)
    sbuf2 = np.empty(cap)
    ibuf = np.empty(cap, np.int64)
    for g in range(bounds.shape[0] - 1):
        a, b = bounds[g], bounds[g + 1]
        for t in range(t_len):
            n_est = 0
            for j in range(a, b):
                i = order[j]
                if values[i, t] == values[i, t] and count[i] >= min_hist:
                    n_est += 1
            use_all = n_est < min_peers
            m = 0
            n_s = 0
            for j in range(a, b):
                i = order[j]
                y = values[i, t]
                if y == y and (use_all or count[i] >= min_hist):
                    sbuf2[m] = y - offset[i]
                    ibuf[m] = i
                    m += 1
                    if count[i] >= min_hist and scale[i] > 0:
                        sbuf[n_s] = scale[i]
                        n_s += 1
            # sorted by u, ties in member order (a stable sort): O(m log m) per step, so a
            # group of 100,000 instances costs what its size says, not its square
            perm = np.argsort(sbuf2[:m], kind="mergesort")
            for q in range(m):
                u[q] = sbuf2[perm[q]]
                idx[q] = ibuf[perm[q]]
            for q in range(m):
                rank[idx[q]] = q
            pooled = np.nan
            if n_s > 0:
                h = n_s // 2
                pooled = select(sbuf, n_s, h)
                if n_s % 2 == 0:
                    lo = sbuf[0]
                    for q in range(1, h):
                        lo = max(lo, sbuf[q])
                    pooled = 0.5 * (lo + pooled)
            for j in range(a, b):
                i = order[j]
                y = values[i, t]
                warm = count[i] < min_hist
                warming[i, t] = warm
                r_i = rank[i]
                peers = m - 1 if r_i >= 0 else m
                if peers < min_peers:
                    for q in range(5):
                        out[q, i, t] = np.nan
                    if y == y:
                        count[i] += 1
                    continue
                e = _loo_median(u, m, r_i) + offset[i]
                sc = pooled if warm else scale[i]
                if pooled == pooled:
                    sc = max(sc, floor * pooled)
                if sc == sc:
                    sc = max(sc, qmad[i])
                out[0, i, t] = e
                half = sc * c[i] * qband[i]
                out[1, i, t] = e - half
                out[2, i, t] = e + half
                if y != y:
                    for q in range(3, 5):
                        out[q, i, t] = np.nan
                    continue
                r = y - e
                if sc > 0:
                    z = r / sc
                elif r == 0:
                    z = 0.0
                elif sc == 0:
                    z = math.copysign(np.inf, r)
                else:
                    z = np.nan  # no scale yet: no opinion
                lp = fast_log_tail2(abs(z) / c[i], nu[i], lb[i], tabs[tabrow[i]], zmax[tabrow[i]])
                out[3, i, t] = lp
                out[4, i, t] = z
                if not lp < log_alpha:  # normal or unscored: learn
                    lim = huber * sc if sc > 0 else np.inf
                    rc = min(max(r, -lim), lim)
                    if warm:
                        k = count[i] + 1.0
                        offset[i] += max(orate, 1.0 / k) * rc
                        scale[i] += (abs(r) - scale[i]) / k
                    else:
                        offset[i] += orate * rc
                        scale[i] += srate * (min(abs(r), huber * scale[i]) - scale[i])
                count[i] += 1
            for q in range(m):
                rank[idx[q]] = -1


def with_shards(groups: np.ndarray, shard: np.ndarray) -> np.ndarray:
    """Dense group ids of (group, shard) pairs: a sharded group's shards are groups apart."""
    pairs = np.stack([np.asarray(groups, np.int64), np.asarray(shard, np.int64)], axis=1)
    if len(pairs) == 0:
        return np.zeros(0, dtype=np.int64)
    _, dense = np.unique(pairs, axis=0, return_inverse=True)
    return dense.ravel().astype(np.int64)


class PeerModel(StatefulModel):
    """Robust comparison of each series with its group's other members (see module doc)."""

    name: ClassVar[str] = "peer"
    version: ClassVar[str] = "1"

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        min_history: int = 24,
        min_peers: int = 2,
        offset_rate: float = 0.02,
        scale_rate: float = 0.02,
        huber: float = 2.5,
        scale_floor: float = 0.1,
        tail_min_count: int = 200,
        prior_nu: float = 5.0,
        group_by: Sequence[str] = DEFAULT_GROUP_BY,
        guards: dict[str, Any] | None = None,
    ) -> None:
        self.alpha = check_alpha(alpha)
        self.min_history = int(min_history)
        self.min_peers = int(min_peers)
        self.offset_rate = float(offset_rate)
        self.scale_rate = float(scale_rate)
        self.huber = float(huber)
        self.scale_floor = float(scale_floor)
        self.tail_min_count = int(tail_min_count)
        self.prior_nu = float(prior_nu)
        self.group_by = tuple(group_by)
        self.guards = Guards.from_dict(guards)
        if self.min_history < 1:
            raise ValueError(f"min_history={min_history} is invalid: expected >= 1 point")
        if self.min_peers < 1:
            raise ValueError(f"min_peers={min_peers} is invalid: expected >= 1 other series")
        for nm in ("offset_rate", "scale_rate"):
            if not 0 <= getattr(self, nm) <= 1:
                raise ValueError(f"{nm}={getattr(self, nm)} is invalid: expected a rate in [0, 1]")
        if not self.huber > 1:
            raise ValueError(f"huber={huber} is invalid: expected a clip > 1 scale")
        if not 0 <= self.scale_floor <= 1:
            raise ValueError(
                f"scale_floor={scale_floor} is invalid: expected a fraction of the peers' "
                "scale in [0, 1]"
            )

    def params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "min_history": self.min_history,
            "min_peers": self.min_peers,
            "offset_rate": self.offset_rate,
            "scale_rate": self.scale_rate,
            "huber": self.huber,
            "scale_floor": self.scale_floor,
            "tail_min_count": self.tail_min_count,
            "prior_nu": self.prior_nu,
            "group_by": list(self.group_by),
            "guards": self.guards.to_dict(),
        }

    def _groups(self, batch: SeriesBatch, group: np.ndarray | None) -> np.ndarray:
        if group is None:
            if not batch.labels and batch.n_series:
                raise ValueError(
                    "peer model needs groups: pass group=<int array, one per series> or a "
                    "batch with labels (grouped by group_by)"
                )
            groups = peer_groups(batch.labels, self.group_by)
            return groups if batch.shard is None else with_shards(groups, batch.shard)
        g = np.asarray(group)
        if g.shape != (batch.n_series,) or not np.issubdtype(g.dtype, np.integer):
            raise ValueError(
                f"group has shape {g.shape} and dtype {g.dtype}: expected an integer array of "
                f"shape ({batch.n_series},), one group id per series"
            )
        return g.astype(np.int64)

    def fit(self, batch: SeriesBatch, group: np.ndarray | None = None) -> Self:
        n = batch.n_series
        self.series_ids_ = np.array(batch.series_ids, dtype=np.int64)
        self.group_ = self._groups(batch, group)
        self.offset_ = np.zeros(n)
        self.scale_ = np.zeros(n)
        self.count_ = np.zeros(n, dtype=np.int64)
        self.nu_ = np.full(n, self.prior_nu)
        self.c_ = np.full(n, 1.0 / float(mean_abs_t(np.array([self.prior_nu]))[0]))
        self.guard_hist_ = np.zeros(n, dtype=np.int64)
        self.direction_ = self.guards.direction_codes(batch.labels, n)
        self.step_ = int(batch.step)
        self.end_ = int(batch.start)
        self.quantum_ = value_quantum(batch.values)
        self.recal_u_ = identity_surprise(n).u
        self.recal_beta_ = identity_surprise(n).beta
        out, _ = self._advance(batch)
        tail = fit_tail(out[4], self.tail_min_count, self.prior_nu)
        self.nu_, self.c_ = tail.nu, tail.c
        # the surprise-tail recalibration of the fit window's log p under that law (as the
        # ensemble's: only a tail proven heavier is corrected; see calibration)
        surprise = fit_surprise_tail(log_p_value(out[4], self.nu_, self.c_))
        self.recal_u_, self.recal_beta_ = surprise.u, surprise.beta
        # the duration guard's history: flags of the last window - 1 columns, recalibrated
        last = slice(max(batch.n_steps - self.guards.window + 1, 0), batch.n_steps)
        raw = anomaly_score(self._recal(log_p_value(out[4][:, last], self.nu_, self.c_)),
                            self.alpha)
        _, self.guard_hist_ = apply_guards(
            batch.values[:, last], out[0][:, last], raw, self.direction_, self.guards,
            self.guard_hist_,
        )  # fmt: skip
        return self

    def _advance(self, batch: SeriesBatch) -> tuple[np.ndarray, np.ndarray]:
        self._check_batch(batch)
        values = np.ascontiguousarray(batch.values, dtype=np.float64)
        n, t_len = values.shape
        order = np.argsort(self.group_, kind="stable")
        gs = self.group_[order]
        bounds = np.concatenate(([0], np.flatnonzero(gs[1:] != gs[:-1]) + 1, [n])).astype(np.int64)
        if n == 0:
            bounds = np.zeros(1, dtype=np.int64)
        tabrow, tabs, zmax = tail_tables(self.nu_)
        qband = recalibrated_band(self.nu_, self._surprise(), self.alpha)
        par = np.array([
            self.min_history, self.min_peers, self.offset_rate, self.scale_rate, self.huber,
            math.log(self.alpha), self.scale_floor,
        ], dtype=np.float64)  # fmt: skip
        out = np.empty((5, n, t_len))  # expected, lower, upper, log p, z
        warming = np.empty((n, t_len), dtype=np.bool_)
        offset, scale, count = self.offset_.copy(), self.scale_.copy(), self.count_.copy()
        _peer_run(
            values, order, bounds, offset, scale, count, self.nu_, self.c_, qband,
            tabrow, tabs, zmax, par, np.ascontiguousarray(self.quantum_, dtype=np.float64) / 4.0,
            out, warming,
        )  # fmt: skip
        self.offset_, self.scale_, self.count_ = offset, scale, count
        self.end_ = int(batch.end)
        return out, warming

    def _surprise(self) -> SurpriseTail:
        return SurpriseTail(np.asarray(self.recal_u_, dtype=np.float64),
                            np.asarray(self.recal_beta_, dtype=np.float64))

    def _recal(self, log_p: np.ndarray) -> np.ndarray:
        return recalibrate_array(log_p, self._surprise())

    def score(self, batch: SeriesBatch) -> Scores:
        out, warming = self._advance(batch)
        out[3] = self._recal(out[3])
        raw = anomaly_score(out[3], self.alpha)
        guarded, self.guard_hist_ = apply_guards(
            batch.values, out[0], raw, self.direction_, self.guards, self.guard_hist_,
            inplace=True,
        )  # fmt: skip
        return Scores(
            expected=out[0],
            lower=out[1],
            upper=out[2],
            p_value=np.exp(out[3]),
            anomaly_score=guarded,
            warming_up=warming,
        )

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        """Not defined for peers (their future values are unknown): all NaN."""
        if horizon < 1:
            raise ValueError(f"horizon={horizon} is invalid: expected >= 1 step")
        self._check_fitted()
        return np.full((len(self.series_ids_), horizon, len(quantiles)), np.nan)

    _STATE: ClassVar[tuple[str, ...]] = (
        "series_ids_", "group_", "offset_", "scale_", "count_", "nu_", "c_", "guard_hist_",
        "direction_", "quantum_", "recal_u_", "recal_beta_", "step_", "end_",
    )  # fmt: skip
