"""PromQL series selectors: parsing and vectorised matching over a label catalog.

Grammar (the vector-selector part of PromQL)::

    selector := metric_name [ '{' matchers '}' ] | '{' matchers '}'
    matchers := matcher ( ',' matcher )* [ ',' ]
    matcher  := label op string | string            (a lone string names the metric)
    label    := [a-zA-Z_][a-zA-Z0-9_]* | string
    op       := '=' | '!=' | '=~' | '!~'
    string   := "..." | '...' | `...`                (backticks: raw, no escapes)

Semantics follow Prometheus:

* a matcher on a label the series does not have compares against ``""``: ``foo=""``
  matches series without ``foo``, ``foo!=""`` requires it;
* regular expressions are fully anchored (``re.fullmatch``) and ``.`` matches newlines
  (Prometheus compiles ``^(?s:re)$``).  They are Python ``re`` patterns; the RE2 syntax
  Prometheus uses is nearly a subset, except for ``\\C``, ``\\pN`` style classes and
  ``(?P=...)`` back-references, which behave as Python defines them;
* string escapes are Go's: ``\\a \\b \\f \\n \\r \\t \\v \\\\``, the enclosing quote,
  ``\\xHH``, ``\\ooo`` (octal), ``\\uHHHH``, ``\\UHHHHHHHH``; the decoded bytes must be UTF-8;
* ``{}`` and setting the metric name twice are errors, as in Prometheus.  Unlike Prometheus,
  a selector whose matchers all match the empty string (``{foo=""}``) is accepted.

Matching over a catalog evaluates each matcher once per *distinct* label value (the label
column is dictionary-encoded) and maps the result back with numpy, so a catalog of a million
series is matched in about a second even with regexes on unique values.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

METRIC_LABEL = "__name__"
OPS = ("=", "!=", "=~", "!~")
_IDENT_START = re.compile(r"[a-zA-Z_:]")
_METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SIMPLE_ESCAPES = {
    "a": b"\x07",
    "b": b"\x08",
    "f": b"\x0c",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\x0b",
    "\\": b"\\",
}
_HEX = frozenset("0123456789abcdefABCDEF")


class SelectorError(ValueError):
    """A selector that does not parse; ``position`` is the 0-based character offset."""

    def __init__(self, text: str, position: int, expected: str, found: str | None = None) -> None:
        self.text = text
        self.position = position
        self.expected = expected
        if found is None:
            found = repr(text[position]) if position < len(text) else "end of selector"
        self.found = found
        super().__init__(
            f"invalid selector {text!r} at position {position}: expected {expected}, found {found}"
        )


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, value: str) -> bool:
        """Whether a label value (``""`` when the label is absent) satisfies this matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{_quote(self.value)}"'


