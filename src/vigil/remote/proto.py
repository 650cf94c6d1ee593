"""Prometheus remote-write 1.0 messages (prompb), built at run time without ``protoc``.

The schema is a ``FileDescriptorProto`` written here in code and loaded into a private
descriptor pool, so no generated ``_pb2`` module and no compiler are needed.  Field numbers
follow ``prompb/remote.proto`` and ``prompb/types.proto``::

    WriteRequest   { repeated TimeSeries timeseries = 1; reserved 2;
                     repeated MetricMetadata metadata = 3; }
    TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2;
                     repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
    Label          { name = 1; value = 2; }
    Sample         { double value = 1; int64 timestamp = 2; }
    Exemplar       { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }
    MetricMetadata { type = 1 (enum); metric_family_name = 2; help = 4; unit = 5; }

Deliberate differences, none visible on the wire:

* ``Label.name``/``value`` (and the metadata strings) are declared ``bytes`` rather than
  ``string``: Vigil checks UTF-8 itself so that a rejection names the label at fault;
* ``Histogram`` is declared without fields: native histograms are accepted on the wire,
  counted and dropped (the store holds float samples only), so their content is kept as
  unknown fields and never interpreted;
* ``MetricMetadata.type`` is an ``int32`` (same varint encoding as the enum).

This module also holds the *reference* decoding (``parse_reference``): protobuf's own parser
followed by a conversion to flat arrays.  ``vigil.remote.fast`` must decode exactly like it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

PACKAGE = "vigil.prompb"
_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="vigil/prompb_remote_write_v1.proto", package=PACKAGE, syntax="proto3"
    )

    def message(name: str, fields: Sequence[tuple[str, int, int, str | None, bool]]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, type_name, repeated in fields:
            field = msg.field.add(
                name=fname,
                number=number,
                type=ftype,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name is not None:
                field.type_name = f".{PACKAGE}.{type_name}"

    msg_t, bytes_t, double_t, int64_t, int32_t = (
        _F.TYPE_MESSAGE,
        _F.TYPE_BYTES,
        _F.TYPE_DOUBLE,
        _F.TYPE_INT64,
        _F.TYPE_INT32,
    )
    message("Label", [("name", 1, bytes_t, None, False), ("value", 2, bytes_t, None, False)])
    message("Sample", [("value", 1, double_t, None, False), ("timestamp", 2, int64_t, None, False)])
    message(
        "Exemplar",
        [
            ("labels", 1, msg_t, "Label", True),
            ("value", 2, double_t, None, False),
            ("timestamp", 3, int64_t, None, False),
        ],
    )
    message("Histogram", [])
    message(
        "TimeSeries",
        [
            ("labels", 1, msg_t, "Label", True),
            ("samples", 2, msg_t, "Sample", True),
            ("exemplars", 3, msg_t, "Exemplar", True),
            ("histograms", 4, msg_t, "Histogram", True),
        ],
    )
    message(
        "MetricMetadata",
        [
            ("type", 1, int32_t, None, False),
            ("metric_family_name", 2, bytes_t, None, False),
            ("help", 4, bytes_t, None, False),
            ("unit", 5, bytes_t, None, False),
        ],
    )
    message(
        "WriteRequest",
        [
            ("timeseries", 1, msg_t, "TimeSeries", True),
            ("metadata", 3, msg_t, "MetricMetadata", True),
        ],
    )
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


WriteRequest: Any = _cls("WriteRequest")
TimeSeries: Any = _cls("TimeSeries")
Label: Any = _cls("Label")
Sample: Any = _cls("Sample")
Exemplar: Any = _cls("Exemplar")
Histogram: Any = _cls("Histogram")
MetricMetadata: Any = _cls("MetricMetadata")

LabelInput = Mapping[str, str] | Sequence[tuple[str | bytes, str | bytes]]


def _b(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


def label_pairs(labels: LabelInput) -> list[tuple[bytes, bytes]]:
    """A label set as (name, value) byte pairs, in the order given (a Mapping: as iterated)."""
    items = labels.items() if isinstance(labels, Mapping) else labels
    return [(_b(k), _b(v)) for k, v in items]


def build_message(
    labels: Sequence[LabelInput],
    series: np.ndarray,
    timestamps: np.ndarray,
    values: np.ndarray,
) -> Any:
    """A ``WriteRequest`` message: series k gets, in array order, the samples whose
    ``series`` entry is k (values are written bit for bit, NaN payloads included)."""
    req = WriteRequest()
    series = np.asarray(series, dtype=np.int64)
    order = np.argsort(series, kind="stable")
    bounds = np.searchsorted(series[order], np.arange(len(labels) + 1))
    ts_list = np.asarray(timestamps, dtype=np.int64)[order].tolist()
    val_list = np.asarray(values, dtype=np.float64)[order].tolist()
    for k, ls in enumerate(labels):
        ts = req.timeseries.add()
        for name, value in label_pairs(ls):
            ts.labels.add(name=name, value=value)
        for i in range(int(bounds[k]), int(bounds[k + 1])):
            ts.samples.add(value=val_list[i], timestamp=ts_list[i])
    return req


@dataclass
class Parsed:
    """A request's content before label validation (the output of either decoder)."""

    labels: list[list[tuple[bytes, bytes]]] | None  # per series; None: use ``keys`` below
    keys: list[bytes] | None  # fast decoder: raw label bytes per series (cache keys)
    series: np.ndarray  # int32 [n]
    timestamps: np.ndarray  # int64 [n]
    value_bits: np.ndarray  # uint64 [n] (float64 bits, NaN payloads kept)
    exemplars: int = 0
    histograms: int = 0
    metadata: int = 0
    types: dict[str, str] = field(default_factory=dict)  # family name -> metric type

    @property
    def n_series(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.keys or ())


