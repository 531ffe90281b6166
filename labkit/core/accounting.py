"""Where did every message go? The accounting every messaging run reports.

From the timeline alone: for each message id, its last fate (acked, still dead-lettered, still
queued). ``lost`` is what is left over: published − acked − dead-lettered − still queued.
A correct system keeps it at zero through crashes, poison messages and redeliveries.
"""

from __future__ import annotations

from typing import Any

from labkit.core.timeline import Timeline


def message_accounting(timeline: Timeline, *, still_queued: int = 0) -> dict[str, Any]:
    """The standard summary counts of a messaging run (see the module docstring)."""
    published: set[str] = set()
    fate: dict[str, str] = {}
    counts = {"delivered": 0, "redelivered": 0, "duplicates_suppressed": 0}
    for rec in timeline.records:
        kind, mid = rec.kind, rec.fields.get("id")
        if kind == "message.published":
            published.add(mid)
        elif kind == "message.delivered":
            counts["delivered"] += 1
            counts["redelivered"] += bool(rec.fields.get("redelivered"))
        elif kind == "message.acked":
            fate[mid] = "acked"
        elif kind == "message.dead_lettered":
            fate[mid] = "dead_lettered"
        elif kind == "message.replayed":
            fate.pop(mid, None)
        elif kind == "effect.duplicate_suppressed":
            counts["duplicates_suppressed"] += 1
    acked = sum(1 for m in published if fate.get(m) == "acked")
    dead = sum(1 for m in published if fate.get(m) == "dead_lettered")
    return {
        "published": len(published),
        "delivered": counts["delivered"],
        "acked": acked,
        "redelivered": counts["redelivered"],
        "dead_lettered": dead,
        "duplicates_suppressed": counts["duplicates_suppressed"],
        "still_queued": still_queued,
        "lost": len(published) - acked - dead - still_queued,
    }