@dataclass(frozen=True)
class Selector:
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Match one label set (absent labels read as ``""``)."""
        return all(m.matches(labels.get(m.label, "")) for m in self.matchers)

    def label_names(self) -> list[str]:
        return sorted({m.label for m in self.matchers})

    def __str__(self) -> str:
        return "{" + ",".join(str(m) for m in self.matchers) + "}"


def make_matcher(label: str, op: str, value: str) -> Matcher:
    """Build a matcher; regexes are compiled here (``re.DOTALL``, matched with fullmatch)."""
    if op not in OPS:
        raise ValueError(f"matcher operator {op!r} is invalid: expected one of {', '.join(OPS)}")
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value, re.DOTALL)
        except re.error as exc:
            raise ValueError(
                f"regex {value!r} of matcher {label}{op} is invalid: {exc}; "
                "fix the pattern (escape special characters with a backslash)"
            ) from None
    return Matcher(label, op, value, regex)


def parse_selector(text: str) -> Selector:
    """Parse ``metric``, ``metric{...}`` or ``{...}`` (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"selector must be a string, got {type(text).__name__}")
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, expected: str, position: int | None = None) -> SelectorError:
        return SelectorError(self.text, self.pos if position is None else position, expected)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Selector:
        self.skip_ws()
        matchers: list[Matcher] = []
        metric_pos = -1
        if _IDENT_START.match(self.peek()):
            metric_pos = self.pos
            name = self.ident(_METRIC_RE, "a metric name")
            matchers.append(make_matcher(METRIC_LABEL, "=", name))
            self.skip_ws()
        elif self.peek() != "{":
            raise self.error("a metric name or '{'")
        braces = self.peek() == "{"
        if braces:
            self.pos += 1
            matchers.extend(self.matcher_list(metric_pos))
            self.skip_ws()
        if self.pos != len(self.text):
            raise self.error("end of selector" if braces else "'{' or end of selector")
        return Selector(tuple(matchers))

    def matcher_list(self, metric_pos: int) -> list[Matcher]:
        out: list[Matcher] = []
        named = metric_pos >= 0
        while True:
            self.skip_ws()
            if self.peek() == "}":
                if not out and not named:
                    raise self.error("a label matcher (an empty '{}' selects nothing)")
                self.pos += 1
                return out
            start = self.pos
            if self.peek() and self.peek() in "\"'`":
                label = self.string()
                self.skip_ws()
                if self.peek() in (",", "}"):
                    # a lone quoted string names the metric (Prometheus 3 UTF-8 syntax)
                    if named:
                        raise self.error("a single metric name (it is already set)", start)
                    named = True
                    out.append(make_matcher(METRIC_LABEL, "=", label))
                    self.separator()
                    if self.text[self.pos - 1] == "}":
                        return out
                    continue
            elif _LABEL_RE.match(self.peek()):
                label = self.ident(_LABEL_RE, "a label name")
            else:
                raise self.error("a label name or '}'")
            self.skip_ws()
            op = self.operator(label)
            self.skip_ws()
            value_pos = self.pos
            if not self.peek() or self.peek() not in "\"'`":
                raise self.error(f"a quoted string after {label}{op}")
            value = self.string()
            if label == METRIC_LABEL and metric_pos >= 0:
                raise self.error(
                    f"no {METRIC_LABEL} matcher: the metric name is already set before '{{'",
                    start,
                )
            try:
                out.append(make_matcher(label, op, value))
            except ValueError as exc:
                raise SelectorError(
                    self.text, value_pos, "a valid regular expression", str(exc)
                ) from None
            self.separator()
            if self.text[self.pos - 1] == "}":
                return out

    def separator(self) -> None:
        self.skip_ws()
        if self.peek() in (",", "}") and self.peek():
            self.pos += 1
            return
        raise self.error("',' or '}'")

    def ident(self, pattern: re.Pattern[str], what: str) -> str:
        m = pattern.match(self.text, self.pos)
        if not m:
            raise self.error(what)
        self.pos = m.end()
        return m.group(0)

    def operator(self, label: str) -> str:
        two = self.text[self.pos : self.pos + 2]
        if two in ("!=", "=~", "!~"):
            self.pos += 2
            return two
        if two == "==":
            raise self.error(f"one of =, !=, =~, !~ after label {label!r} ('==' is not a matcher)")
        if self.peek() == "=":
            self.pos += 1
            return "="
        raise self.error(f"one of =, !=, =~, !~ after label {label!r}")

    def string(self) -> str:
        start = self.pos
        quote = self.text[self.pos]
        self.pos += 1
        if quote == "`":
            end = self.text.find("`", self.pos)
            if end < 0:
                raise self.error("a closing '`' (unterminated raw string)", start)
            value = self.text[self.pos : end]
            self.pos = end + 1
            return value
        out = bytearray()
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] == "\n":
                raise self.error(f"a closing {quote} (unterminated string)", start)
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                break
            if ch == "\\":
                out += self.escape(quote)
            else:
                out += ch.encode("utf-8", "surrogatepass")
                self.pos += 1
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(
                "a string that decodes as UTF-8 (check \\x and octal escapes)", start
            ) from None

    def escape(self, quote: str) -> bytes:
        at = self.pos
        self.pos += 1
        ch = self.peek()
        if not ch:
            raise self.error("an escape character after '\\'")
        self.pos += 1
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch]
        if ch == quote:
            return ch.encode()
        if ch in "01234567":
            digits = self.text[self.pos - 1 : self.pos + 2]
            if len(digits) < 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise self.error("three octal digits (000-377) after '\\'", at)
            self.pos += 2
            return bytes([int(digits, 8)])
        width = {"x": 2, "u": 4, "U": 8}.get(ch)
        if width is None:
            raise self.error(
                "a known escape (\\a \\b \\f \\n \\r \\t \\v \\\\ \\xHH \\ooo \\uHHHH "
                f"\\UHHHHHHHH or \\{quote}); write a literal backslash as \\\\",
                at,
            )
        digits = self.text[self.pos : self.pos + width]
        if len(digits) < width or any(c not in _HEX for c in digits):
            raise self.error(f"{width} hex digits after '\\{ch}'", at)
        self.pos += width
        code = int(digits, 16)
        if ch == "x":
            return bytes([code])
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise self.error("a valid Unicode code point (not a surrogate, <= 10FFFF)", at)
        return chr(code).encode("utf-8")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class LabelColumns:
    """Label columns of a catalog, extracted from its canonical label JSON on demand.

    ``column(name)`` is a dictionary-encoded string array, ``""`` where the label is absent,
    extracted once per label name with DuckDB's JSON functions and cached.
    """

    def __init__(self, labels_json: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(labels_json, pa.ChunkedArray):
            labels_json = labels_json.combine_chunks()
        self._json = labels_json
        self._columns: dict[str, pa.DictionaryArray] = {}
        self._con: Any = None
        self._lock = threading.Lock()  # one DuckDB cursor must not run two queries at once

    def __len__(self) -> int:
        return len(self._json)

    def column(self, name: str) -> pa.DictionaryArray:
        with self._lock:
            return self._column(name)

    def _column(self, name: str) -> pa.DictionaryArray:
        col = self._columns.get(name)
        if col is None:
            if self._con is None:
                self._con = duckdb_cursor()
                self._con.register("catalog_labels", pa.table({"labels": self._json}))
            path = '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
            rel = self._con.sql(
                "SELECT coalesce(json_extract_string(labels, $path), '') AS v FROM catalog_labels",
                params={"path": path},
            )
            col = pc.dictionary_encode(to_arrow(rel).column("v").combine_chunks())
            self._columns[name] = col
        return col


def match_mask(selector: Selector | str | None, columns: LabelColumns) -> np.ndarray:
    """Boolean mask over the catalog rows that ``selector`` selects (None selects all)."""
    n = len(columns)
    if selector is None:
        return np.ones(n, dtype=bool)
    if isinstance(selector, str):
        selector = parse_selector(selector)
    mask = np.ones(n, dtype=bool)
    for m in selector.matchers:
        if not mask.any():
            break
        col = columns.column(m.label)
        dictionary = col.dictionary
        if m.op in ("=", "!="):
            hit = pc.equal(dictionary, pa.scalar(m.value, dictionary.type))
            dict_mask = hit.to_numpy(zero_copy_only=False).astype(bool)
            if m.op == "!=":
                dict_mask = ~dict_mask
        else:
            values = dictionary.to_pylist()
            dict_mask = np.fromiter((m.matches(v) for v in values), bool, len(values))
        indices = col.indices.to_numpy(zero_copy_only=False)
        mask &= dict_mask[indices]
    return mask


@functools.cache
def _duckdb() -> Any:
    import duckdb  # local: ``parse_selector`` does not need DuckDB

    return duckdb.connect()


def duckdb_cursor() -> Any:
    """A connection to a process-wide in-memory DuckDB used only to compute: nothing is
    stored in it, and views registered on a cursor are private to that cursor."""
    return _duckdb().cursor()


def to_arrow(rel: object) -> pa.Table:
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow  # type: ignore[attr-defined]
    table = fetch()
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    return table
