"""Change events: validation (parse_event), table form and JSON-lines import."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.events import (
    EVENTS_SCHEMA,
    Event,
    EventError,
    EventKind,
    events_to_table,
    import_events,
    parse_event,
    read_events,
)
from vigil.ingest import Status

GOOD = {
    "time": "2024-05-01T14:00:00+02:00",
    "kind": "deployment",
    "labels": {"service": "cart", "namespace": "shop"},
    "summary": "cart v1.4.2 rolled out",
    "attributes": {"version": "1.4.2", "replicas": 3},
}


class RecordingSink:
    """Records the tables handed to Store.append_events; not a store."""

    def __init__(self) -> None:
        self.tables: list[tuple[str, pa.Table]] = []

    def append_events(self, tenant: str, events: pa.Table) -> int:
        self.tables.append((tenant, events))
        return events.num_rows


def test_parse_event_normalises() -> None:
    e = parse_event(GOOD)
    assert e.time == 1714564800000
    assert e.kind is EventKind.DEPLOYMENT
    assert list(e.labels) == ["namespace", "service"]
    assert e.attributes == {"version": "1.4.2", "replicas": 3}
    assert parse_event({**GOOD, "time": 1714564800}).time == 1714564800000
    assert parse_event({**GOOD, "time": 1714564800000}).time == 1714564800000
    no_attr = {k: v for k, v in GOOD.items() if k != "attributes"}
    assert parse_event(no_attr).attributes == {}
    assert parse_event({**GOOD, "labels": {"a": ""}}).labels == {}  # empty values dropped


def test_event_id_is_stable_and_content_based() -> None:
    a = parse_event(GOOD)
    reordered = {
        "summary": "  cart v1.4.2 rolled out ",
        "labels": {"namespace": "shop", "service": "cart"},
        "attributes": {"replicas": 3, "version": "1.4.2"},
        "kind": "deployment",
        "time": 1714564800000,
    }
    assert parse_event(reordered).event_id == a.event_id
    assert len(a.event_id) == 32 and int(a.event_id, 16) >= 0
    assert parse_event({**GOOD, "summary": "other"}).event_id != a.event_id
    # pinned: changing the canonical form changes stored ids
    assert a.canonical() == (
        '{"attributes":{"replicas":3,"version":"1.4.2"},"kind":"deployment",'
        '"labels":{"namespace":"shop","service":"cart"},"summary":"cart v1.4.2 rolled out",'
        '"time":1714564800000}'
    )


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"time": "yesterday"}, "time", "expected RFC 3339"),
        ({"time": "2024-05-01T12:00:00"}, "time", "has no UTC offset"),
        ({"time": True}, "time", "has type bool"),
        ({"kind": "deploy"}, "kind", "unknown kind; expected one of deployment, config_change"),
        ({"labels": {"my-label": "x"}}, "labels", "label name 'my-label' is invalid"),
        ({"labels": {"a": 3}}, "labels", "must be a string"),
        ({"labels": ["a"]}, "labels", "labels must be a JSON object"),
        ({"summary": "  "}, "summary", "summary is empty"),
        ({"summary": 5}, "summary", "summary must be a string"),
        ({"attributes": [1]}, "attributes", "attributes must be a JSON object"),
        ({"attributes": {"x": float("nan")}}, "attributes", "not plain JSON"),
        ({"summery": "typo"}, "summery", "unknown field"),
        ({"kind": None, "summary": None}, "kind", "unknown kind"),
    ],
)
def test_parse_event_errors_name_the_field(change: dict, field: str, why: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event({**GOOD, **change})
    problems = {p.field: p for p in info.value.problems}
    assert field in problems and why in problems[field].reason
    assert why in str(info.value)


def test_parse_event_missing_fields_and_non_objects() -> None:
    with pytest.raises(EventError) as info:
        parse_event({"kind": "other"})
    assert {p.field for p in info.value.problems} == {"time", "labels", "summary"}
    assert all(p.reason == "required field is missing" for p in info.value.problems)
    with pytest.raises(EventError, match="expected a JSON object, got list"):
        parse_event([1, 2])


def test_events_to_table() -> None:
    t = events_to_table([parse_event(GOOD), parse_event({**GOOD, "kind": "scaling"})])
    assert t.schema == EVENTS_SCHEMA and t.num_rows == 2
    row = t.to_pylist()[0]
    assert row["labels"] == '{"namespace":"shop","service":"cart"}'
    assert json.loads(row["attributes"]) == GOOD["attributes"]
    assert row["kind"] == "deployment" and row["time"] == 1714564800000
    assert events_to_table([]).num_rows == 0


def lines(*objs: object) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)


def test_import_reports_bad_lines_precisely(tmp_path: Path) -> None:
    p = tmp_path / "ev.jsonl"
    p.write_bytes(
        lines(GOOD)  # 1
        + b"\n"  # 2 blank
        + b'{"time": 1, "kind": \n'  # 3 broken JSON
        + lines({**GOOD, "kind": "oops"})  # 4
        + b'{"summary": "caf\xe9"}\n'  # 5 latin-1
        + lines({**GOOD, "time": "nope", "labels": {"1x": "a"}})  # 6: two problems
        + lines(GOOD)  # 7 duplicate of line 1
        + lines({**GOOD, "kind": "scaling"})  # 8
    )
    sink = RecordingSink()
    report = import_events(sink, "t1", p)
    assert (report.status, report.lines, report.bad_lines, report.duplicates) == (
        Status.PARTIAL,
        7,
        4,
        1,
    )
    assert report.events_written == 2 and report.blank_lines == 1
    got = [(e.line, e.column, e.value) for e in report.errors]
    assert got == [
        (3, None, '{"time": 1, "kind":'),
        (4, "kind", "oops"),
        (5, None, '{"summary": "caf\\xe9"}'),
        (6, "time", "nope"),
        (6, "labels", '{"1x": "a"}'),
    ]
    assert "not valid JSON" in report.errors[0].reason
    assert "not valid UTF-8" in report.errors[2].reason
    tenant, table = sink.tables[0]
    assert tenant == "t1" and table.num_rows == 2
    text = report.summary()
    assert "2 events written from 7 lines; 4 bad line(s) skipped" in text
    assert f"{p}:4: column 'kind' value 'oops': unknown kind" in text


def test_import_strict_and_file_errors(tmp_path: Path) -> None:
    p = tmp_path / "ev.jsonl"
    p.write_bytes(lines(GOOD, {**GOOD, "kind": "bad"}))
    sink = RecordingSink()
    report = import_events(sink, "t1", p, strict=True)
    assert report.status is Status.REJECTED and report.failed and sink.tables == []
    assert "REJECTED (strict): 1 bad line(s) of 2; nothing written" in report.summary()

    for name, data, why in [
        ("empty.jsonl", b"", "the file is empty (0 bytes)"),
        ("blank.jsonl", b"\n \n", "the file has no events"),
    ]:
        (tmp_path / name).write_bytes(data)
        r = import_events(sink, "t1", tmp_path / name)
        assert r.status is Status.FAILED and r.error is not None and why in r.error
    (tmp_path / "bad.jsonl").write_bytes(lines({"kind": "x"}))
    r = import_events(sink, "t1", tmp_path / "bad.jsonl")
    assert r.status is Status.FAILED and r.error is not None and "no valid events" in r.error
    assert "bad.jsonl:1: column 'kind' value 'x': unknown kind" in r.summary()
    r = import_events(sink, "t1", tmp_path / "missing.jsonl")
    assert r.error == "no such file; check the path" and "FAILED" in r.summary()
    r = import_events(sink, "t1", tmp_path)
    assert r.error is not None and "is a directory" in r.error
    assert sink.tables == []


def test_import_gzip(tmp_path: Path) -> None:
    p = tmp_path / "ev.jsonl.gz"
    p.write_bytes(gzip.compress(lines(GOOD)))
    sink = RecordingSink()
    assert import_events(sink, "t1", p).events_written == 1


def test_read_events_caps_details() -> None:
    events, report = read_events([b"[]\n"] * 30, "f", max_errors=3)
    assert events == [] and report.bad_lines == 30 and len(report.errors) == 3


LABEL = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(100_000_000_000, 4_000_000_000_000),
    st.sampled_from(["ms", "s", "rfc3339"]),
    st.sampled_from(list(EventKind)),
    st.dictionaries(
        LABEL, st.text(min_size=1, max_size=10).filter(lambda s: "\ufffd" not in s), max_size=4
    ),
    st.text(min_size=1, max_size=40).filter(str.strip),
    st.dictionaries(LABEL, st.integers() | st.text(max_size=5) | st.booleans(), max_size=3),
)
def test_event_roundtrip_through_json(
    ms: int, form: str, kind: EventKind, labels: dict, summary: str, attrs: dict
) -> None:
    time: object = ms
    if form == "s":
        time = ms / 1000
    elif form == "rfc3339":
        time = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    e = parse_event(
        {
            "time": time,
            "kind": kind.value,
            "labels": labels,
            "summary": summary,
            "attributes": attrs,
        }
    )
    assert e.time == ms
    again = parse_event(json.loads(e.model_dump_json()))
    assert again == e and again.event_id == e.event_id
    assert isinstance(e, Event)


def test_import_rejects_a_bad_tenant(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tenant id"):
        import_events(RecordingSink(), "../etc", tmp_path / "x.jsonl")


def test_source_id_becomes_event_id_and_is_validated():
    base = {"time": "2026-01-09T11:02:00Z", "kind": "deployment",
            "labels": {"service": "checkout"}, "summary": "Deployed checkout v412"}
    assert parse_event({**base, "id": "deploy-412"}).event_id == "deploy-412"
    assert len(parse_event(base).event_id) == 32
    with pytest.raises(EventError) as info:
        parse_event({**base, "id": "bad id/../x"})
    assert "id must be 1-128 characters" in str(info.value.problems)
