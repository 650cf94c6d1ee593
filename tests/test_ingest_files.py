"""vigil.ingest.ingest_files on CSV and Parquet: parsing, bad rows, file errors, strict, chunks.

These tests check what ingest hands to ``Store.append`` through ``RecordingSink``, a plain
recorder of the calls (the end-to-end tests with the real store are in test_ingest_store.py).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vigil.ingest import IngestReport, Status, ingest_files
from vigil.series import canonical_labels, series_id

T0 = 1714564800  # 2024-05-01T12:00:00Z


class RecordingSink:
    """Records the (tenant, samples, catalog) of each append; not a store.

    Like ``Store.append`` it returns the rows kept: one per distinct (series_id, timestamp).
    """

    def __init__(self) -> None:
        self.appends: list[tuple[str, pa.Table, pa.Table]] = []

    def append(self, tenant: str, samples: pa.Table, catalog: pa.Table) -> int:
        self.appends.append((tenant, samples, catalog))
        keys = zip(samples["series_id"].to_pylist(), samples["timestamp"].to_pylist(), strict=True)
        return len(set(keys))

    def rows(self) -> set[tuple[int, int, float]]:
        out: dict[tuple[int, int], float] = {}
        for _, s, _ in self.appends:
            for sid, ts, v in zip(*(s.column(c).to_pylist() for c in s.column_names), strict=True):
                out[(sid, ts)] = v
        return {(k[0], k[1], v) for k, v in out.items()}

    def catalog(self) -> dict[int, dict[str, str]]:
        out = {}
        for _, _, c in self.appends:
            for sid, labels in zip(
                c["series_id"].to_pylist(), c["labels"].to_pylist(), strict=True
            ):
                out[sid] = json.loads(labels)
        return out


def sid(**labels: str) -> int:
    return series_id(canonical_labels(labels))


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def ingest(paths: list[Path], **kw: object) -> tuple[IngestReport, RecordingSink]:
    sink = RecordingSink()
    report = ingest_files(sink, "t1", paths, **kw)  # type: ignore[arg-type]
    return report, sink


# ------------------------------------------------------------------------------ good files


def test_csv_long_format_with_labels(tmp_path: Path) -> None:
    p = write(
        tmp_path / "m.csv",
        "timestamp,value,metric,host,region\n"
        f"{T0},1.5,cpu,a,eu\n"
        f"{T0 + 60},2,cpu,a,eu\n"
        f"{T0},3,cpu,b,\n"  # empty label value: dropped (Prometheus semantics)
        f"{T0},4,mem,a,eu\n",
    )
    report, sink = ingest([p])
    fr = report.files[0]
    assert (fr.status, fr.timestamp_format, fr.rows_read, fr.rows_written) == (
        Status.OK,
        "epoch_s",
        4,
        4,
    )
    assert fr.series == 3 and fr.chunks == 1 and report.ok
    a = sid(__name__="cpu", host="a", region="eu")
    b = sid(__name__="cpu", host="b")
    m = sid(__name__="mem", host="a", region="eu")
    ms = T0 * 1000
    assert sink.rows() == {(a, ms, 1.5), (a, ms + 60_000, 2.0), (b, ms, 3.0), (m, ms, 4.0)}
    assert sink.catalog()[b] == {"__name__": "cpu", "host": "b"}
    assert sink.appends[0][0] == "t1"
    assert "4 samples written from 4 rows (3 series, timestamps epoch_s)" in report.summary()


def test_name_column_ms_and_rfc3339_detection(tmp_path: Path) -> None:
    ms = write(
        tmp_path / "ms.csv", f"__name__,timestamp,value\nup,{T0 * 1000},1\nup,{T0 * 1000 + 1},0\n"
    )
    rfc = write(
        tmp_path / "rfc.csv",
        "timestamp,value,metric\n2024-05-01T14:00:00+02:00,1,up\n2024-05-01T12:00:00.5Z,0,up\n",
    )
    report, sink = ingest([ms, rfc])
    assert [f.timestamp_format for f in report.files] == ["epoch_ms", "rfc3339"]
    up = sid(__name__="up")
    assert sink.rows() == {
        (up, T0 * 1000, 1.0),
        (up, T0 * 1000 + 1, 0.0),
        (up, T0 * 1000 + 500, 0.0),
    }


def test_nan_inf_values_and_duplicates_last_wins(tmp_path: Path) -> None:
    p = write(
        tmp_path / "d.csv",
        f"timestamp,value,metric\n{T0},1,x\n{T0},NaN,y\n{T0},+Inf,z\n{T0},-Inf,w\n{T0},7,x\n",
    )
    report, sink = ingest([p])
    fr = report.files[0]
    assert fr.duplicates == 1 and fr.rows_written == 4
    got = {s: v for s, _, v in sink.rows()}
    assert got[sid(__name__="x")] == 7.0
    assert np.isnan(got[sid(__name__="y")])
    assert got[sid(__name__="z")] == np.inf and got[sid(__name__="w")] == -np.inf
    assert "1 duplicate (series, timestamp) row(s): last kept" in report.summary()


def test_gzip_csv_and_directory_expansion(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.csv.gz").write_bytes(gzip.compress(f"timestamp,value,metric\n{T0},1,a\n".encode()))
    write(d / "b.csv", f"timestamp,value,metric\n{T0},2,b\n")
    write(d / "notes.txt", "ignored: not a data file")
    report, sink = ingest([d])
    assert [Path(f.path).name for f in report.files] == ["a.csv.gz", "b.csv"]
    assert sink.rows() == {(sid(__name__="a"), T0 * 1000, 1.0), (sid(__name__="b"), T0 * 1000, 2.0)}


def test_parquet_types(tmp_path: Path) -> None:
    t = pa.table(
        {
            "timestamp": pa.array([T0 * 1000, T0 * 1000 + 1000], pa.timestamp("ms", tz="UTC")),
            "value": pa.array([1, 2], pa.int32()),
            "metric": pa.array(["up", "up"]).dictionary_encode(),
            "pod": pa.array(["p1", None]),
            "shard": pa.array([1, 2], pa.int64()),
        }
    )
    pq.write_table(t, tmp_path / "a.parquet")
    naive = t.set_column(0, "timestamp", pa.array([T0 * 10**9, None], pa.timestamp("ns")))
    pq.write_table(naive, tmp_path / "b.parquet")
    report, sink = ingest([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    a, b = report.files
    assert (a.status, a.format, a.timestamp_format, a.rows_written) == (
        Status.OK,
        "parquet",
        "timestamp[ms, tz=UTC]",
        2,
    )
    assert b.status is Status.PARTIAL and b.notes == [
        "timestamp column has no time zone: read as UTC"
    ]
    assert [(e.line, e.unit, e.column, e.reason) for e in b.errors] == [
        (2, "row", "timestamp", "missing timestamp")
    ]
    assert "b.parquet row 2: column 'timestamp': missing timestamp" in report.summary()
    p1 = sid(__name__="up", pod="p1", shard="1")
    assert (p1, T0 * 1000, 1.0) in sink.rows()
    assert (sid(__name__="up", shard="2"), T0 * 1000 + 1000, 2.0) in sink.rows()


def test_parquet_epoch_and_text_columns(tmp_path: Path) -> None:
    pq.write_table(
        pa.table(
            {
                "timestamp": [float(T0) + 0.25, float("nan")],
                "value": ["1.5", "x"],
                "metric": ["a", "a"],
            }
        ),
        tmp_path / "e.parquet",
    )
    report, sink = ingest([tmp_path / "e.parquet"])
    fr = report.files[0]
    assert fr.timestamp_format == "epoch_s" and fr.rows_skipped == 1
    assert sink.rows() == {(sid(__name__="a"), T0 * 1000 + 250, 1.5)}
    assert [(e.line, e.column, e.value) for e in fr.errors] == [(2, "timestamp", "nan")]


# ------------------------------------------------------------------------------- bad rows

BAD_CSV = (
    b"timestamp,value,metric,host\n"  # 1
    b"2024-05-01T12:00:00Z,1,up,a\n"  # 2 ok
    b"\n"  # 3 blank
    b'2024-05-01T12:00:01Z,x,up,"two\nlines"\n'  # 4-5 non-numeric value
    b"2024-05-01T12:00:02Z,1,up\n"  # 6 missing field
    b"yesterday,1,up,a\n"  # 7 bad timestamp
    b"2024-05-01T12:00:03Z,NaN,up,\xff\xfe\n"  # 8 non-UTF-8 label value
    b"2024-05-01T12:00:04Z,2,9up,a\n"  # 9 invalid metric name
    b"2024-05-01T12:00:05Z,2,,a\n"  # 10 empty metric name
    b"2024-02-30T00:00:00Z,2,up,a\n"  # 11 no such day
    b"2024-05-01T12:00:06,2,up,a\n"  # 12 no offset
    b"2024-05-01T12:00:07Z,,up,a\n"  # 13 empty value
    b"1714564800,2,up,a\n"  # 14 other format
    b"2024-05-01T14:00:08+02:00,3,up,a\n"  # 15 ok
)
EXPECTED = [
    (5 - 1, "value", "x", "not a number"),
    (6, None, "2024-05-01T12:00:02Z,1,up", "expected 4 fields, found 3"),
    (7, "timestamp", "yesterday", "not an RFC 3339 timestamp"),
    (8, "host", "\\xff\\xfe", "not valid UTF-8"),
    (9, "metric", "9up", "metric name '9up' is invalid"),
    (10, "metric", "", "empty metric name"),
    (11, "timestamp", "2024-02-30T00:00:00Z", "day is out of range for month"),
    (12, "timestamp", "2024-05-01T12:00:06", "has no UTC offset"),
    (13, "value", "", "empty value"),
    (14, "timestamp", "1714564800", "written as epoch seconds"),
]


@pytest.mark.parametrize("chunk_rows", [1_000_000, 3])
def test_bad_rows_are_reported_precisely_and_skipped(tmp_path: Path, chunk_rows: int) -> None:
    p = write(tmp_path / "bad.csv", BAD_CSV)
    report, sink = ingest([p], chunk_rows=chunk_rows)
    fr = report.files[0]
    got = [(e.line, e.column, e.value, e.reason) for e in fr.errors]
    assert len(got) == len(EXPECTED)
    for (line, col, val, why), exp in zip(got, EXPECTED, strict=True):
        assert (line, col, val) == exp[:3]
        assert exp[3] in why
    assert all(e.file == str(p) for e in fr.errors)
    assert (fr.status, fr.rows_read, fr.rows_skipped, fr.blank_lines, fr.rows_written) == (
        Status.PARTIAL,
        12,
        10,
        1,
        2,
    )
    assert sink.rows() == {
        (sid(__name__="up", host="a"), T0 * 1000, 1.0),
        (sid(__name__="up", host="a"), T0 * 1000 + 8000, 3.0),
    }
    text = report.summary()
    assert f"{p}:7: column 'timestamp' value 'yesterday': not an RFC 3339 timestamp" in text
    assert "10 bad row(s) skipped" in text and report.ok


def test_error_details_are_capped_but_all_counted(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i},oops,m\n" for i in range(50))
    report, _ = ingest([write(tmp_path / "v.csv", "timestamp,value,metric\n" + rows)], max_errors=5)
    fr = report.files[0]
    assert fr.rows_skipped == 50 and [e.line for e in fr.errors] == [2, 3, 4, 5, 6]
    assert "... and 45 more bad row(s)" in report.summary(details=5)


def test_mixed_units_in_one_file(tmp_path: Path) -> None:
    p = write(
        tmp_path / "u.csv", f"timestamp,value,metric\n{T0},1,m\n{T0 + 1},1,m\n{T0 * 1000},1,m\n"
    )
    fr = ingest([p])[0].files[0]
    assert fr.timestamp_format == "epoch_s"
    assert [(e.line, e.column) for e in fr.errors] == [(4, "timestamp")]
    assert "written as epoch milliseconds" in fr.errors[0].reason


# ---------------------------------------------------------------------------- file errors


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("empty.csv", b"", "the file is empty (0 bytes)"),
        ("header.csv", b"timestamp,value,metric\n", "has a header but no data rows"),
        ("blank.csv", b"timestamp,value,metric\n\n\n", "has a header but no data rows"),
        ("nov.csv", b"timestamp,metric\n1,a\n", "missing required column 'value'; add a 'value'"),
        (
            "case.csv",
            b"Timestamp,value,metric\n1,2,a\n",
            "rename column 'Timestamp' to 'timestamp'",
        ),
        ("nom.csv", b"timestamp,value,host\n1,2,a\n", "no metric name column; add a 'metric'"),
        ("both.csv", b"timestamp,value,metric,__name__\n1,2,a,b\n", "both 'metric' and '__name__'"),
        (
            "lbl.csv",
            b"timestamp,value,metric,my-host\n1,2,a,b\n",
            "column 'my-host' is not a valid",
        ),
        ("rsv.csv", b"timestamp,value,metric,__x\n1,2,a,b\n", "is reserved"),
        ("dup.csv", b"timestamp,value,metric,a,a\n1,2,m,b,c\n", "'a' appear more than once"),
        ("data.txt", b"timestamp,value,metric\n1,2,a\n", "unknown file type '.txt'"),
        ("x.parquet", b"this is not parquet", "not a readable Parquet file"),
    ],
)
def test_file_level_errors(tmp_path: Path, name: str, data: bytes, problem: str) -> None:
    p = write(tmp_path / name, data)
    report, sink = ingest([p])
    fr = report.files[0]
    assert fr.status is Status.FAILED and not sink.appends
    assert fr.error is not None and problem in fr.error
    assert f"{p}: FAILED: " in report.summary() and report.failed_files == [fr]


def test_missing_file_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write(tmp_path / "g.csv", f"timestamp,value,metric\n{T0},1,a\n")
    report, sink = ingest([tmp_path / "nope.csv", good])
    assert report.files[0].error == "no such file; check the path"
    assert report.files[1].status is Status.OK and len(sink.appends) == 1
    assert not report.ok and "1 file(s) failed or rejected" in report.summary()


def test_very_long_line_names_the_line_and_the_fix(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i},1,m,h\n" for i in range(200))
    p = write(
        tmp_path / "long.csv", "timestamp,value,metric,host\n" + rows + f"{T0},1,m,{'x' * 5000}\n"
    )
    fr = ingest([p], block_size=1024)[0].files[0]
    assert fr.status is Status.FAILED and fr.error is not None
    assert "longer than the read block of 1,024 bytes" in fr.error
    assert "raise the block size" in fr.error
    # a quote that is never closed reads as one huge field: same error, same fix
    p = write(tmp_path / "quote.csv", "timestamp,value,metric\n" + f'{T0},1,"m\n' + rows)
    fr = ingest([p], block_size=1024)[0].files[0]
    assert fr.status is Status.FAILED and "unbalanced" in str(fr.error)


def test_parquet_column_type_errors(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"timestamp": [T0], "value": [True], "metric": ["a"]}), tmp_path / "b.parquet"
    )
    pq.write_table(
        pa.table({"timestamp": [T0], "value": [1.0], "metric": [[1]]}), tmp_path / "l.parquet"
    )
    pq.write_table(
        pa.table({"timestamp": [T0], "value": [1.0], "metric": ["a"]}).slice(0, 0),
        tmp_path / "e.parquet",
    )
    pq.write_table(pa.table({"timestamp": [T0], "metric": ["a"]}), tmp_path / "m.parquet")
    report, _ = ingest([tmp_path / n for n in ("b.parquet", "l.parquet", "e.parquet", "m.parquet")])
    errors = [f.error for f in report.files]
    assert errors[3] is not None and "missing required column 'value'" in errors[3]
    assert errors[0] is not None and "column 'value' has type bool" in errors[0]
    assert errors[1] is not None and "label column 'metric' has type list" in errors[1]
    assert errors[2] == "the file has no rows; export the data again"


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="tenant id"):
        ingest_files(RecordingSink(), "../x", [])
    with pytest.raises(ValueError, match="chunk_rows=0 is invalid"):
        ingest_files(RecordingSink(), "t", [], chunk_rows=0)
    with pytest.raises(ValueError, match="max_errors=-1 is invalid"):
        ingest_files(RecordingSink(), "t", [], max_errors=-1)


# ----------------------------------------------------------------------- strict and chunks


def test_strict_rejects_the_whole_file_and_writes_nothing(tmp_path: Path) -> None:
    good = "".join(f"{T0 + i},1,m\n" for i in range(30))
    p = write(tmp_path / "s.csv", "timestamp,value,metric\n" + good + f"{T0},oops,m\n")
    report, sink = ingest([p], strict=True, chunk_rows=7)
    fr = report.files[0]
    assert fr.status is Status.REJECTED and sink.appends == [] and fr.rows_written == 0
    assert [(e.line, e.column) for e in fr.errors] == [(32, "value")]
    assert "REJECTED (strict): 1 bad row(s) of 31; nothing written" in report.summary()
    assert report.failed_files == [fr]


def test_strict_writes_a_clean_file_in_all_its_chunks(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i},{i},m\n" for i in range(30))
    p = write(tmp_path / "s.csv", "timestamp,value,metric\n" + rows)
    report, sink = ingest([p], strict=True, chunk_rows=7)
    assert report.files[0].status is Status.OK and report.files[0].chunks == 5
    assert len(sink.rows()) == 30
    report, sink = ingest([p], strict=True)  # one chunk: kept from the validation pass
    assert len(sink.appends) == 1 and len(sink.rows()) == 30


def test_large_file_streams_in_bounded_chunks(tmp_path: Path) -> None:
    n = 5000
    rows = "".join(f"{T0 + i},{i},m,h{i % 7}\n" for i in range(n))
    p = write(tmp_path / "big.csv", "timestamp,value,metric,host\n" + rows)
    calls: list[tuple[int, int]] = []
    report, sink = ingest(
        [p], chunk_rows=400, block_size=4096, progress=lambda d, t: calls.append((d, t))
    )
    fr = report.files[0]
    sizes = [s.num_rows for _, s, _ in sink.appends]
    assert fr.chunks == len(sizes) == 13 and max(sizes) == 400 and sum(sizes) == n
    assert len(sink.rows()) == n and fr.series == 7
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (p.stat().st_size, p.stat().st_size)
    assert len(calls) > 10


def test_parquet_streams_in_chunks_with_row_numbers(tmp_path: Path) -> None:
    n = 1000
    ts = np.arange(n, dtype=np.int64) + T0
    vals = np.where(np.arange(n) == 777, np.nan, 1.0)
    t = pa.table({"timestamp": ts, "value": pa.array(vals, from_pandas=True), "metric": ["m"] * n})
    pq.write_table(t, tmp_path / "p.parquet", row_group_size=300)
    report, sink = ingest([tmp_path / "p.parquet"], chunk_rows=128)
    fr = report.files[0]
    assert fr.chunks >= 8 and max(s.num_rows for _, s, _ in sink.appends) <= 128
    assert fr.rows_skipped == 1 and fr.errors[0].line == 778 and fr.errors[0].unit == "row"
    assert fr.errors[0].reason == "missing value; every row needs a value"


def test_non_utf8_timestamp_and_value(tmp_path: Path) -> None:
    p = write(tmp_path / "u.csv", b"timestamp,value,metric\n1\xff,1,m\n2,\xe9,m\n3,3,m\n")
    fr = ingest([p])[0].files[0]
    assert [(e.line, e.column, e.value) for e in fr.errors] == [
        (2, "timestamp", "1\\xff"),
        (3, "value", "\\xe9"),
    ]
    assert all("not valid UTF-8" in e.reason for e in fr.errors)


def test_directory_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    fr = ingest([tmp_path / "d"])[0].files[0]
    assert fr.status is Status.FAILED and fr.error is not None
    assert "holds no .csv or .parquet files" in fr.error


def test_other_separator_is_named(tmp_path: Path) -> None:
    fr = ingest([write(tmp_path / "t.csv", "timestamp;value;metric\n1;2;m\n")])[0].files[0]
    assert fr.error is not None and "looks separated by ';'" in fr.error
