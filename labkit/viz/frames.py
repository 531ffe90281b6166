"""Tables derived from the timeline: one row per call, ready to chart or to show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.core.result import Result
from labkit.core.timeline import Timeline

if TYPE_CHECKING:
    import pandas as pd

CALL_COLUMNS = [
    "call",
    "parent",
    "source",
    "target",
    "path",
    "start_ms",
    "end_ms",
    "latency_ms",
    "outcome",
    "status",
    "protocol",
]


def _timeline(source: Result | Timeline) -> Timeline:
    return source.timeline if isinstance(source, Result) else source


def call_rows(source: Result | Timeline) -> list[dict[str, Any]]:
    """Pair each ``request.sent`` with the record that ended it, in start order."""
    rows: dict[str, dict[str, Any]] = {}
    for rec in _timeline(source):
        call = rec.fields.get("call")
        if call is None:
            continue
        if rec.kind == "request.sent":
            rows[call] = {
                "call": call,
                "parent": rec.fields.get("parent"),
                "source": rec.actor,
                "target": rec.fields.get("target"),
                "path": rec.fields.get("path", ""),
                "start_ms": rec.t * 1000,
                "end_ms": None,
                "latency_ms": None,
                "outcome": "pending",
                "status": None,
                "protocol": rec.fields.get("protocol", "http"),
            }
        elif call in rows and rec.kind in ("response.received", "request.failed"):
            row = rows[call]
            row["end_ms"] = rec.t * 1000
            row["latency_ms"] = rec.fields.get("latency_ms", row["end_ms"] - row["start_ms"])
            if rec.kind == "response.received":
                status = rec.fields.get("status")
                row["status"] = status
                row["outcome"] = "ok" if status is not None and int(status) < 400 else str(status)
            else:
                row["outcome"] = rec.fields.get("error", "failed")
    return list(rows.values())


def calls_frame(source: Result | Timeline) -> pd.DataFrame:
    """One row per call: who called whom, when it started and ended, and how it ended."""
    import pandas as pd

    return pd.DataFrame(call_rows(source), columns=CALL_COLUMNS)


def descendants(rows: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """``root`` and every call made while serving it, in start order."""
    keep = {root}
    out = []
    for row in rows:
        if row["call"] in keep or row["parent"] in keep:
            keep.add(row["call"])
            out.append(row)
    return out
