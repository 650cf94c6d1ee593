"""Change events and their JSON Lines form (the schema of :mod:`vigil.events`).

Each line is ``{"id", "time", "kind", "labels", "summary", "attributes"}``; ``time`` is
RFC 3339 UTC and ``id`` a stable hash of the rest, so ``truth.json`` can refer to events.
Kinds and ``attributes["action"]``:

* ``deployment``: ``version``, ``previous_version``, ``rollback: true`` on rollbacks;
* ``scaling``: ``scale_up`` / ``scale_down`` with ``replicas``, ``previous_replicas``;
* ``infrastructure``: ``container_restart`` (``reason`` OOMKilled / LivenessProbeFailed; same
  pod), ``pod_eviction`` (``replacement_pod``: the new pod's name), ``disk_cleanup``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vigil.simulate.grid import rfc3339

EVENT_KINDS = ("deployment", "scaling", "infrastructure")
Attribute = str | int | bool


@dataclass
class Event:
    time_ms: int
    kind: str
    labels: dict[str, str]
    summary: str = ""
    attributes: dict[str, Attribute] = field(default_factory=dict)

    @property
    def id(self) -> str:
        body = json.dumps(
            [
                rfc3339(self.time_ms),
                self.kind,
                sorted(self.labels.items()),
                self.summary,
                sorted(self.attributes.items()),
            ],
            separators=(",", ":"),
        )
        return "evt-" + hashlib.blake2b(body.encode("utf-8"), digest_size=6).hexdigest()

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "time": rfc3339(self.time_ms),
            "kind": self.kind,
            "labels": dict(sorted(self.labels.items())),
            "summary": self.summary,
            "attributes": dict(sorted(self.attributes.items())),
        }


def write_events(path: Path, events: Iterable[Event]) -> int:
    """Write events sorted by (time, id); returns how many were written."""
    rows = sorted((e.to_json() for e in events), key=lambda r: (str(r["time"]), str(r["id"])))
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise RuntimeError("two simulated events hash to the same id; this is a simulator bug")
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return len(rows)
