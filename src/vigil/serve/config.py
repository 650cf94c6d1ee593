"""``vigil serve`` configuration: one YAML file, validated with pydantic at start.

Every error names the key (as a dotted path), the value it had, what was expected and how to
fix it; ``vigil config check FILE`` runs the same validation offline.  See docs/serve.md for
a complete example.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vigil.engine.backtest import parse_duration
from vigil.series import LabelError, validate_tenant

DEFAULT_TENANT = "default"
_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+)?:(?P<port>\d{1,5})$")


class ConfigError(ValueError):
    """A configuration problem, already phrased for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str, key: str) -> str:
    try:
        ok = parse_duration(value) > 0
    except (ValueError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ValueError(f"{value!r} is not a positive duration such as '30s', '5m', '1h', '14d'")
    return value


class BasicAuth(_Strict):
    username: str
    password: str = Field(min_length=1)


class TenantConfig(_Strict):
    """Credentials of one tenant: a bearer token, basic auth, both or none (no auth)."""

    bearer_token: str | None = Field(default=None, min_length=16)
    basic_auth: BasicAuth | None = None
    max_active_series: int | None = Field(default=None, ge=1)


class Limits(_Strict):
    max_body_bytes: int = Field(default=16 << 20, ge=1024)
    max_decompressed_bytes: int = Field(default=64 << 20, ge=1024)
    max_series_per_request: int = Field(default=100_000, ge=1)
    max_samples_per_request: int = Field(default=2_000_000, ge=1)
    max_labels_per_series: int = Field(default=40, ge=1)
    max_label_name_length: int = Field(default=128, ge=1)
    max_label_value_length: int = Field(default=2048, ge=1)
    max_active_series: int = Field(default=1_000_000, ge=1)  # per tenant unless overridden
    # a series without a sample for this long (or ended by a staleness marker) is retired: it
    # leaves /metrics and stops counting against max_active_series
    series_ttl: str = "1h"

    @field_validator("series_ttl")
    @classmethod
    def _ttl(cls, v: str) -> str:
        return _duration(v, "series_ttl")
    max_upload_bytes: int = Field(default=256 << 20, ge=1024)


class Schedule(_Strict):
    """When to fit and score (durations like '30s', '5m', '1d')."""

    step: str | None = None  # grid step; None: the most common spacing of the data
    warmup: str = "1d"  # data needed before the first scores (peers score new series earlier)
    fit_window: str = "14d"
    fit_every: str = "1d"
    infer_every: str = "1m"
    delay: str = "30s"  # a column [t, t+step) is scored once now >= t + step + delay
    checkpoint_every: str = "10s"  # WAL -> store
    forecast_every: str = "5m"  # time-to-exhaustion forecasts of series with a limit
    horizon: str = "48h"
    trend_window: str = "24h"

    @field_validator("warmup", "fit_window", "fit_every", "infer_every", "checkpoint_every",
                     "step", "delay", "forecast_every", "horizon", "trend_window")
    @classmethod
    def _dur(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else _duration(v, info.field_name)


class ReaderConfig(_Strict):
    """Pull mode: query a Prometheus-compatible HTTP API on a schedule (like vmanomaly's reader)."""

    url: str = Field(pattern=r"^https?://")
    queries: list[str] = Field(min_length=1)
    step: str = "1m"
    every: str = "1m"
    lookback: str = "1h"  # first pull: how far back
    tenant: str = DEFAULT_TENANT
    bearer_token: str | None = None
    basic_auth: BasicAuth | None = None
    timeout: str = "30s"

    @field_validator("step", "every", "lookback", "timeout")
    @classmethod
    def _dur(cls, v: str, info: Any) -> str:
        return _duration(v, info.field_name)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str) -> str:
        return validate_tenant(v)


class AlertmanagerConfig(_Strict):
    url: str = Field(pattern=r"^https?://")  # e.g. http://127.0.0.1:9093
    external_url: str | None = None  # base of the link in each alert (default: this server)
    timeout: str = "10s"
    resend_every: str = "1m"  # Alertmanager forgets alerts not re-sent within resolve_timeout

    @field_validator("timeout", "resend_every")
    @classmethod
    def _dur(cls, v: str, info: Any) -> str:
        return _duration(v, info.field_name)


class RemoteWriteOut(_Strict):
    url: str = Field(pattern=r"^https?://")
    bearer_token: str | None = None
    basic_auth: BasicAuth | None = None


class ServeConfig(_Strict):
    listen: str = "127.0.0.1:8080"
    store: Path = Path("./vigil-data")
    wal_dir: Path | None = None  # default <store>/wal
    tenants: dict[str, TenantConfig] = Field(default_factory=lambda: {DEFAULT_TENANT:
                                                                       TenantConfig()})
    limits: Limits = Limits()
    schedule: Schedule = Schedule()
    readers: list[ReaderConfig] = Field(default_factory=list)
    alertmanager: AlertmanagerConfig | None = None
    remote_write: RemoteWriteOut | None = None
    workers: int = Field(default=1, ge=1)  # scoring processes per tick
    partitions: int = Field(default=16, ge=1)  # model partitions per tenant (keep it stable)
    # metric name -> type (counter, gauge, histogram...), declared for every tenant at start
    metric_types: dict[str, str] = Field(default_factory=dict)
    # usage/limit pairs before the built-in ones ({usage, limit, on, match, zero_is_none})
    limit_pairs: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("metric_types")
    @classmethod
    def _metric_types(cls, v: dict[str, str]) -> dict[str, str]:
        from vigil.metrictypes import check_type

        return {k: check_type(k, t) for k, t in v.items()}

    @field_validator("limit_pairs")
    @classmethod
    def _limit_pairs(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from vigil.engine.limits import LimitPair

        return [LimitPair.from_dict(p).as_dict() for p in v]

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        m = _LISTEN.match(v)
        if not m or not 0 < int(m["port"]) < 65536:
            raise ValueError(f"{v!r} is not HOST:PORT (for example 127.0.0.1:8080 or :8080)")
        return v

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, v: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        if not v:
            raise ValueError("no tenant is configured: add at least one, e.g. 'default: {}'")
        for name in v:
            try:
                validate_tenant(name)
            except LabelError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _auth_consistent(self) -> Self:
        secured = [t for t, c in self.tenants.items() if c.bearer_token or c.basic_auth]
        if secured and len(secured) != len(self.tenants):
            open_ = sorted(set(self.tenants) - set(secured))
            raise ValueError(
                f"tenants {open_} have no credentials while {sorted(secured)} do: when auth is "
                "configured every tenant needs a bearer_token or basic_auth")
        tokens = [c.bearer_token for c in self.tenants.values() if c.bearer_token]
        if len(tokens) != len(set(tokens)):
            raise ValueError("two tenants share a bearer_token: give each tenant its own")
        users = [c.basic_auth.username for c in self.tenants.values() if c.basic_auth]
        if len(users) != len(set(users)):
            raise ValueError("two tenants share a basic_auth username: give each its own")
        for reader in self.readers:
            if reader.tenant not in self.tenants:
                raise ValueError(f"reader {reader.url} writes to tenant {reader.tenant!r}, which "
                                 f"is not under 'tenants' ({sorted(self.tenants)}): add it")
        return self

    @property
    def auth_enabled(self) -> bool:
        return any(c.bearer_token or c.basic_auth for c in self.tenants.values())

    @property
    def host_port(self) -> tuple[str, int]:
        m = _LISTEN.match(self.listen)
        assert m is not None
        host = (m["host"] or "0.0.0.0").strip("[]")
        return host, int(m["port"])

    @property
    def wal_path(self) -> Path:
        return self.wal_dir or self.store / "wal"

    def seconds(self, duration: str) -> float:
        return parse_duration(duration) / 1000.0


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _fix(kind: str) -> str:
    return {
        "extra_forbidden": "remove it or check its spelling (docs/serve.md lists every key)",
        "missing": "add it",
        "string_too_short": "use a longer value",
        "string_pattern_mismatch": "use an http:// or https:// URL",
        "greater_than_equal": "use a larger value",
        "int_parsing": "use a whole number",
        "dict_type": "use a mapping (key: value lines)",
        "list_type": "use a list",
    }.get(kind, "see docs/serve.md")


def validate_config(data: Any, source: str = "config") -> ServeConfig:
    """A :class:`ServeConfig` from parsed YAML, or :class:`ConfigError` naming every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level is {type(data).__name__}: expected a mapping "
                          "of keys such as listen, store, tenants")
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            value = _lookup(data, loc)
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"{source}: {_loc(loc)} = {value!r}: {msg}; fix: {_fix(e['type'])}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path) -> ServeConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file: pass the path of a vigil.yaml") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return validate_config(data, str(p))
