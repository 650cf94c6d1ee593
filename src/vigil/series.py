"""Series identity under Prometheus conventions.

A series is a metric name plus a label set; the metric name is the label ``__name__``.
Its id is a stable 64-bit integer derived from the canonical label set:

    canonical = for (name, value) in sorted(labels): utf8(name) + 0xFF + utf8(value) + 0xFF
    series_id = int.from_bytes(blake2b(canonical, digest_size=8).digest(), "little", signed=True)

0xFF never occurs in UTF-8, so the encoding is unambiguous.  BLAKE2b is in every Python's
``hashlib`` and its output is fixed by RFC 7693, so the id is the same in any process, machine
and release.  The id is *signed* int64 so it fits Arrow/Parquet/Spark ``long`` columns as is.
Changing this function is a breaking change of the on-disk format (see tests/test_series.py,
which pins fixed vectors).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
METRIC_LABEL = "__name__"
_SEP = b"\xff"


class LabelError(ValueError):
    """A metric name, label name, label value or tenant id that Prometheus rules reject."""


def validate_metric_name(name: str) -> str:
    if not isinstance(name, str) or not METRIC_NAME_RE.match(name):
        raise LabelError(
            f"metric name {name!r} is invalid: expected [a-zA-Z_:][a-zA-Z0-9_:]*; "
            "replace other characters with '_'"
        )
    return name


def validate_label_name(name: str) -> str:
    if not isinstance(name, str) or not LABEL_NAME_RE.match(name):
        raise LabelError(
            f"label name {name!r} is invalid: expected [a-zA-Z_][a-zA-Z0-9_]*; "
            "replace other characters with '_'"
        )
    if name.startswith("__") and name != METRIC_LABEL:
        raise LabelError(
            f"label name {name!r} is reserved: names starting with '__' are internal to "
            "Prometheus; rename the label"
        )
    return name


def validate_label_value(name: str, value: object) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LabelError(
                f"label {name}={value!r} is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                "re-encode the value as UTF-8"
            ) from None
    if not isinstance(value, str):
        raise LabelError(f"label {name}={value!r} must be a string, got {type(value).__name__}")
    if "\ufffd" in value:
        # produced when non-UTF-8 bytes were decoded with errors="replace" upstream
        raise LabelError(
            f"label {name}={value!r} holds U+FFFD, a sign of non-UTF-8 input; "
            "re-encode the source as UTF-8"
        )
    return value


def validate_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT_RE.match(tenant) or tenant in {".", ".."}:
        raise LabelError(
            f"tenant id {tenant!r} is invalid: expected 1-64 characters of [A-Za-z0-9_.-] "
            "starting with a letter or digit"
        )
    return tenant


def canonical_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """Validate a label set (``__name__`` included) and return it sorted by label name.

    Labels with an empty value are dropped, as Prometheus treats them as absent.
    """
    if METRIC_LABEL not in labels:
        raise LabelError(
            f"label set {dict(labels)!r} has no metric name: add '__name__' (or a 'metric' column)"
        )
    out: dict[str, str] = {}
    for name in sorted(labels):
        validate_label_name(name)
        value = validate_label_value(name, labels[name])
        if name == METRIC_LABEL:
            validate_metric_name(value)
        if value != "":
            out[name] = value
    return out


def canonical_bytes(labels: Mapping[str, str]) -> bytes:
    parts: list[bytes] = []
    for name in sorted(labels):
        parts.append(name.encode("utf-8"))
        parts.append(_SEP)
        parts.append(labels[name].encode("utf-8"))
        parts.append(_SEP)
    return b"".join(parts)


def series_id(labels: Mapping[str, str]) -> int:
    """Stable signed 64-bit id of a (validated) label set; see the module docstring."""
    digest = hashlib.blake2b(canonical_bytes(labels), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def labels_json(labels: Mapping[str, str]) -> str:
    """Canonical JSON text of a label set (sorted keys, no spaces): the catalog's storage form."""
    return json.dumps(dict(sorted(labels.items())), ensure_ascii=False, separators=(",", ":"))


def parse_labels_json(text: str) -> dict[str, str]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise LabelError(f"label JSON {text!r} is not an object")
    return {str(k): str(v) for k, v in value.items()}


def series_ids(label_sets: Iterable[Mapping[str, str]]) -> list[int]:
    return [series_id(ls) for ls in label_sets]


def format_series(labels: Mapping[str, str]) -> str:
    """Prometheus text form: ``name{a="b",c="d"}``."""
    name = labels.get(METRIC_LABEL, "")
    rest = ",".join(
        f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if k != METRIC_LABEL
    )
    return f"{name}{{{rest}}}" if rest else name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