class StructureError(ValueError):
    """The bytes are not a valid WriteRequest (protobuf wire format)."""


class TooLarge(ValueError):
    """The request holds more series or samples than allowed."""

    def __init__(self, what: str, count: int, limit: int) -> None:
        super().__init__(what, count, limit)
        self.what, self.count, self.limit = what, count, limit


def parse_reference(data: bytes, max_series: int, max_samples: int) -> Parsed:
    """Decode with protobuf's parser, then convert to flat arrays (slow: Python loops)."""
    req = WriteRequest()
    try:
        req.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise StructureError(str(exc) or "malformed protobuf") from None
    n_series = len(req.timeseries)
    if n_series > max_series:
        raise TooLarge("series", n_series, max_series)
    counts = [len(ts.samples) for ts in req.timeseries]
    n_samples = sum(counts)
    if n_samples > max_samples:
        raise TooLarge("samples", n_samples, max_samples)
    labels: list[list[tuple[bytes, bytes]]] = []
    ts_list: list[int] = []
    val_list: list[float] = []
    exemplars = histograms = 0
    for ts in req.timeseries:
        labels.append([(lb.name, lb.value) for lb in ts.labels])
        for s in ts.samples:
            ts_list.append(s.timestamp)
            val_list.append(s.value)
        exemplars += len(ts.exemplars)
        histograms += len(ts.histograms)
    series = np.repeat(np.arange(n_series, dtype=np.int32), counts)
    return Parsed(
        labels=labels,
        keys=None,
        series=series,
        timestamps=np.array(ts_list, dtype=np.int64),
        value_bits=np.array(val_list, dtype=np.float64).view(np.uint64),
        exemplars=exemplars,
        histograms=histograms,
        metadata=len(req.metadata),
        types=metadata_types(req.metadata),
    )


# MetricMetadata.MetricType of prompb/types.proto -> vigil.metrictypes names
METADATA_TYPES = {0: "unknown", 1: "counter", 2: "gauge", 3: "histogram", 4: "histogram",
                  5: "summary", 6: "info", 7: "stateset"}


def metadata_types(entries: Any) -> dict[str, str]:
    """Family name -> metric type of a request's ``metadata`` (unknown enum values and names
    that are not valid UTF-8 are skipped: metadata is advisory)."""
    out: dict[str, str] = {}
    for md in entries:
        kind = METADATA_TYPES.get(int(md.type))
        try:
            name = bytes(md.metric_family_name).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if kind is not None and name:
            out[name] = kind
    return out
